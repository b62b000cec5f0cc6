//! A channel misaligned by a record of the wrong length refuses every
//! later record, correct ones included, until it reconnects; `vmpowerctl
//! add-channels` reconnects it, `set-channel-status` does not (README,
//! Troubleshooting, "A misaligned channel").

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vmpower_api::{ChannelSel, CtlRequest, CtlResponse};
use vmpower_proto::{ScalingUnit, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_channels_realigns_a_misaligned_channel() {
    let mut host = Host::start(&[("vm1", vm(&[2]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;

    // A record 8 bytes short: as a DPDK 17.11 guest (456 bytes) writes
    // on a channel of the current layout (464), or a torn write.
    let short = power(0, ScalingUnit::ScaleMax);
    guest.write_all(&short[..456]).await.unwrap();
    // The next record's first 8 bytes complete it: what is answered then
    // is the short record's MAX.
    let _ = call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await;
    // Later records are read 8 bytes late: refused, again and again.
    for _ in 0..3 {
        assert_eq!(
            call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
            Verdict::Nack
        );
    }
    assert_ne!(host.cpu_file(2, "scaling_setspeed"), "800000");
    // Disabling and enabling the channel keeps its connection: no help.
    for enabled in [false, true] {
        let status = CtlRequest::SetChannelStatus {
            vm: "vm1".into(),
            channels: ChannelSel::List(vec![0]),
            enabled,
        };
        assert!(matches!(host.ctl(&status), CtlResponse::Ok(_)));
    }
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Nack
    );

    let reconnect = CtlRequest::AddChannels {
        vm: "vm1".into(),
        channels: ChannelSel::List(vec![0]),
    };
    assert!(matches!(host.ctl(&reconnect), CtlResponse::Ok(_)));
    // The old connection is closed, a new one made, and it is aligned.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, guest.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?}");
    let mut guest = accept(&qemu).await;
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "800000");
    host.stop().await.unwrap();
}

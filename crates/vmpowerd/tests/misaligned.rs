//! A channel misaligned by a record of the wrong length (a DPDK 17.11
//! guest on a channel of the current layout, a torn write): the daemon
//! drops the partial record once the guest has been silent for 1 s and is
//! aligned again; `vmpowerctl reconnect-channels` realigns it at once;
//! `add-channels` leaves a connected channel alone, as DPDK's does
//! (README, Troubleshooting, "A misaligned channel").

#![allow(clippy::unwrap_used)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vmpower_api::{ChannelSel, CtlRequest, CtlResponse};
use vmpower_proto::{ScalingUnit, Verdict};
use vmpower_testkit::prelude::*;

fn status(host: &Host) -> serde_json::Value {
    let CtlResponse::Ok(v) = host.ctl(&CtlRequest::Status) else {
        panic!("status refused")
    };
    v
}

/// Writes a record 8 bytes short, then a whole one right after: the
/// second completes the first, and its own last 456 bytes stay partial.
async fn misalign(guest: &mut tokio::net::UnixStream) {
    let short = power(0, ScalingUnit::ScaleMax);
    guest.write_all(&short[..456]).await.unwrap();
    let _ = call(guest, &power(0, ScalingUnit::ScaleMin)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misaligned_channel_realigns_once_the_guest_is_silent() {
    let mut host = Host::start(&[("vm1", vm(&[2]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    misalign(&mut guest).await;
    // The event that proves the daemon looked: the partial record dropped.
    wait_for(|| status(&host)["stats"]["partial_bytes_dropped"] == 456).await;
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "800000");
    assert_eq!(status(&host)["stats"]["channels"]["vm1.0"]["connects"], 1);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_channels_realigns_at_once_and_add_channels_leaves_it_alone() {
    let mut host = Host::start(&[("vm1", vm(&[2]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    // The native contract: a misaligned record is NACKed (malformed)
    // rather than unanswered.
    native(&mut guest).await;
    misalign(&mut guest).await;
    // Later records are read 8 bytes late: refused, again and again.
    for _ in 0..3 {
        assert_eq!(
            call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
            Verdict::Nack
        );
    }
    assert_ne!(host.cpu_file(2, "scaling_setspeed"), "800000");
    // add-channels on a connected channel: left alone, and said so.
    let add = CtlRequest::AddChannels {
        vm: "vm1".into(),
        channels: ChannelSel::All,
    };
    let CtlResponse::Ok(added) = host.ctl(&add) else {
        panic!("add-channels refused")
    };
    assert_eq!(added["connected"], serde_json::json!([]), "{added}");
    assert_eq!(added["already_connected"].as_array().unwrap().len(), 1);
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Nack,
        "same connection, still misaligned"
    );
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

    let reconnect = CtlRequest::ReconnectChannels {
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

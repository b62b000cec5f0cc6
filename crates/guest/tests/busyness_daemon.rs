//! `BusynessReporter` against the real vmpowerd (the test playing QEMU in
//! the middle, tests/common): the daemon grants native v2 to the HELLO,
//! every report reaches it as a BUSYNESS request decoded from the bytes the
//! guest sent (entries, interval, rx-missed, sequence), the daemon counts
//! each one (refused as unsupported until its busyness controller lands,
//! accepted after: the test holds both), and none is answered: the next
//! request's ACK is the first reply the guest reads.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use vmpower_api::{CtlRequest, CtlResponse};
use vmpower_guest::{BusynessReporter, Channel, ChannelConfig};
use vmpower_proto::contract::Contract;
use vmpower_proto::{BusyEntry, Layout, RequestBody, ScalingUnit};

/// The BUSYNESS requests the daemon counted for vm1, whatever their
/// outcome (`ignored`: refused, never answered).
fn busyness_counted(host: &Host) -> u64 {
    let CtlResponse::Ok(v) = host.ctl(&CtlRequest::Status) else {
        panic!("status refused")
    };
    ["ok", "nack", "ignored"]
        .iter()
        .map(|r| {
            v["stats"]["requests"][format!("vm1/busyness/{r}")]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reach_the_daemon_unanswered() {
    let mut host = Host::start(&[("vm1", vm(&[2, 3]))]).await;
    let middle = host.middle("vm1", 0).await;
    let port = middle.guest_socket.clone();
    let config = ChannelConfig {
        timeout: WAIT,
        ..ChannelConfig::default()
    };
    let ch = blocking(move || Channel::open_path(&port, 0, config).unwrap()).await;
    assert_eq!(ch.contract(), Contract::Native(2));
    let mut reporter = BusynessReporter::new(ch, Duration::from_millis(100)).unwrap();
    // (fractions sent, per mille expected on the wire, rx-missed).
    let reports = [
        (
            vec![(0, 0.25), (1, 1.0)],
            vec![(0, 250), (1, 1000)],
            Some(7),
        ),
        (vec![(1, 0.1234)], vec![(1, 123)], None),
        (
            vec![(1, 0.9996), (0, 0.0)],
            vec![(1, 1000), (0, 0)],
            Some(9),
        ),
    ];
    let sent = reports.clone();
    let mut ch = blocking(move || {
        for (fractions, _, rx_missed) in &sent {
            reporter.report_fractions(fractions, *rx_missed).unwrap();
        }
        reporter.into_channel()
    })
    .await;
    wait_for(|| busyness_counted(&host) == 3).await;
    assert_eq!(host.verdicts("vm1", "busyness").1, 0, "a report was NACKed");
    // The host wrote nothing for the reports: the ACK is the first reply.
    let ch = blocking(move || {
        ch.set_cpu_freq(1, ScalingUnit::ScaleMin).unwrap();
        ch
    })
    .await;
    assert_eq!(ch.skipped_replies(), 0, "a report was answered");

    let on_wire: Vec<_> = middle
        .requests(Layout::Current)
        .into_iter()
        .filter_map(|r| match r.body {
            RequestBody::Busyness(report) => Some(report),
            _ => None,
        })
        .collect();
    assert_eq!(on_wire.len(), 3);
    for (seq, (report, (_, permille, rx_missed))) in (0u64..).zip(on_wire.iter().zip(&reports)) {
        assert_eq!(report.seq(), seq);
        assert_eq!(report.interval_ms(), 100);
        assert_eq!(report.rx_missed(), *rx_missed);
        let expected: Vec<BusyEntry> = permille
            .iter()
            .map(|&(vcpu, permille)| BusyEntry { vcpu, permille })
            .collect();
        assert_eq!(report.entries(), expected.as_slice());
    }
    host.stop().await.unwrap();
}

//! The busyness controller in the real daemon, over real unix sockets on
//! a fake host: a guest on the native contract v2 reports its vCPUs'
//! busyness and the daemon moves their pCPUs; silence puts them at max;
//! hostile reports are refused whole, counted, never answered, and a
//! neighbour VM is still served.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use vmpower_api::{CtlRequest, CtlResponse};
use vmpower_proto::contract::NATIVE_VERSION;
use vmpower_proto::{BusyEntry, BusynessReport, RequestBody, ScalingUnit, Verdict};

/// A BUSYNESS record: `(vCPU, per mille)` entries, sent every
/// `interval_ms`.
fn report(seq: u64, entries: &[(u16, u16)], interval_ms: u32) -> Vec<u8> {
    let entries: Vec<BusyEntry> = entries
        .iter()
        .map(|&(vcpu, permille)| BusyEntry { vcpu, permille })
        .collect();
    record(RequestBody::Busyness(
        BusynessReport::new(seq, &entries, interval_ms, Some(0)).unwrap(),
    ))
}

async fn hello_v2(guest: &mut UnixStream) {
    let hello = record(RequestBody::Hello {
        version: NATIVE_VERSION,
    });
    assert_eq!(call(guest, &hello).await, Verdict::Ack);
}

/// Sends `request` and checks that the next reply read echoes it (a
/// reply to an earlier report would come first and echo the report).
async fn assert_next_reply_is_for(guest: &mut UnixStream, request: &[u8]) {
    guest.write_all(request).await.unwrap();
    let mut reply = vec![0u8; request.len()];
    tokio::time::timeout(WAIT, guest.read_exact(&mut reply))
        .await
        .expect("no reply in time")
        .unwrap();
    assert_eq!(&reply[..12], &request[..12], "a report was answered");
    assert_eq!(&reply[16..], &request[16..], "a report was answered");
}

fn status(host: &Host) -> serde_json::Value {
    let CtlResponse::Ok(status) = host.ctl(&CtlRequest::Status) else {
        panic!("status refused")
    };
    status
}

/// A rejection counter of `status`.
fn rejections(host: &Host, reason: &str) -> u64 {
    status(host)["stats"]["rejections"][reason]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until a status field says what `cond` wants.
async fn wait_status(host: &Host, cond: impl Fn(&serde_json::Value) -> bool) {
    wait_for(|| cond(&status(host))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_moves_the_core_and_silence_puts_it_back_at_max() {
    let mut host = Host::start(&[("vm1", vm(&[1, 2]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    hello_v2(&mut guest).await;
    // The fake CPUs start at 800 MHz. 95 % busy there: 950 MHz would
    // make 80 %; 1.0 GHz is the lowest level at or below it. A report
    // every second: stale after 3 s.
    guest
        .write_all(&report(1, &[(0, 950)], 1000))
        .await
        .unwrap();
    wait_for(|| host.cpu_file(1, "scaling_setspeed") == "1000000").await;
    assert_eq!(
        host.cpu_file(2, "scaling_governor"),
        host.cpu_file(3, "scaling_governor"),
        "vCPU 1's pCPU untouched"
    );
    // The report interval bounds the silence: 3 × 1 s here, then max
    // (never turbo), counted and in status.
    wait_for(|| host.cpu_file(1, "scaling_setspeed") == "2300000").await;
    wait_status(&host, |s| s["busyness"][0]["stale_events"] == 1).await;
    let s = status(&host);
    assert_eq!(s["busyness"][0]["vm"], "vm1");
    assert_eq!(s["busyness"][0]["stale"], true);
    assert_eq!(s["busyness"][0]["reports"], 1);
    // Reports resume: the core comes down again once the cooldown from
    // the silence has passed. 40 % busy at 2.3 GHz: 1.15 GHz would make
    // 80 %; 1.2 GHz is the lowest level at or below it.
    let deadline = tokio::time::Instant::now() + WAIT;
    for seq in 2.. {
        guest
            .write_all(&report(seq, &[(0, 400)], 20))
            .await
            .unwrap();
        if host.cpu_file(1, "scaling_setspeed") == "1200000" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never came down");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // No reply was ever written: the next bytes the guest reads are the
    // answer to its next request.
    assert_next_reply_is_for(&mut guest, &power(1, ScalingUnit::ScaleMin)).await;
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_reports_are_refused_counted_and_a_neighbour_is_served() {
    let mut host = Host::start_adjusted(&[("bad", vm(&[1])), ("good", vm(&[2]))], |c| {
        c.busyness_report_burst = 5;
        c.busyness_max_reports_per_second = 10;
    })
    .await;
    let qemu_bad = host.qemu("bad", 0);
    let mut bad = accept(&qemu_bad).await;
    let qemu_good = host.qemu("good", 0);
    let mut good = accept(&qemu_good).await;

    // On DPDK's contract: refused (and unanswered).
    bad.write_all(&report(1, &[(0, 100)], 100)).await.unwrap();
    wait_for(|| rejections(&host, "busyness_not_negotiated") == 1).await;
    // On native v1: refused too.
    native(&mut bad).await;
    bad.write_all(&report(1, &[(0, 100)], 100)).await.unwrap();
    wait_for(|| rejections(&host, "busyness_not_negotiated") == 2).await;
    hello_v2(&mut bad).await;
    // A vCPU not the VM's, with a good entry beside it: refused whole.
    bad.write_all(&report(2, &[(0, 100), (5, 100)], 100))
        .await
        .unwrap();
    wait_for(|| rejections(&host, "vcpu_out_of_range") == 1).await;
    // Absurd values: 5000 per mille, 200 entries (the decoder refuses).
    let mut absurd = report(3, &[(0, 100)], 100);
    absurd[50..52].copy_from_slice(&5000u16.to_le_bytes());
    bad.write_all(&absurd).await.unwrap();
    let mut many = report(4, &[(0, 100)], 100);
    many[8..12].copy_from_slice(&200u32.to_le_bytes());
    bad.write_all(&many).await.unwrap();
    wait_for(|| rejections(&host, "malformed") == 2).await;
    assert_ne!(
        host.cpu_file(1, "scaling_governor"),
        "userspace",
        "untouched"
    );
    // A flood: 5 at once pass, then the limit refuses.
    let flood: Vec<u8> = (0..50)
        .flat_map(|i| report(10 + i, &[(0, 800)], 100))
        .collect();
    bad.write_all(&flood).await.unwrap();
    wait_for(|| rejections(&host, "report_rate_exceeded") >= 40).await;

    // The neighbour is served: its report moves its own core (95 % busy
    // at 800 MHz: 1.0 GHz).
    hello_v2(&mut good).await;
    good.write_all(&report(1, &[(0, 950)], 100)).await.unwrap();
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "1000000").await;
    // Nothing was ever answered to the bad guest's reports: the next
    // reply it reads is its next request's.
    assert_next_reply_is_for(&mut bad, &power(0, ScalingUnit::ScaleMax)).await;
    host.stop().await.unwrap();
}

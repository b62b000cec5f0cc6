//! Busy polling of guest channels (`channel_busy_poll_us`): requests that
//! follow each other are served while the channel polls, a request after
//! a pause is served through epoll again, and a guest that closes while
//! the channel polls is noticed.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use vmpower_api::{CtlRequest, CtlResponse};
use vmpower_cpufreq::Driver;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_engine::RateLimit;
use vmpower_proto::{ScalingUnit, Verdict};
use vmpower_testkit::prelude::*;

/// A host whose channels poll for 1 ms after each request, rate limit off.
async fn polling_host(vms: &[(&str, vmpowerd::config::VmConfig)]) -> Host {
    let fake = Arc::new(
        FakeSysfs::builder(4)
            .driver(Driver::AcpiCpufreq)
            .build()
            .unwrap(),
    );
    Host::start_with(fake, vms, |c| {
        c.channel_busy_poll_us = 1000;
        c.rate_limit = RateLimit {
            burst: u32::MAX,
            per_second: u32::MAX,
        };
    })
    .await
}

fn channel_up(host: &Host, channel: &str) -> bool {
    let CtlResponse::Ok(v) = host.ctl(&CtlRequest::Status) else {
        panic!("status refused")
    };
    v["stats"]["channels"][channel]["up"].as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_and_paused_requests_are_all_served() {
    let mut host = polling_host(&[("vm1", vm(&[1]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    for i in 0..200 {
        let (unit, khz) = if i % 2 == 0 {
            (ScalingUnit::ScaleMin, "800000")
        } else {
            (ScalingUnit::ScaleMax, "2301000")
        };
        assert_eq!(call(&mut guest, &power(0, unit)).await, Verdict::Ack);
        assert_eq!(host.cpu_file(1, "scaling_setspeed"), khz, "request {i}");
        if i % 50 == 49 {
            // Far past the window: the channel is back on epoll.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_closes_right_after_a_request_is_noticed() {
    let mut host = polling_host(&[("vm1", vm(&[1]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    // Back to back: the channel polls after the later ones.
    for unit in [
        ScalingUnit::ScaleMin,
        ScalingUnit::ScaleMax,
        ScalingUnit::ScaleMin,
    ] {
        assert_eq!(call(&mut guest, &power(0, unit)).await, Verdict::Ack);
    }
    drop(guest);
    wait_for(|| !channel_up(&host, "vm1.0")).await;
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_channel_does_not_hold_the_others() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut host = polling_host(&[("vm1", vm(&[1])), ("vm2", vm(&[2]))]).await;
    let q1 = host.qemu("vm1", 0);
    let mut busy = accept(&q1).await;
    let q2 = host.qemu("vm2", 0);
    let mut other = accept(&q2).await;
    // vm1 sends back to back all along: its channel keeps polling.
    let served = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = tokio::spawn({
        let (served, stop) = (served.clone(), stop.clone());
        async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let unit = if i.is_multiple_of(2) {
                    ScalingUnit::ScaleMin
                } else {
                    ScalingUnit::ScaleMax
                };
                assert_eq!(call(&mut busy, &power(0, unit)).await, Verdict::Ack);
                served.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }
    });
    wait_for(|| served.load(Ordering::Relaxed) > 100).await;
    // How many of vm1's requests go by while one of vm2's waits: a few,
    // as each turn of vm1's polling lets the others be served (a poller
    // that kept the thread would let its task's whole budget, 128
    // requests, go by).
    let (p75, passed) = passing_by(&mut other, &served, 40).await;
    stop.store(true, Ordering::Relaxed);
    hammer.await.unwrap();
    assert!(
        p75 <= 16,
        "vm1 requests served per vm2 round trip: {passed:?}"
    );
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_keeps_its_socket_full_does_not_hold_the_others() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // No rate limit (polling_host): only taking turns protects vm2.
    let mut host = polling_host(&[("vm1", vm(&[1])), ("vm2", vm(&[2]))]).await;
    let q1 = host.qemu("vm1", 0);
    let flooder = accept(&q1).await;
    let q2 = host.qemu("vm2", 0);
    let mut other = accept(&q2).await;
    let (mut replies, mut requests) = flooder.into_split();
    let chunk: Vec<u8> = (0..256)
        .flat_map(|_| power(0, ScalingUnit::ScaleMin))
        .collect();
    let writer = tokio::spawn(async move { while requests.write_all(&chunk).await.is_ok() {} });
    let answered = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn({
        let answered = answered.clone();
        async move {
            let mut buf = vec![0u8; 464 * 256];
            let mut bytes = 0u64;
            while let Ok(n) = replies.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                bytes += n as u64;
                answered.store(bytes / 464, Ordering::Relaxed);
            }
        }
    });
    wait_for(|| answered.load(Ordering::Relaxed) > 10_000).await;
    // vm1's records answered while one of vm2's waits: a read's batch or
    // two (at most 141 records each), not the flood.
    let (p75, passed) = passing_by(&mut other, &answered, 20).await;
    assert!(
        p75 <= 2_000,
        "vm1 records answered per vm2 round trip: {passed:?}"
    );
    writer.abort();
    reader.abort();
    host.stop().await.unwrap();
}

/// `trips` round trips of `guest` (SCALE_MIN/MAX alternating, each
/// ACKed); how far `progress` (another guest's count) moved during each:
/// the 3rd quartile and all of them, sorted.
async fn passing_by(
    guest: &mut tokio::net::UnixStream,
    progress: &std::sync::atomic::AtomicU64,
    trips: u32,
) -> (u64, Vec<u64>) {
    use std::sync::atomic::Ordering;
    let mut passed = Vec::new();
    for i in 0..trips {
        let unit = if i.is_multiple_of(2) {
            ScalingUnit::ScaleMin
        } else {
            ScalingUnit::ScaleMax
        };
        let before = progress.load(Ordering::Relaxed);
        assert_eq!(call(guest, &power(0, unit)).await, Verdict::Ack);
        passed.push(progress.load(Ordering::Relaxed) - before);
    }
    passed.sort_unstable();
    (passed[passed.len() * 3 / 4], passed)
}

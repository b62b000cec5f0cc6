//! The per-channel rate limit: a guest that sends more than its limit
//! allows is not read past it. Its requests wait in its own socket and are
//! answered at the limit's pace (none dropped, none refused); each pause
//! is counted on the channel. Another guest is served meanwhile.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use vmpower_api::{CtlRequest, CtlResponse};
use vmpower_cpufreq::Driver;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_engine::RateLimit;
use vmpower_proto::{ScalingUnit, Verdict};
use vmpower_testkit::prelude::*;

const BURST: u32 = 20;
// Slow enough that even a loaded machine reads faster than tokens refill
// (the pause being counted depends on it).
const PER_SECOND: u32 = 50;
const SENT: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_waits_in_the_guest_and_is_answered_at_the_limit() {
    let fake = Arc::new(
        FakeSysfs::builder(4)
            .driver(Driver::AcpiCpufreq)
            .build()
            .unwrap(),
    );
    let mut host = Host::start_with(fake, &[("vm1", vm(&[1])), ("vm2", vm(&[2]))], |c| {
        c.rate_limit = RateLimit {
            burst: BURST,
            per_second: PER_SECOND,
        };
    })
    .await;
    let q1 = host.qemu("vm1", 0);
    let mut flooder = accept(&q1).await;
    let q2 = host.qemu("vm2", 0);
    let mut other = accept(&q2).await;

    let start = Instant::now();
    let flood: Vec<u8> = (0..SENT)
        .flat_map(|i| {
            let unit = if i % 2 == 0 {
                ScalingUnit::ScaleMin
            } else {
                ScalingUnit::ScaleMax
            };
            power(0, unit)
        })
        .collect();
    flooder.write_all(&flood).await.unwrap();
    // While vm1 waits for tokens, vm2 is served.
    assert_eq!(
        call(&mut other, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "800000");
    // Every one of vm1's requests is answered, in order, and ACKed.
    for i in 0..SENT {
        let verdict = read_verdict(&mut flooder, 464).await;
        assert_eq!(verdict, Verdict::Ack, "request {i}");
    }
    let took = start.elapsed();
    // The burst at once, the rest one token apart.
    let least = Duration::from_secs_f64((SENT - BURST as usize) as f64 / f64::from(PER_SECOND));
    assert!(
        took >= least.mul_f64(0.9),
        "{SENT} requests answered in {took:?}, faster than the limit allows ({least:?})"
    );
    // pCPU 1 holds the last request's level (the 60th: SCALE_MAX).
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "2301000");

    let CtlResponse::Ok(status) = host.ctl(&CtlRequest::Status) else {
        panic!("status refused")
    };
    let stats = &status["stats"];
    assert!(stats["rejections"].get("rate_limited").is_none(), "{stats}");
    assert_eq!(stats["requests"]["vm1/power/ok"], SENT as u64, "{stats}");
    let paused = stats["channels"]["vm1.0"]["throttled"].as_u64().unwrap();
    assert!(paused > 0, "{stats}");
    assert_eq!(stats["channels"]["vm2.0"]["throttled"], 0, "{stats}");
    host.stop().await.unwrap();
}

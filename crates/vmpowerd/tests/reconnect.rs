//! A channel peer that accepts and closes at once is reconnected with an
//! exponential backoff (50 ms doubling), and a connection that lived and
//! carried a record starts the backoff again from 50 ms.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use vmpower_proto::{ScalingUnit, Verdict};
use vmpower_testkit::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_closes_at_once_is_tried_less_and_less_often() {
    let mut host = Host::start(&[("vm1", vm(&[1]))]).await;
    let qemu = host.qemu("vm1", 0);
    // Five connections closed at once: the daemon waits 50, 100, 200 and
    // 400 ms between them (750 ms at least for the five).
    let mut at = Vec::new();
    for _ in 0..5 {
        drop(accept(&qemu).await);
        at.push(Instant::now());
    }
    let spread = at[4] - at[0];
    assert!(
        spread >= Duration::from_millis(700),
        "five connects in {spread:?}: no backoff"
    );
    // The sixth comes 800 ms after the fifth closed; it carries a request
    // and lives over a second ...
    let mut guest = accept(&qemu).await;
    let gap = at[4].elapsed();
    assert!(gap >= Duration::from_millis(700), "{gap:?}");
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMax)).await,
        Verdict::Ack
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drop(guest);
    let closed = Instant::now();
    // ... so the next connect comes after 50 ms, not 1.6 s.
    drop(accept(&qemu).await);
    let gap = closed.elapsed();
    assert!(gap < Duration::from_millis(800), "reconnect after {gap:?}");
    host.stop().await.unwrap();
}

//! A guest cannot flood the host's log: the real binary, a guest that
//! sends many frequency-changing requests and many refused ones. Each
//! kind gets its VM's budget of lines; the rest are counted, and every
//! change is still in the history.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use tokio::net::UnixListener;
use vmpower_api::{Client, CtlRequest, CtlResponse};
use vmpower_proto::{ScalingUnit, Verdict};

mod binary;
mod common;

use binary::{Setup, WAIT, sigterm, wait_exit, wait_until};
use common::{call, power};

/// vm1's budget per kind of line per 10 s (`ratelog::LogLimiter::LINES`).
const BUDGET: usize = 10;
const CHANGES: usize = 30;
const REFUSALS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_lines_are_budgeted_and_its_history_is_whole() {
    let s = Setup::new();
    let log_path = s.dir.path().join("stderr.log");
    let file = std::fs::File::create(&log_path).unwrap();
    let mut daemon = s.command(Stdio::from(file)).spawn().unwrap();
    wait_until(|| std::os::unix::net::UnixStream::connect(s.control()).is_ok());
    let qemu = UnixListener::bind(s.dir.path().join("channels/vm1.0")).unwrap();
    let (mut guest, _) = tokio::time::timeout(WAIT, qemu.accept())
        .await
        .unwrap()
        .unwrap();

    // Every one of these changes pCPU 1 (min, max, min, ...).
    for i in 0..CHANGES {
        let unit = if i % 2 == 0 {
            ScalingUnit::ScaleMin
        } else {
            ScalingUnit::ScaleMax
        };
        assert_eq!(call(&mut guest, &power(0, unit)).await, Verdict::Ack);
    }
    // vm1 has one vCPU: refused.
    for _ in 0..REFUSALS {
        let got = call(&mut guest, &power(7, ScalingUnit::ScaleMin)).await;
        assert_eq!(got, Verdict::Nack);
    }
    let CtlResponse::Ok(status) = Client::connect(&s.control())
        .unwrap()
        .call(&CtlRequest::Status)
        .unwrap()
    else {
        panic!("status refused")
    };
    let suppressed = status["stats"]["log_lines_suppressed"].as_u64().unwrap();
    assert_eq!(
        suppressed,
        (CHANGES - BUDGET + REFUSALS - BUDGET) as u64,
        "{status}"
    );
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).success());

    let log = std::fs::read_to_string(&log_path).unwrap();
    let count = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains("vm1"))
            .count()
    };
    assert_eq!(count("frequency changed"), BUDGET, "{log}");
    assert_eq!(count("request refused"), BUDGET, "{log}");
    // The history has every change (and the restore at stop, no VM).
    let store = vmpowerd::store::Store::open_in_dir(
        &s.dir.path().join("state"),
        vmpowerd::store::StoreOptions::default(),
    )
    .unwrap();
    let vm1 = vmpower_engine::VmId::new("vm1");
    let history = store.history(Some(&vm1), None, 1000).unwrap();
    assert_eq!(history.len(), CHANGES);
}

//! What the real binary writes to a stderr that is a plain file (neither
//! a terminal nor the journal): lines without colour codes, and a failed
//! frequency write named with the VM and vCPU it was for, within the
//! guest's log budget.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use tokio::net::UnixListener;
use vmpower_api::{Client, CtlRequest, CtlResponse};
use vmpower_proto::{ScalingUnit, Verdict};

use vmpower_testkit::binary::{Setup, WAIT};
use vmpower_testkit::records::{call, power};

/// vm1's budget of lines per 10 s (`ratelog::LOG_LINES`).
const BUDGET: usize = 10;

#[test]
fn a_file_gets_no_colour_codes() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let log = s.spawn_logging().stop();
    assert!(log.contains("vmpowerd ready"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_names_the_vm_and_vcpu_within_the_budget() {
    const FAILURES: usize = 15;
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let daemon = s.spawn_logging();
    let qemu = UnixListener::bind(s.dir.path().join("channels/vm1.0")).unwrap();
    let (mut guest, _) = tokio::time::timeout(WAIT, qemu.accept())
        .await
        .unwrap()
        .unwrap();
    // vm1's vCPU 0 runs on pCPU 1, whose setspeed file cannot be written.
    let rel = s.fake.resolve(Path::new(
        "devices/system/cpu/cpu1/cpufreq/scaling_setspeed",
    ));
    let setspeed = s.fake.path().join(rel);
    std::fs::remove_file(&setspeed).unwrap();
    std::fs::create_dir(&setspeed).unwrap();

    // Each one asks for a change (min, max, min, ...), and each fails.
    let units = [ScalingUnit::ScaleMin, ScalingUnit::ScaleMax];
    for unit in units.into_iter().cycle().take(FAILURES) {
        assert_eq!(call(&mut guest, &power(0, unit)).await, Verdict::Nack);
    }
    let mut client = Client::connect(&s.control()).unwrap();
    let status = match client.call(&CtlRequest::Status).unwrap() {
        CtlResponse::Ok(status) => status,
        other => panic!("status refused: {other:?}"),
    };
    assert_eq!(
        status["stats"]["log_lines_suppressed"].as_u64(),
        Some((FAILURES - BUDGET) as u64),
        "{status}"
    );
    let log = daemon.stop();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("frequency change failed"))
        .collect();
    assert_eq!(failed.len(), BUDGET, "{log}");
    for line in failed {
        assert!(
            line.contains(r#"vm="vm1""#) && line.contains(r#"vcpu="0""#) && line.contains("pcpu=1"),
            "{line}"
        );
    }
}

//! A guest cannot flood the host's log: the real binary, a guest that
//! sends many frequency-changing requests and many refused ones, or sets
//! and removes its policy again and again. Each kind gets its VM's (or its
//! pCPU's) budget of lines; the rest are counted, and every change is
//! still in the history.

#![allow(clippy::unwrap_used)]

use tokio::net::{UnixListener, UnixStream};
use vmpower_api::{Client, CtlRequest, CtlResponse};
use vmpower_proto::{
    Policy, PolicyKind, RequestBody, ScalingUnit, VcpuList, Verdict, WorkloadLevel,
};

use vmpower_testkit::binary::{Logging, Setup, WAIT};
use vmpower_testkit::records::{call, native, power};

/// vm1's budget per kind of line per 10 s (`ratelog::LOG_LINES`).
const BUDGET: usize = 10;
const CHANGES: usize = 30;
const REFUSALS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_lines_are_budgeted_and_its_history_is_whole() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let (daemon, mut guest) = start(&s).await;

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
    let (suppressed, status) = suppressed(&s);
    assert_eq!(
        suppressed,
        (CHANGES - BUDGET + REFUSALS - BUDGET) as u64,
        "{status}"
    );
    let log = daemon.stop();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_and_removing_a_policy_again_and_again_is_budgeted() {
    const CYCLES: usize = 15;
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let (daemon, mut guest) = start(&s).await;
    // The native contract: the removal is ACKed once it is done.
    native(&mut guest).await;
    // WORKLOAD LOW takes pCPU 1 to min; removing it gives the pCPU back.
    let low = Policy {
        workload: WorkloadLevel::Low,
        ..Policy::new(PolicyKind::Workload, VcpuList::from_slice(&[0]).unwrap())
    };
    for _ in 0..CYCLES {
        let set = record(RequestBody::SetPolicy(low));
        assert_eq!(call(&mut guest, &set).await, Verdict::Ack);
        assert_eq!(s.file(1, "scaling_setspeed"), "800000");
        let remove = record(RequestBody::RemovePolicy);
        assert_eq!(call(&mut guest, &remove).await, Verdict::Ack);
        assert_eq!(s.file(1, "scaling_governor"), "ondemand");
    }
    // Per kind: decisions, notices (HELLO + accepted + removed) and
    // releases.
    let over = (CYCLES - BUDGET) + (1 + 2 * CYCLES - BUDGET) + (CYCLES - BUDGET);
    let (suppressed, status) = suppressed(&s);
    assert_eq!(suppressed, over as u64, "{status}");
    let log = daemon.stop();
    let given_back = log
        .lines()
        .filter(|l| l.contains("pCPU given back") && l.contains("pcpu=1"))
        .count();
    assert_eq!(given_back, BUDGET, "{log}");
}

/// Starts the daemon with its stderr in a file and plays QEMU for vm1.0.
async fn start(s: &Setup) -> (Logging, UnixStream) {
    let daemon = s.spawn_logging();
    let qemu = UnixListener::bind(s.dir.path().join("channels/vm1.0")).unwrap();
    let (guest, _) = tokio::time::timeout(WAIT, qemu.accept())
        .await
        .unwrap()
        .unwrap();
    (daemon, guest)
}

/// The daemon's count of suppressed lines, and its whole status.
fn suppressed(s: &Setup) -> (u64, serde_json::Value) {
    let CtlResponse::Ok(status) = Client::connect(&s.control())
        .unwrap()
        .call(&CtlRequest::Status)
        .unwrap()
    else {
        panic!("status refused")
    };
    let n = status["stats"]["log_lines_suppressed"].as_u64().unwrap();
    (n, status)
}

/// vm1's record carrying `body`.
fn record(body: RequestBody) -> Vec<u8> {
    vmpower_testkit::records::named("vm1", body)
}

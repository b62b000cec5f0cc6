//! The history has a row for every CPU given back, not only for frequency
//! changes: released when no VM wants it, restored at a clean stop, and
//! restored at start when a crashed run left it.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use vmpower_api::answers::{DecisionInputs, GivenBack, History, HistoryEntry};
use vmpower_api::{CtlRequest, FreqOp};
use vmpower_cpufreq::{CpuId, SysfsIo};
use vmpower_proto::{ScalingUnit, Verdict};
use vmpower_testkit::prelude::*;

/// The history's rows for `pcpu` whose reason starts with `reason`.
/// Each is the daemon's own (no VM) and based on nothing measured (`{}`).
fn rows(host: &Host, pcpu: u32, reason: &str) -> Vec<HistoryEntry> {
    let all: History = serde_json::from_value(host.ok(&CtlRequest::History {
        vm: None,
        since: None,
        limit: None,
    }))
    .unwrap();
    let rows: Vec<HistoryEntry> = all
        .into_iter()
        .filter(|r| r.pcpu == pcpu && r.reason.starts_with(reason))
        .collect();
    for r in &rows {
        assert_eq!(r.vm, None, "{r:?}");
        assert_eq!(r.inputs, DecisionInputs::GivenBack(GivenBack {}), "{r:?}");
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_and_restores_are_in_the_history() {
    let mut host = Host::start(&[("vm1", vm(&[1]))]).await;
    host.stop().await.unwrap();
    // What a crashed run leaves: CPU 2 recorded, then left at performance.
    let legacy = host.config.state_dir.join("takeover.json");
    let mut record = vmpower_cpufreq::takeover::Takeover::open(&legacy).unwrap();
    record.take_cpu(&*host.fake, CpuId(2)).unwrap();
    let governor = Path::new("devices/system/cpu/cpu2/cpufreq/scaling_governor");
    host.fake.external_write(governor, "performance").unwrap();
    drop(record);
    host.launch().await;
    assert_ne!(host.fake.read(governor).unwrap(), "performance");
    let start = rows(&host, 2, "restored at start");
    assert_eq!(start.len(), 1, "{start:?}");

    // vm1 takes pCPU 1, then goes: the release is a row.
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMax)).await,
        Verdict::Ack
    );
    host.ok(&CtlRequest::RmVm { vm: "vm1".into() });
    let released = rows(&host, 1, "released");
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0].old_khz, Some(2_301_000), "{released:?}");

    // The operator holds pCPU 3 at max; a clean stop gives it back.
    host.ok(&CtlRequest::SetCpuFreq {
        cpus: vec![3],
        op: FreqOp::Max,
    });
    host.stop().await.unwrap();
    host.launch().await;
    let stop = rows(&host, 3, "restored at stop");
    assert_eq!(stop.len(), 1, "{stop:?}");
    host.stop().await.unwrap();
}

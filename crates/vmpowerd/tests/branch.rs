//! BRANCH_RATIO in the daemon: the sampler loop driven by recorded counter
//! series (fast up, slow down, sleeping while no policy needs it), and the
//! refusal path on a host whose kernel offers no hardware counters.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use vmpower_api::{CtlRequest, CtlResponse};
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::{CpuId, SysfsIo};
use vmpower_engine::{PolicyExtensions, PolicySpec, VmId};
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{Layout, Policy, PolicyKind, Request, RequestBody, VcpuList, Verdict, VmName};
use vmpower_testkit::FakeHost;
use vmpower_testkit::prelude::*;
use vmpowerd::SharedCore;
use vmpowerd::backends::Backends;
use vmpowerd::branch::fake::FakeBranchCounters;
use vmpowerd::branch::{BranchError, detect, run_branch};
use vmpowerd::run::Daemon;

fn branch_policy() -> Policy {
    Policy::new(
        PolicyKind::BranchRatio,
        VcpuList::from_slice(&[0, 1]).unwrap(),
    )
}

fn spec() -> PolicySpec {
    PolicySpec {
        policy: branch_policy(),
        ext: PolicyExtensions::default(),
        tz: TimeZone::UTC,
    }
}

/// The real start-up (nothing served) on a fake 4-CPU host, with branch
/// counters and vm1's vCPUs 0 and 1 placed on pCPUs 1 and 2: its core.
async fn started_core(host: &FakeHost, counters: &FakeBranchCounters) -> (Arc<Daemon>, SharedCore) {
    let mut config = host.config();
    config.vm.insert("vm1".to_owned(), vm(&[1, 2]));
    let mut backends = Backends::fake(host.fake.clone(), Timestamp::UNIX_EPOCH);
    backends.branch = Some(Box::new(counters.clone()));
    let daemon = Arc::new(vmpowerd::run::start(config, &backends).unwrap());
    let core = daemon.core.clone();
    daemon.placer.refresh(&VmId::new("vm1"), &core).await;
    (daemon, core)
}

fn set_policy(core: &SharedCore) {
    let mut core = vmpowerd::lock(core);
    let now = core.now();
    let actions = core
        .engine
        .set_policy(&VmId::new("vm1"), spec(), now, Timestamp::UNIX_EPOCH)
        .unwrap();
    core.execute(&actions);
    core.policies_changed();
}

fn speed(fake: &FakeSysfs, cpu: u32) -> String {
    let rel = format!("devices/system/cpu/cpu{cpu}/cpufreq/scaling_setspeed");
    fake.read(Path::new(&rel)).unwrap_or_default()
}

fn limits(fake: &FakeSysfs) -> (String, String) {
    let rel = "devices/system/cpu/cpu1/cpufreq/cpuinfo_max_freq";
    let max = fake.read(Path::new(rel)).unwrap().trim().to_owned();
    let rel = "devices/system/cpu/cpu1/cpufreq/cpuinfo_min_freq";
    let min = fake.read(Path::new(rel)).unwrap().trim().to_owned();
    (max, min)
}

/// Waits until the loop has sampled everything recorded and then sampled
/// once more: every recorded interval has been fed to the engine.
async fn drained(counters: &FakeBranchCounters) {
    wait_for(|| counters.remaining() == 0).await;
    let seen = counters.samples();
    wait_for(|| counters.samples() > seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_series_go_up_fast_and_down_slowly() {
    let counters = FakeBranchCounters::new();
    counters.record(CpuId(1), &[(0, 0)]);
    counters.record(CpuId(2), &[(0, 0)]);
    // pCPU 2 has its own, higher threshold: what is high for pCPU 1 is
    // low for it. The daemon samples every 10 ms.
    let prepared = Host::prepare(FakeHost::new(), &[("vm1", vm(&[1, 2]))], |c| {
        c.traffic_interval_ms = 10;
        c.core_branch_ratio = vec!["2:0.1".to_owned()];
    });
    let mut host = prepared
        .with_fake_hardware()
        .with_branch(Box::new(counters.clone()));
    host.launch().await;
    let fake = host.fake.clone();
    let (max, min) = limits(&fake);
    assert_ne!(max, min);
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    assert_eq!(call(&mut guest, &policy_record()).await, Verdict::Ack);

    // Busy polling, no packets: three low ratios → min.
    counters.record(CpuId(1), &[(10_000, 20); 3]);
    counters.record(CpuId(2), &[(10_000, 20); 3]);
    wait_for(|| speed(&fake, 1).trim() == min && speed(&fake, 2).trim() == min).await;

    // Packets: one high ratio → max at once (pCPU 1 only: 0.05 is below
    // pCPU 2's threshold of 0.1).
    counters.record(CpuId(1), &[(10_000, 500)]);
    counters.record(CpuId(2), &[(10_000, 500)]);
    wait_for(|| speed(&fake, 1).trim() == max).await;
    drained(&counters).await;
    assert_eq!(speed(&fake, 2).trim(), min, "below pCPU 2's own threshold");

    // Two low ratios are not enough to go down...
    counters.record(CpuId(1), &[(10_000, 20); 2]);
    drained(&counters).await;
    assert_eq!(speed(&fake, 1).trim(), max, "slow down: two lows keep max");
    // ...the third is.
    counters.record(CpuId(1), &[(10_000, 20)]);
    wait_for(|| speed(&fake, 1).trim() == min).await;
    assert_eq!(
        counters.last_asked(),
        BTreeSet::from([CpuId(1), CpuId(2)]),
        "exactly the policy's pCPUs are sampled"
    );
    host.stop().await.unwrap();
}

// Paused time: the loop's 10 ms interval is the runtime's clock, which
// only moves once every task is idle; advancing it 50 ms fires every timer
// due in that span, so a loop that sampled on its tick without a policy
// would have sampled five times more, however slow the machine.
#[tokio::test(start_paused = true)]
async fn the_loop_sleeps_without_a_policy_and_releases_counters_after_one() {
    let counters = FakeBranchCounters::new();
    let host = FakeHost::new();
    let (_daemon, core) = started_core(&host, &counters).await;
    let task = tokio::spawn(run_branch(
        core.clone(),
        Box::new(counters.clone()),
        Duration::from_millis(10),
    ));
    // With no policy the loop only releases (samples nothing) and waits.
    wait_for(|| counters.samples() >= 1).await;
    tokio::time::advance(Duration::from_millis(50)).await;
    tokio::task::yield_now().await;
    assert_eq!(counters.samples(), 1, "no sampling without a policy");
    assert!(counters.last_asked().is_empty());

    set_policy(&core);
    wait_for(|| counters.last_asked() == BTreeSet::from([CpuId(1), CpuId(2)])).await;

    {
        let mut c = vmpowerd::lock(&core);
        let actions = c.engine.remove_policy(&VmId::new("vm1"));
        c.execute(&actions);
        c.policies_changed();
    }
    wait_for(|| counters.last_asked().is_empty()).await;
    task.abort();
}

fn policy_record() -> Vec<u8> {
    let req = Request {
        vm_name: VmName::new("vm1").unwrap(),
        body: RequestBody::SetPolicy(branch_policy()),
    };
    encode_request_record(&req, Layout::Current)
        .unwrap()
        .as_slice()
        .to_vec()
}

fn rejections(host: &Host, label: &str) -> u64 {
    let CtlResponse::Ok(v) = host.ctl(&CtlRequest::Status) else {
        panic!("status refused")
    };
    v["stats"]["rejections"][label].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_hardware_counters_the_policy_is_refused_with_that_reason() {
    let pmu = Path::new("/sys/bus/event_source/devices/cpu");
    let detected = detect();
    if !pmu.exists() {
        // These machines: the kernel lists no CPU PMU, so opening the
        // branch counters must fail, and say so.
        let err = detected.as_ref().unwrap_err();
        assert!(matches!(err, BranchError::Open { .. }), "{err}");
        assert!(err.to_string().contains("perf_event_open"), "{err}");
    }
    let mut host = Host::start(&[("vm1", vm(&[1, 2]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    let verdict = call(&mut guest, &policy_record()).await;
    if detected.is_ok() {
        assert_eq!(verdict, Verdict::Ack, "a host with counters serves it");
    } else {
        assert_eq!(verdict, Verdict::Nack);
        assert_eq!(rejections(&host, "no_branch_counters"), 1);
        let CtlResponse::Ok(list) = host.ctl(&CtlRequest::PolicyList) else {
            panic!("policy list refused")
        };
        assert!(
            !list.to_string().contains("BRANCH_RATIO"),
            "a refused policy is not in force: {list}"
        );
    }
    host.stop().await.unwrap();
}

//! The inventory as the daemon uses it: an operator map, a fake QMP server
//! and a fake /proc merged by precedence; refreshes that see changes; and,
//! on the real /proc of this machine, `set-pcpu` re-pinning a live thread
//! of the test process named like a QEMU vCPU.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::Duration;

use vmpower_cpufreq::CpuId;
use vmpower_engine::VmId;
use vmpowerd::inventory::fake_proc::{FakeProc, FakeProcess};
use vmpowerd::inventory::fake_qmp::{FakeQmp, FakeQmpMode};
use vmpowerd::inventory::{
    Inventory, Pid, PlacementSourceError, ProcfsError, ProcfsPlacement, QmpPlacement, SourceKind,
    StaticMapError, StaticPlacement, Tid, VcpuPlacement, VmTarget, thread_affinity,
};

const T: Duration = Duration::from_secs(5);
const CHANNEL: &str = "/run/vmpower-test/vm0.0";

fn cpus(list: &[u32]) -> BTreeSet<CpuId> {
    list.iter().map(|c| CpuId(*c)).collect()
}

/// QEMU for vm0 (pid 100, three vCPU threads, holding the channel socket)
/// and an unrelated process that also runs with `-name vm0`.
fn fake_host() -> FakeProc {
    FakeProc::builder()
        .process(
            FakeProcess::new(100)
                .cmdline(&["qemu-system-x86_64", "-name", "guest=vm0,debug-threads=on"])
                .thread(100, "qemu-system-x86", "0-3")
                .thread(101, "CPU 0/KVM", "0-1")
                .thread(102, "CPU 1/KVM", "1")
                .thread(103, "CPU 2/KVM", "3")
                .socket_fd(12, 4242),
        )
        .process(FakeProcess::new(90).cmdline(&["qemu-system-x86_64", "-name", "vm0"]))
        .unix_socket(4242, CHANNEL)
        .build()
        .expect("fake /proc")
}

fn inventory(fake: &FakeProc, operator: StaticPlacement) -> Inventory {
    let procfs = ProcfsPlacement::new(fake.path());
    let sources: Vec<Box<dyn VcpuPlacement>> = vec![
        Box::new(procfs.clone()),
        Box::new(QmpPlacement::new(procfs, T)),
    ];
    Inventory::new(operator, sources)
}

#[tokio::test]
async fn operator_then_qmp_then_proc_per_vcpu() {
    let fake = fake_host();
    let dir = tempfile::tempdir().expect("tmp");
    let qmp_path = dir.path().join("vm0.qmp");
    // QMP knows vCPUs 0 and 1; it says vCPU 1 is thread 103 (pinned to 3).
    let _qmp =
        FakeQmp::start(&qmp_path, vec![(0, 101), (1, 103)], FakeQmpMode::Normal).expect("fake QMP");
    let mut operator = StaticPlacement::new(cpus(&[0, 1, 2, 3]));
    operator
        .set_all(&VmId::new("vm0"), [(0, CpuId(2)), (7, CpuId(0))])
        .expect("valid entries");
    let inv = inventory(&fake, operator);
    let target = VmTarget::new(VmId::new("vm0"))
        .with_channel_socket(CHANNEL)
        .with_qmp_socket(&qmp_path);

    let got = inv.refresh(&target).await;
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    assert_eq!(got.placement.vcpus, 3);
    assert_eq!(got.placement.affinity[&0], cpus(&[2]));
    assert_eq!(got.placement.affinity[&1], cpus(&[3]));
    assert_eq!(got.placement.affinity[&2], cpus(&[3]));
    assert_eq!(
        got.origin,
        BTreeMap::from([
            (0, SourceKind::Operator),
            (1, SourceKind::Qmp),
            (2, SourceKind::Procfs)
        ])
    );
    // QMP's thread ids only: a fake /proc tree's are never offered for
    // re-pinning (they could name any process of the host).
    assert_eq!(got.threads, BTreeMap::from([(0, Tid(101)), (1, Tid(103))]));
    assert_eq!(
        got.pid,
        Some(Pid(100)),
        "the channel socket's owner, not pid 90"
    );
    assert_eq!(got.ignored, BTreeMap::from([(7, CpuId(0))]));
}

#[tokio::test]
async fn a_failing_qmp_socket_is_reported_and_proc_still_answers() {
    let fake = fake_host();
    let dir = tempfile::tempdir().expect("tmp");
    let inv = inventory(&fake, StaticPlacement::new(cpus(&[0, 1, 2, 3])));
    let target = VmTarget::new(VmId::new("vm0"))
        .with_channel_socket(CHANNEL)
        .with_qmp_socket(dir.path().join("absent.qmp"));
    let got = inv.refresh(&target).await;
    assert_eq!(got.placement.vcpus, 3);
    assert!(got.origin.values().all(|k| *k == SourceKind::Procfs));
    assert_eq!(got.errors.len(), 1);
    assert!(matches!(got.errors[0], PlacementSourceError::Qmp { .. }));
    let chain = format!(
        "{}: {}",
        got.errors[0],
        std::error::Error::source(&got.errors[0]).expect("cause")
    );
    assert!(
        chain.contains("absent.qmp") && chain.contains("vm0"),
        "{chain}"
    );
}

#[tokio::test]
async fn refresh_rereads_and_sees_repins_and_exits() {
    let fake = fake_host();
    let inv = inventory(&fake, StaticPlacement::new(cpus(&[0, 1, 2, 3])));
    let target = VmTarget::new(VmId::new("vm0")).with_channel_socket(CHANNEL);
    assert_eq!(
        inv.refresh(&target).await.placement.affinity[&2],
        cpus(&[3])
    );

    fake.set_affinity(100, 103, "CPU 2/KVM", "0,2")
        .expect("taskset");
    assert_eq!(
        inv.refresh(&target).await.placement.affinity[&2],
        cpus(&[0, 2])
    );

    fake.remove_process(100).expect("QEMU exits");
    fake.remove_process(90).expect("and the other one");
    let gone = inv.refresh(&target).await;
    assert!(!gone.is_placed());
    assert!(matches!(
        gone.errors.as_slice(),
        [PlacementSourceError::Procfs {
            source: ProcfsError::NoProcess { .. },
            ..
        }]
    ));
}

#[tokio::test]
async fn set_pcpu_refuses_a_cpu_the_host_lacks_and_keeps_the_map() {
    let fake = fake_host();
    let inv = inventory(&fake, StaticPlacement::new(cpus(&[0, 1])));
    let target = VmTarget::new(VmId::new("vm0")).with_channel_socket(CHANNEL);
    let now = inv.refresh(&target).await;
    let e = inv
        .set_pcpu(&target, 0, CpuId(5), &now)
        .expect_err("cpu5 does not exist");
    assert!(matches!(
        e,
        PlacementSourceError::Operator {
            source: StaticMapError::PcpuNotOnHost { pcpu: 5, .. },
            ..
        }
    ));
    assert!(inv.operator_entries(&VmId::new("vm0")).is_empty());
}

/// The only test in this binary that names threads like QEMU vCPUs, so
/// the real /proc of this process shows exactly one.
#[tokio::test]
async fn set_pcpu_repins_a_live_vcpu_thread_on_the_real_proc() {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let vcpu = std::thread::Builder::new()
        .name("CPU 0/KVM".into())
        .spawn(move || {
            let tid = u32::try_from(rustix::thread::gettid().as_raw_pid()).expect("tid > 0");
            tid_tx.send(Tid(tid)).expect("send");
            let _ = stop_rx.recv();
        })
        .expect("spawn");
    let tid = tid_rx.recv().expect("tid");
    let allowed = thread_affinity(tid).expect("affinity");
    assert!(
        allowed.contains(&CpuId(0)),
        "CPU 0 allowed here: {allowed:?}"
    );

    let procfs = ProcfsPlacement::new("/proc");
    let inv = Inventory::new(
        StaticPlacement::new(allowed.clone()),
        vec![Box::new(procfs)],
    );
    let target = VmTarget::new(VmId::new("self")).with_pid(Pid(std::process::id()));
    let before = inv.refresh(&target).await;
    let repinned = inv.set_pcpu(&target, 0, CpuId(0), &before);
    let kernel = thread_affinity(tid);
    let after = inv.refresh(&target).await;
    stop_tx.send(()).expect("stop");
    vcpu.join().expect("join");

    assert_eq!(before.threads, BTreeMap::from([(0, tid)]));
    assert_eq!(before.placement.affinity[&0], allowed);
    assert_eq!(repinned.expect("re-pinned"), Some(tid));
    assert_eq!(kernel.expect("read back"), cpus(&[0]));
    assert_eq!(after.placement.affinity[&0], cpus(&[0]));
    assert_eq!(after.origin[&0], SourceKind::Operator);
    assert!(after.errors.is_empty(), "{:?}", after.errors);
}

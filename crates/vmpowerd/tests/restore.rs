//! The real `vmpowerd` binary on a fake sysfs tree: SIGTERM gives every CPU
//! back; after `kill -9` the next start restores what the crashed run took
//! over before doing anything else.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use vmpower_proto::layout::{decode_verdict, encode_request_record};
use vmpower_proto::{CoreType, Layout, Request, RequestBody, ScalingUnit, Verdict, VmName};

use vmpower_testkit::binary::{Setup, WAIT, sigterm, wait_exit, wait_until};

/// Whether the state database holds a takeover record.
fn recorded(s: &Setup) -> bool {
    let store = vmpowerd::store::Store::open_in_dir(
        &s.dir.path().join("state"),
        vmpowerd::store::StoreOptions::default(),
    )
    .unwrap();
    store
        .load_takeover()
        .unwrap()
        .is_some_and(|r| !r.is_empty())
}

/// Plays QEMU for vm1, sends SCALE_MIN for vCPU 0 and checks the ACK.
async fn scale_min(s: &Setup) {
    send(
        s,
        RequestBody::Power {
            resource_id: 0,
            core_type: CoreType::Virtual,
            unit: ScalingUnit::ScaleMin,
        },
    )
    .await;
}

/// Plays QEMU for vm1, sends `body` and checks the ACK.
async fn send(s: &Setup, body: RequestBody) {
    let path = s.dir.path().join("channels/vm1.0");
    let _ = std::fs::remove_file(&path);
    let qemu = UnixListener::bind(&path).unwrap();
    let (mut guest, _) = tokio::time::timeout(WAIT, qemu.accept())
        .await
        .unwrap()
        .unwrap();
    let req = Request {
        vm_name: VmName::new("vm1").unwrap(),
        body,
    };
    let record = encode_request_record(&req, Layout::Current).unwrap();
    guest.write_all(record.as_slice()).await.unwrap();
    let mut reply = [0u8; 464];
    tokio::time::timeout(WAIT, guest.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let verdict = decode_verdict(&reply, Layout::Current).unwrap().verdict;
    assert_eq!(verdict, Verdict::Ack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_every_cpu_back() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let mut daemon = s.spawn();
    scale_min(&s).await;
    assert_eq!(s.file(1, "scaling_governor"), "userspace");
    assert_eq!(s.file(1, "scaling_setspeed"), "800000");
    assert!(recorded(&s), "recorded before the first write");
    sigterm(&daemon);
    let status = wait_exit(&mut daemon);
    assert!(status.success(), "{status:?}");
    assert_eq!(s.file(1, "scaling_governor"), "ondemand");
    assert!(!recorded(&s), "record cleared once all is restored");
    assert!(!s.control().exists(), "control socket removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_next_start_restores_first() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let mut daemon = s.spawn();
    scale_min(&s).await;
    daemon.kill().unwrap(); // SIGKILL: no chance to restore.
    wait_exit(&mut daemon);
    assert_eq!(s.file(1, "scaling_governor"), "userspace", "left behind");
    assert!(recorded(&s));
    let mut daemon = s.spawn();
    // Restored before the daemon became ready (the control socket exists).
    assert_eq!(s.file(1, "scaling_governor"), "ondemand");
    assert!(!recorded(&s));
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).success());
}

#[test]
fn a_bad_config_file_is_named_and_exits_2() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    std::fs::write(s.dir.path().join("vmpowerd.toml"), "[vm.vm1]\npcpu = [1]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vmpowerd"))
        .arg("--config")
        .arg(s.dir.path().join("vmpowerd.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vmpowerd.toml") && err.contains("pcpu"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_policy_survives_kill_9() {
    use vmpower_proto::{Policy, PolicyKind, VcpuList, WorkloadLevel};
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let mut daemon = s.spawn();
    let policy = Policy {
        workload: WorkloadLevel::Low,
        ..Policy::new(PolicyKind::Workload, VcpuList::from_slice(&[0]).unwrap())
    };
    send(&s, RequestBody::SetPolicy(policy)).await;
    assert_eq!(s.file(1, "scaling_setspeed"), "800000");
    daemon.kill().unwrap(); // right after the ACK
    wait_exit(&mut daemon);
    // Simulate the machine's state moving on while the daemon is down.
    std::fs::write(
        s.fake
            .path()
            .join("devices/system/cpu/cpu1/cpufreq/scaling_setspeed"),
        "2300000\n",
    )
    .unwrap();
    let mut daemon = s.spawn();
    // The policy is back in force without the guest sending it again.
    wait_until(|| s.file(1, "scaling_setspeed") == "800000");
    assert_eq!(s.file(1, "scaling_governor"), "userspace");
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).success());
    assert_eq!(s.file(1, "scaling_governor"), "ondemand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_file_of_an_earlier_version_is_restored_too() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let legacy = s.dir.path().join("state/takeover.json");
    std::fs::create_dir_all(legacy.parent().unwrap()).unwrap();
    let mut record = vmpower_cpufreq::takeover::Takeover::open(&legacy).unwrap();
    record
        .take_cpu(&*s.fake, vmpower_cpufreq::CpuId(2))
        .unwrap();
    s.fake
        .external_write(
            Path::new("devices/system/cpu/cpu2/cpufreq/scaling_governor"),
            "performance",
        )
        .unwrap();
    let mut daemon = s.spawn();
    assert_eq!(s.file(2, "scaling_governor"), "ondemand");
    assert!(!legacy.exists(), "the file is removed once restored");
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_state_dir_is_refused_and_touches_nothing() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let mut first = s.spawn();
    scale_min(&s).await;
    // The same state dir (and control socket): without the lock, the
    // second would take the first's takeover record for a crash's and
    // give pCPU 1 back under its feet.
    let out = s.command(std::process::Stdio::piped()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pid = first.id().to_string();
    assert!(
        stderr.contains("another vmpowerd") && stderr.contains(&pid),
        "names the one running: {stderr}"
    );
    assert_eq!(s.file(1, "scaling_governor"), "userspace", "left alone");
    assert!(recorded(&s), "the running daemon's record is kept");
    assert!(
        std::os::unix::net::UnixStream::connect(s.control()).is_ok(),
        "the running daemon's control socket is still there"
    );
    sigterm(&first);
    assert!(wait_exit(&mut first).success());
    assert_eq!(s.file(1, "scaling_governor"), "ondemand");
    // Free again once the first has stopped.
    let mut again = s.spawn();
    sigterm(&again);
    assert!(wait_exit(&mut again).success());
}

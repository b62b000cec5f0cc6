//! DPDK's JSON FIFO `<channel-dir>/fifo<N>`: instructions act on host CPUs
//! as operator overrides, policies are installed and destroyed; garbage
//! between objects is skipped.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::Write;

use vmpower_api::{CtlRequest, CtlResponse};
use vmpower_testkit::prelude::*;

/// A TIME policy for VM ubuntu on host core 3, every hour quiet, as
/// DPDK's guide writes one.
const QUIET_HOST_CORE_3: &[u8] =
    br#"{"policy": {"name": "ubuntu", "command": "create", "policy_type": "TIME",
    "quiet_hours": [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23],
    "core_list": [3]}}"#;

/// Opens `<channel-dir>/fifo<n>` (the daemon made it at start) for writing
/// once the daemon has opened it: opening blocks until then.
async fn open_fifo(host: &Host, n: u32) -> File {
    let fifo = host.config.channel_dir.join(format!("fifo{n}"));
    tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().write(true).open(fifo)),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_instructions_drive_host_cpus() {
    let mut host = Host::start(&[("ubuntu", vm(&[]))]).await;
    let mut writer = open_fifo(&host, 2).await;
    // DPDK's guide example, upper-case command, split across writes.
    let msg = br#"{"instruction": {"name": "ubuntu", "command": "POWER", "unit": "SCALE_MIN", "resource_id": 2}}"#;
    writer.write_all(&msg[..40]).unwrap();
    writer.write_all(&msg[40..]).unwrap();
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "800000").await;
    // Garbage, an invalid object, then a valid one: only the last acts.
    writer
        .write_all(b"garbage {\"instruction\": {\"unit\": 7}}\n")
        .unwrap();
    writer
        .write_all(br#"{"instruction": {"name": "ubuntu", "command": "power", "unit": "SCALE_MAX", "resource_id": 2}}"#)
        .unwrap();
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "2301000").await;
    // Hand the CPU back from the operator's override, then a policy (host
    // core 3, every hour quiet) and its destruction, as DPDK's guide
    // writes them.
    let governor = host.cpu_file(0, "scaling_governor");
    writer.write_all(QUIET_HOST_CORE_3).unwrap();
    wait_for(|| host.cpu_file(3, "scaling_setspeed") == "800000").await;
    writer
        .write_all(br#"{"policy": {"name": "ubuntu", "command": "destroy"}}"#)
        .unwrap();
    wait_for(|| host.cpu_file(3, "scaling_governor") == governor).await;
    host.stop().await.unwrap();
    let governor = host.cpu_file(0, "scaling_governor");
    assert_eq!(host.cpu_file(2, "scaling_governor"), governor, "restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_policy_on_host_cores_is_back_after_a_restart() {
    // A FIFO's policy names host CPUs with the operator's authority; the
    // VM has no grant for physical cores. After a restart the stored
    // policy must be restored with that same authority.
    let mut host = Host::start(&[("ubuntu", vm(&[]))]).await;
    let mut writer = open_fifo(&host, 3).await;
    writer.write_all(QUIET_HOST_CORE_3).unwrap();
    wait_for(|| host.cpu_file(3, "scaling_setspeed") == "800000").await;
    drop(writer);
    host.stop().await.unwrap();
    let governor = host.cpu_file(0, "scaling_governor");
    assert_eq!(host.cpu_file(3, "scaling_governor"), governor, "given back");
    host.launch().await;
    let CtlResponse::Ok(list) = host.ctl(&CtlRequest::PolicyList) else {
        panic!("policy list refused")
    };
    assert!(
        list.to_string().contains("ubuntu"),
        "the FIFO's policy is in force again: {list}"
    );
    wait_for(|| host.cpu_file(3, "scaling_governor") == "userspace").await;
    wait_for(|| host.cpu_file(3, "scaling_setspeed") == "800000").await;
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_makes_a_fifo_per_cpu_and_removes_them_at_stop() {
    let mut host = Host::start(&[("ubuntu", vm(&[]))]).await;
    let dir = host.config.channel_dir.clone();
    host.stop().await.unwrap();
    // An operator's regular file where a FIFO would go is left alone.
    std::fs::write(dir.join("fifo1"), "not a fifo").unwrap();
    host.launch().await;
    use std::os::unix::fs::FileTypeExt;
    let kind =
        |n: u32| std::fs::symlink_metadata(dir.join(format!("fifo{n}"))).map(|m| m.file_type());
    for n in [0, 2, 3] {
        assert!(kind(n).unwrap().is_fifo(), "fifo{n} made");
    }
    assert!(kind(1).unwrap().is_file(), "the regular file kept");
    // The FIFO works as DPDK's does.
    let mut writer = open_fifo(&host, 3).await;
    writer.write_all(QUIET_HOST_CORE_3).unwrap();
    wait_for(|| host.cpu_file(3, "scaling_setspeed") == "800000").await;
    drop(writer);
    host.stop().await.unwrap();
    for n in [0, 2, 3] {
        assert!(kind(n).is_err(), "fifo{n} removed at stop");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("fifo1")).unwrap(),
        "not a fifo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifos_a_crashed_run_left_are_removed_at_the_next_clean_stop() {
    let mut host = Host::start(&[("ubuntu", vm(&[]))]).await;
    let dir = host.config.channel_dir.clone();
    host.stop().await.unwrap();
    // What a run killed with SIGKILL leaves: its FIFOs.
    for n in 0..4 {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join(format!("fifo{n}")),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }
    host.launch().await;
    host.stop().await.unwrap();
    for n in 0..4 {
        assert!(
            !dir.join(format!("fifo{n}")).exists(),
            "fifo{n} left at a clean stop"
        );
    }
}

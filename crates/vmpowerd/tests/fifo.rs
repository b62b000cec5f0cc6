//! DPDK's JSON FIFO `<channel-dir>/fifo<N>`: instructions act on host CPUs
//! as operator overrides, policies are installed and destroyed; garbage
//! between objects is skipped.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs::File;
use std::io::Write;

use common::*;
use vmpower_api::{CtlRequest, CtlResponse};

/// A TIME policy for VM ubuntu on host core 3, every hour quiet, as
/// DPDK's guide writes one.
const QUIET_HOST_CORE_3: &[u8] =
    br#"{"policy": {"name": "ubuntu", "command": "create", "policy_type": "TIME",
    "quiet_hours": [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23],
    "core_list": [3]}}"#;

/// Makes `<channel-dir>/fifo<n>` and opens it for writing once the daemon
/// has found it (through inotify) and opened it: opening blocks until then.
async fn open_fifo(host: &Host, n: u32) -> File {
    let fifo = host.config.channel_dir.join(format!("fifo{n}"));
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
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

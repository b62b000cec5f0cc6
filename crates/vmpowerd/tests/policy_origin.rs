//! Where a policy came from and what the policy directory did, as an
//! operator with only the control API sees it: `policy show`/`list` name
//! the source (guest channel, operator, policy file), two files naming one
//! VM fall back to each other, and refused files are listed in `status`.

#![allow(clippy::unwrap_used)]

use serde::de::DeserializeOwned;
use vmpower_api::answers::{PolicyDescription, PolicyList, RefusedFile, Status};
use vmpower_api::{CtlRequest, CtlResponse, PolicyFile, PolicyOrigin};
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{Layout, Policy, PolicyKind, Request, RequestBody, VcpuList, Verdict, VmName};
use vmpower_testkit::prelude::*;

/// A WORKLOAD policy file for `vm`'s vCPU 0 at `level`.
fn workload(vm: &str, level: &str) -> String {
    format!("vm = \"{vm}\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"{level}\"\n")
}

/// A daemon on a 4-CPU acpi-cpufreq host, following `<tmp>/policies.d`
/// (there from the start).
async fn host(vms: &[(&str, vmpowerd::config::VmConfig)]) -> Host {
    let fake = vmpower_cpufreq::fake::FakeSysfs::builder(4)
        .driver(vmpower_cpufreq::Driver::AcpiCpufreq)
        .build()
        .unwrap();
    Host::start_with(std::sync::Arc::new(fake), vms, |c| {
        std::fs::create_dir_all(&c.policy_dir).unwrap();
    })
    .await
}

/// Asks the control API; the answer as its type, or the test fails.
fn ok<T: DeserializeOwned>(host: &Host, request: &CtlRequest) -> T {
    match host.ctl(request) {
        CtlResponse::Ok(v) => serde_json::from_value(v).unwrap(),
        CtlResponse::Error(e) => panic!("{request:?}: {e}"),
    }
}

fn show(host: &Host, vm: &str) -> Option<PolicyDescription> {
    match host.ctl(&CtlRequest::PolicyShow { vm: vm.into() }) {
        CtlResponse::Ok(v) => Some(serde_json::from_value(v).unwrap()),
        CtlResponse::Error(_) => None,
    }
}

fn source(host: &Host, vm: &str) -> Option<PolicyOrigin> {
    show(host, vm).and_then(|p| p.source)
}

/// Where `vm`'s policy file is, when its policy came from one.
fn file(host: &Host, vm: &str) -> Option<std::path::PathBuf> {
    match source(host, vm) {
        Some(PolicyOrigin::PolicyFile { path }) => Some(path),
        _ => None,
    }
}

fn refused(host: &Host) -> Vec<RefusedFile> {
    ok::<Status>(host, &CtlRequest::Status)
        .stats
        .policy_files_refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_and_list_name_the_policy_source() {
    let host = host(&[("vm1", vm(&[1])), ("vm2", vm(&[2])), ("vm3", vm(&[3]))]).await;
    // The operator.
    let file = PolicyFile::parse(&workload("vm1", "LOW")).unwrap();
    let created: PolicyDescription = ok(
        &host,
        &CtlRequest::PolicyCreate {
            policy: Box::new(file),
        },
    );
    assert_eq!(created.source, Some(PolicyOrigin::Operator));
    // A file in the policy directory: its path.
    let path = host.config.policy_dir.join("vm2.toml");
    std::fs::write(&path, workload("vm2", "LOW")).unwrap();
    wait_for(|| source(&host, "vm2").is_some()).await;
    assert_eq!(
        source(&host, "vm2"),
        Some(PolicyOrigin::PolicyFile { path })
    );
    // The guest, over channel vm3.0.
    let qemu = host.qemu("vm3", 0);
    let mut guest = accept(&qemu).await;
    let request = Request {
        vm_name: VmName::new("vm3").unwrap(),
        body: RequestBody::SetPolicy(Policy::new(
            PolicyKind::Workload,
            VcpuList::from_slice(&[0]).unwrap(),
        )),
    };
    let record = encode_request_record(&request, Layout::Current).unwrap();
    assert_eq!(call(&mut guest, record.as_slice()).await, Verdict::Ack);
    let guest_channel = PolicyOrigin::GuestChannel {
        channel: "vm3.0".into(),
    };
    assert_eq!(source(&host, "vm3"), Some(guest_channel.clone()));
    // The list carries the same.
    let list: PolicyList = ok(&host, &CtlRequest::PolicyList);
    let sources: Vec<(String, Option<PolicyOrigin>)> =
        list.into_iter().map(|p| (p.vm, p.source)).collect();
    assert_eq!(
        sources,
        vec![
            ("vm1".to_owned(), Some(PolicyOrigin::Operator)),
            (
                "vm2".to_owned(),
                Some(PolicyOrigin::PolicyFile {
                    path: host.config.policy_dir.join("vm2.toml")
                })
            ),
            ("vm3".to_owned(), Some(guest_channel)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_file_in_force_applies_the_other_file_for_the_vm() {
    let mut host = host(&[("vm1", vm(&[2]))]).await;
    let dir = host.config.policy_dir.clone();
    std::fs::write(dir.join("vm1.toml"), workload("vm1", "MEDIUM")).unwrap();
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "1600000").await;
    // A second file for vm1 replaces the first one's policy...
    std::fs::write(dir.join("broken.toml"), workload("vm1", "LOW")).unwrap();
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "800000").await;
    // The source is recorded just after the frequency is written.
    wait_for(|| file(&host, "vm1") == Some(dir.join("broken.toml"))).await;
    // ...and removing it brings the first one back, as a restart would.
    std::fs::remove_file(dir.join("broken.toml")).unwrap();
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "1600000").await;
    wait_for(|| file(&host, "vm1") == Some(dir.join("vm1.toml"))).await;
    host.stop().await.unwrap();
    host.launch().await;
    wait_for(|| file(&host, "vm1") == Some(dir.join("vm1.toml"))).await;
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "1600000");
    // The last file for the VM removed: the policy is withdrawn.
    std::fs::remove_file(dir.join("vm1.toml")).unwrap();
    wait_for(|| show(&host, "vm1").is_none()).await;
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_files_are_listed_in_status_until_fixed_or_removed() {
    let host = host(&[("vm1", vm(&[2]))]).await;
    let dir = host.config.policy_dir.clone();
    assert_eq!(refused(&host), []);
    // A parse error, then a policy the engine refuses (no vCPU 5).
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0\n").unwrap();
    wait_for(|| !refused(&host).is_empty()).await;
    let listed = refused(&host);
    assert_eq!(listed[0].file, bad);
    assert!(listed[0].error.contains("TOML parse error"), "{listed:?}");
    let out_of_range = dir.join("range.json");
    std::fs::write(
        &out_of_range,
        r#"{"vm": "vm1", "kind": "WORKLOAD", "cores": [5], "workload": "LOW"}"#,
    )
    .unwrap();
    wait_for(|| refused(&host).len() == 2).await;
    let listed = refused(&host);
    assert_eq!(listed[1].file, out_of_range);
    assert!(listed[1].error.contains("vCPU 5"), "{listed:?}");
    // Fixed: gone from the list, and applied.
    std::fs::write(&bad, workload("vm1", "LOW")).unwrap();
    wait_for(|| refused(&host).len() == 1).await;
    assert_eq!(refused(&host)[0].file, out_of_range);
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "800000").await;
    // Removed: gone from the list.
    std::fs::remove_file(&out_of_range).unwrap();
    wait_for(|| refused(&host).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_removed_while_the_daemon_was_stopped_withdraws_its_policy() {
    let mut host = host(&[("vm1", vm(&[2])), ("vm2", vm(&[3]))]).await;
    let dir = host.config.policy_dir.clone();
    std::fs::write(dir.join("vm1.toml"), workload("vm1", "LOW")).unwrap();
    std::fs::write(dir.join("vm2.toml"), workload("vm2", "LOW")).unwrap();
    wait_for(|| show(&host, "vm1").is_some() && show(&host, "vm2").is_some()).await;
    host.stop().await.unwrap();
    std::fs::remove_file(dir.join("vm1.toml")).unwrap();
    host.launch().await;
    wait_for(|| show(&host, "vm1").is_none()).await;
    // The file still there keeps its policy.
    assert_eq!(file(&host, "vm2"), Some(dir.join("vm2.toml")));
    host.stop().await.unwrap();
}

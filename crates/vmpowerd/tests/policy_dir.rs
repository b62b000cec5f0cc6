//! The policy directory: a file dropped in applies, replacing it replaces
//! the policy, removing it withdraws the policy; bad files change nothing.

#![allow(clippy::unwrap_used)]

use vmpower_testkit::prelude::*;

/// A daemon on a 4-CPU acpi-cpufreq host following `<tmp>/policies.d`,
/// where `files` (name, content) are written before it starts; the temp
/// dir (kept alive), the policy dir and the host.
async fn host_with_policy_dir(
    vms: &[(&str, vmpowerd::config::VmConfig)],
    files: &[(&str, &str)],
) -> (tempfile::TempDir, std::path::PathBuf, Host) {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.d");
    std::fs::create_dir_all(&policies).unwrap();
    for (name, content) in files {
        std::fs::write(policies.join(name), content).unwrap();
    }
    let fake = std::sync::Arc::new(
        vmpower_cpufreq::fake::FakeSysfs::builder(4)
            .driver(vmpower_cpufreq::Driver::AcpiCpufreq)
            .build()
            .unwrap(),
    );
    let policy_dir = policies.clone();
    let host = Host::start_with(fake, vms, move |c| {
        c.policy_dir = policy_dir;
    })
    .await;
    (dir, policies, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_apply_replace_and_withdraw() {
    // The directory exists before the daemon starts: it is followed.
    let (_dir, policies, mut host) = host_with_policy_dir(
        &[("vm1", vm(&[2]))],
        &[(
            "vm1.toml",
            "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n",
        )],
    )
    .await;
    let before = host.cpu_file(0, "scaling_governor");
    // Applied at start.
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "800000").await;
    // Rewritten: MEDIUM (a 17-entry table: index 8, 1.6 GHz).
    std::fs::write(
        policies.join("vm1.toml"),
        "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"MEDIUM\"\n",
    )
    .unwrap();
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "1600000").await;
    // An editor's swap file and a bad file change nothing: once the bad
    // file, written last, is listed as refused, both were read.
    std::fs::write(policies.join(".vm1.toml.swp"), "garbage").unwrap();
    let bad = policies.join("bad.toml");
    std::fs::write(&bad, "vm = \"vm1\"\nkind = \"SLEEP\"\n").unwrap();
    wait_for(|| {
        let status = host.ok(&vmpower_api::CtlRequest::Status);
        let refused = status["stats"]["policy_files_refused"].as_array().cloned();
        refused
            .unwrap_or_default()
            .iter()
            .any(|r| r["file"] == bad.to_str().unwrap())
    })
    .await;
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "1600000");
    // Removed: withdrawn, the pCPU given back.
    std::fs::remove_file(policies.join("vm1.toml")).unwrap();
    wait_for(|| host.cpu_file(2, "scaling_governor") == before).await;
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_for_a_vm_not_known_yet_waits_for_it() {
    // The daemon starts at boot, a VM's policy file is there, the VM comes
    // later (auto-added by its socket): the file must not be lost.
    let (_dir, _policies, mut host) = host_with_policy_dir(
        &[],
        &[(
            "vm9.toml",
            "vm = \"vm9\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n",
        )],
    )
    .await;
    wait_for(|| {
        matches!(
            host.ctl(&vmpower_api::CtlRequest::PolicyShow { vm: "vm9".into() }),
            vmpower_api::CtlResponse::Ok(_)
        )
    })
    .await;
    // The VM's vCPU 0 is placed on pCPU 2: the waiting policy takes it.
    let placed = host.ctl(&vmpower_api::CtlRequest::SetPcpu {
        vm: "vm9".into(),
        vcpu: 0,
        pcpu: 2,
    });
    assert!(
        matches!(placed, vmpower_api::CtlResponse::Ok(_)),
        "{placed:?}"
    );
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "800000").await;
    host.stop().await.unwrap();
}

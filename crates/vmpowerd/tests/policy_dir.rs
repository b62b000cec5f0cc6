//! The policy directory: a file dropped in applies, replacing it replaces
//! the policy, removing it withdraws the policy; bad files change nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_apply_replace_and_withdraw() {
    // The directory exists before the daemon starts: it is followed.
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.d");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("vm1.toml"),
        "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n",
    )
    .unwrap();
    let fake = std::sync::Arc::new(
        vmpower_cpufreq::fake::FakeSysfs::builder(4)
            .driver(vmpower_cpufreq::Driver::AcpiCpufreq)
            .build()
            .unwrap(),
    );
    let policy_dir = policies.clone();
    let mut host = Host::start_with(fake, &[("vm1", vm(&[2]))], move |c| {
        c.policy_dir = policy_dir;
    })
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
    // A bad file and an editor's swap file change nothing.
    std::fs::write(
        policies.join("bad.toml"),
        "vm = \"vm1\"\nkind = \"SLEEP\"\n",
    )
    .unwrap();
    std::fs::write(policies.join(".vm1.toml.swp"), "garbage").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "1600000");
    // Removed: withdrawn, the pCPU given back.
    std::fs::remove_file(policies.join("vm1.toml")).unwrap();
    wait_for(|| host.cpu_file(2, "scaling_governor") == before).await;
    host.stop().await.unwrap();
}

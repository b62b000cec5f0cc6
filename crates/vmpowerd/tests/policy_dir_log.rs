//! What the real binary logs about its policy directory: two files naming
//! the same VM are a warning that names both.

#![allow(clippy::unwrap_used)]

use vmpower_api::{Client, CtlRequest, CtlResponse};

use vmpower_testkit::binary::{Setup, wait_until};

fn workload(level: &str) -> String {
    format!("vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"{level}\"\n")
}

#[test]
fn two_files_for_one_vm_are_a_warning_naming_both() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let policies = s.with_policy_dir();
    std::fs::write(policies.join("a.toml"), workload("LOW")).unwrap();
    std::fs::write(policies.join("b.toml"), workload("MEDIUM")).unwrap();
    let daemon = s.spawn_logging();
    // At start the last in name order is in force.
    let b = serde_json::json!(policies.join("b.toml"));
    wait_until(|| {
        let shown = Client::connect(&s.control())
            .unwrap()
            .call(&CtlRequest::PolicyShow { vm: "vm1".into() })
            .unwrap();
        matches!(shown, CtlResponse::Ok(v) if v["source"]["path"] == b)
    });
    let log = daemon.stop();
    let warning = log
        .lines()
        .find(|l| l.contains("two policy files name the same VM"))
        .unwrap_or_else(|| panic!("no warning in {log}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains(policies.join("a.toml").to_str().unwrap())
            && warning.contains(policies.join("b.toml").to_str().unwrap()),
        "{warning}"
    );
}

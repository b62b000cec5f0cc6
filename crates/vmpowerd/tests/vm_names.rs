//! One rule for VM names at every door: the names `add-vm` refuses are
//! refused by `policy create`, by a policy file and by a JSON FIFO too,
//! each with a message naming the name and the rule, and none persisted.

#![allow(clippy::unwrap_used)]

use std::io::Write;

use vmpower_api::{CtlRequest, CtlResponse, ErrorKind, PolicyFile};
use vmpower_testkit::prelude::*;

fn bad_names() -> Vec<String> {
    vec![
        String::new(),
        "../evil".to_owned(),
        "nul\0byte".to_owned(),
        "x".repeat(300),
    ]
}

/// A WORKLOAD policy file for `vm`, as TOML (JSON's string escapes are
/// TOML's).
fn workload(vm: &str) -> String {
    format!(
        "vm = {}\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n",
        serde_json::to_string(vm).unwrap()
    )
}

fn refused_invalid(response: CtlResponse, name: &str) {
    let CtlResponse::Error(e) = response else {
        panic!("{name:?} accepted: {response:?}")
    };
    assert_eq!(e.kind, ErrorKind::Invalid, "{e:?}");
    let quoted = format!("{:?}", name.chars().take(256).collect::<String>());
    assert!(
        e.message.contains(&quoted) && e.message.contains("1 to 128 bytes"),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_refuses_the_names_add_vm_refuses() {
    let mut host = Host::start_adjusted(&[], |c| {
        std::fs::create_dir_all(&c.policy_dir).unwrap();
    })
    .await;
    let vms_before = host.ok(&CtlRequest::ListVms);
    for name in bad_names() {
        refused_invalid(host.ctl(&CtlRequest::AddVm { vm: name.clone() }), &name);
        let policy = PolicyFile::parse(&workload(&name)).unwrap();
        refused_invalid(
            host.ctl(&CtlRequest::PolicyCreate {
                policy: Box::new(policy),
            }),
            &name,
        );
    }
    // Policy files: each refused and listed with the rule.
    for (i, name) in bad_names().iter().enumerate() {
        let path = host.config.policy_dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, workload(name)).unwrap();
    }
    wait_for(|| {
        let refused = host.ok(&CtlRequest::Status)["stats"]["policy_files_refused"].clone();
        refused
            .as_array()
            .is_some_and(|r| r.len() == bad_names().len())
    })
    .await;
    let refused = host.ok(&CtlRequest::Status)["stats"]["policy_files_refused"].clone();
    for r in refused.as_array().unwrap() {
        assert!(
            r["error"].as_str().unwrap().contains("1 to 128 bytes"),
            "{r}"
        );
    }
    // The JSON FIFO (its names are at most 31 bytes: the packet's field).
    let fifo = host.config.channel_dir.join("fifo0");
    let mut writer = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new().write(true).open(fifo).unwrap()
    })
    .await
    .unwrap();
    // A destroy for an unknown VM is otherwise carried out (nothing to
    // remove): only the name check refuses it.
    writer
        .write_all(br#"{"policy": {"name": "../evil", "command": "destroy"}}"#)
        .unwrap();
    wait_for(|| host.ok(&CtlRequest::Status)["stats"]["rejections"]["fifo_refused"] == 1).await;
    // Nothing was added or persisted.
    assert_eq!(host.ok(&CtlRequest::ListVms), vms_before);
    assert_eq!(host.ok(&CtlRequest::PolicyList), serde_json::json!([]));
    host.stop().await.unwrap();
}

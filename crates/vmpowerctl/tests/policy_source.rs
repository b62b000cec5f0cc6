//! vmpowerctl names where a policy came from, in text and in --json, for
//! `policy show` and `policy list`.

#![allow(clippy::unwrap_used)]

mod common;

use common::Daemon;

#[test]
fn show_and_list_name_the_operator_as_the_source() {
    let d = Daemon::start();
    d.ok(&["add-vm", "vm1"]);
    d.ok(&["set-pcpu", "vm1", "0", "2"]);
    d.policy(
        "low.toml",
        "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n",
    );
    let shown = d.ok(&["policy", "show", "vm1"]);
    assert!(
        shown.contains("  source  operator (vmpowerctl)\n"),
        "{shown}"
    );
    let listed = d.ok(&["policy", "list"]);
    assert!(
        listed.contains("  source  operator (vmpowerctl)\n"),
        "{listed}"
    );
    let v: vmpower_api::answers::PolicyDescription =
        serde_json::from_value(d.json(&["policy", "show", "vm1"])).unwrap();
    assert_eq!(v.source, Some(vmpower_api::PolicyOrigin::Operator));
}

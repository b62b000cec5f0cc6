//! Failures as scripts see them: with `--json` every failure prints one
//! `{"error": {"kind", "message"}}` object on stdout, whether vmpowerctl
//! or the daemon found it, with the usual exit code; `history --vm` for a
//! VM nobody knows is "no such VM" (3); invalid policy files are usage
//! errors (2) naming the field and value.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

mod common;

use common::{Daemon, stderr, stdout};

/// Asserts `o` exited `code` with one JSON error of `kind` on stdout whose
/// message is also on stderr and contains `needle`.
fn json_error(o: &Output, code: i32, kind: &str, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    let v: serde_json::Value = serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", stdout(o)));
    assert_eq!(v["error"]["kind"], kind, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message}");
    assert!(stderr(o).contains(message), "{}", stderr(o));
}

#[test]
fn json_errors_found_by_vmpowerctl_look_like_the_daemons() {
    let d = Daemon::start();
    // The daemon's refusal, for comparison.
    json_error(
        &d.ctl(&["--json", "show-vm", "nope"]),
        3,
        "not-found",
        "nope",
    );
    // Caught by vmpowerctl after parsing.
    let o = d.ctl(&["--json", "history", "--since", "yesterday"]);
    json_error(&o, 2, "invalid", "yesterday");
    let o = d.ctl(&["--json", "set-cpu-freq", "--mask", "0xzz", "min"]);
    json_error(&o, 2, "invalid", "0xzz");
    let o = d.ctl(&["--json", "policy", "create", "/nonexistent/p.toml"]);
    json_error(&o, 2, "invalid", "/nonexistent/p.toml");
    // Caught by clap.
    let o = d.ctl(&["--json", "set-pcpu", "vm1", "x", "2"]);
    json_error(&o, 2, "invalid", "'x'");
    // No daemon.
    for args in [&["status"][..], &["top", "--iterations", "1"][..]] {
        let o = Command::new(env!("CARGO_BIN_EXE_vmpowerctl"))
            .args(["--json", "--control-socket", "/nonexistent/vmpower.sock"])
            .args(args)
            .output()
            .unwrap();
        json_error(&o, 1, "unreachable", "/nonexistent/vmpower.sock");
    }
    // Without --json stdout stays empty.
    let o = d.ctl(&["history", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
}

#[test]
fn the_json_shell_prints_each_failure_as_an_object() {
    let d = Daemon::start();
    let out = d.shell(&["--json", "shell"], b"bogus-command\nshow-vm nope\nquit\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let kinds: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["error"]["kind"].clone())
        .collect();
    assert_eq!(kinds, ["invalid", "not-found"], "{}", stdout(&out));
}

#[test]
fn history_of_an_unknown_vm_is_not_found_but_a_removed_vms_is_listed() {
    let d = Daemon::start();
    let o = d.ctl(&["history", "--vm", "nosuchvm"]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stderr(&o).contains("nosuchvm"), "{}", stderr(&o));

    // A known VM with no decisions yet: an empty history, not an error.
    d.ok(&["add-vm", "vm1"]);
    let v = d.json(&["history", "--vm", "vm1"]);
    assert_eq!(v.as_array().unwrap().len(), 0, "{v}");

    // Its decisions outlive the VM.
    d.ok(&["set-pcpu", "vm1", "0", "2"]);
    d.policy(
        "low.toml",
        "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n",
    );
    d.ok(&["rm-vm", "vm1"]);
    let v = d.json(&["history", "--vm", "vm1"]);
    assert!(v.as_array().unwrap().iter().any(|e| e["pcpu"] == 2), "{v}");
    // Filtered to nothing by --since, a removed VM with history is still 0.
    let o = d.ctl(&["history", "--vm", "vm1", "--since", "4000000000"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn invalid_policy_files_are_usage_errors_naming_the_field() {
    let d = Daemon::start();
    d.ok(&["add-vm", "vm1"]);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "vm = \"vm1\"\nkind = \"TRAFFIC\"\ncores = [0]\n",
            &["macs"][..],
        ),
        (
            "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = []\n",
            &["cores", "[]"][..],
        ),
        (
            "vm = \"vm1\"\nkind = \"TRAFFIC\"\ncores = [0]\nmacs = [\"02:00:00:00:00:01\"]\n\
             [traffic]\navg_pps = 100\nmax_pps = 20\n",
            &["avg_pps", "100", "max_pps", "20"][..],
        ),
        (
            "vm = \"vm1\"\nkind = \"TIME\"\ncores = [0]\n[hours]\nbusy = [3]\nquiet = [3]\n",
            &["hour 3", "busy", "quiet"][..],
        ),
    ];
    for (i, (text, needles)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let o = d.ctl(&["policy", "create", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        for needle in *needles {
            assert!(stderr(&o).contains(needle), "{text}: {}", stderr(&o));
        }
    }
    // Nothing reached the daemon.
    assert_eq!(d.ctl(&["policy", "show", "vm1"]).status.code(), Some(3));
}

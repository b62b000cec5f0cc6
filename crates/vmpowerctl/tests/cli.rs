//! The vmpowerctl binary against a real daemon (in-process, fake host):
//! tables, --json, exit codes, the shell.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

mod common;

use common::{Daemon, stderr, stdout};
use vmpower_api::answers::{CpuFreq, History, PolicyList, VmInfo};

#[test]
fn vm_commands_tables_and_json() {
    let d = Daemon::start();
    let o = d.ctl(&["add-vm", "vm1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.ctl(&["set-pcpu", "vm1", "0", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A CPU the host lacks: the error says which and why, not only where.
    let o = d.ctl(&["set-pcpu", "vm1", "0", "99"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("99"), "{}", stderr(&o));
    let o = d.ctl(&["set-query", "vm1", "enable"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.ctl(&["list-vms"]);
    let out = stdout(&o);
    assert!(out.starts_with("VM"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("vm1") && l.contains("true")),
        "{out}"
    );
    let o = d.ctl(&["--json", "show-vm", "vm1"]);
    let v: VmInfo = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.vcpus[0].pcpus, [2]);
    assert!(v.settings.queries_allowed);
    let o = d.ctl(&["show-vm", "vm1"]);
    assert!(stdout(&o).contains("0 -> [2]"), "{}", stdout(&o));
}

#[test]
fn cpu_frequency_by_core_and_mask() {
    let d = Daemon::start();
    let o = d.ctl(&["set-cpu-freq", "--mask", "0x6", "min"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.file(1, "scaling_setspeed"), "800000");
    assert_eq!(d.file(2, "scaling_setspeed"), "800000");
    assert_ne!(d.file(0, "scaling_governor"), "userspace");
    let o = d.ctl(&["set-cpu-freq", "1", "up"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.file(1, "scaling_setspeed"), "900000");
    let o = d.ctl(&["--json", "show-cpu-freq", "1"]);
    let v: Vec<CpuFreq> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0].khz, Some(900_000));
    assert!(v[0].operator);
    let o = d.ctl(&["show-cpu-freq", "1-2"]);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 3, "{out}");
    let o = d.ctl(&["set-cpu-freq", "1", "release"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.file(1, "scaling_governor"), d.file(0, "scaling_governor"));
}

#[test]
fn exit_codes_tell_usage_missing_and_unreachable_apart() {
    let d = Daemon::start();
    // 3: unknown VM / CPU.
    let o = d.ctl(&["show-vm", "nope"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope"));
    let o = d.ctl(&["set-cpu-freq", "77", "min"]);
    assert_eq!(o.status.code(), Some(3));
    // 4: refused.
    assert!(d.ctl(&["add-vm", "twice"]).status.success());
    let o = d.ctl(&["add-vm", "twice"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    // 2: usage, caught before asking the daemon.
    let o = d.ctl(&["set-cpu-freq", "--mask", "0xzz", "min"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("0xzz"), "{}", stderr(&o));
    let o = d.ctl(&["set-pcpu", "vm1", "x", "2"]);
    assert_eq!(o.status.code(), Some(2));
    // 1: no daemon.
    let o = Command::new(env!("CARGO_BIN_EXE_vmpowerctl"))
        .args(["--control-socket", "/nonexistent/vmpower.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/vmpower.sock"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_shell_reads_commands_until_quit() {
    let d = Daemon::start();
    let out = d.shell(
        &["shell"],
        b"add-vm shellvm\nbogus-command\nlist-vms\nquit\n",
    );
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("shellvm"), "{text}");
    assert!(stderr(&out).contains("bogus-command"), "{}", stderr(&out));
}

#[test]
fn policies_from_files_show_list_history_destroy() {
    let d = Daemon::start();
    assert!(d.ctl(&["add-vm", "vm1"]).status.success());
    assert!(d.ctl(&["set-pcpu", "vm1", "0", "2"]).status.success());
    // An empty list says so rather than printing nothing.
    let o = d.ctl(&["policy", "list"]);
    assert_eq!(stdout(&o).trim(), "no policies", "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("low.toml");
    std::fs::write(
        &file,
        "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n",
    )
    .unwrap();
    let o = d.ctl(&["policy", "create", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("active"), "{}", stdout(&o));
    assert_eq!(d.file(2, "scaling_setspeed"), "800000");

    // A TRAFFIC policy whose MAC no device carries waits, saying why.
    let traffic = dir.path().join("traffic.json");
    std::fs::write(
        &traffic,
        r#"{"vm": "vm1", "kind": "TRAFFIC", "cores": [0], "macs": ["02:00:5e:00:99:01"],
            "traffic": {"avg_pps": 1000, "max_pps": 2000}}"#,
    )
    .unwrap();
    let o = d.ctl(&["policy", "create", traffic.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut waiting = String::new();
    for _ in 0..100 {
        let o = d.ctl(&["policy", "show", "vm1"]);
        waiting = stdout(&o);
        if waiting.contains("no VF, netdev or tap carries this MAC") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(waiting.contains("waiting"), "{waiting}");
    assert!(waiting.contains("02:00:5e:00:99:01"), "{waiting}");
    let o = d.ctl(&["--json", "policy", "list"]);
    let v: PolicyList = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.len(), 1);

    // The WORKLOAD decision is in the history.
    let o = d.ctl(&["--json", "history", "--vm", "vm1"]);
    let v: History = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.iter().any(|e| e.pcpu == 2 && e.new_khz == 800_000),
        "{v:?}"
    );
    let o = d.ctl(&["history", "--since", "2000-01-01T00:00:00Z", "--limit", "1"]);
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));

    let o = d.ctl(&["policy", "destroy", "vm1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.ctl(&["policy", "show", "vm1"]).status.code(), Some(3));
    // Bad files are usage errors naming the problem, sent nowhere.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "vm = \"vm1\"\nkind = \"TIME\"\ncores = [0]\n[hours]\nbusy = [25]\n",
    )
    .unwrap();
    let o = d.ctl(&["policy", "create", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("25"), "{}", stderr(&o));
}

//! `vmpowerctl status` and `vmpowerctl top` against a real daemon
//! (in-process, fake host): channels up and down, a policy waiting and
//! why, a failed sysfs write among the last errors, the live table.

#![allow(clippy::unwrap_used)]

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use vmpower_api::answers::{PolicyStateName, RecentErrorKind, Status, TopFrame};
use vmpower_cpufreq::SysfsIo;
use vmpower_cpufreq::fake::FailKind;

mod common;

use common::{Daemon, wait};

/// `status --json`, read as the typed answer.
fn status(d: &Daemon) -> Status {
    serde_json::from_value(d.json(&["status"])).unwrap()
}

/// A host with vm1 (channel up, WORKLOAD HIGH on pCPU 2) and vm2 (a
/// TRAFFIC policy on a MAC no device carries: waiting).
fn scenario() -> (Daemon, UnixListener, UnixStream) {
    let d = Daemon::start();
    let (listener, conn) = d.qemu("vm1", 0);
    d.ok(&["set-pcpu", "vm1", "0", "2"]);
    d.policy(
        "high.toml",
        "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"HIGH\"\n",
    );
    d.ok(&["add-vm", "vm2"]);
    d.ok(&["set-pcpu", "vm2", "0", "3"]);
    d.policy(
        "traffic.json",
        r#"{"vm": "vm2", "kind": "TRAFFIC", "cores": [0], "macs": ["02:00:5e:00:99:07"],
            "traffic": {"avg_pps": 1000, "max_pps": 2000}}"#,
    );
    (d, listener, conn)
}

#[test]
fn status_summarises_channels_policies_and_last_errors() {
    let (d, listener, conn) = scenario();
    // An operator change whose sysfs write fails.
    let setspeed = Path::new("devices/system/cpu/cpu1/cpufreq/scaling_setspeed");
    d.fake.fail_next_write(setspeed, FailKind::PermissionDenied);
    assert_eq!(d.ctl(&["set-cpu-freq", "1", "max"]).status.code(), Some(4));

    let v = status(&d);
    assert_eq!(v.channels_up, 1, "{v:?}");
    assert_eq!(v.channels_down, 0);
    assert!(v.stats.channels["vm1.0"].up);
    let vm2 = v.policies.iter().find(|p| p.vm == "vm2").unwrap();
    assert_eq!(vm2.state, PolicyStateName::Waiting);
    assert_eq!(vm2.kind, "traffic");
    let vm1 = v.policies.iter().find(|p| p.vm == "vm1").unwrap();
    assert_eq!(vm1.state, PolicyStateName::Active);
    let last = &v.stats.last_errors[0];
    assert_eq!(last.kind, RecentErrorKind::Sysfs);
    assert!(last.detail.contains("pCPU 1"), "{last:?}");
    assert_eq!(v.stats.sysfs_failures, 1);
    assert!(v.metrics_address.is_none(), "metrics are off by default");

    let text = d.ok(&["status"]);
    assert!(text.contains("channels 1 up, 0 down"), "{text}");
    assert!(text.contains("metrics off"), "{text}");
    let channel = text.lines().find(|l| l.starts_with("vm1.0")).unwrap();
    assert!(channel.contains(" up "), "{channel}");
    let waiting = text.lines().find(|l| l.starts_with("vm2 ")).unwrap();
    assert!(
        waiting.contains("traffic") && waiting.contains("waiting"),
        "{waiting}"
    );
    let why = vm2.waiting_for.as_deref().unwrap();
    assert!(!why.is_empty() && waiting.contains(why), "{waiting}");
    let error = text
        .lines()
        .skip_while(|l| !l.starts_with("LAST ERRORS"))
        .nth(2)
        .unwrap();
    assert!(
        error.contains("sysfs") && error.contains("write") && error.contains("pCPU 1"),
        "{error}"
    );
    assert!(text.contains("sysfs_failures"), "{text}");

    // QEMU goes away: the channel is down.
    drop(conn);
    drop(listener);
    wait(
        || status(&d).channels_down == 1,
        "the channel never went down",
    );
    let text = d.ok(&["status"]);
    assert!(text.contains("channels 0 up, 1 down"), "{text}");
    let channel = text.lines().find(|l| l.starts_with("vm1.0")).unwrap();
    assert!(channel.contains(" down "), "{channel}");
}

#[test]
fn top_draws_frames_until_its_iterations_are_done() {
    let (d, _listener, _conn) = scenario();
    let max_khz = d
        .fake
        .read(Path::new(
            "devices/system/cpu/cpu2/cpufreq/scaling_setspeed",
        ))
        .unwrap();
    let max_ghz = format!("{:.2} GHz", max_khz.parse::<f64>().unwrap() / 1e6);
    let text = d.ok(&["top", "--iterations", "3", "--interval", "0.1"]);
    assert_eq!(text.matches("vmpower top").count(), 3, "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI codes when not on a terminal"
    );
    let last = text.rsplit("vmpower top").next().unwrap();
    let cpu2 = last
        .lines()
        .find(|l| l.trim_start().starts_with("2 "))
        .unwrap();
    assert!(
        cpu2.contains(&max_ghz) && cpu2.contains("managed"),
        "{cpu2}"
    );
    let vm1 = last.lines().find(|l| l.starts_with("vm1 ")).unwrap();
    assert!(vm1.contains("1/1"), "channel up: {vm1}");
    assert!(vm1.contains("workload active"), "{vm1}");
    assert!(
        vm1.contains("pCPU 2 ") && vm1.contains(&format!("-> {max_ghz}")),
        "{vm1}"
    );
    let vm2 = last.lines().find(|l| l.starts_with("vm2 ")).unwrap();
    assert!(vm2.contains("traffic waiting"), "{vm2}");

    // --json: one frame per line.
    let json = d.ok(&["--json", "top", "--iterations", "2", "--interval", "0.1"]);
    let frames: Vec<TopFrame> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 2);
    let vm1 = frames[1].vms.iter().find(|v| v.vm == "vm1").unwrap();
    let decision = vm1.last_decision.as_ref().unwrap();
    assert_eq!(decision.pcpu, 2);
    assert_eq!(decision.new_khz.to_string(), max_khz);

    // A bad interval is a usage error.
    assert_eq!(d.ctl(&["top", "--interval", "0"]).status.code(), Some(2));
}

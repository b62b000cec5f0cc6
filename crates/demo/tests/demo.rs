//! The demo as CI runs it: `vmpower-demo --short`, its summary checked —
//! the daemon really changed frequencies, and the demo cleaned up after
//! itself (CPUs restored, temporary directory gone) — with synthetic
//! counters, and (as root) with real packets on a veth pair, after which
//! no namespace or link of the run may be left.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmpower-demo"))
        .args(args)
        .output()
        .expect("the demo binary runs")
}

/// Runs the demo; its output and its pid.
fn demo_with_pid(args: &[&str]) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_vmpower-demo"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo binary starts");
    let pid = child.id();
    (child.wait_with_output().expect("the demo runs"), pid)
}

/// `ip ARGS`' output, or why it failed.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Root, `ip`, and a network namespace can be made; says why the test is
/// skipped otherwise.
fn can_make_namespaces() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (network namespaces and veth pairs)");
        return false;
    }
    let probe = format!("vmpdtest{}", std::process::id());
    if let Err(e) = ip(&["netns", "add", &probe]) {
        eprintln!("skipped: network namespaces unavailable: {e}");
        return false;
    }
    ip(&["netns", "del", &probe]).expect("deleting the probe namespace");
    true
}

/// The summary's `cpuN ...` line.
fn cpu_line(stdout: &str, cpu: u32) -> &str {
    let name = format!("cpu{cpu} ");
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&name) && l.contains(" min "))
        .unwrap_or_else(|| panic!("no {name}line\n{stdout}"))
}

/// The count in `decisions taken: N`.
fn decisions(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("decisions taken: "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a decisions line")
        .parse()
        .unwrap()
}

/// Checks the restore and temp dir lines; the temp dir is gone.
fn cleaned_up(stdout: &str) {
    assert!(stdout.contains("restore check: passed"), "{stdout}");
    let temp = stdout
        .lines()
        .find_map(|l| l.strip_prefix("temp dir: "))
        .and_then(|rest| rest.strip_suffix(" (removed)"))
        .expect("the temp dir is reported removed");
    assert!(temp.contains("vmpower-demo-"), "{temp}");
    assert!(!Path::new(temp).exists(), "{temp} still exists");
}

/// The seconds after `name` in a `cpuN  min 1.25 s (21%) ...` line.
fn seconds_at(line: &str, name: &str) -> f64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == name).unwrap();
    words[i + 1].parse().unwrap()
}

#[test]
fn short_run_changes_frequencies_and_leaves_nothing_behind() {
    let out = demo(&["--short", "--traffic", "synthetic"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Not a terminal: plain lines, no escape codes.
    assert!(!stdout.contains('\x1b'), "{stdout}");
    assert!(
        stdout.contains("traffic: synthetic counters, no packets sent (--traffic synthetic)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("network:"),
        "nothing made, nothing to remove\n{stdout}"
    );
    assert!(decisions(&stdout) > 0, "{stdout}");

    let cpu_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("cpu") && l.contains(" min "))
        .collect();
    assert_eq!(
        cpu_lines.len(),
        8,
        "one line per pCPU of the default host\n{stdout}"
    );
    assert!(
        cpu_lines.iter().any(|l| seconds_at(l, "min") > 0.0),
        "some pCPU went to min\n{stdout}"
    );
    assert!(
        cpu_lines.iter().any(|l| seconds_at(l, "max") > 0.0),
        "some pCPU went to max\n{stdout}"
    );
    assert!(
        cpu_lines.iter().any(|l| seconds_at(l, "host") > 0.0),
        "cpu0 stays with the host\n{stdout}"
    );
    cleaned_up(&stdout);
}

#[test]
fn real_packets_on_a_veth_pair_move_the_traffic_vm_and_leave_no_link() {
    if !can_make_namespaces() {
        return;
    }
    let (out, pid) = demo_with_pid(&["--short", "--traffic", "veth"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("vmpd-{pid}-");
    // Whatever the run said, nothing of it may be left.
    let netns = ip(&["netns", "list"]).unwrap();
    let links = ip(&["-o", "link", "show"]).unwrap();
    assert!(!netns.contains(&prefix), "namespace left:\n{netns}");
    assert!(!links.contains(&prefix), "link left:\n{links}");
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let pair = format!("{prefix}0");
    assert!(
        stdout.contains(&format!("traffic: real packets on veth {pair} ")),
        "{stdout}"
    );
    // vm0-traffic's MAC was found on its pair and packets were measured.
    let guest = stdout
        .lines()
        .find(|l| l.starts_with("guest vm0-traffic (traffic): "))
        .expect("a line for the traffic VM");
    assert!(
        guest.ends_with(&format!("(netdev {pair} rx)")),
        "the daemon read the pair's end\n{stdout}"
    );
    let fed: u64 = guest
        .split("fed ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("fed N packets")
        .parse()
        .unwrap();
    assert!(fed > 0, "{guest}");
    assert!(!guest.contains("measured up to nothing"), "{guest}");

    // Its pCPUs (1 and 2 of the default host) went both ways.
    assert!(decisions(&stdout) > 0, "{stdout}");
    for cpu in [1, 2] {
        let line = cpu_line(&stdout, cpu);
        assert!(seconds_at(line, "min") > 0.0, "cpu{cpu} at min\n{stdout}");
        assert!(seconds_at(line, "max") > 0.0, "cpu{cpu} at max\n{stdout}");
    }
    assert!(
        stdout.contains(&format!("network: removed {pair} ")),
        "{stdout}"
    );
    cleaned_up(&stdout);
}

#[test]
fn ctrl_c_with_real_packets_still_removes_everything() {
    if !can_make_namespaces() {
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmpower-demo"))
        .args(["--short", "--duration", "60s", "--traffic", "veth"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo binary starts");
    let prefix = format!("vmpd-{}-", child.id());
    // The signals are ours before the first namespace is made: once it
    // exists, Ctrl-C must end the run cleanly.
    let mut tries = 0;
    while !ip(&["netns", "list"]).unwrap().contains(&prefix) {
        tries += 1;
        if tries > 400 || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no namespace {prefix}* appeared\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let netns = ip(&["netns", "list"]).unwrap();
    let links = ip(&["-o", "link", "show"]).unwrap();
    assert!(!netns.contains(&prefix), "namespace left:\n{netns}");
    assert!(!links.contains(&prefix), "link left:\n{links}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(ended by Ctrl-C)"), "{stdout}");
    assert!(
        stdout.contains(&format!("network: removed {prefix}0 ")),
        "{stdout}"
    );
    cleaned_up(&stdout);
}

#[test]
fn too_many_vms_for_the_cpus_is_refused_before_anything_is_built() {
    let out = demo(&["--short", "--vms", "4", "--cpus", "4"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--vms 4 needs at least 5 CPUs"), "{stderr}");
    assert!(out.stdout.is_empty());
}

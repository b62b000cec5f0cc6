//! The demo as CI runs it: `vmpower-demo --short`, its summary checked —
//! the daemon really changed frequencies, and the demo cleaned up after
//! itself (CPUs restored, temporary directory gone).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmpower-demo"))
        .args(args)
        .output()
        .expect("the demo binary runs")
}

/// The seconds after `name` in a `cpuN  min 1.25 s (21%) ...` line.
fn seconds_at(line: &str, name: &str) -> f64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == name).unwrap();
    words[i + 1].parse().unwrap()
}

#[test]
fn short_run_changes_frequencies_and_leaves_nothing_behind() {
    let out = demo(&["--short"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Not a terminal: plain lines, no escape codes.
    assert!(!stdout.contains('\x1b'), "{stdout}");

    let decisions: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("decisions taken: "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a decisions line")
        .parse()
        .unwrap();
    assert!(decisions > 0, "{stdout}");

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

    assert!(stdout.contains("restore check: passed"), "{stdout}");
    let temp = stdout
        .lines()
        .find_map(|l| l.strip_prefix("temp dir: "))
        .and_then(|rest| rest.strip_suffix(" (removed)"))
        .expect("the temp dir is reported removed");
    assert!(temp.contains("vmpower-demo-"), "{temp}");
    assert!(!Path::new(temp).exists(), "{temp} still exists");
}

#[test]
fn too_many_vms_for_the_cpus_is_refused_before_anything_is_built() {
    let out = demo(&["--short", "--vms", "4", "--cpus", "4"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--vms 4 needs at least 5 CPUs"), "{stderr}");
    assert!(out.stdout.is_empty());
}

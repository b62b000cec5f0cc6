//! Smoke test of the harness end to end: `latency --quick` (also with a
//! busy-polling daemon and a polling guest), `idle --quick` and
//! `dpdk-reply --quick` against the real `vmpowerd` binary. Only that figures
//! come out (and that the bench cleans up after itself) is checked —
//! never how fast anything is.
//!
//! The bench crate cannot see vmpowerd's `CARGO_BIN_EXE_vmpowerd` (that
//! is only given to vmpowerd's own tests), so the test runs
//! `cargo build -p vmpowerd --message-format=json` with the very cargo
//! that runs it (`env!("CARGO")`, same target dir and environment) and
//! takes the binary's path from cargo's `compiler-artifact` message: no
//! guess about target dirs or profiles.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Builds vmpowerd (debug) and returns the path of its binary.
fn vmpowerd() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["build", "-p", "vmpowerd", "--bin", "vmpowerd"])
        .args(["--message-format=json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo build -p vmpowerd failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "vmpowerd")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no vmpowerd executable")
}

/// Runs one quick scenario with `--json`; its single run's metrics.
fn bench(daemon: &PathBuf, scenario: &str) -> Vec<Value> {
    bench_with(daemon, &[], scenario, &[])
}

/// [`bench`] with options before and after the scenario's name.
fn bench_with(daemon: &PathBuf, before: &[&str], scenario: &str, after: &[&str]) -> Vec<Value> {
    let child = Command::new(env!("CARGO_BIN_EXE_vmpower-bench"))
        .arg("--vmpowerd")
        .arg(daemon)
        .args(["--quick", "--json"])
        .args(before)
        .arg(scenario)
        .args(after)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{scenario}: {:?}", out.status);
    // Its work dirs are named vmpower-bench-<pid>-...: all removed.
    for base in [PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        let prefix = format!("vmpower-bench-{pid}-");
        let left: Vec<_> = std::fs::read_dir(&base)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .collect();
        assert!(left.is_empty(), "{scenario} left {left:?} behind");
    }
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["runs"][0]["metrics"].as_array().unwrap().clone()
}

/// The value of the metric called `name`.
fn metric(metrics: &[Value], name: &str) -> f64 {
    let m = metrics
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {metrics:?}"));
    m["value"].as_f64().unwrap()
}

#[test]
fn quick_latency_and_idle_produce_figures() {
    let daemon = vmpowerd();

    let latency = bench(&daemon, "latency");
    let (p50, p99, max) = (
        metric(&latency, "p50"),
        metric(&latency, "p99"),
        metric(&latency, "max"),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{latency:?}");
    assert_eq!(metric(&latency, "NACKs"), 0.0);
    assert!(metric(&latency, "sysfs writes per request") >= 1.0);

    let idle = bench(&daemon, "idle");
    let cpu = metric(&idle, "daemon CPU time per 60 s (ticks)");
    assert!(cpu.is_finite() && cpu >= 0.0, "{idle:?}");
    assert_eq!(metric(&idle, "reconnects during the run"), 0.0);
}

/// The busy-polling daemon and the guest that waits as QEMU does: every
/// request still ACKed and written.
#[test]
fn quick_latency_with_busy_poll_and_a_polling_guest() {
    let daemon = vmpowerd();
    let latency = bench_with(
        &daemon,
        &["--busy-poll-us", "200"],
        "latency",
        &["--guest-wait", "poll"],
    );
    assert!(metric(&latency, "p50") > 0.0, "{latency:?}");
    assert_eq!(metric(&latency, "NACKs"), 0.0);
    assert_eq!(metric(&latency, "sysfs writes per request"), 1.0);
}

/// DPDK's reply contract, idle then loaded: every category timed (the
/// bench itself fails on a wrong or stray reply).
#[test]
fn quick_dpdk_reply_produces_figures_for_both_phases() {
    let daemon = vmpowerd();
    let m = bench(&daemon, "dpdk-reply");
    for phase in ["idle", "loaded"] {
        for cat in [
            "first touch",
            "steady CPU_POWER",
            "PKT_POLICY set",
            "CPU_POWER after REMOVE",
            "QUERY_FREQ_LIST",
            "all",
        ] {
            let p50 = metric(&m, &format!("{phase} {cat} p50"));
            let p999 = metric(&m, &format!("{phase} {cat} p99.9"));
            assert!(p50 > 0.0 && p50 <= p999, "{phase} {cat}: {m:?}");
            assert!(metric(&m, &format!("{phase} {cat} count")) >= 1.0);
        }
    }
    assert!(metric(&m, "loaded/idle all p99.9") > 0.0);
}

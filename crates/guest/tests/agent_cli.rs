//! `vmpower-guest agent`, the binary, against the fake host of
//! tests/common/fake_host.rs: it reports until stopped, exits 4 naming the
//! contract when the host does not grant native v2 and 2 for an interval
//! out of bounds (nothing sent).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::fake_host::{FakeHost, FakeProc};

fn agent(port: &Path, proc_root: &Path, interval: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmpower-guest"));
    cmd.arg("--port")
        .arg(port)
        .args([
            "agent",
            "--source",
            "proc-stat",
            "--interval",
            interval,
            "--proc-root",
        ])
        .arg(proc_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_agent_reports_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let host = FakeHost::start(&dir.path().join("host.sock"), Some(2));
    let proc = FakeProc::start(&dir.path().join("proc"));
    let mut child = agent(&host.path, &proc.root, "20ms").spawn().unwrap();
    let reports = host.wait_for("3 reports", |r| r.len() >= 3);
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        reports
            .iter()
            .all(|r| r.entries == [(0, 500), (1, 100)] && r.interval_ms == 20),
        "{reports:?}"
    );
    let log = stderr(&out);
    assert!(log.contains("reporting busyness every 20ms"), "{log}");
    assert!(log.contains("/proc/stat"), "{log}");
}

#[test]
fn a_host_without_v2_is_exit_4_and_a_bad_interval_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let proc = FakeProc::start(&dir.path().join("proc"));
    let host = FakeHost::start(&dir.path().join("v1.sock"), Some(1));
    let out = agent(&host.path, &proc.root, "20ms").output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("native-v1"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("native contract v2"),
        "{}",
        stderr(&out)
    );

    let out = agent(&host.path, &proc.root, "5ms").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("10ms"), "{}", stderr(&out));
    assert_eq!(
        host.seen.lock().unwrap().commands.len(),
        1,
        "nothing sent for a bad interval"
    );
}

//! `contrib/systemd/vmpower-guest-agent.service` passes `systemd-analyze
//! verify` (a copy whose ExecStart is the binary just built: verify checks
//! that the program exists), and its command line is one `vmpower-guest`
//! accepts, as the agent with its defaults.
//!
//! `systemd-analyze` must be installed (`bash scripts/install-deps`
//! installs the `systemd` package); it works without systemd as PID 1.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use vmpower_guest::cli::agent::SourceArg;
use vmpower_guest::cli::{Cli, Command as Sub};

fn unit() -> String {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib/systemd/vmpower-guest-agent.service");
    std::fs::read_to_string(path).unwrap()
}

fn exec_start(unit: &str) -> &str {
    let exec: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 1, "one ExecStart: {exec:?}");
    exec[0]
}

/// `systemd-analyze verify` on `text` as `vmpower-guest-agent.service`.
fn verify(text: &str) -> Option<String> {
    vmpower_testkit::systemd::verify_unit("vmpower-guest-agent.service", text)
}

fn with_program(unit: &str, program: &str) -> String {
    let current = exec_start(unit)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    unit.replace(
        &format!("ExecStart={current} "),
        &format!("ExecStart={program} "),
    )
}

#[test]
fn the_unit_passes_systemd_analyze_verify_and_catches_a_typo() {
    let good = with_program(&unit(), env!("CARGO_BIN_EXE_vmpower-guest"));
    if let Some(complaints) = verify(&good) {
        panic!("systemd-analyze verify: {complaints}");
    }
    let typo = good.replace("ProtectSystem=strict", "ProtectSytem=strict");
    assert_ne!(typo, good);
    let complaints = verify(&typo).expect("a misspelt key passed");
    assert!(complaints.contains("ProtectSytem"), "{complaints}");
}

#[test]
fn execstart_runs_the_agent_with_its_defaults() {
    let unit = unit();
    let exec = exec_start(&unit);
    assert!(
        exec.starts_with("/usr/local/bin/vmpower-guest "),
        "vmpower-dist install rewrites this prefix: {exec}"
    );
    let words: Vec<&str> = exec.split_whitespace().collect();
    let cli = Cli::try_parse_from(&words).unwrap();
    assert_eq!(cli.channel, 0);
    let Sub::Agent(args) = cli.command else {
        panic!("not the agent: {exec}")
    };
    assert_eq!(args.interval, Duration::from_millis(100));
    assert_eq!(args.source, SourceArg::Dpdk);
    assert_eq!(
        args.config().source.telemetry.as_deref(),
        Some(Path::new("/var/run/dpdk/rte/dpdk_telemetry.v2"))
    );
}

//! `contrib/systemd/vmpowerd.service` passes `systemd-analyze verify` (a
//! copy whose ExecStart is the binary just built: verify checks that the
//! program exists), its command line is one the daemon accepts, and the
//! directories it grants are the ones the daemon's defaults use.
//!
//! `systemd-analyze` must be installed (`bash scripts/install-deps`
//! installs the `systemd` package); it works without systemd as PID 1.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use clap::Parser;
use vmpowerd::config::{Args, Config};

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd/vmpowerd.service")
}

fn unit() -> String {
    std::fs::read_to_string(unit_path()).unwrap()
}

/// Every value of `key=` lines in the unit, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// `systemd-analyze verify` on `text` as `vmpowerd.service`.
fn verify(text: &str) -> Option<String> {
    vmpower_testkit::systemd::verify_unit("vmpowerd.service", text)
}

/// The unit with ExecStart's program replaced by `program`.
fn with_program(unit: &str, program: &str) -> String {
    let exec = values(unit, "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart: {exec:?}");
    let current = exec[0].split_whitespace().next().unwrap();
    unit.replace(
        &format!("ExecStart={current}"),
        &format!("ExecStart={program}"),
    )
}

fn with_built_binary(unit: &str) -> String {
    with_program(unit, env!("CARGO_BIN_EXE_vmpowerd"))
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if let Some(complaints) = verify(&with_built_binary(&unit())) {
        panic!("systemd-analyze verify: {complaints}");
    }
}

#[test]
fn verify_catches_a_misspelt_key_and_a_missing_program() {
    let good = with_built_binary(&unit());
    let typo = good.replace("ProtectSystem=strict", "ProtectSytem=strict");
    assert_ne!(typo, good);
    let complaints = verify(&typo).expect("a misspelt key passed");
    assert!(complaints.contains("ProtectSytem"), "{complaints}");
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("vmpowerd");
    assert!(verify(&with_program(&good, absent.to_str().unwrap())).is_some());
}

#[test]
fn the_daemon_accepts_execstart() {
    let unit = unit();
    let exec = values(&unit, "ExecStart")[0];
    assert!(
        exec.starts_with("/usr/local/bin/vmpowerd "),
        "vmpower-dist install rewrites this prefix: {exec}"
    );
    let words: Vec<&str> = exec.split_whitespace().collect();
    let args = Args::try_parse_from(&words).unwrap();
    assert_eq!(
        args.config.as_deref(),
        Some(Path::new("/etc/vmpower/vmpowerd.toml"))
    );
}

#[test]
fn the_granted_directories_are_the_defaults() {
    let unit = unit();
    let defaults = Config::default();
    let under = |base: &str, key: &str| -> Vec<PathBuf> {
        values(&unit, key)
            .iter()
            .map(|name| Path::new(base).join(name))
            .collect()
    };
    assert_eq!(
        under("/var/lib", "StateDirectory"),
        vec![defaults.state_dir.clone()]
    );
    assert_eq!(
        under("/run", "RuntimeDirectory"),
        vec![defaults.control_socket.parent().unwrap().to_owned()]
    );
    assert_eq!(
        under("/etc", "ConfigurationDirectory"),
        vec![defaults.policy_dir.parent().unwrap().to_owned()]
    );
    let writable: Vec<&str> = values(&unit, "ReadWritePaths")
        .iter()
        .map(|p| p.trim_start_matches('-'))
        .collect();
    let cpus = defaults.sysfs_root.join("devices/system/cpu");
    assert!(writable.contains(&cpus.to_str().unwrap()), "{writable:?}");
    let channels = defaults.channel_dir.to_str().unwrap();
    assert!(writable.contains(&channels), "{writable:?}");
    assert!(
        values(&unit, "ExecStartPre")
            .iter()
            .any(|c| c.ends_with(&format!("mkdir -p {channels}"))),
        "the channel directory is created before the sandbox"
    );
    assert!(
        values(&unit, "PrivateTmp").is_empty(),
        "QEMU's /tmp is needed"
    );
    assert!(
        values(&unit, "PrivateNetwork").is_empty(),
        "netlink is needed"
    );
    assert_eq!(values(&unit, "Type"), vec!["notify"]);
}

#[test]
fn reload_is_sighup() {
    assert_eq!(
        values(&unit(), "ExecReload"),
        vec!["/bin/kill -HUP $MAINPID"]
    );
}

#[test]
fn a_start_refused_for_the_configuration_is_not_restarted() {
    // vmpowerd exits 2 for an invalid configuration or a path it cannot
    // write (man vmpowerd, EXIT STATUS): restarting cannot help.
    assert_eq!(values(&unit(), "RestartPreventExitStatus"), vec!["2"]);
}

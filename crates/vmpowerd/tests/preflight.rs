//! The real binary checks at start that it can do its job: a sysfs root
//! whose cpufreq files are on a read-only mount (a sandbox's
//! `ProtectSystem=strict`) makes it refuse to start, exit status 2,
//! before READY=1, naming each path and the `ReadWritePaths=` to add;
//! `--check-config` reports the same problems (and bad policy files)
//! without starting.

#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output, Stdio};

use vmpower_testkit::binary::{Setup, wait_exit};

fn run(mut cmd: Command) -> (Output, String) {
    cmd.stdout(Stdio::piped());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[test]
fn check_config_names_every_problem_and_exits_2() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let policies = s.with_policy_dir();
    std::fs::write(
        policies.join("bad.toml"),
        "vm = \"../evil\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n",
    )
    .unwrap();
    let blocker = s.dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let mut cmd = s.command_in(Stdio::piped(), &blocker.join("state"));
    cmd.arg("--check-config");
    let (out, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let state = blocker.join("state");
    assert!(
        stderr.contains(&format!("ReadWritePaths={}", state.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(policies.join("bad.toml").to_str().unwrap()) && stderr.contains("../evil"),
        "{stderr}"
    );
    assert!(!s.control().exists(), "--check-config started the daemon");
    // A sound configuration: 0.
    std::fs::remove_file(policies.join("bad.toml")).unwrap();
    let mut cmd = s.command_in(Stdio::piped(), &s.dir.path().join("state"));
    cmd.arg("--check-config");
    let (out, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
}

/// Whether this test can make a read-only bind mount in a mount namespace
/// of its own (root and `unshare`); why not otherwise.
fn can_mount() -> Result<(), String> {
    let out = Command::new("unshare")
        .args(["-m", "true"])
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_read_only_sysfs_is_refused_at_start_before_ready() {
    if let Err(why) = can_mount() {
        eprintln!("skipped: needs root and unshare -m ({why})");
        return;
    }
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let cpus = s.fake.path().join("devices/system/cpu");
    let (notify, notify_path) = {
        let path = s.dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        (socket, path)
    };
    let daemon = s.command_in(Stdio::piped(), &s.dir.path().join("state"));
    let program = daemon.get_program().to_owned();
    let args: Vec<_> = daemon.get_args().map(ToOwned::to_owned).collect();
    // As ProtectSystem=strict leaves it: the CPUs' directory read-only.
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@""#)
        .arg("sh")
        .arg(&cpus)
        .arg(program)
        .args(args)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Reaped(cmd.spawn().unwrap());
    let status = wait_exit(&mut child.0);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    let governor = cpus.join("cpu1/cpufreq/scaling_governor");
    assert!(
        stderr.contains(governor.to_str().unwrap()) && stderr.contains("Read-only file system"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("ReadWritePaths={}", cpus.display())),
        "{stderr}"
    );
    let mut buf = [0u8; 256];
    assert!(notify.recv(&mut buf).is_err(), "READY=1 sent");
    assert!(!s.control().exists(), "the control socket was bound");
}

/// A daemon that a failed assertion does not leave running.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

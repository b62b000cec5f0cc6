//! vmpowerctl's side of the shared harness: a real daemon on its own
//! runtime thread (`vmpower_testkit::Detached`, on a fake 4-CPU
//! acpi-cpufreq host) and helpers that run the vmpowerctl binary against
//! it.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use vmpower_testkit::Detached;

pub use vmpower_testkit::wait::wait_within;

/// A daemon running until dropped.
pub struct Daemon {
    /// The fake sysfs tree.
    pub fake: std::sync::Arc<vmpower_testkit::layout::FakeSysfs>,
    /// The daemon and its host.
    pub daemon: Detached,
    /// The control socket.
    pub socket: PathBuf,
    /// The channel directory.
    pub channels: PathBuf,
}

impl Daemon {
    /// Starts a daemon and waits until its control socket accepts.
    pub fn start() -> Daemon {
        Daemon::start_seeded(|_| {})
    }

    /// As [`Daemon::start`], after `seed` has prepared the state dir
    /// (e.g. written records into its database, as an earlier run would).
    pub fn start_seeded(seed: impl FnOnce(&std::path::Path)) -> Daemon {
        let host =
            vmpower_testkit::layout::FakeHost::build(vmpower_testkit::layout::acpi4()).unwrap();
        let config = host.config();
        std::fs::create_dir_all(&config.state_dir).unwrap();
        seed(&config.state_dir);
        let daemon = Detached::start_on(host, config);
        Daemon {
            fake: daemon.host.fake.clone(),
            socket: daemon.config.control_socket.clone(),
            channels: daemon.config.channel_dir.clone(),
            daemon,
        }
    }

    /// The temporary directory holding the host.
    pub fn dir(&self) -> &std::path::Path {
        self.daemon.host.path()
    }

    /// Runs vmpowerctl with `args` against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmpowerctl"));
        cmd.arg("--control-socket").arg(&self.socket).args(args);
        cmd
    }

    /// Runs vmpowerctl with `args` (ending in `shell`) against this daemon,
    /// feeding it `input` on stdin.
    pub fn shell(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs vmpowerctl, asserts success and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs vmpowerctl with `--json` and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// A cpufreq file of a fake CPU.
    pub fn file(&self, cpu: u32, name: &str) -> String {
        self.daemon.host.cpu_file(cpu, name)
    }

    /// Plays QEMU: listens at `<channels>/<vm>.<n>` and takes the
    /// daemon's connection.
    pub fn qemu(&self, vm: &str, index: u32) -> (UnixListener, UnixStream) {
        vmpower_testkit::qemu::accept_blocking(&self.channels, vm, index)
    }

    /// Writes a policy file and creates it through vmpowerctl.
    pub fn policy(&self, name: &str, text: &str) {
        let file = self.dir().join(name);
        std::fs::write(&file, text).unwrap();
        self.ok(&["policy", "create", file.to_str().unwrap()]);
    }
}

/// Polls `cond` for up to 10 s.
pub fn wait(cond: impl FnMut() -> bool, what: &str) {
    wait_within(vmpower_testkit::WAIT, what, cond);
}

/// A command's stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

//! A real daemon for vmpowerctl's tests: in-process on its own runtime
//! thread, on a fake 4-CPU acpi-cpufreq host in a temp dir, with helpers to
//! run the vmpowerctl binary against it and to play QEMU.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::{Driver, SysfsIo};
use vmpowerd::config::Config;

/// A daemon running until dropped.
pub struct Daemon {
    pub fake: Arc<FakeSysfs>,
    pub socket: PathBuf,
    pub channels: PathBuf,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts a daemon and waits until its control socket accepts.
    pub fn start() -> Daemon {
        Daemon::start_seeded(|_| {})
    }

    /// As [`Daemon::start`], after `seed` has prepared the state dir
    /// (e.g. written records into its database).
    pub fn start_seeded(seed: impl FnOnce(&std::path::Path)) -> Daemon {
        let fake = Arc::new(
            FakeSysfs::builder(4)
                .driver(Driver::AcpiCpufreq)
                .build()
                .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            sysfs_root: fake.path().to_owned(),
            proc_root: dir.path().join("proc"),
            channel_dir: dir.path().join("channels"),
            state_dir: dir.path().join("state"),
            control_socket: dir.path().join("control.sock"),
            policy_dir: dir.path().join("policies.d"),
            ..Config::default()
        };
        std::fs::create_dir_all(&config.state_dir).unwrap();
        seed(&config.state_dir);
        let socket = config.control_socket.clone();
        let channels = config.channel_dir.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let io: Arc<dyn SysfsIo> = fake.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(vmpowerd::run::run(config, io, async {
                let _ = rx.await;
            }))
            .unwrap();
        });
        wait(
            || UnixStream::connect(&socket).is_ok(),
            "the daemon did not start",
        );
        Daemon {
            fake,
            socket,
            channels,
            dir,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Runs vmpowerctl with `args` against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vmpowerctl"))
            .arg("--control-socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs vmpowerctl with `args` (ending in `shell`) against this daemon,
    /// feeding it `input` on stdin.
    pub fn shell(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmpowerctl"))
            .arg("--control-socket")
            .arg(&self.socket)
            .args(args)
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
        let rel = format!("devices/system/cpu/cpu{cpu}/cpufreq/{name}");
        self.fake.read(Path::new(&rel)).unwrap()
    }

    /// Plays QEMU: listens at `<channels>/<vm>.<n>` and takes the
    /// daemon's connection.
    pub fn qemu(&self, vm: &str, index: u32) -> (UnixListener, UnixStream) {
        std::fs::create_dir_all(&self.channels).unwrap();
        let listener = UnixListener::bind(self.channels.join(format!("{vm}.{index}"))).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut conn = None;
        wait(
            || {
                conn = listener.accept().ok().map(|(s, _)| s);
                conn.is_some()
            },
            "the daemon did not connect to the channel",
        );
        (listener, conn.unwrap())
    }

    /// Writes a policy file and creates it through vmpowerctl.
    pub fn policy(&self, name: &str, text: &str) {
        let file = self.dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        self.ok(&["policy", "create", file.to_str().unwrap()]);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `cond` for up to 10 s.
pub fn wait(mut cond: impl FnMut() -> bool, what: &str) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}");
}

/// A command's stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

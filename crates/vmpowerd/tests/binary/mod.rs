//! The real `vmpowerd` binary on a fake host, for the tests that need a
//! process of their own (signals, kill -9, systemd's notify socket): a fake
//! 4-CPU acpi-cpufreq tree whose CPUs start at `ondemand`, temp dirs, a
//! config mapping vm1's vCPU 0 to pCPU 1, and process helpers.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::{Driver, SysfsIo};

/// Every wait is bounded.
pub const WAIT: Duration = Duration::from_secs(20);

/// A fake host and the temp dir holding the daemon's config, channels,
/// state and control socket.
pub struct Setup {
    pub fake: FakeSysfs,
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// A fresh host; nothing runs yet.
    pub fn new() -> Setup {
        let fake = FakeSysfs::builder(4)
            .driver(Driver::AcpiCpufreq)
            .governor("ondemand")
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("channels")).unwrap();
        std::fs::write(dir.path().join("vmpowerd.toml"), "[vm.vm1]\npcpus = [1]\n").unwrap();
        Setup { fake, dir }
    }

    /// Makes `<dir>/policies.d` and points the config's `policy_dir` at
    /// it (vm1 declared as in [`Setup::new`]); returns the directory.
    pub fn with_policy_dir(&self) -> PathBuf {
        let policies = self.dir.path().join("policies.d");
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::write(
            self.dir.path().join("vmpowerd.toml"),
            format!(
                "policy_dir = {:?}\n[vm.vm1]\npcpus = [1]\n",
                policies.to_str().unwrap()
            ),
        )
        .unwrap();
        policies
    }

    /// `vmpowerctl status`, as JSON.
    pub fn status(&self) -> serde_json::Value {
        let mut client = vmpower_api::Client::connect(&self.control()).unwrap();
        match client.call(&vmpower_api::CtlRequest::Status).unwrap() {
            vmpower_api::CtlResponse::Ok(v) => v,
            vmpower_api::CtlResponse::Error(e) => panic!("{e:?}"),
        }
    }

    /// The control socket's path.
    pub fn control(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// A cpufreq file of a fake CPU.
    pub fn file(&self, cpu: u32, name: &str) -> String {
        let rel = format!("devices/system/cpu/cpu{cpu}/cpufreq/{name}");
        self.fake.read(Path::new(&rel)).unwrap()
    }

    /// The daemon's command on this host, with no systemd environment;
    /// stderr to `stderr`.
    pub fn command(&self, stderr: Stdio) -> Command {
        self.command_in(stderr, &self.dir.path().join("state"))
    }

    /// [`Setup::command`] with another state directory.
    pub fn command_in(&self, stderr: Stdio, state_dir: &Path) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmpowerd"));
        cmd.arg("--config")
            .arg(d.join("vmpowerd.toml"))
            .arg("--sysfs-root")
            .arg(self.fake.path())
            .arg("--proc-root")
            .arg(d.join("proc"))
            .arg("--channel-dir")
            .arg(d.join("channels"))
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--control-socket")
            .arg(self.control())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        cmd
    }

    /// Starts the daemon and waits until its control socket accepts.
    pub fn spawn(&self) -> Child {
        self.start(self.command(Stdio::null()))
    }

    /// [`Setup::spawn`] with stderr to `<dir>/stderr.log` (and `NO_COLOR`
    /// unset: only the file itself keeps colours out), for tests that read
    /// the log.
    pub fn spawn_logging(&self) -> Logging {
        let log = self.dir.path().join("stderr.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = self.command(Stdio::from(file));
        cmd.env_remove("NO_COLOR");
        Logging {
            child: self.start(cmd),
            log,
        }
    }

    fn start(&self, mut cmd: Command) -> Child {
        let _ = std::fs::remove_file(self.control());
        let child = cmd.spawn().unwrap();
        wait_until(|| std::os::unix::net::UnixStream::connect(self.control()).is_ok());
        child
    }
}

/// A daemon started by [`Setup::spawn_logging`].
pub struct Logging {
    pub child: Child,
    log: PathBuf,
}

impl Logging {
    /// Stops the daemon with SIGTERM, checks it exited cleanly, and
    /// returns what it logged.
    pub fn stop(mut self) -> String {
        sigterm(&self.child);
        assert!(wait_exit(&mut self.child).success());
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// A test that fails midway leaves no daemon behind.
impl Drop for Logging {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `cond` until it holds, for at most [`WAIT`].
pub fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "condition not met in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for the process to exit, for at most [`WAIT`].
pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "vmpowerd did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A record of `body` named for `vm`, in the current layout, as a guest
/// writes it.
pub fn record(vm: &str, body: vmpower_proto::RequestBody) -> Vec<u8> {
    let req = vmpower_proto::Request {
        vm_name: vmpower_proto::VmName::new(vm).unwrap(),
        body,
    };
    vmpower_proto::layout::encode_request_record(&req, vmpower_proto::Layout::Current)
        .unwrap()
        .as_slice()
        .to_vec()
}

/// Sends SIGTERM, as systemd's stop does.
pub fn sigterm(child: &Child) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

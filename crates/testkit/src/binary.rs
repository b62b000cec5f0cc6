//! The real `vmpowerd` binary on a fake host, for the tests that need a
//! process of their own (signals, kill -9, systemd's notify socket): a
//! fake 4-CPU acpi-cpufreq tree whose CPUs start at `ondemand`, the
//! layout of [`HostDirs`], a config mapping vm1's vCPU 0 to pCPU 1, and
//! process helpers. Every wait is bounded by [`WAIT`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::{Driver, SysfsIo};

use crate::layout::{FakeHost, HostDirs, cpufreq_file};
use crate::wait::wait_within;

pub use crate::records::named as record;

/// The bound on every wait for the process.
pub const WAIT: Duration = Duration::from_secs(20);

/// A fake host and the binary to run on it.
pub struct Setup {
    /// The fake sysfs tree (in `<dir>/sys`).
    pub fake: Arc<FakeSysfs>,
    /// The temporary directory holding the config, channels, state and
    /// control socket.
    pub dir: tempfile::TempDir,
    /// The paths of the layout.
    pub dirs: HostDirs,
    binary: PathBuf,
}

impl Setup {
    /// A fresh host for `binary` (a test passes
    /// `env!("CARGO_BIN_EXE_vmpowerd")`); nothing runs yet.
    pub fn new(binary: impl Into<PathBuf>) -> Setup {
        let builder = FakeSysfs::builder(4)
            .driver(Driver::AcpiCpufreq)
            .governor("ondemand");
        let FakeHost { fake, dirs, dir } = FakeHost::build(builder).unwrap();
        std::fs::write(dirs.config_file(), "[vm.vm1]\npcpus = [1]\n").unwrap();
        Setup {
            fake,
            dir,
            dirs,
            binary: binary.into(),
        }
    }

    /// Makes `<dir>/policies.d` and points the config's `policy_dir` at
    /// it (vm1 declared as in [`Setup::new`]); returns the directory.
    pub fn with_policy_dir(&self) -> PathBuf {
        let policies = self.dirs.policies.clone();
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::write(
            self.dirs.config_file(),
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
        self.dirs.control.clone()
    }

    /// A cpufreq file of a fake CPU.
    pub fn file(&self, cpu: u32, name: &str) -> String {
        self.fake.read(&cpufreq_file(cpu, name)).unwrap()
    }

    /// The daemon's command on this host, with no systemd environment;
    /// stderr to `stderr`.
    pub fn command(&self, stderr: Stdio) -> Command {
        self.command_in(stderr, &self.dirs.state)
    }

    /// [`Setup::command`] with another state directory.
    pub fn command_in(&self, stderr: Stdio, state_dir: &Path) -> Command {
        let mut dirs = self.dirs.clone();
        dirs.state = state_dir.to_owned();
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config")
            .arg(dirs.config_file())
            .args(dirs.daemon_args())
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
    /// The process.
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
pub fn wait_until(cond: impl FnMut() -> bool) {
    wait_within(WAIT, "condition not met in time", cond);
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

/// Sends SIGTERM, as systemd's stop does.
pub fn sigterm(child: &Child) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

//! The fake host a scenario runs on: a working directory (under /dev/shm
//! when it exists), a fake sysfs tree, a TOML config, and the real
//! `vmpowerd` binary spawned on them.
//!
//! ## Behavior
//! - Everything lives in one fresh directory, removed when [`Workdir`] is
//!   dropped; the daemon is stopped (SIGTERM, then SIGKILL after 10 s)
//!   when [`Daemon`] is dropped, so an error anywhere cleans up.
//! - The daemon gets `--proc-root` on an empty directory: there is no QEMU;
//!   the bench plays it. vCPU placement comes from the config's `pcpus`.
//! - Every wait is bounded.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use vmpower_cpufreq::Driver;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_testkit::HostDirs;

/// How long the daemon may take to start or to stop.
const START_WAIT: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A fresh directory removed on drop.
#[derive(Debug)]
pub struct Workdir {
    path: PathBuf,
}

impl Workdir {
    /// Creates `vmpower-bench-<pid>-<label>-<ns>` under /dev/shm if it
    /// exists (memory-backed, like sysfs), else under the temp dir.
    pub fn create(label: &str) -> anyhow::Result<Self> {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = base.join(format!(
            "vmpower-bench-{}-{label}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&path)
            .with_context(|| format!("cannot create work dir {}", path.display()))?;
        Ok(Workdir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("vmpower-bench: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The per-channel rate limit written to the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitSetting {
    /// The daemon's default (not written).
    Default,
    /// `burst` and `per_second` at u32::MAX: never limits.
    Off,
}

impl RateLimitSetting {
    /// How the report names it.
    pub fn describe(self) -> &'static str {
        match self {
            RateLimitSetting::Default => "rate_limit = daemon default (burst 200, 1000/s)",
            RateLimitSetting::Off => "rate_limit = off (burst = per_second = 4294967295)",
        }
    }
}

/// What the fake host looks like.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Host CPUs of the fake sysfs tree (acpi-cpufreq, turbo).
    pub cpus: u32,
    /// VMs `vm0`, `vm1`, ... each with `vcpus` vCPUs: VM `i`'s vCPU `v`
    /// on pCPU `(i * vcpus + v) % cpus`.
    pub vms: usize,
    /// The per-channel rate limit.
    pub rate_limit: RateLimitSetting,
    /// vCPUs per VM (at least 1).
    pub vcpus: u32,
    /// `queries = true` for every VM (FREQ_LIST / CAPS_LIST answered).
    pub queries: bool,
}

impl HostSpec {
    /// The pCPU of VM `vm`'s vCPU `vcpu`.
    pub fn pcpu(&self, vm: usize, vcpu: u32) -> u32 {
        let vcpus = u64::from(self.vcpus.max(1));
        let slot = u64::try_from(vm).unwrap_or(0) * vcpus + u64::from(vcpu);
        u32::try_from(slot % u64::from(self.cpus.max(1))).unwrap_or(0)
    }
}

/// How the daemon is started.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The `vmpowerd` binary.
    pub binary: PathBuf,
    /// Its stderr (its log); `None` for /dev/null.
    pub log_file: Option<PathBuf>,
    /// `--log` filter; `None` keeps the daemon's default (info).
    pub log_filter: Option<String>,
    /// `channel_busy_poll_us` in its config; `None` keeps the daemon's
    /// default (off).
    pub busy_poll_us: Option<u64>,
    /// `channel_thread_nice` in its config; `None` keeps the daemon's
    /// default.
    pub channel_thread_nice: Option<i32>,
}

impl DaemonOptions {
    /// Settings these options add to the config file (top-level keys).
    fn config_prefix(&self) -> String {
        self.settings().iter().map(|s| format!("{s}\n")).collect()
    }

    /// The settings these options give, as config lines.
    fn settings(&self) -> Vec<String> {
        let poll = self
            .busy_poll_us
            .map(|us| format!("channel_busy_poll_us = {us}"));
        let nice = self
            .channel_thread_nice
            .map(|n| format!("channel_thread_nice = {n}"));
        poll.into_iter().chain(nice).collect()
    }

    /// A note for reports naming the non-default settings.
    pub fn describe(&self) -> Option<String> {
        let settings = self.settings();
        (!settings.is_empty()).then(|| format!("daemon config: {}", settings.join(", ")))
    }
}

/// A fake host in a work directory, ready for the daemon.
#[derive(Debug)]
pub struct Host {
    /// Stands for /sys.
    pub sysfs: PathBuf,
    /// The channel directory, where the bench listens as QEMU.
    pub channels: PathBuf,
    /// The control socket.
    pub control: PathBuf,
    dirs: HostDirs,
}

impl Host {
    /// Builds the sysfs tree and writes the config in `dir`.
    pub fn build(dir: &Path, spec: &HostSpec) -> anyhow::Result<Self> {
        let dirs = HostDirs::under(dir);
        FakeSysfs::builder(spec.cpus)
            .driver(Driver::AcpiCpufreq)
            .turbo(true)
            .governor("ondemand")
            .in_dir(&dirs.sysfs)
            .build()
            .context("cannot build the fake sysfs tree")?;
        dirs.create()?;
        std::fs::write(dirs.config_file(), config_text(spec)).context("cannot write the config")?;
        Ok(Host {
            sysfs: dirs.sysfs.clone(),
            channels: dirs.channels.clone(),
            control: dirs.control.clone(),
            dirs,
        })
    }

    /// A cpufreq file of a CPU, as the daemon left it.
    pub fn cpu_file(&self, cpu: u32, file: &str) -> anyhow::Result<String> {
        let path = self
            .sysfs
            .join(format!("devices/system/cpu/cpu{cpu}/cpufreq/{file}"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(text.trim().to_owned())
    }

    /// Spawns the daemon and waits (bounded) for its control socket.
    pub fn spawn(&self, options: &DaemonOptions) -> anyhow::Result<Daemon> {
        let _ = std::fs::remove_file(&self.control);
        let prefix = options.config_prefix();
        if !prefix.is_empty() {
            let path = self.dirs.config_file();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            std::fs::write(&path, prefix + &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let stderr = match &options.log_file {
            Some(p) => Stdio::from(
                File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
            ),
            None => Stdio::null(),
        };
        let mut cmd = Command::new(&options.binary);
        cmd.arg("--config")
            .arg(self.dirs.config_file())
            .args(self.dirs.daemon_args());
        if let Some(filter) = &options.log_filter {
            cmd.arg("--log").arg(filter);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (build it first: cargo build --release -p vmpowerd -p vmpower-bench)",
                    options.binary.display()
                )
            })?;
        let mut daemon = Daemon { child: Some(child) };
        let deadline = Instant::now() + START_WAIT;
        while !self.control.exists() {
            if let Some(status) = daemon.try_wait()? {
                bail!("vmpowerd exited at start-up ({status}); see its log (--daemon-log)");
            }
            if Instant::now() > deadline {
                bail!("vmpowerd did not open its control socket within {START_WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(daemon)
    }
}

/// The config file: VMs with their pCPU, and the rate limit.
fn config_text(spec: &HostSpec) -> String {
    let mut text = String::from("fifos = false\n");
    if spec.rate_limit == RateLimitSetting::Off {
        text.push_str("[rate_limit]\nburst = 4294967295\nper_second = 4294967295\n");
    }
    for i in 0..spec.vms {
        let pcpus: Vec<String> = (0..spec.vcpus.max(1))
            .map(|v| spec.pcpu(i, v).to_string())
            .collect();
        let _ = writeln!(text, "[vm.{}]\npcpus = [{}]", vm_name(i), pcpus.join(", "));
        if spec.queries {
            text.push_str("queries = true\n");
        }
    }
    text
}

/// The name of the `i`-th VM.
pub fn vm_name(i: usize) -> String {
    format!("vm{i}")
}

/// The running daemon; stopped when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match &mut self.child {
            Some(c) => Ok(c.try_wait()?),
            None => bail!("no daemon"),
        }
    }

    /// Stops it with SIGTERM and waits (bounded); SIGKILL if it hangs.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the daemon was already stopped");
        };
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("cannot send SIGTERM to vmpowerd")?;
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait()?;
                bail!("vmpowerd ignored SIGTERM for {STOP_WAIT:?}; killed ({status})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Err(e) = self.terminate()
        {
            eprintln!("vmpower-bench: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_declares_vms_and_the_limit() {
        let spec = HostSpec {
            cpus: 8,
            vms: 10,
            rate_limit: RateLimitSetting::Off,
            vcpus: 1,
            queries: false,
        };
        let text = config_text(&spec);
        assert!(text.contains("[vm.vm9]\npcpus = [1]"), "{text}");
        assert!(text.contains("per_second = 4294967295"));
        let spec = HostSpec {
            rate_limit: RateLimitSetting::Default,
            ..spec
        };
        assert!(!config_text(&spec).contains("rate_limit"));
        let spec = HostSpec {
            vcpus: 2,
            queries: true,
            ..spec
        };
        let text = config_text(&spec);
        assert!(
            text.contains("[vm.vm9]\npcpus = [2, 3]\nqueries = true"),
            "{text}"
        );
    }

    #[test]
    fn workdir_is_removed_on_drop() {
        let dir = Workdir::create("unit").unwrap();
        let path = dir.path().to_owned();
        std::fs::write(path.join("f"), "x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}

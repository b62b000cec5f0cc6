//! The simulated host: one temporary directory holding a fake sysfs tree,
//! the channel directory, the daemon's state and its control socket; the
//! real daemon started in-process on it; and the checks that it leaves
//! nothing behind.
//!
//! ## Behavior
//! - Everything lives under one `vmpower-demo-*` temporary directory; the
//!   demo needs no privilege and touches nothing outside it.
//! - Before the daemon starts, each CPU's governor and bounds are recorded
//!   as found; after it stops, [`SimHost::restore_check`] compares them and
//!   reads the takeover record, which must be gone or empty.
//! - [`SimHost::remove`] deletes the directory and checks that it is gone.
//!
//! The daemon samples the traffic counters it is given: the synthetic
//! [`FakeTrafficCounters`] held here, or the real rtnetlink ones when the
//! demo runs real packets (see [`crate::feed`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vmpower_api::{Client, CtlRequest, CtlResponse};
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::takeover::TakeoverRecord;
use vmpower_cpufreq::{Driver, SysfsIo};
use vmpowerd::config::{Config, VmConfig};
use vmpowerd::traffic::{FakeTrafficCounters, TrafficCounters};

use crate::scenario::VmPlan;

/// Bound on every wait for the daemon.
const WAIT: Duration = Duration::from_secs(10);

/// The files of a CPU that must be as found after the demo.
const RESTORED_FILES: [&str; 3] = ["scaling_governor", "scaling_min_freq", "scaling_max_freq"];

/// A simulated host with the daemon running on it.
#[derive(Debug)]
pub struct SimHost {
    dir: tempfile::TempDir,
    /// The fake sysfs tree (under the temporary directory).
    pub fake: Arc<FakeSysfs>,
    /// The synthetic counters (sampled by the daemon in synthetic mode).
    pub traffic: FakeTrafficCounters,
    /// The daemon's configuration.
    pub config: Config,
    cpus: u32,
    found: Vec<(PathBuf, String)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// What the restore check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreCheck {
    /// The takeover record is gone or records nothing.
    pub takeover_empty: bool,
    /// Files not as found: (file, found, now).
    pub differences: Vec<(PathBuf, String, String)>,
    /// The governors found, deduplicated, for the summary.
    pub governors: Vec<String>,
}

impl RestoreCheck {
    /// Whether the host is as found.
    pub fn passed(&self) -> bool {
        self.takeover_empty && self.differences.is_empty()
    }
}

fn cpu_file(cpu: u32, name: &str) -> PathBuf {
    PathBuf::from(format!("devices/system/cpu/cpu{cpu}/cpufreq/{name}"))
}

impl SimHost {
    /// Builds `cpus` CPUs of acpi-cpufreq with turbo and a config declaring
    /// `vms` on their pCPUs, holding the synthetic counters `traffic`; the
    /// daemon is not started yet.
    pub fn build(
        cpus: u32,
        vms: &[VmPlan],
        traffic: FakeTrafficCounters,
    ) -> anyhow::Result<SimHost> {
        let dir = tempfile::Builder::new()
            .prefix("vmpower-demo-")
            .tempdir()
            .context("creating the demo's temporary directory")?;
        let fake = FakeSysfs::builder(cpus)
            .driver(Driver::AcpiCpufreq)
            .turbo(true)
            .in_dir(dir.path().join("sys"))
            .build()
            .context("building the fake sysfs tree")?;
        let mut config = Config {
            sysfs_root: fake.path().to_owned(),
            proc_root: dir.path().join("proc"),
            channel_dir: dir.path().join("channels"),
            state_dir: dir.path().join("state"),
            control_socket: dir.path().join("control.sock"),
            policy_dir: dir.path().join("policies.d"),
            auto_add_vms: false,
            fifos: false,
            traffic_interval_ms: 100,
            ..Config::default()
        };
        for vm in vms {
            let entry = VmConfig {
                pcpus: vm.pcpus.clone(),
                ..VmConfig::default()
            };
            config.vm.insert(vm.name.clone(), entry);
        }
        std::fs::create_dir_all(&config.channel_dir).context("creating the channel directory")?;
        let mut found = Vec::new();
        for cpu in 0..cpus {
            for name in RESTORED_FILES {
                let rel = cpu_file(cpu, name);
                let value = fake
                    .read(&rel)
                    .with_context(|| format!("reading {}", rel.display()))?;
                found.push((rel, value.trim().to_owned()));
            }
        }
        Ok(SimHost {
            dir,
            fake: Arc::new(fake),
            traffic,
            config,
            cpus,
            found,
            stop: None,
            task: None,
        })
    }

    /// The temporary directory holding everything.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the real daemon in-process, sampling `counters`; returns
    /// once its control socket exists.
    pub async fn start_daemon(&mut self, counters: Box<dyn TrafficCounters>) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        let io: Arc<dyn SysfsIo> = self.fake.clone();
        let task = tokio::spawn(vmpowerd::run::run_with(
            self.config.clone(),
            io,
            Some(counters),
            async {
                let _ = rx.await;
            },
        ));
        self.stop = Some(tx);
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.config.control_socket.exists() {
            if task.is_finished() {
                return match task.await {
                    Ok(Err(e)) => Err(e.context("the daemon stopped at start-up")),
                    _ => Err(anyhow::anyhow!("the daemon stopped at start-up")),
                };
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the daemon did not open its control socket within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.task = Some(task);
        Ok(())
    }

    /// Where QEMU would put VM `vm`'s first channel socket.
    pub fn socket(&self, vm: &str) -> PathBuf {
        self.config.channel_dir.join(format!("{vm}.0"))
    }

    /// The control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.config.control_socket.clone()
    }

    /// Stops the daemon as SIGTERM would and waits for it (it gives the
    /// CPUs back on the way out).
    pub async fn stop_daemon(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => tokio::time::timeout(WAIT, t)
                .await
                .context("the daemon did not stop in time")?
                .context("the daemon's task failed")?,
            None => Ok(()),
        }
    }

    /// Compares every CPU with what was found and reads the takeover record.
    pub fn restore_check(&self) -> anyhow::Result<RestoreCheck> {
        let takeover = self.config.takeover_path();
        let record = TakeoverRecord::load(&takeover)
            .with_context(|| format!("reading {}", takeover.display()))?;
        let mut differences = Vec::new();
        for (rel, was) in &self.found {
            let now = self.fake.read(rel).map(|s| s.trim().to_owned());
            let now = now.unwrap_or_else(|e| format!("<unreadable: {e}>"));
            if &now != was {
                differences.push((rel.clone(), was.clone(), now));
            }
        }
        let mut governors: Vec<String> = (0..self.cpus)
            .filter_map(|cpu| {
                let rel = cpu_file(cpu, "scaling_governor");
                self.found
                    .iter()
                    .find(|(r, _)| *r == rel)
                    .map(|(_, v)| v.clone())
            })
            .collect();
        governors.sort();
        governors.dedup();
        Ok(RestoreCheck {
            takeover_empty: record.is_none_or(|r| r.is_empty()),
            differences,
            governors,
        })
    }

    /// Deletes the temporary directory; returns its path once it is gone.
    pub fn remove(self) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().to_owned();
        drop(self.fake);
        self.dir
            .close()
            .with_context(|| format!("removing {}", path.display()))?;
        anyhow::ensure!(!path.exists(), "{} still exists", path.display());
        Ok(path)
    }
}

/// Asks the control API (blocking: call from a blocking thread).
pub fn ctl(socket: &Path, request: &CtlRequest) -> anyhow::Result<serde_json::Value> {
    let mut client = Client::connect(socket)?;
    match client.call(request)? {
        CtlResponse::Ok(v) => Ok(v),
        CtlResponse::Error(e) => Err(anyhow::Error::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan;

    #[test]
    fn build_records_the_cpus_and_remove_leaves_nothing() {
        let host = SimHost::build(4, &plan(1, 4).unwrap(), FakeTrafficCounters::new()).unwrap();
        assert_eq!(host.found.len(), 4 * RESTORED_FILES.len());
        assert!(host.config.vm.contains_key("vm0-traffic"));
        let check = host.restore_check().unwrap();
        assert!(check.passed(), "{check:?}");
        host.fake
            .write(&cpu_file(1, "scaling_governor"), "userspace")
            .unwrap();
        let check = host.restore_check().unwrap();
        assert_eq!(check.differences.len(), 1, "{check:?}");
        assert!(!check.passed());
        let path = host.remove().unwrap();
        assert!(!path.exists());
    }
}

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

use anyhow::Context;
use vmpower_api::{Client, CtlRequest, CtlResponse};
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::takeover::TakeoverRecord;
use vmpower_cpufreq::{Driver, SysfsIo};
use vmpower_testkit::layout::cpufreq_file as cpu_file;
use vmpower_testkit::{FakeHost, Host};
use vmpowerd::config::{Config, VmConfig};
use vmpowerd::traffic::{FakeTrafficCounters, TrafficCounters};

use crate::scenario::VmPlan;

/// The files of a CPU that must be as found after the demo.
const RESTORED_FILES: [&str; 3] = ["scaling_governor", "scaling_min_freq", "scaling_max_freq"];

/// A simulated host with the daemon running on it: the shared harness's
/// [`Host`], and what its CPUs looked like before the daemon started.
pub struct SimHost {
    host: Host,
    /// The fake sysfs tree (under the temporary directory).
    pub fake: Arc<FakeSysfs>,
    /// The synthetic counters (sampled by the daemon in synthetic mode).
    pub traffic: FakeTrafficCounters,
    /// The daemon's configuration.
    pub config: Config,
    cpus: u32,
    found: Vec<(PathBuf, String)>,
}

impl std::fmt::Debug for SimHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHost")
            .field("path", &self.path())
            .field("cpus", &self.cpus)
            .finish_non_exhaustive()
    }
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
        let builder = FakeSysfs::builder(cpus)
            .driver(Driver::AcpiCpufreq)
            .turbo(true);
        let fake_host = FakeHost::build_in(dir, builder)?;
        let mut found = Vec::new();
        for cpu in 0..cpus {
            for name in RESTORED_FILES {
                let rel = cpu_file(cpu, name);
                let value = fake_host
                    .fake
                    .read(&rel)
                    .with_context(|| format!("reading {}", rel.display()))?;
                found.push((rel, value.trim().to_owned()));
            }
        }
        let declared: Vec<(&str, VmConfig)> = vms
            .iter()
            .map(|vm| (vm.name.as_str(), vmpower_testkit::vm(&vm.pcpus)))
            .collect();
        let host = Host::prepare(fake_host, &declared, |config| {
            config.auto_add_vms = false;
            config.fifos = false;
            config.traffic_interval_ms = 100;
        })
        .with_traffic(traffic);
        Ok(SimHost {
            fake: host.fake.clone(),
            traffic: host.traffic.clone(),
            config: host.config.clone(),
            host,
            cpus,
            found,
        })
    }

    /// The temporary directory holding everything.
    pub fn path(&self) -> &Path {
        self.host.dir.path()
    }

    /// Starts the real daemon in-process, sampling `counters`; returns
    /// once its control socket accepts.
    pub async fn start_daemon(&mut self, counters: Box<dyn TrafficCounters>) -> anyhow::Result<()> {
        self.host.sample(counters);
        self.host.try_launch().await
    }

    /// Where QEMU would put VM `vm`'s first channel socket.
    pub fn socket(&self, vm: &str) -> PathBuf {
        self.host.socket(vm, 0)
    }

    /// The control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.config.control_socket.clone()
    }

    /// Stops the daemon as SIGTERM would and waits for it (it gives the
    /// CPUs back on the way out).
    pub async fn stop_daemon(&mut self) -> anyhow::Result<()> {
        self.host.stop().await
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
        let path = self.path().to_owned();
        let SimHost { host, fake, .. } = self;
        drop(fake);
        host.close()
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

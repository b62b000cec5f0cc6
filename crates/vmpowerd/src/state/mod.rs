//! The one door into the daemon's state: [`State`], a cloneable handle
//! (mini-redis's `Db`) over the engine, cpufreq, counters and state
//! database ([`crate::core::Core`]: its lock is reached through the
//! handle only inside this crate, by the readers that build answers and
//! the tasks that feed the engine), the placement sources, the channel
//! tasks and the configuration.
//!
//! Every change is a method, with one meaning whichever door it came
//! through: a policy is applied or removed *from a named source*
//! ([`PolicyFrom`]: a guest channel, a FIFO, the control API, the policy
//! directory, the restore at start), a VM added or removed, a placement
//! set, VM settings reloaded, a CPU frequency set as the operator. The doors (the channel
//! connection, `channels::fifo`, `control`, `policy_dir`, the restore in
//! [`open`]) only turn their input into a call and the call's result
//! into their kind of answer.
//!
//! ## Behavior
//! - A policy for a VM the engine does not know adds the VM (with default
//!   settings, as its channel socket would) when undeclared VMs are
//!   served (`auto_add_vms`, the default); otherwise it is refused as an
//!   unknown VM, whatever its source.
//! - A policy the engine accepts is persisted, with its source, before
//!   anything is answered; if a frequency write it needed then fails, it
//!   stays in force and persisted (the engine is told, and the next
//!   decision tries again), and the failure is reported as the source
//!   reports errors: a NACK to the guest, an error answer to the control
//!   client, a warning naming the file or FIFO in the log. So no policy is
//!   in force now and gone after a restart.
//! - Lines of the doors keep their own budgets (a guest's and a FIFO's
//!   lines are rate-limited; see [`crate::core`] and [`crate::channels`]).

mod channels;
mod freq;
pub mod open;
mod policy;
mod vms;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use vmpower_engine::VmId;

use crate::SharedCore;
use crate::config::Config;
use crate::core::Core;
use crate::placement::Placer;

pub use policy::{PolicyError, PolicyFrom, spec_of};
pub use vms::{Repinned, VmError};

/// The handle onto the daemon's state; cheap to clone (an `Arc`).
#[derive(Debug, Clone)]
pub struct State {
    shared: Arc<Shared>,
}

/// What every clone of a [`State`] shares.
#[derive(Debug)]
struct Shared {
    config: Config,
    core: SharedCore,
    placer: Placer,
    channels: channels::Channels,
    /// Where each policy MAC's counter was found, for `policy show`.
    mac_sources: crate::samplers::MacSources,
    /// Where the metrics endpoint listens, once bound.
    metrics_address: std::sync::OnceLock<std::net::SocketAddr>,
    #[cfg(feature = "libvirt")]
    libvirt: Option<crate::inventory::libvirt::LibvirtPlacement>,
    /// This daemon's hold on its state directory, released at stop.
    instance: Mutex<Option<crate::instance::InstanceLock>>,
    /// Wakes the policy directory's task to rescan it (SIGHUP).
    policy_rescan: Arc<tokio::sync::Notify>,
    /// Opens the VF control ([`crate::backends::Backends::vf`]).
    vf: crate::backends::VfOpener,
    /// The wall clock of TIME policies ([`crate::backends::Backends::clock`]).
    clock: Arc<dyn crate::backends::Clock>,
}

impl State {
    /// Opens the VF control (the host's netlink, or a test's fake).
    pub fn vf(&self) -> &crate::backends::VfOpener {
        &self.shared.vf
    }

    /// The wall clock of TIME policies.
    pub fn clock(&self) -> &Arc<dyn crate::backends::Clock> {
        &self.shared.clock
    }

    /// The configuration in force at start.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Where each VM's vCPUs run (operator map, /proc, QMP, libvirt).
    pub fn placer(&self) -> &Placer {
        &self.shared.placer
    }

    /// Where each policy MAC's counter was found, for `policy show`.
    pub fn mac_sources(&self) -> &crate::samplers::MacSources {
        &self.shared.mac_sources
    }

    /// Where the metrics endpoint listens, once bound.
    pub fn metrics_address(&self) -> &std::sync::OnceLock<std::net::SocketAddr> {
        &self.shared.metrics_address
    }

    /// Wakes the policy directory's task to rescan it (SIGHUP).
    pub fn policy_rescan(&self) -> &Arc<tokio::sync::Notify> {
        &self.shared.policy_rescan
    }

    /// The core, for the tasks that feed the engine (channel connections,
    /// samplers, placement refresh, metrics): inside the crate only.
    pub(crate) fn core(&self) -> &SharedCore {
        &self.shared.core
    }

    /// The core, for tests that drive a sampler's tick on it directly.
    #[cfg(feature = "test-utils")]
    pub fn core_for_tests(&self) -> &SharedCore {
        &self.shared.core
    }

    /// Locks the core, for the readers that build answers (status, top,
    /// show): inside the crate only; every change is a method here.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        crate::lock(&self.shared.core)
    }

    /// The libvirt source, when configured.
    #[cfg(feature = "libvirt")]
    pub fn libvirt(&self) -> Option<&crate::inventory::libvirt::LibvirtPlacement> {
        self.shared.libvirt.as_ref()
    }

    /// Makes sure the engine knows `vm`; false when it is not declared and
    /// undeclared VMs are not served.
    pub fn ensure_vm(&self, vm: &VmId) -> bool {
        let mut core = self.lock();
        if core.engine.settings(vm).is_some() {
            return true;
        }
        if !self.shared.config.auto_add_vms {
            return false;
        }
        core.engine.add_vm(vm.clone(), Default::default());
        true
    }

    /// The decision history for `vmpowerctl history`.
    pub fn history(
        &self,
        vm: Option<String>,
        since: Option<i64>,
        limit: Option<u32>,
    ) -> Result<vmpower_api::answers::History, vmpower_api::CtlError> {
        use vmpower_api::{CtlError, ErrorKind};
        let mut core = self.lock();
        core.flush_history();
        let store = core
            .store
            .as_ref()
            .ok_or_else(|| CtlError::new(ErrorKind::Refused, "no state database"))?;
        let vm = vm.map(|v| VmId::new(&v));
        // Before 1970 is from the start; beyond what SQLite's integers hold
        // is simply the future (nothing yet), not an error.
        let sql_max = u64::try_from(i64::MAX).expect("i64::MAX fits u64");
        let since_ms = since.map(|s| {
            u64::try_from(s)
                .unwrap_or(0)
                .saturating_mul(1000)
                .min(sql_max)
        });
        let limit = limit.map_or(100, |l| l as usize);
        let entries = store.history(vm.as_ref(), since_ms, limit).map_err(|e| {
            CtlError::new(ErrorKind::Refused, format!("{:#}", anyhow::Error::from(e)))
        })?;
        Ok(entries
            .into_iter()
            .map(|e| vmpower_api::answers::HistoryEntry {
                at_ms: e.at_ms,
                vm: e.vm.as_ref().map(|v| v.as_str().to_owned()),
                pcpu: e.pcpu.0,
                old_khz: e.old.map(|k| k.0),
                new_khz: e.new.0,
                reason: e.reason,
                inputs: e.inputs,
            })
            .collect())
    }

    /// Sets the control socket's permissions from the config.
    pub fn secure_control_socket(&self) -> std::io::Result<()> {
        let config = &self.shared.config;
        std::fs::set_permissions(
            &config.control_socket,
            std::fs::Permissions::from_mode(config.control_socket_mode),
        )
    }

    /// The FIFOs made or adopted at start, to remove at stop.
    pub(crate) fn fifos_made(&self, made: Vec<PathBuf>) {
        self.shared.channels.fifos_made(made);
    }

    /// Applies the live settings of a reloaded configuration: per-pCPU
    /// branch thresholds (when given), the channels' busy-poll time (for
    /// connections made from now on) and what to do about another writer.
    pub fn set_live_settings(
        &self,
        branch_thresholds: Option<std::collections::BTreeMap<vmpower_cpufreq::CpuId, f64>>,
        channel_busy_poll: std::time::Duration,
        foreign_writer: crate::config::ForeignWriter,
    ) {
        let mut core = self.lock();
        if let Some(thresholds) = branch_thresholds {
            core.engine.set_branch_thresholds(thresholds);
        }
        core.channel_busy_poll = channel_busy_poll;
        core.foreign_writer = foreign_writer;
    }
}

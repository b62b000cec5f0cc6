//! Opening the daemon's state at start and closing it at stop.
//!
//! ## Behavior
//! - Before anything else, a takeover record left by a crashed run (in
//!   the state database, or an older version's record file) is restored
//!   (every CPU back to its original governor and bounds).
//! - The host's CPUs are discovered under the sysfs root and handed to the
//!   engine; declared VMs are added with their settings and placements.
//! - The state database's settings, mappings and policies are back in
//!   force before the first request is read (each policy through
//!   [`State::apply_policy`], as [`PolicyFrom::Restore`]).
//! - At stop every channel task ends, every CPU taken over is restored,
//!   the control socket and the FIFOs made are removed, and the state
//!   directory is released.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use tracing::{info, warn};
use vmpower_cpufreq::takeover::{restore_from, restore_from_file};
use vmpower_cpufreq::{CpuFreq, CpuId, SysfsIo};
use vmpower_engine::{Engine, EngineConfig, PcpuSpec, PolicyExtensions, PolicySpec, VmId};

use super::channels::Channels;
use super::{PolicyError, PolicyFrom, Shared, State};
use crate::config::Config;
use crate::core::Core;
use crate::placement::Placer;
use crate::store::{DbTakeoverSink, Store, StoreOptions, StoredPolicy};

/// The history's reason for a CPU restored at a clean stop.
pub const RESTORED_AT_STOP: &str = "restored at stop: original governor and bounds";
/// The history's reason for a CPU a crashed run left, restored at start.
pub const RESTORED_AT_START: &str = "restored at start: left by a previous run";

impl State {
    /// Restores leftovers, discovers the host, builds the engine and puts
    /// the state database's settings, mappings and policies back.
    pub fn open(config: Config, backends: &crate::backends::Backends) -> anyhow::Result<State> {
        let io: Arc<dyn SysfsIo> = backends.sysfs.clone();
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("cannot create state dir {}", config.state_dir.display()))?;
        // Before anything is restored: a second daemon on this state dir would
        // take the running one's takeover record for a crash's leftovers.
        let instance = crate::instance::lock(&config.state_dir)?;
        // What a crashed run took over is given back before anything else:
        // first a record file an earlier version may have left, then the
        // record in the state database.
        let legacy = config.takeover_path();
        // The CPUs given back here, for the history once it is open.
        let mut left = Vec::new();
        if legacy.exists() {
            let report = restore_from_file(&legacy, &*io).with_context(|| {
                format!("restoring {} left by a previous run", legacy.display())
            })?;
            left.extend(restored_cpus(&report));
            info!(
                restored = report.restored.len(),
                failed = report.failed.len(),
                "restored CPUs left by a previous run (record file)"
            );
        }
        let open_store = || {
            Store::open_in_dir(&config.state_dir, StoreOptions::default())
                .context("opening the state database")
        };
        let report = restore_from(Box::new(DbTakeoverSink::new(open_store()?)), &*io)
            .context("restoring the takeover record left by a previous run")?;
        left.extend(restored_cpus(&report));
        if !report.restored.is_empty() || !report.failed.is_empty() {
            info!(
                restored = report.restored.len(),
                failed = report.failed.len(),
                "restored CPUs left by a previous run"
            );
        }
        let cpufreq = CpuFreq::with_sink(io, Box::new(DbTakeoverSink::new(open_store()?)))
            .context("discovering the host's CPUs")?;
        let mut engine = Engine::new(EngineConfig {
            rate_limit: config.rate_limit,
            branch_counters: backends.branch.is_some(),
            time_other_hours: config.time_other_hours,
            busyness: config.busyness(),
            ..EngineConfig::default()
        });
        engine.set_default_time_zone(backends.time_zone.clone());
        let thresholds = config.branch_thresholds();
        let thresholds = thresholds
            .map_err(|(i, e)| anyhow::anyhow!("invalid setting core_branch_ratio[{i}]: {e}"))?;
        engine.set_branch_thresholds(thresholds);
        let managed = cpufreq.host().map(vmpower_cpufreq::control::managed_cpus);
        let managed = managed.transpose().context("listing controllable CPUs")?;
        let managed = managed.unwrap_or_default();
        if managed.is_empty() {
            warn!(root = %config.sysfs_root.display(), "no CPU with cpufreq found: requests will be refused");
        }
        for m in managed {
            let current = m.current.unwrap_or_else(|| m.table.freqs()[0]);
            engine.add_pcpu(PcpuSpec {
                cpu: m.cpu,
                table: m.table,
                current,
                domain: m.domain,
                high_priority: config.high_priority_cpus.contains(&m.cpu.0),
                enable_turbo_moves_to_max: m.driver.enable_turbo_moves_to_max(),
            });
        }
        let host_cpus = cpufreq
            .host()
            .map(|h| h.cpus.keys().copied().collect())
            .unwrap_or_default();
        #[cfg_attr(not(feature = "libvirt"), allow(unused_variables))]
        let (extra, libvirt) = libvirt_source(&config)?;
        let placer = Placer::new(&config, host_cpus, extra)
            .map_err(|(vm, e)| anyhow::anyhow!("invalid setting vm.{vm}.pcpus: {e}"))?;
        for (name, vm) in &config.vm {
            engine.add_vm(VmId::new(name), vm.settings());
        }
        // The state database: operator settings, mappings and every accepted
        // policy are back in force before the first request is read.
        let store = open_store()?;
        let stored = restore_settings(&store, &mut engine, &placer)?;
        let mut core = Core::new(engine, cpufreq);
        core.store = Some(store);
        for cpu in left {
            core.record_given_back(cpu, None, RESTORED_AT_START);
        }
        core.channel_busy_poll = config.channel_busy_poll();
        core.foreign_writer = config.foreign_writer;
        let thread = crate::channels::thread::ChannelThread::start(config.channel_thread_nice)
            .context("cannot start the channel thread")?;
        let state = State {
            shared: Arc::new(Shared {
                core: Arc::new(Mutex::new(core)),
                placer,
                channels: Channels::new(thread),
                mac_sources: crate::samplers::MacSources::default(),
                metrics_address: std::sync::OnceLock::new(),
                #[cfg(feature = "libvirt")]
                libvirt,
                config,
                instance: Mutex::new(Some(instance)),
                policy_rescan: Arc::new(tokio::sync::Notify::new()),
                vf: backends.vf.clone(),
                clock: backends.clock.clone(),
            }),
        };
        // Every accepted policy is back in force before anything is
        // served, through the same door as a new one; what it decides for
        // cores it can already name (a FIFO's host CPUs) is applied now.
        for (vm, stored) in stored {
            state.restore_policy(&vm, stored);
        }
        Ok(state)
    }

    /// Puts one stored policy back in force (the restore door), with the
    /// authority it was accepted with: a FIFO's is the host operator's.
    /// A policy refused now (its VM no longer served, its cores gone) is
    /// warned about and kept on disk.
    fn restore_policy(&self, vm: &VmId, stored: StoredPolicy) {
        let ext: PolicyExtensions =
            serde_json::from_value(serde_json::Value::Object(stored.extensions.clone()))
                .unwrap_or_default();
        let default_tz = self.default_time_zone();
        let tz = match &ext.time_zone {
            Some(name) => jiff::tz::TimeZone::get(name).unwrap_or(default_tz),
            None => default_tz,
        };
        let spec = PolicySpec {
            policy: stored.policy,
            ext,
            tz,
        };
        // The placement is not known yet: the policy's cores are checked
        // again when it is (set_policy accepts vCPUs of an unplaced VM).
        let source = stored.source;
        match self.apply_policy(&PolicyFrom::Restore(source.clone()), vm, spec) {
            Ok(()) => info!(%vm, %source, "policy restored"),
            Err(PolicyError::WriteFailed) => {
                warn!(%vm, %source, "policy restored, but a frequency write failed");
            }
            Err(e) => warn!(%vm, error = %e, "stored policy refused; kept on disk"),
        }
    }

    /// Stops every channel task and gives back every CPU.
    pub fn close(&self) {
        // No channel is served past this point: the restore below is the
        // last word on every CPU.
        let fifos = self.shared.channels.stop();
        let mut core = self.lock();
        core.flush_history();
        let known: Vec<_> = core
            .engine
            .pcpus()
            .into_iter()
            .map(|cpu| (cpu, core.engine.known_khz(cpu)))
            .collect();
        match core.cpufreq.restore_all() {
            Ok(report) => {
                for cpu in restored_cpus(&report) {
                    let old = known.iter().find(|(c, _)| *c == cpu).and_then(|(_, k)| *k);
                    core.record_given_back(cpu, old, RESTORED_AT_STOP);
                }
                info!(
                    restored = report.restored.len(),
                    failed = report.failed.len(),
                    "CPUs given back"
                );
            }
            Err(e) => {
                warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "restore at shutdown failed")
            }
        }
        core.flush_history();
        drop(core);
        let _ = std::fs::remove_file(&self.config().control_socket);
        for path in fifos {
            let _ = std::fs::remove_file(path);
        }
        // Tasks may still hold the state for a moment; the state dir is
        // free for the next daemon now that every CPU is given back.
        self.shared
            .instance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// The libvirt placement source, when configured: one for the inventory
/// and one for the daemon to list domains and channels.
#[cfg(feature = "libvirt")]
#[allow(clippy::type_complexity)]
fn libvirt_source(
    config: &Config,
) -> anyhow::Result<(
    Vec<Box<dyn crate::inventory::VcpuPlacement>>,
    Option<crate::inventory::libvirt::LibvirtPlacement>,
)> {
    let Some(uri) = &config.libvirt_uri else {
        return Ok((Vec::new(), None));
    };
    let source = crate::inventory::libvirt::LibvirtPlacement::connect(uri)
        .with_context(|| format!("connecting to libvirt at {uri}"))?;
    Ok((vec![Box::new(source.clone())], Some(source)))
}

#[cfg(not(feature = "libvirt"))]
#[allow(clippy::type_complexity, clippy::unnecessary_wraps)]
fn libvirt_source(
    _config: &Config,
) -> anyhow::Result<(
    Vec<Box<dyn crate::inventory::VcpuPlacement>>,
    Option<std::convert::Infallible>,
)> {
    Ok((Vec::new(), None))
}

/// Puts persisted settings and mappings back into the engine; returns the
/// persisted policies, to restore once the state is open.
fn restore_settings(
    store: &Store,
    engine: &mut Engine,
    placer: &Placer,
) -> anyhow::Result<Vec<(VmId, StoredPolicy)>> {
    for (vm, settings) in store.settings().context("reading VM settings")? {
        engine.add_vm(vm, settings);
    }
    for (vm, vcpu, pcpu) in store.pcpus().context("reading vCPU mappings")? {
        if engine.settings(&vm).is_none() {
            engine.add_vm(vm.clone(), Default::default());
        }
        if let Err(e) = placer.operator_set(&vm, vcpu, pcpu) {
            warn!(%vm, vcpu, pcpu = pcpu.0, error = %e, "stored mapping no longer valid; ignored");
        }
    }
    store.policies().context("reading policies")
}

/// The CPUs a restore put back.
fn restored_cpus(
    report: &vmpower_cpufreq::takeover::RestoreReport,
) -> impl Iterator<Item = CpuId> + '_ {
    report.restored.iter().filter_map(|item| match item {
        vmpower_cpufreq::takeover::TakeoverItem::Cpu(cpu) => Some(*cpu),
        _ => None,
    })
}

//! Start-up, the main loop and shutdown of the daemon.
//!
//! ## Behavior
//! - First, the paths the daemon must write are checked
//!   ([`crate::preflight`]): a start that could not do its job is refused.
//! - Before anything else, a takeover record left by a crashed run (in
//!   the state database, or an older version's record file) is restored
//!   (every CPU back to its original governor and bounds).
//! - The host's CPUs are discovered under the sysfs root and handed to the
//!   engine; declared VMs are added with their settings and placements.
//! - The channel directory is scanned, then watched with inotify; each
//!   socket and FIFO gets its own task (see [`crate::channels`]).
//! - Each configuration sent on `reloads` (SIGHUP) is applied as far as
//!   it can be live, and the policy directory is rescanned
//!   ([`crate::reload`]).
//! - When `shutdown` resolves, every task stops, every CPU taken over is
//!   restored, and the control socket is removed.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use vmpower_cpufreq::takeover::{restore_from, restore_from_file};
use vmpower_cpufreq::{CpuFreq, CpuId, SysfsIo};
use vmpower_engine::{
    ChannelId, Engine, EngineConfig, PcpuSpec, PolicyExtensions, PolicySpec, VmId,
};

use crate::SharedCore;
use crate::backends::Backends;
use crate::channels::thread::AbortOnDrop;
use crate::channels::watch::{DirEvent, DirWatch, scan};
use crate::channels::{ChannelName, conn, fifo};
use crate::config::Config;
use crate::core::Core;
use crate::placement::Placer;
use crate::samplers;
use crate::store::{DbTakeoverSink, PolicySource, Store, StoreOptions};
use crate::traffic::{NetlinkTrafficCounters, TrafficCounters};

/// The running daemon's shared parts, as the control API sees them.
#[derive(Debug)]
pub struct Daemon {
    /// The configuration in force.
    pub config: Config,
    /// Engine, cpufreq and counters.
    pub core: SharedCore,
    /// Where each VM's vCPUs run (operator map, /proc, QMP).
    pub placer: Placer,
    tasks: Mutex<HashMap<PathBuf, JoinHandle<()>>>,
    /// Where each policy MAC's counter was found, for `policy show`.
    pub mac_sources: samplers::MacSources,
    /// Where the metrics endpoint listens, once bound.
    pub metrics_address: std::sync::OnceLock<std::net::SocketAddr>,
    #[cfg(feature = "libvirt")]
    libvirt: Option<crate::inventory::libvirt::LibvirtPlacement>,
    /// This daemon's hold on its state directory, released at stop.
    instance: Mutex<Option<crate::instance::InstanceLock>>,
    /// The FIFOs this daemon made or adopted (a crashed run's), removed
    /// at stop.
    fifos_made: Mutex<Vec<PathBuf>>,
    /// Where the guest channels are served.
    channel_thread: crate::channels::thread::ChannelThread,
    /// Wakes the policy directory's task to rescan it (SIGHUP).
    pub policy_rescan: Arc<tokio::sync::Notify>,
    /// Opens the VF control ([`Backends::vf`]).
    pub vf: crate::backends::VfOpener,
    /// The wall clock of TIME policies ([`Backends::clock`]).
    pub clock: Arc<dyn crate::backends::Clock>,
}

/// Runs the daemon until `shutdown` resolves, with the host's traffic
/// counters (rtnetlink).
pub async fn run(
    config: Config,
    io: Arc<dyn SysfsIo>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let counters = host_traffic_counters(&config);
    run_reloading(config, io, counters, shutdown, None).await
}

/// The host's traffic counters (rtnetlink), or none (logged) when they
/// cannot be opened.
pub fn host_traffic_counters(config: &Config) -> Option<Box<dyn TrafficCounters>> {
    match NetlinkTrafficCounters::new(config.mac_map()) {
        // The link list (which device has which MAC) is re-read when the
        // kernel notifies a link change, when links come or go, and every
        // 5 s while a MAC is missing (60 s otherwise, or 5 s always without
        // notifications); the counters every interval.
        Ok(c) => Some(Box::new(
            c.with_topology_refresh(std::time::Duration::from_secs(5)),
        )),
        Err(e) => {
            warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "no traffic counters: TRAFFIC policies will wait");
            None
        }
    }
}

/// Runs the daemon with the given traffic counters (tests pass fakes).
pub async fn run_with(
    config: Config,
    io: Arc<dyn SysfsIo>,
    counters: Option<Box<dyn TrafficCounters>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_reloading(config, io, counters, shutdown, None).await
}

/// As [`run_with`], applying each configuration received on `reloads`
/// (read again on SIGHUP) while it runs.
pub async fn run_reloading(
    config: Config,
    io: Arc<dyn SysfsIo>,
    counters: Option<Box<dyn TrafficCounters>>,
    shutdown: impl Future<Output = ()>,
    reloads: Option<tokio::sync::mpsc::UnboundedReceiver<Config>>,
) -> anyhow::Result<()> {
    run_backends(config, Backends::host(io, counters), shutdown, reloads).await
}

/// Runs the daemon on `backends` (the host's, or a test's fakes) until
/// `shutdown` resolves, applying each configuration received on `reloads`.
pub async fn run_backends(
    config: Config,
    mut backends: Backends,
    shutdown: impl Future<Output = ()>,
    reloads: Option<tokio::sync::mpsc::UnboundedReceiver<Config>>,
) -> anyhow::Result<()> {
    // Before anything is touched, and so before READY=1: can it do its
    // job here (a sandbox leaving its paths read-only)?
    crate::preflight::check(&config)?;
    let daemon = Arc::new(start(config, &backends)?);
    let (traffic, branch) = (backends.traffic.take(), backends.branch.take());
    let result = serve(&daemon, traffic, branch, shutdown, reloads).await;
    stop(&daemon);
    result
}

/// The next configuration to reload; never resolves once there is none
/// to come.
async fn next_reload(reloads: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Config>>) -> Config {
    let next = match reloads.as_mut() {
        Some(rx) => rx.recv().await,
        None => None,
    };
    match next {
        Some(config) => config,
        None => {
            *reloads = None;
            std::future::pending().await
        }
    }
}

/// Restores leftovers, discovers the host, builds the engine.
pub fn start(config: Config, backends: &Backends) -> anyhow::Result<Daemon> {
    let io = backends.sysfs.clone();
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
        let report = restore_from_file(&legacy, &*io)
            .with_context(|| format!("restoring {} left by a previous run", legacy.display()))?;
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
    let restored = restore_state(&store, &mut engine, &placer, backends.clock.wall())?;
    let mut core = Core::new(engine, cpufreq);
    core.store = Some(store);
    for cpu in left {
        core.record_given_back(cpu, None, RESTORED_AT_START);
    }
    // What restored policies decide for cores they can already name (a
    // FIFO's host CPUs): applied now, before anything is served.
    core.execute(&restored);
    core.channel_busy_poll = config.channel_busy_poll();
    let channel_thread = crate::channels::thread::ChannelThread::start(config.channel_thread_nice)
        .context("cannot start the channel thread")?;
    core.foreign_writer = config.foreign_writer;
    Ok(Daemon {
        core: Arc::new(Mutex::new(core)),
        placer,
        tasks: Mutex::new(HashMap::new()),
        mac_sources: samplers::MacSources::default(),
        metrics_address: std::sync::OnceLock::new(),
        #[cfg(feature = "libvirt")]
        libvirt,
        config,
        instance: Mutex::new(Some(instance)),
        fifos_made: Mutex::new(Vec::new()),
        channel_thread,
        policy_rescan: Arc::new(tokio::sync::Notify::new()),
        vf: backends.vf.clone(),
        clock: backends.clock.clone(),
    })
}

async fn serve(
    daemon: &Arc<Daemon>,
    counters: Option<Box<dyn TrafficCounters>>,
    branch: Option<Box<dyn crate::branch::BranchCounters>>,
    shutdown: impl Future<Output = ()>,
    mut reloads: Option<tokio::sync::mpsc::UnboundedReceiver<Config>>,
) -> anyhow::Result<()> {
    let mut running = daemon.config.clone();
    let dir = &daemon.config.channel_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create channel dir {}", dir.display()))?;
    let mut watch =
        DirWatch::new(dir).with_context(|| format!("cannot watch {}", dir.display()))?;
    if daemon.config.fifos {
        let cpus = crate::lock(&daemon.core).engine.pcpus();
        let made = fifo::create_fifos(dir, &cpus);
        *daemon
            .fifos_made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = made;
    }
    for path in scan(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        daemon.appeared(&path);
    }
    for vm in daemon.placer.vms() {
        daemon.placer.refresh(&vm, &daemon.core).await;
    }
    let control = crate::control::listen(daemon.clone())?;
    let metrics = crate::metrics::start(daemon).await?;
    let refresher = tokio::spawn(refresh_periodically(daemon.clone()));
    let clock = tokio::spawn(samplers::run_time(
        daemon.core.clone(),
        daemon.clock.clone(),
    ));
    let history = tokio::spawn(flush_history_periodically(daemon.core.clone()));
    let foreign = tokio::spawn(check_foreign_periodically(
        daemon.core.clone(),
        daemon.config.foreign_check_interval(),
    ));
    let policy_dir = daemon.config.policy_dir.is_dir().then(|| {
        tokio::spawn(crate::policy_dir::follow(
            daemon.clone(),
            daemon.config.policy_dir.clone(),
        ))
    });
    let traffic = counters
        .map(|c| {
            samplers::spawn_traffic(
                daemon.core.clone(),
                c,
                daemon.config.traffic_interval(),
                daemon.mac_sources.clone(),
                daemon.config.traffic_record(),
            )
        })
        .transpose()
        .context("cannot start the traffic sampler thread")?;
    let interval = daemon.config.traffic_interval();
    let branch =
        branch.map(|c| tokio::spawn(crate::branch::run_branch(daemon.core.clone(), c, interval)));
    #[cfg(feature = "libvirt")]
    let libvirt = daemon
        .libvirt
        .clone()
        .map(|source| tokio::spawn(crate::libvirt::follow(daemon.clone(), source)));
    info!(channel_dir = %dir.display(), control = %daemon.config.control_socket.display(), "vmpowerd ready");
    // systemd: READY=1 now; STOPPING=1 when this is dropped (loop ended).
    let _readiness = crate::notify::ready(daemon);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            new = next_reload(&mut reloads) => {
                for vm in crate::reload::apply(daemon, &mut running, &new) {
                    daemon.placer.refresh(&vm, &daemon.core).await;
                }
                daemon.policy_rescan.notify_one();
            }
            event = watch.next() => match event {
                Some(Ok(DirEvent::Appeared(p))) => daemon.appeared(&p),
                Some(Ok(DirEvent::Gone(p))) => daemon.gone(&p),
                Some(Err(e)) => warn!(error = %e, "channel directory watch failed"),
                None => anyhow::bail!("channel directory watch ended"),
            },
        }
    }
    control.abort();
    if let Some(t) = metrics {
        t.abort();
    }
    refresher.abort();
    clock.abort();
    history.abort();
    foreign.abort();
    if let Some(t) = policy_dir {
        t.abort();
    }
    if let Some(t) = traffic {
        t.stop();
    }
    if let Some(t) = branch {
        t.abort();
    }
    #[cfg(feature = "libvirt")]
    if let Some(task) = libvirt {
        task.abort();
    }
    Ok(())
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

/// Puts persisted settings, mappings and policies back into the engine;
/// returns the frequency changes the restored policies decide already.
fn restore_state(
    store: &Store,
    engine: &mut Engine,
    placer: &Placer,
    wall: jiff::Timestamp,
) -> anyhow::Result<Vec<vmpower_engine::Action>> {
    let mut actions = Vec::new();
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
    engine.set_wall_clock(wall);
    for (vm, stored) in store.policies().context("reading policies")? {
        if engine.settings(&vm).is_none() {
            engine.add_vm(vm.clone(), Default::default());
        }
        let ext: PolicyExtensions =
            serde_json::from_value(serde_json::Value::Object(stored.extensions.clone()))
                .unwrap_or_default();
        let tz = match &ext.time_zone {
            Some(name) => {
                jiff::tz::TimeZone::get(name).unwrap_or_else(|_| engine.default_time_zone().clone())
            }
            None => engine.default_time_zone().clone(),
        };
        let spec = PolicySpec {
            policy: stored.policy,
            ext,
            tz,
        };
        // The placement is not known yet: the policy's cores are checked
        // again when it is (set_policy accepts vCPUs of an unplaced VM).
        // A policy is restored with the authority it was accepted with: a
        // FIFO's is the host operator's (its physical cores need no grant).
        let now = std::time::Duration::ZERO;
        let restored = if matches!(stored.source, PolicySource::Fifo(_)) {
            engine.set_operator_policy(&vm, spec, now, wall)
        } else {
            engine.set_policy(&vm, spec, now, wall)
        };
        match restored {
            Ok(mut decided) => {
                info!(%vm, source = %stored.source, "policy restored");
                actions.append(&mut decided);
            }
            Err(e) => warn!(%vm, error = %e, "stored policy refused; kept on disk"),
        }
    }
    Ok(actions)
}

/// Re-reads every VM's placement every `placement_refresh_ms`: threads are
/// re-pinned behind our back, QEMU restarts.
/// Writes buffered history entries `HISTORY_FLUSH` after the first one of
/// a batch; asleep while nothing is decided.
async fn flush_history_periodically(core: crate::SharedCore) {
    const HISTORY_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);
    let pending = crate::lock(&core).history_pending();
    loop {
        pending.notified().await;
        tokio::time::sleep(HISTORY_FLUSH).await;
        crate::lock(&core).flush_history();
    }
}

/// Checks the held pCPUs for another writer's changes every `period`
/// (reads only; nothing held, nothing read).
async fn check_foreign_periodically(core: crate::SharedCore, period: std::time::Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        crate::lock(&core).check_foreign_writers();
    }
}

async fn refresh_periodically(daemon: Arc<Daemon>) {
    let mut tick = tokio::time::interval(daemon.config.placement_refresh());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let vms = crate::lock(&daemon.core).engine.vm_ids();
        let period = daemon.config.placement_refresh();
        daemon.placer.refresh_due(&vms, period, &daemon.core).await;
    }
}

/// Stops every task and gives back every CPU.
fn stop(daemon: &Daemon) {
    for (_, task) in lock_tasks(&daemon.tasks).drain() {
        task.abort();
    }
    // No channel is served past this point: the restore below is the
    // last word on every CPU.
    daemon.channel_thread.stop();
    let mut core = crate::lock(&daemon.core);
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
    let _ = std::fs::remove_file(&daemon.config.control_socket);
    let made = std::mem::take(
        &mut *daemon
            .fifos_made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for path in made {
        let _ = std::fs::remove_file(path);
    }
    // Tasks may still hold the daemon for a moment; the state dir is free
    // for the next daemon now that every CPU is given back.
    daemon
        .instance
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
}

/// The history's reason for a CPU restored at a clean stop.
pub const RESTORED_AT_STOP: &str = "restored at stop: original governor and bounds";
/// The history's reason for a CPU a crashed run left, restored at start.
pub const RESTORED_AT_START: &str = "restored at start: left by a previous run";

/// The CPUs a restore put back.
fn restored_cpus(
    report: &vmpower_cpufreq::takeover::RestoreReport,
) -> impl Iterator<Item = CpuId> + '_ {
    report.restored.iter().filter_map(|item| match item {
        vmpower_cpufreq::takeover::TakeoverItem::Cpu(cpu) => Some(*cpu),
        _ => None,
    })
}

fn lock_tasks(
    tasks: &Mutex<HashMap<PathBuf, JoinHandle<()>>>,
) -> std::sync::MutexGuard<'_, HashMap<PathBuf, JoinHandle<()>>> {
    tasks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Daemon {
    /// A file appeared in the channel directory. A path a live task
    /// already serves is left to it: the start-up scan and the watch both
    /// report what appears between the watch's start and the scan (the
    /// FIFOs the daemon makes, a socket QEMU makes then), and a second
    /// task would cut the first one's connection or reader (and its
    /// partial message and log budget).
    pub fn appeared(self: &Arc<Self>, path: &Path) {
        if self.serves(path) {
            return;
        }
        let Some(name) = ChannelName::of_path(path) else {
            return;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        match name {
            ChannelName::Guest { vm, index } if meta.file_type().is_socket() => {
                if let Err(e) = crate::vm_name::check(&vm) {
                    warn!(path = %path.display(), error = %e, "channel socket ignored");
                    return;
                }
                let id = VmId::new(&vm);
                if !self.ensure_vm(&id) {
                    info!(path = %path.display(), "socket of an undeclared VM ignored (auto_add_vms = false)");
                    return;
                }
                self.serve_channel(path, ChannelId { vm: id, index });
            }
            ChannelName::Fifo(_) if self.config.fifos && meta.file_type().is_fifo() => {
                let task = tokio::spawn(fifo::serve_fifo(path.to_owned(), self.core.clone()));
                self.track(path, task);
            }
            _ => {}
        }
    }

    /// Serves the guest channel socket at `path` (from the channel
    /// directory or, with libvirt, wherever the domain's XML puts it), and
    /// refreshes the VM's placement: the QEMU holding the socket is its.
    pub fn serve_channel(self: &Arc<Self>, path: &Path, channel: ChannelId) {
        self.placer.note_socket(&channel.vm, path);
        let daemon = self.clone();
        let owned = path.to_owned();
        // The placement is read before the channel is connected, so that a
        // guest's first request does not meet an unplaced vCPU. The
        // connection is served on the channel thread; aborting this task
        // aborts it.
        let task = tokio::spawn(async move {
            daemon.placer.refresh(&channel.vm, &daemon.core).await;
            let mut serving = AbortOnDrop(daemon.channel_thread.spawn(conn::serve_socket(
                owned,
                channel,
                daemon.core.clone(),
            )));
            let _ = (&mut serving.0).await;
        });
        self.track(path, task);
    }

    fn track(&self, path: &Path, task: JoinHandle<()>) {
        if let Some(old) = lock_tasks(&self.tasks).insert(path.to_owned(), task) {
            old.abort();
        }
    }

    /// Whether a live task serves `path`.
    pub fn serves(&self, path: &Path) -> bool {
        lock_tasks(&self.tasks)
            .get(path)
            .is_some_and(|t| !t.is_finished())
    }

    /// A file went away from the channel directory. A FIFO's reader is
    /// stopped; a socket's connection is left to end by itself (QEMU
    /// closing it), so that what it read is accounted for and a VM whose
    /// socket file alone was removed keeps being served.
    pub fn gone(&self, path: &Path) {
        if matches!(ChannelName::of_path(path), Some(ChannelName::Fifo(_)))
            && let Some(task) = lock_tasks(&self.tasks).remove(path)
        {
            task.abort();
        }
    }

    /// Stops serving `path` whatever it is (rm-vm).
    pub fn stop_serving(&self, path: &Path) {
        if let Some(task) = lock_tasks(&self.tasks).remove(path) {
            task.abort();
        }
    }

    /// The channel sockets being served, by path.
    pub fn channel_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = lock_tasks(&self.tasks)
            .iter()
            .filter(|(_, t)| !t.is_finished())
            .map(|(p, _)| p.clone())
            .collect();
        paths.sort();
        paths
    }

    /// Makes sure the engine knows `vm`; false when it is not declared and
    /// undeclared VMs are not served.
    pub fn ensure_vm(&self, vm: &VmId) -> bool {
        let mut core = crate::lock(&self.core);
        if core.engine.settings(vm).is_some() {
            return true;
        }
        if !self.config.auto_add_vms {
            return false;
        }
        core.engine.add_vm(vm.clone(), Default::default());
        true
    }

    /// The libvirt source, when configured.
    #[cfg(feature = "libvirt")]
    pub fn libvirt(&self) -> Option<&crate::inventory::libvirt::LibvirtPlacement> {
        self.libvirt.as_ref()
    }

    /// Persists an operator's policy (control API, policy directory).
    pub fn persist_policy(&self, vm: &VmId, source: crate::store::PolicySource) {
        crate::lock(&self.core).persist_policy(vm, source);
    }

    /// Forgets a persisted policy.
    pub fn forget_policy(&self, vm: &VmId) {
        crate::lock(&self.core).forget_policy(vm);
    }

    /// The decision history for `vmpowerctl history`.
    pub fn history(
        &self,
        vm: Option<String>,
        since: Option<i64>,
        limit: Option<u32>,
    ) -> Result<vmpower_api::answers::History, vmpower_api::CtlError> {
        use vmpower_api::{CtlError, ErrorKind};
        let mut core = crate::lock(&self.core);
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
        let mode = self.config.control_socket_mode;
        std::fs::set_permissions(
            &self.config.control_socket,
            std::fs::Permissions::from_mode(mode),
        )
    }
}

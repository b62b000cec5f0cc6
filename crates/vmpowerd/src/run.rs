//! Start-up, the main loop and shutdown of the daemon.
//!
//! ## Behavior
//! - First, the paths the daemon must write are checked
//!   ([`crate::preflight`]): a start that could not do its job is refused.
//! - The daemon's state is opened ([`State::open`]: leftovers of a crashed
//!   run restored, the host discovered, the state database back in force).
//! - The channel directory is scanned, then watched with inotify; each
//!   socket and FIFO gets its own task (see [`crate::channels`]).
//! - Each configuration sent on `reloads` (SIGHUP) is applied as far as
//!   it can be live, and the policy directory is rescanned
//!   ([`crate::reload`]).
//! - When `shutdown` resolves (or the channel directory's watch ends),
//!   one signal stops every task ([`Tasks`]), and the state is closed
//!   ([`State::close`]: every CPU taken over is restored, the control
//!   socket removed).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tracing::{info, warn};
use vmpower_cpufreq::SysfsIo;

use crate::backends::Backends;
use crate::channels::fifo;
use crate::channels::watch::{DirEvent, DirWatch, scan};
use crate::config::Config;
use crate::samplers;
use crate::state::State;
use crate::tasks::Tasks;
use crate::traffic::{NetlinkTrafficCounters, TrafficCounters};

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
    let daemon = State::open(config, &backends)?;
    let (traffic, branch) = (backends.traffic.take(), backends.branch.take());
    let result = serve(&daemon, traffic, branch, shutdown, reloads).await;
    daemon.close();
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

async fn serve(
    daemon: &State,
    counters: Option<Box<dyn TrafficCounters>>,
    branch: Option<Box<dyn crate::branch::BranchCounters>>,
    shutdown: impl Future<Output = ()>,
    reloads: Option<tokio::sync::mpsc::UnboundedReceiver<Config>>,
) -> anyhow::Result<()> {
    let dir = &daemon.config().channel_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create channel dir {}", dir.display()))?;
    let mut watch =
        DirWatch::new(dir).with_context(|| format!("cannot watch {}", dir.display()))?;
    if daemon.config().fifos {
        let cpus = daemon.lock().engine.pcpus();
        daemon.fifos_made(fifo::create_fifos(dir, &cpus));
    }
    for path in scan(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        daemon.appeared(&path);
    }
    for vm in daemon.placer().vms() {
        daemon.placer().refresh(&vm, daemon.core()).await;
    }
    let mut tasks = Tasks::default();
    let result = start_tasks(daemon, counters, branch, &mut tasks).await;
    let result = match result {
        Ok(()) => main_loop(daemon, &mut watch, shutdown, reloads).await,
        Err(e) => Err(e),
    };
    // One signal stops every task, whichever way the loop ended.
    tasks.stop().await;
    result
}

/// Starts the control socket, the metrics endpoint, the periodic tasks,
/// the samplers and the followers of the policy directory and libvirt.
async fn start_tasks(
    daemon: &State,
    counters: Option<Box<dyn TrafficCounters>>,
    branch: Option<Box<dyn crate::branch::BranchCounters>>,
    tasks: &mut Tasks,
) -> anyhow::Result<()> {
    let config = daemon.config();
    // The metrics endpoint is bound first: once the control socket
    // answers, `status` names the metrics address.
    if let Some(metrics) = crate::metrics::start(daemon).await? {
        tasks.adopt(metrics);
    }
    tasks.spawn(crate::control::listen(daemon.clone())?);
    tasks.spawn(refresh_periodically(daemon.clone()));
    tasks.spawn(samplers::run_time(
        daemon.core().clone(),
        daemon.clock().clone(),
    ));
    tasks.spawn(crate::busyness::run_staleness(daemon.core().clone()));
    tasks.spawn(flush_history_periodically(daemon.core().clone()));
    tasks.spawn(check_foreign_periodically(
        daemon.core().clone(),
        config.foreign_check_interval(),
    ));
    if config.policy_dir.is_dir() {
        tasks.spawn(crate::policy_dir::follow(
            daemon.clone(),
            config.policy_dir.clone(),
        ));
    }
    if let Some(counters) = counters {
        let sampler = samplers::spawn_traffic(
            daemon.core().clone(),
            counters,
            config.traffic_interval(),
            daemon.mac_sources().clone(),
            config.traffic_record(),
        )
        .context("cannot start the traffic sampler thread")?;
        // Dropping the sampler stops its thread.
        tasks.hold(sampler);
    }
    if let Some(counters) = branch {
        let interval = config.traffic_interval();
        tasks.spawn(crate::branch::run_branch(
            daemon.core().clone(),
            counters,
            interval,
        ));
    }
    #[cfg(feature = "libvirt")]
    if let Some(source) = daemon.libvirt().cloned() {
        tasks.spawn(crate::libvirt::follow(daemon.clone(), source));
    }
    Ok(())
}

/// Serves until `shutdown` resolves: reloads (SIGHUP) and the channel
/// directory's events.
async fn main_loop(
    daemon: &State,
    watch: &mut DirWatch,
    shutdown: impl Future<Output = ()>,
    mut reloads: Option<tokio::sync::mpsc::UnboundedReceiver<Config>>,
) -> anyhow::Result<()> {
    let mut running = daemon.config().clone();
    let dir = &daemon.config().channel_dir;
    info!(channel_dir = %dir.display(), control = %daemon.config().control_socket.display(), "vmpowerd ready");
    // systemd: READY=1 now; STOPPING=1 when this is dropped (loop ended).
    let _readiness = crate::notify::ready(daemon);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            new = next_reload(&mut reloads) => {
                for vm in crate::reload::apply(daemon, &mut running, &new) {
                    daemon.placer().refresh(&vm, daemon.core()).await;
                }
                daemon.policy_rescan().notify_one();
            }
            event = watch.next() => match event {
                Some(Ok(DirEvent::Appeared(p))) => daemon.appeared(&p),
                Some(Ok(DirEvent::Gone(p))) => daemon.gone(&p),
                Some(Err(e)) => warn!(error = %e, "channel directory watch failed"),
                None => anyhow::bail!("channel directory watch ended"),
            },
        }
    }
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

async fn refresh_periodically(daemon: State) {
    let mut tick = tokio::time::interval(daemon.config().placement_refresh());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let vms = daemon.lock().engine.vm_ids();
        let period = daemon.config().placement_refresh();
        daemon
            .placer()
            .refresh_due(&vms, period, daemon.core())
            .await;
    }
}

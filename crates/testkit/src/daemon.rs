//! The real daemon, in-process through vmpowerd's library `run`, on a
//! [`FakeHost`], with its own shutdown signal (as SIGTERM would stop it).
//!
//! ## Behavior
//! - [`Host`] runs the daemon as a task of the test's runtime, so a test
//!   may pause and advance tokio's clock; it can be stopped and launched
//!   again on the same host (a restart).
//! - [`Detached`] runs it on a runtime thread of its own, for synchronous
//!   tests (a CLI run as a process); dropping it stops the daemon.
//! - Both return once the control socket accepts a connection (the file
//!   appears at bind(), a moment before listen()), and report a daemon
//!   that stopped at start-up with its error.
//! - The daemon samples [`FakeTrafficCounters`] held by the host, or the
//!   host's real counters (rtnetlink) when asked.
//! - Its other hardware (branch counters, VF control) and its time zone
//!   are the machine's, unless [`Host::with_fake_hardware`] asks for
//!   `vmpowerd::backends::Backends::fake`; its wall clock can be a
//!   [`FakeClock`] ([`Host::with_clock`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vmpower_api::{ChannelSel, Client, CtlRequest, CtlResponse};
use vmpower_cpufreq::SysfsIo;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpowerd::backends::{Backends, FakeClock, FakeVfControl};
use vmpowerd::branch::BranchCounters;
use vmpowerd::config::{Config, VmConfig};
use vmpowerd::traffic::{FakeTrafficCounters, TrafficCounters};

use crate::layout::{FakeHost, acpi4};
use crate::wait::{WAIT, wait_within};

impl FakeHost {
    /// The daemon's configuration for this host: every path in the
    /// layout, everything else as `Config::default()`.
    pub fn config(&self) -> Config {
        Config {
            sysfs_root: self.dirs.sysfs.clone(),
            proc_root: self.dirs.proc.clone(),
            channel_dir: self.dirs.channels.clone(),
            state_dir: self.dirs.state.clone(),
            control_socket: self.dirs.control.clone(),
            policy_dir: self.dirs.policies.clone(),
            ..Config::default()
        }
    }
}

/// A declared VM pinned to `pcpus`, vCPU i on `pcpus[i]`.
pub fn vm(pcpus: &[u32]) -> VmConfig {
    VmConfig {
        pcpus: pcpus.to_vec(),
        ..VmConfig::default()
    }
}

/// Which traffic counters the daemon samples.
enum Counters {
    /// The host's (rtnetlink), as `vmpowerd` itself opens them.
    Real,
    /// Scripted ones.
    Fake(FakeTrafficCounters),
    /// Given by the caller, for one launch.
    Given(Option<Box<dyn TrafficCounters>>),
}

impl Counters {
    fn take(&mut self, config: &Config) -> Option<Box<dyn TrafficCounters>> {
        match self {
            Counters::Real => vmpowerd::run::host_traffic_counters(config),
            Counters::Fake(f) => Some(Box::new(f.clone())),
            Counters::Given(g) => g.take(),
        }
    }
}

/// The daemon's future on `backends`, stopped by `stop`.
fn daemon(
    config: Config,
    backends: Backends,
    stop: oneshot::Receiver<()>,
) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
    let stop = async {
        let _ = stop.await;
    };
    vmpowerd::run::run_backends(config, backends, stop, None)
}

/// Whether the control socket accepts a connection.
fn accepts(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// Asks the control API at `socket` from a thread of its own (the client
/// blocks; the daemon may share the caller's runtime).
fn ask(socket: &Path, request: &CtlRequest) -> CtlResponse {
    let path = socket.to_owned();
    let request = request.clone();
    std::thread::spawn(move || Client::connect(&path).unwrap().call(&request).unwrap())
        .join()
        .unwrap()
}

/// A daemon running in-process on a fake host in a temporary directory.
pub struct Host {
    /// The fake sysfs tree.
    pub fake: Arc<FakeSysfs>,
    /// Scripted traffic counters the daemon samples (unless it samples the
    /// host's real ones).
    pub traffic: FakeTrafficCounters,
    /// The temporary directory holding the host.
    pub dir: tempfile::TempDir,
    /// The configuration the daemon is launched with (adjust, then
    /// [`Host::launch`] again to restart with it).
    pub config: Config,
    counters: Counters,
    clock: Option<FakeClock>,
    fake_hardware: bool,
    vfs: Option<FakeVfControl>,
    branch: Option<Box<dyn BranchCounters>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Host {
    /// 4 CPUs of acpi-cpufreq with turbo; `vms` declared with their pCPUs.
    pub async fn start(vms: &[(&str, VmConfig)]) -> Host {
        Host::start_adjusted(vms, |_| {}).await
    }

    /// As [`Host::start`], with a chance to adjust the config.
    pub async fn start_adjusted(
        vms: &[(&str, VmConfig)],
        adjust: impl FnOnce(&mut Config),
    ) -> Host {
        let host = FakeHost::new();
        Host::start_host(host, vms, adjust, false).await
    }

    /// On a fake tree the test built.
    pub async fn start_on(fake: Arc<FakeSysfs>, vms: &[(&str, VmConfig)]) -> Host {
        Host::start_with(fake, vms, |_| {}).await
    }

    /// As [`Host::start_on`], with a chance to adjust the config.
    pub async fn start_with(
        fake: Arc<FakeSysfs>,
        vms: &[(&str, VmConfig)],
        adjust: impl FnOnce(&mut Config),
    ) -> Host {
        Host::start_host(FakeHost::around(fake), vms, adjust, false).await
    }

    /// As [`Host::start_with`], but the daemon samples the host's real
    /// traffic counters (rtnetlink), as `vmpowerd` itself does.
    pub async fn start_real_traffic(
        fake: Arc<FakeSysfs>,
        vms: &[(&str, VmConfig)],
        adjust: impl FnOnce(&mut Config),
    ) -> Host {
        Host::start_host(FakeHost::around(fake), vms, adjust, true).await
    }

    async fn start_host(
        host: FakeHost,
        vms: &[(&str, VmConfig)],
        adjust: impl FnOnce(&mut Config),
        real_traffic: bool,
    ) -> Host {
        let mut host = Host::prepare(host, vms, adjust);
        if real_traffic {
            host.counters = Counters::Real;
        }
        host.launch().await;
        host
    }

    /// The host and its configuration (`vms` declared, then `adjust`), with
    /// no daemon running yet: [`Host::try_launch`] starts it.
    pub fn prepare(
        host: FakeHost,
        vms: &[(&str, VmConfig)],
        adjust: impl FnOnce(&mut Config),
    ) -> Host {
        let mut config = host.config();
        for (name, vm) in vms {
            config.vm.insert((*name).to_owned(), vm.clone());
        }
        adjust(&mut config);
        std::fs::create_dir_all(&config.channel_dir).unwrap();
        let traffic = FakeTrafficCounters::new();
        Host {
            fake: host.fake,
            counters: Counters::Fake(traffic.clone()),
            traffic,
            dir: host.dir,
            config,
            clock: None,
            fake_hardware: false,
            vfs: None,
            branch: None,
            stop: None,
            task: None,
        }
    }

    /// The daemon's wall clock (TIME policies) is `clock`, in UTC.
    pub fn with_clock(mut self, clock: FakeClock) -> Host {
        self.clock = Some(clock);
        self
    }

    /// Nothing of the machine the test runs on behind the daemon
    /// (`Backends::fake`): no branch counters unless given
    /// ([`Host::with_branch`]), a VF control that refuses, UTC; the
    /// traffic counters stay the host's choice ([`Host::sample`]).
    pub fn with_fake_hardware(mut self) -> Host {
        self.fake_hardware = true;
        self
    }

    /// The daemon's VF control is `vfs` (with fake hardware).
    pub fn with_vfs(mut self, vfs: &FakeVfControl) -> Host {
        self.vfs = Some(vfs.clone());
        self
    }

    /// The daemon's next launch samples these branch counters.
    pub fn with_branch(mut self, counters: Box<dyn BranchCounters>) -> Host {
        self.branch = Some(counters);
        self
    }

    /// The backends of the next launch: the fake tree, the traffic
    /// counters, and the host's or fake hardware as asked.
    fn backends(&mut self) -> Backends {
        let io: Arc<dyn SysfsIo> = self.fake.clone();
        let traffic = self.counters.take(&self.config);
        let mut backends = if self.fake_hardware {
            let wall = jiff::Timestamp::now();
            Backends {
                traffic,
                ..Backends::fake(io, wall)
            }
        } else {
            Backends::host(io, traffic)
        };
        if let Some(vfs) = &self.vfs {
            backends.vf = vfs.opener();
        }
        if let Some(branch) = self.branch.take() {
            backends.branch = Some(branch);
        }
        if let Some(clock) = &self.clock {
            backends.clock = Arc::new(clock.clone());
            backends.time_zone = jiff::tz::TimeZone::UTC;
        }
        backends
    }

    /// The daemon samples `traffic` (shared with whoever scripts it).
    pub fn with_traffic(mut self, traffic: FakeTrafficCounters) -> Host {
        self.counters = Counters::Fake(traffic.clone());
        self.traffic = traffic;
        self
    }

    /// The daemon of the next launch samples `counters` instead.
    pub fn sample(&mut self, counters: Box<dyn TrafficCounters>) {
        self.counters = Counters::Given(Some(counters));
    }

    /// Starts (or restarts) the daemon on the same host; panics if it
    /// does not come up.
    pub async fn launch(&mut self) {
        self.try_launch().await.unwrap();
    }

    /// Starts (or restarts) the daemon; returns once its control socket
    /// accepts, or the error it stopped with.
    pub async fn try_launch(&mut self) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        let run = daemon(self.config.clone(), self.backends(), rx);
        let task = tokio::spawn(run);
        let deadline = tokio::time::Instant::now() + WAIT;
        while !accepts(&self.config.control_socket) {
            if task.is_finished() {
                let result = task.await.context("the daemon's task panicked")?;
                return Err(result
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("it returned")))
                .context("the daemon stopped at start-up");
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the daemon did not accept on its control socket within {WAIT:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.stop = Some(tx);
        self.task = Some(task);
        Ok(())
    }

    /// Stops the daemon as SIGTERM would, and waits for it; returns what
    /// `run` returned.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => tokio::time::timeout(WAIT, t)
                .await
                .context("the daemon did not stop in time")?
                .context("the daemon's task panicked")?,
            None => Ok(()),
        }
    }

    /// Removes the host's temporary directory (stop the daemon first).
    pub fn close(self) -> std::io::Result<()> {
        let Host { fake, dir, .. } = self;
        drop(fake);
        dir.close()
    }

    /// A cpufreq file of a CPU, e.g. `scaling_setspeed`.
    pub fn cpu_file(&self, cpu: u32, file: &str) -> String {
        self.fake
            .read(&crate::layout::cpufreq_file(cpu, file))
            .unwrap()
    }

    /// Where QEMU puts channel `index` of `vm`.
    pub fn socket(&self, vm: &str, index: u32) -> PathBuf {
        self.config.channel_dir.join(format!("{vm}.{index}"))
    }

    /// Asks the control API.
    pub fn ctl(&self, request: &CtlRequest) -> CtlResponse {
        ask(&self.config.control_socket, request)
    }

    /// Asks the control API; panics on an error answer.
    pub fn ok(&self, request: &CtlRequest) -> serde_json::Value {
        match self.ctl(request) {
            CtlResponse::Ok(v) => v,
            CtlResponse::Error(e) => panic!("{request:?}: {e:?}"),
        }
    }

    /// `vmpowerctl set-query VM on|off`.
    pub fn set_query(&self, vm: &str, enabled: bool) {
        self.ok(&CtlRequest::SetQuery {
            vm: vm.to_owned(),
            enabled,
        });
    }

    /// `vmpowerctl set-channel-status VM all off`: the daemon reads and
    /// ignores the channel, so the guest hears nothing.
    pub fn disable_channels(&self, vm: &str) {
        self.ok(&CtlRequest::SetChannelStatus {
            vm: vm.to_owned(),
            channels: ChannelSel::All,
            enabled: false,
        });
    }

    /// How many requests of `kind` (`policy`, `policy_remove`, `power`,
    /// `query`) from `vm` the daemon answered ACK/ok and NACK, from
    /// `vmpowerctl status`.
    pub fn verdicts(&self, vm: &str, kind: &str) -> (u64, u64) {
        let v = self.ok(&CtlRequest::Status);
        let count = |result: &str| {
            v["stats"]["requests"][format!("{vm}/{kind}/{result}")]
                .as_u64()
                .unwrap_or(0)
        };
        (count("ok"), count("nack"))
    }
}

/// A daemon on a runtime thread of its own (real traffic counters, as
/// `vmpowerd` opens them), for synchronous tests; stopped when dropped.
pub struct Detached {
    /// The fake host it runs on.
    pub host: FakeHost,
    /// Its configuration.
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Detached {
    /// Starts the daemon on [`acpi4`] with the layout's config.
    pub fn start() -> Detached {
        let host = FakeHost::build(acpi4()).unwrap();
        let config = host.config();
        Detached::start_on(host, config)
    }

    /// Starts the daemon on `host` with `config`, and waits until its
    /// control socket accepts.
    pub fn start_on(host: FakeHost, config: Config) -> Detached {
        let (tx, rx) = oneshot::channel();
        let socket = config.control_socket.clone();
        let io: Arc<dyn SysfsIo> = host.fake.clone();
        let run = daemon(config.clone(), Backends::host_for(&config, io), rx);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(run).unwrap();
        });
        wait_within(WAIT, "the daemon did not start", || accepts(&socket));
        Detached {
            host,
            config,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.config.control_socket
    }

    /// Asks the control API.
    pub fn ctl(&self, request: &CtlRequest) -> CtlResponse {
        ask(self.socket(), request)
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs blocking code (the guest library is synchronous) off the runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

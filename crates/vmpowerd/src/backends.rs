//! The daemon's hardware and time, as one set passed into
//! [`crate::run::run_backends`]: the sysfs tree, the traffic and branch
//! counters, the VF control, the wall clock and the host's time zone.
//!
//! ## Behavior
//! - [`Backends::host`] builds the real ones: rtnetlink counters and VF
//!   control, perf branch counters when the PMU offers them (probed here,
//!   once per start, with the reason logged when it does not), the system
//!   clock and time zone. Only the binary (and tests that want the host's
//!   own) build them.
//! - With feature `test-utils`, [`Backends::fake`] gives a test the same
//!   seams with nothing of the host behind them, [`FakeClock`] a wall
//!   clock it sets and [`FakeVfControl`] PFs and VFs it declares.
//!
//! ## Limitations
//! - The engine's monotonic clock is still the daemon's own (`Core::now`):
//!   only the wall clock (TIME policies) is injected.

use std::fmt;
use std::sync::Arc;

use tracing::warn;
use vmpower_cpufreq::SysfsIo;

use crate::branch::BranchCounters;
use crate::config::Config;
use crate::traffic::{NetlinkVfControl, TrafficCounters, TrafficError, VfControl};

/// A wall clock: what time it is for TIME policies.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn wall(&self) -> jiff::Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// Opens the VF control for one control request (a fresh rtnetlink
/// socket each time on the host).
#[derive(Clone)]
pub struct VfOpener(Arc<dyn Fn() -> Result<Box<dyn VfControl>, TrafficError> + Send + Sync>);

impl VfOpener {
    /// An opener calling `open`.
    pub fn new(
        open: impl Fn() -> Result<Box<dyn VfControl>, TrafficError> + Send + Sync + 'static,
    ) -> Self {
        VfOpener(Arc::new(open))
    }

    /// The host's rtnetlink VF control.
    pub fn netlink() -> Self {
        VfOpener::new(|| Ok(Box::new(NetlinkVfControl::new()?)))
    }

    /// Opens one.
    pub fn open(&self) -> Result<Box<dyn VfControl>, TrafficError> {
        (self.0)()
    }
}

impl fmt::Debug for VfOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VfOpener")
    }
}

/// Everything of the host the daemon reads or drives.
pub struct Backends {
    /// The cpufreq files, under the sysfs root.
    pub sysfs: Arc<dyn SysfsIo>,
    /// Per-MAC packet counters; none: TRAFFIC policies wait.
    pub traffic: Option<Box<dyn TrafficCounters>>,
    /// Per-pCPU branch counters; none: BRANCH_RATIO policies are refused.
    pub branch: Option<Box<dyn BranchCounters>>,
    /// The VF control of `show-vfs` and `set-vf-mac`.
    pub vf: VfOpener,
    /// The wall clock of TIME policies.
    pub clock: Arc<dyn Clock>,
    /// The time zone of TIME policies that name none.
    pub time_zone: jiff::tz::TimeZone,
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backends")
            .field("traffic", &self.traffic.is_some())
            .field("branch", &self.branch.is_some())
            .field("clock", &self.clock)
            .field("time_zone", &self.time_zone)
            .finish_non_exhaustive()
    }
}

impl Backends {
    /// The host's: `sysfs` and `traffic` as given (the binary opens them),
    /// perf branch counters if the PMU has them, rtnetlink VF control, the
    /// system clock and time zone.
    pub fn host(sysfs: Arc<dyn SysfsIo>, traffic: Option<Box<dyn TrafficCounters>>) -> Self {
        Backends {
            sysfs,
            traffic,
            branch: host_branch_counters(),
            vf: VfOpener::netlink(),
            clock: Arc::new(SystemClock),
            time_zone: jiff::tz::TimeZone::system(),
        }
    }

    /// [`Backends::host`] with the host's traffic counters for `config`.
    pub fn host_for(config: &Config, sysfs: Arc<dyn SysfsIo>) -> Self {
        Backends::host(sysfs, crate::run::host_traffic_counters(config))
    }
}

/// The host's branch counters, if its PMU offers them (the reason logged
/// when it does not).
fn host_branch_counters() -> Option<Box<dyn BranchCounters>> {
    match crate::branch::detect() {
        Ok(()) => Some(Box::new(crate::branch::perf::PerfBranchCounters::new())),
        Err(e) => {
            warn!(error = %e, "no hardware branch counters: BRANCH_RATIO policies will be refused");
            None
        }
    }
}

#[cfg(any(test, feature = "test-utils"))]
pub use fake::{FakeClock, FakeVfControl};

#[cfg(any(test, feature = "test-utils"))]
mod fake {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use vmpower_proto::MacAddr;

    use super::{Backends, Clock, VfOpener};
    use crate::traffic::{TrafficError, VfControl, VfEntry};

    /// A wall clock a test sets; between sets it runs with tokio's clock
    /// (so paused time stops it and `advance` moves it).
    #[derive(Debug, Clone)]
    pub struct FakeClock {
        at: Arc<Mutex<(jiff::Timestamp, tokio::time::Instant)>>,
    }

    impl FakeClock {
        /// A clock reading `wall` now.
        pub fn at(wall: jiff::Timestamp) -> Self {
            FakeClock {
                at: Arc::new(Mutex::new((wall, tokio::time::Instant::now()))),
            }
        }

        /// Sets it to read `wall` now.
        pub fn set(&self, wall: jiff::Timestamp) {
            *self.at.lock().unwrap_or_else(PoisonError::into_inner) =
                (wall, tokio::time::Instant::now());
        }
    }

    impl Clock for FakeClock {
        fn wall(&self) -> jiff::Timestamp {
            let (wall, since) = *self.at.lock().unwrap_or_else(PoisonError::into_inner);
            let elapsed = jiff::SignedDuration::try_from(since.elapsed()).unwrap_or_default();
            wall.checked_add(elapsed).unwrap_or(wall)
        }
    }

    /// PFs and their VFs a test declares; every opener's control shares
    /// them, so a MAC set through the control API is seen by the test.
    #[derive(Debug, Clone, Default)]
    pub struct FakeVfControl {
        pfs: Arc<Mutex<BTreeMap<String, Vec<VfEntry>>>>,
    }

    impl FakeVfControl {
        /// No PF.
        pub fn new() -> Self {
            FakeVfControl::default()
        }

        /// Declares `pf` with `vfs`.
        pub fn add_pf(&self, pf: &str, vfs: Vec<VfEntry>) {
            self.lock().insert(pf.to_owned(), vfs);
        }

        /// The VFs of `pf` now.
        pub fn vfs(&self, pf: &str) -> Vec<VfEntry> {
            self.lock().get(pf).cloned().unwrap_or_default()
        }

        /// An opener handing out this control.
        pub fn opener(&self) -> VfOpener {
            let control = self.clone();
            VfOpener::new(move || Ok(Box::new(control.clone())))
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<VfEntry>>> {
            self.pfs.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl VfControl for FakeVfControl {
        fn list_vfs(&mut self, pf: &str) -> Result<Vec<VfEntry>, TrafficError> {
            self.lock()
                .get(pf)
                .cloned()
                .ok_or_else(|| TrafficError::NoSuchDevice {
                    ifname: pf.to_owned(),
                })
        }

        fn set_vf_mac(&mut self, pf: &str, vf: u32, mac: MacAddr) -> Result<(), TrafficError> {
            let mut pfs = self.lock();
            let vfs = pfs.get_mut(pf).ok_or_else(|| TrafficError::NoSuchDevice {
                ifname: pf.to_owned(),
            })?;
            let entry = vfs.iter_mut().find(|e| e.vf == vf);
            let entry = entry.ok_or_else(|| TrafficError::NoSuchVf {
                pf: pf.to_owned(),
                vf,
            })?;
            entry.mac = mac;
            Ok(())
        }
    }

    impl Backends {
        /// Nothing of the host: `sysfs` (a fake tree), no traffic or branch
        /// counters, a [`FakeVfControl`] with no PF, a [`FakeClock`] at
        /// `wall`, UTC.
        pub fn fake(sysfs: Arc<dyn vmpower_cpufreq::SysfsIo>, wall: jiff::Timestamp) -> Self {
            Backends {
                sysfs,
                traffic: None,
                branch: None,
                vf: FakeVfControl::new().opener(),
                clock: Arc::new(FakeClock::at(wall)),
                time_zone: jiff::tz::TimeZone::UTC,
            }
        }
    }
}

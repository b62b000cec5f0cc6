//! BRANCH_RATIO's input: per physical CPU, branch misses over branches in
//! each sampling interval, read from the hardware counters through
//! `perf_event_open` (no msr module needed).
//!
//! [`BranchCounters`] is the source of cumulative counts: [`perf`] reads
//! the real PMU, `fake` (tests, feature `test-utils`) plays a recorded
//! series. [`run_branch`] is the sampler loop; [`BranchRates`] turns
//! readings into ratios; [`thresholds`] parses the per-core thresholds.
//!
//! ## Behavior
//! - Detection ([`detect`], at each start by
//!   [`crate::backends::Backends::host`]) opens the counters for real: where the kernel
//!   offers no hardware PMU (as on virtual machines: ENOENT/EOPNOTSUPP) or
//!   the daemon may not count CPU-wide (EACCES), BRANCH_RATIO policies
//!   are refused with the engine's `no_branch_counters` reason, and the
//!   start-up log says which error the kernel gave.
//! - The loop sleeps while no BRANCH_RATIO policy exists, and wakes when
//!   policies change; otherwise every interval it samples exactly the
//!   pCPUs `Engine::branch_cpus` names and feeds `Engine::branch_sample`.
//! - A pCPU whose counters cannot be read is logged once (until it reads
//!   again) and not fed: its level stays where it was.
//!
//! ## Limitations
//! Counters are read on the runtime thread: one `read` per sampled pCPU,
//! microseconds each, so no blocking task is needed.

pub mod perf;
pub mod thresholds;

#[cfg(any(test, feature = "test-utils"))]
pub mod fake;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::{debug, warn};
use vmpower_cpufreq::CpuId;

use crate::SharedCore;

/// Cumulative counts of one pCPU since its counters were opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BranchReading {
    /// Branch instructions retired.
    pub branches: u64,
    /// Branches mispredicted.
    pub misses: u64,
}

/// Why a pCPU's branch counters are not available.
#[derive(Debug, thiserror::Error)]
pub enum BranchError {
    /// `perf_event_open` refused the event (no PMU, no permission).
    #[error("perf_event_open({event}) on CPU {cpu}: {source}")]
    Open {
        /// The pCPU.
        cpu: CpuId,
        /// The event (`branch-instructions` or `branch-misses`).
        event: &'static str,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// The opened counters could not be enabled or read.
    #[error("reading the branch counters of CPU {cpu}: {source}")]
    Read {
        /// The pCPU.
        cpu: CpuId,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// A source of per-pCPU branch counts.
pub trait BranchCounters: Send {
    /// The cumulative counts of each of `cpus` (one entry per CPU asked
    /// for). Counters of pCPUs no longer asked for may be released.
    fn sample(
        &mut self,
        cpus: &BTreeSet<CpuId>,
    ) -> BTreeMap<CpuId, Result<BranchReading, BranchError>>;
}

/// Whether this host can serve BRANCH_RATIO policies, and why not.
pub fn detect() -> Result<(), BranchError> {
    perf::probe()
}

/// The ratio of misses to branches between two readings: `None` when the
/// counters went backwards (reopened) or no branch was retired.
pub fn ratio(prev: BranchReading, cur: BranchReading) -> Option<f64> {
    let branches = cur.branches.checked_sub(prev.branches)?;
    let misses = cur.misses.checked_sub(prev.misses)?;
    if branches == 0 {
        return None;
    }
    Some((misses as f64 / branches as f64).min(1.0))
}

/// The last reading of each sampled pCPU, to turn readings into ratios.
#[derive(Debug, Clone, Default)]
pub struct BranchRates {
    last: BTreeMap<CpuId, BranchReading>,
}

impl BranchRates {
    /// Records `readings`; returns the ratio of each pCPU that has one
    /// (a pCPU's first reading only sets its base). pCPUs absent from
    /// `readings` are forgotten.
    pub fn update(&mut self, readings: &BTreeMap<CpuId, BranchReading>) -> Vec<(CpuId, f64)> {
        self.last.retain(|cpu, _| readings.contains_key(cpu));
        let mut out = Vec::new();
        for (&cpu, &cur) in readings {
            if let Some(r) = self.last.insert(cpu, cur).and_then(|prev| ratio(prev, cur)) {
                out.push((cpu, r));
            }
        }
        out
    }

    /// Forgets every pCPU.
    pub fn clear(&mut self) {
        self.last.clear();
    }
}

/// Samples the pCPUs of BRANCH_RATIO policies every `interval` and feeds
/// the engine; sleeps while there is none.
pub async fn run_branch(
    core: SharedCore,
    mut counters: Box<dyn BranchCounters>,
    interval: Duration,
) {
    let mut changed = crate::lock(&core).watch_policies();
    let mut rates = BranchRates::default();
    let mut failing = BTreeSet::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let cpus = crate::lock(&core).engine.branch_cpus();
        if cpus.is_empty() {
            rates.clear();
            failing.clear();
            counters.sample(&cpus); // releases every counter
            if changed.changed().await.is_err() {
                return;
            }
            tick.reset();
            continue;
        }
        tick.tick().await;
        let mut readings = BTreeMap::new();
        for (cpu, r) in counters.sample(&cpus) {
            match r {
                Ok(reading) => {
                    failing.remove(&cpu);
                    readings.insert(cpu, reading);
                }
                Err(e) if failing.insert(cpu) => warn!(error = %e, "branch sampling failed"),
                Err(e) => debug!(error = %e, "branch sampling still failing"),
            }
        }
        let ratios = rates.update(&readings);
        let mut core = crate::lock(&core);
        let now = core.now();
        for (cpu, r) in ratios {
            core.stats.policy_evaluated("branch_ratio", 1);
            let actions = core.engine.branch_sample(cpu, r, now);
            core.execute(&actions);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(branches: u64, misses: u64) -> BranchReading {
        BranchReading { branches, misses }
    }

    #[test]
    fn ratios_come_from_deltas() {
        assert_eq!(ratio(at(100, 1), at(1100, 21)), Some(0.02));
        assert_eq!(ratio(at(100, 1), at(100, 1)), None, "no branch retired");
        assert_eq!(ratio(at(500, 5), at(10, 0)), None, "counters reopened");
        assert_eq!(ratio(at(0, 0), at(10, 50)), Some(1.0), "clamped");
    }

    #[test]
    fn rates_need_two_readings_and_forget_unsampled_cpus() {
        let mut rates = BranchRates::default();
        let first = BTreeMap::from([(CpuId(1), at(1000, 10)), (CpuId(2), at(0, 0))]);
        assert!(rates.update(&first).is_empty());
        let second = BTreeMap::from([(CpuId(1), at(2000, 60))]);
        assert_eq!(rates.update(&second), vec![(CpuId(1), 0.05)]);
        // CPU 2 was forgotten: its next reading is a new base.
        let third = BTreeMap::from([(CpuId(1), at(3000, 61)), (CpuId(2), at(900, 90))]);
        assert_eq!(rates.update(&third), vec![(CpuId(1), 0.001)]);
    }
}

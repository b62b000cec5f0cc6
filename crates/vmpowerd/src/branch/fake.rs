//! Recorded branch counters for tests: each pCPU plays a series of
//! per-interval `(branches, misses)` deltas, one per sample.
//!
//! ## Behavior
//! - The fake is a cheap handle (`Clone` shares the series), so a test
//!   keeps one and gives the daemon the other.
//! - Each sample of a pCPU consumes its next recorded interval and
//!   returns the running total (from zero): the first interval only sets
//!   the base the sampler measures from. Once the series is used up the
//!   totals stop moving, which the sampler reads as "no new information".
//! - A pCPU with no series at all answers an `Open` error, as a host
//!   without a PMU would.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use vmpower_cpufreq::CpuId;

use super::{BranchCounters, BranchError, BranchReading};

#[derive(Debug, Default)]
struct Inner {
    queued: BTreeMap<CpuId, VecDeque<BranchReading>>,
    totals: BTreeMap<CpuId, BranchReading>,
    samples: usize,
    last_asked: BTreeSet<CpuId>,
}

/// Branch counters that replay recorded series.
#[derive(Debug, Clone, Default)]
pub struct FakeBranchCounters {
    inner: Arc<Mutex<Inner>>,
}

impl FakeBranchCounters {
    /// No pCPU has a series yet.
    pub fn new() -> Self {
        FakeBranchCounters::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends intervals of `(branches, misses)` to `cpu`'s series.
    pub fn record(&self, cpu: CpuId, intervals: &[(u64, u64)]) {
        let mut inner = self.inner();
        inner.totals.entry(cpu).or_default();
        inner.queued.entry(cpu).or_default().extend(
            intervals
                .iter()
                .map(|&(branches, misses)| BranchReading { branches, misses }),
        );
    }

    /// Recorded intervals not yet sampled, over every pCPU.
    pub fn remaining(&self) -> usize {
        self.inner().queued.values().map(VecDeque::len).sum()
    }

    /// How many times [`BranchCounters::sample`] was called.
    pub fn samples(&self) -> usize {
        self.inner().samples
    }

    /// The pCPUs the last sample asked for.
    pub fn last_asked(&self) -> BTreeSet<CpuId> {
        self.inner().last_asked.clone()
    }
}

impl BranchCounters for FakeBranchCounters {
    fn sample(
        &mut self,
        cpus: &BTreeSet<CpuId>,
    ) -> BTreeMap<CpuId, Result<BranchReading, BranchError>> {
        let mut inner = self.inner();
        inner.samples += 1;
        inner.last_asked.clone_from(cpus);
        let mut out = BTreeMap::new();
        for &cpu in cpus {
            let Some(total) = inner.totals.get(&cpu).copied() else {
                let source = std::io::Error::from_raw_os_error(2); // ENOENT
                let event = "branch-instructions";
                out.insert(cpu, Err(BranchError::Open { cpu, event, source }));
                continue;
            };
            let next = inner.queued.get_mut(&cpu).and_then(VecDeque::pop_front);
            let total = match next {
                Some(d) => BranchReading {
                    branches: total.branches.saturating_add(d.branches),
                    misses: total.misses.saturating_add(d.misses),
                },
                None => total,
            };
            inner.totals.insert(cpu, total);
            out.insert(cpu, Ok(total));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::branch::BranchRates;

    #[test]
    fn a_recorded_series_replays_as_ratios() {
        let fake = FakeBranchCounters::new();
        fake.record(CpuId(1), &[(0, 0)]);
        fake.record(CpuId(1), &[(10_000, 20), (10_000, 400)]);
        assert_eq!(fake.remaining(), 3);
        let mut sampler: Box<dyn BranchCounters> = Box::new(fake.clone());
        let mut rates = BranchRates::default();
        let cpus = BTreeSet::from([CpuId(1), CpuId(2)]);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let got = sampler.sample(&cpus);
            assert!(matches!(got[&CpuId(2)], Err(BranchError::Open { .. })));
            let ok = got
                .into_iter()
                .filter_map(|(c, r)| Some((c, r.ok()?)))
                .collect();
            seen.extend(rates.update(&ok));
        }
        assert_eq!(seen, vec![(CpuId(1), 0.002), (CpuId(1), 0.04)]);
        assert_eq!(fake.remaining(), 0);
        assert_eq!(fake.samples(), 4);
        assert_eq!(fake.last_asked(), cpus);
    }
}

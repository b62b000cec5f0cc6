//! Branch counters of physical CPUs through `perf_event_open`.
//!
//! For each sampled pCPU a counter group is opened with `pid = -1` and
//! `cpu = N` (every task on that CPU): `PERF_COUNT_HW_BRANCH_INSTRUCTIONS`
//! is the leader and `PERF_COUNT_HW_BRANCH_MISSES` its member, so both are
//! scheduled on the PMU together and one `read` gives both values.
//!
//! ## Behavior
//! - A pCPU's group is opened the first time it is sampled and closed as
//!   soon as it is no longer asked for: an idle daemon holds no counters.
//! - Readings are cumulative since the group was opened; the sampler
//!   computes deltas (see [`super::BranchRates`]).
//! - [`probe`] is the detection: it opens (and drops) a group on CPU 0.
//!   Where the kernel offers no hardware PMU (virtual machines), or the
//!   daemon may not count CPU-wide events (`perf_event_paranoid`, no
//!   `CAP_PERFMON`), the open fails and the error names the cause.
//!
//! ## Limitations
//! Only user-space branches are counted (the crate's default excludes the
//! kernel and the hypervisor), which is what a polling guest executes.
//! When the PMU multiplexes more groups than it has counters, the values
//! are the counts while the group ran; the ratio is unaffected.

use std::collections::{BTreeMap, BTreeSet};

use perf_event::events::Hardware;
use perf_event::{Builder, Counter, ReadFormat};
use vmpower_cpufreq::CpuId;

use super::{BranchCounters, BranchError, BranchReading};

/// One pCPU's counter group.
#[derive(Debug)]
struct CpuGroup {
    /// `PERF_COUNT_HW_BRANCH_INSTRUCTIONS`, the group leader.
    branches: Counter,
    /// `PERF_COUNT_HW_BRANCH_MISSES`.
    misses: Counter,
}

impl CpuGroup {
    /// Opens and enables the group of `cpu`.
    fn open(cpu: CpuId) -> Result<Self, BranchError> {
        let index = usize::try_from(cpu.0).map_err(|_| BranchError::Open {
            cpu,
            event: "branch-instructions",
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        let mut branches = Builder::new(Hardware::BRANCH_INSTRUCTIONS)
            .any_pid()
            .one_cpu(index)
            .read_format(ReadFormat::GROUP | ReadFormat::ID)
            .build()
            .map_err(|source| BranchError::Open {
                cpu,
                event: "branch-instructions",
                source,
            })?;
        let misses = Builder::new(Hardware::BRANCH_MISSES)
            .any_pid()
            .one_cpu(index)
            .build_with_group(&mut branches)
            .map_err(|source| BranchError::Open {
                cpu,
                event: "branch-misses",
                source,
            })?;
        branches
            .enable_group()
            .map_err(|source| BranchError::Read { cpu, source })?;
        Ok(CpuGroup { branches, misses })
    }

    /// Both counts since the group was opened.
    fn read(&mut self, cpu: CpuId) -> Result<BranchReading, BranchError> {
        let data = self
            .branches
            .read_group()
            .map_err(|source| BranchError::Read { cpu, source })?;
        let value = |c: &Counter| data.get(c).map(|e| e.value());
        match (value(&self.branches), value(&self.misses)) {
            (Some(branches), Some(misses)) => Ok(BranchReading { branches, misses }),
            _ => Err(BranchError::Read {
                cpu,
                source: std::io::Error::other("a counter is missing from the group read"),
            }),
        }
    }
}

/// The host's branch counters, one perf group per sampled pCPU.
#[derive(Debug, Default)]
pub struct PerfBranchCounters {
    groups: BTreeMap<CpuId, CpuGroup>,
}

impl PerfBranchCounters {
    /// No counter is open until a pCPU is sampled.
    pub fn new() -> Self {
        PerfBranchCounters::default()
    }

    /// The pCPUs whose groups are open.
    pub fn open_cpus(&self) -> BTreeSet<CpuId> {
        self.groups.keys().copied().collect()
    }
}

impl BranchCounters for PerfBranchCounters {
    fn sample(
        &mut self,
        cpus: &BTreeSet<CpuId>,
    ) -> BTreeMap<CpuId, Result<BranchReading, BranchError>> {
        self.groups.retain(|cpu, _| cpus.contains(cpu));
        let mut out = BTreeMap::new();
        for &cpu in cpus {
            let group = match self.groups.entry(cpu) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => match CpuGroup::open(cpu) {
                    Ok(g) => v.insert(g),
                    Err(e) => {
                        out.insert(cpu, Err(e));
                        continue;
                    }
                },
            };
            out.insert(cpu, group.read(cpu));
        }
        out
    }
}

/// Whether this host can count branches per pCPU: opens a group on CPU 0
/// and drops it. The error says why not (no PMU, no permission).
pub fn probe() -> Result<(), BranchError> {
    let mut group = CpuGroup::open(CpuId(0))?;
    group.read(CpuId(0)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_and_sampling_agree() {
        // Either this host has the counters (sampling CPU 0 then gives a
        // reading) or it does not (and sampling gives the same kind of
        // open error as the probe): never one without the other.
        let mut counters = PerfBranchCounters::new();
        let cpus = BTreeSet::from([CpuId(0)]);
        let got = counters.sample(&cpus).remove(&CpuId(0)).unwrap();
        match probe() {
            Ok(()) => {
                assert!(got.is_ok(), "{got:?}");
                assert_eq!(counters.open_cpus(), cpus);
            }
            Err(e) => {
                assert!(matches!(e, BranchError::Open { .. }), "{e}");
                assert!(matches!(got, Err(BranchError::Open { .. })), "{got:?}");
                assert!(counters.open_cpus().is_empty());
            }
        }
        counters.sample(&BTreeSet::new());
        assert!(counters.open_cpus().is_empty(), "unsampled groups close");
    }
}

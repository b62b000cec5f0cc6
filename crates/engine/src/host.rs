//! The host's controllable CPUs as the engine sees them: each pCPU's
//! frequency table, the frequency domain it belongs to, what it runs at,
//! and whether the engine has taken it over.
//!
//! A frequency domain (cpufreq's `related_cpus`) moves as one: the engine
//! decides per domain and names the domain's first CPU (its *leader*) in
//! the change it asks for.

use vmpower_types::levels::{FreqTable, LevelState, TableShape};
use vmpower_types::{CpuId, Khz};

use crate::cpumap::CpuMap;

/// What the daemon tells the engine about one controllable pCPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcpuSpec {
    /// The CPU.
    pub cpu: CpuId,
    /// Its frequency table (shared by its domain).
    pub table: FreqTable,
    /// What it runs at now (before any change of ours).
    pub current: Khz,
    /// Every CPU of its frequency domain, itself included.
    pub domain: Vec<CpuId>,
    /// A higher-priority core (e.g. Intel SST-BF), reported in CAPS replies.
    pub high_priority: bool,
    /// ENABLE_TURBO also moves the core to max (the turbo frequency), as
    /// DPDK's acpi-cpufreq, amd-pstate and cppc backends do; DPDK's
    /// intel_pstate backend only sets the flag
    /// ([`vmpower_types::Driver::enable_turbo_moves_to_max`]).
    pub enable_turbo_moves_to_max: bool,
}

/// One frequency domain.
#[derive(Debug, Clone)]
pub(crate) struct Domain {
    pub table: FreqTable,
    /// Shared with the [`crate::Action`]s that name the domain.
    pub cpus: std::sync::Arc<[CpuId]>,
    /// The index the hardware is at, as far as we know.
    pub known_index: usize,
    /// `Some` once we have taken the domain over: the index we set.
    pub applied: Option<usize>,
    /// A write failed since the last arbitration: the next request must
    /// re-arbitrate even if no want changed.
    pub dirty: bool,
    /// The operator's level, which overrides every VM's until released.
    pub operator: Option<vmpower_types::levels::LevelState>,
    /// See [`PcpuSpec::enable_turbo_moves_to_max`].
    pub enable_turbo_moves_to_max: bool,
    /// Given up to another writer of its cpufreq files
    /// ([`crate::Engine::yield_pcpu`]): nothing is set on it and requests
    /// for it are refused until the operator takes it back.
    pub yielded: bool,
}

/// One controllable pCPU: what the hot path needs without reading its
/// domain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pcpu {
    /// Its domain's leader.
    pub leader: CpuId,
    /// Flagged high-priority.
    pub high_priority: bool,
    /// Its domain's table's shape (kept equal to it by [`Host::add`]).
    pub shape: TableShape,
}

/// Every controllable pCPU and its domain.
#[derive(Debug, Clone, Default)]
pub(crate) struct Host {
    /// pCPU → its leader, flag and table shape.
    pub pcpus: CpuMap<Pcpu>,
    /// Domain leader → domain.
    pub domains: CpuMap<Domain>,
}

impl Host {
    /// Adds (or replaces) a pCPU and its domain.
    pub fn add(&mut self, spec: PcpuSpec) {
        let mut cpus = spec.domain.clone();
        if !cpus.contains(&spec.cpu) {
            cpus.push(spec.cpu);
        }
        cpus.sort();
        cpus.dedup();
        let leader = cpus[0];
        let cpus: std::sync::Arc<[CpuId]> = cpus.into();
        for cpu in cpus.iter() {
            let prio = if *cpu == spec.cpu {
                spec.high_priority
            } else {
                self.pcpus.get(cpu).is_some_and(|p| p.high_priority)
            };
            self.pcpus.insert(
                *cpu,
                Pcpu {
                    leader,
                    high_priority: prio,
                    shape: spec.table.shape(),
                },
            );
        }
        let known_index = spec.table.nearest_index(spec.current);
        let entry = self.domains.get_or_insert_with(leader, || Domain {
            table: spec.table.clone(),
            cpus: cpus.clone(),
            known_index,
            applied: None,
            dirty: false,
            yielded: false,
            operator: None,
            enable_turbo_moves_to_max: spec.enable_turbo_moves_to_max,
        });
        entry.enable_turbo_moves_to_max = spec.enable_turbo_moves_to_max;
        if entry.table != spec.table {
            // A new table (driver reloaded, CPU back online): indexes into
            // the old one mean nothing. The hardware is where `current`
            // says; what we had set is taken to be there, so the next
            // arbitration writes exactly when its choice differs.
            entry.known_index = known_index;
            if entry.applied.is_some() {
                entry.applied = Some(known_index);
            }
            entry.operator = entry
                .operator
                .map(|s| LevelState::with_turbo(&spec.table, s.index(), s.turbo_enabled()));
            entry.dirty = true;
        }
        entry.table = spec.table;
        entry.cpus = cpus;
    }

    /// The leader of `cpu`'s domain, if the pCPU is controllable.
    pub fn leader(&self, cpu: CpuId) -> Option<CpuId> {
        self.pcpus.get(&cpu).map(|p| p.leader)
    }

    /// Whether the domain led by `leader` must be re-arbitrated after a
    /// failed write.
    pub fn dirty(&self, leader: CpuId) -> bool {
        self.domains.get(&leader).is_some_and(|d| d.dirty)
    }

    /// The domain of `cpu`.
    pub fn domain_of(&self, cpu: CpuId) -> Option<&Domain> {
        self.leader(cpu).and_then(|l| self.domains.get(&l))
    }

    /// What `cpu` runs at, as far as the engine knows.
    pub fn known_khz(&self, cpu: CpuId) -> Option<Khz> {
        let d = self.domain_of(cpu)?;
        d.table.get(d.known_index)
    }

    /// Whether `cpu` is flagged high-priority.
    pub fn high_priority(&self, cpu: CpuId) -> bool {
        self.pcpus.get(&cpu).is_some_and(|p| p.high_priority)
    }
}

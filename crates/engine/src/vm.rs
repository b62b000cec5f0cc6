//! What the engine knows of one VM: the operator's settings, where each
//! vCPU runs, and the level the VM wants for each core it asked about.

use std::collections::{BTreeMap, BTreeSet};

use vmpower_cpufreq::CpuId;
use vmpower_cpufreq::levels::{FreqTable, Level, LevelState, level_index};

use crate::ids::Vcpu;
use crate::settings::VmSettings;

/// A core a VM asked about: one of its vCPUs (wherever it runs), or a pCPU
/// by number (physical-core requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CoreKey {
    /// A vCPU: its wanted level follows it when it is re-pinned.
    Vcpu(Vcpu),
    /// A pCPU named directly.
    Pcpu(CpuId),
}

/// Where a VM's vCPUs run: the number of vCPUs and each one's affinity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// How many vCPUs the VM has.
    pub vcpus: usize,
    /// Each vCPU's CPU affinity; a vCPU missing here is not placed yet.
    pub affinity: BTreeMap<Vcpu, BTreeSet<CpuId>>,
}

impl Placement {
    /// A placement where vCPU `i` is pinned to `pcpus[i]`.
    pub fn pinned(pcpus: &[u32]) -> Self {
        let affinity = (0..)
            .zip(pcpus)
            .map(|(v, p)| (v, BTreeSet::from([CpuId(*p)])))
            .collect();
        Placement {
            vcpus: pcpus.len(),
            affinity,
        }
    }

    /// Every pCPU any vCPU may run on.
    pub fn all_pcpus(&self) -> BTreeSet<CpuId> {
        self.affinity.values().flatten().copied().collect()
    }
}

/// What a VM wants of one core: its own direct requests' level, or its
/// policy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Moved by the VM's direct requests (librte_power's semantics).
    Direct(LevelState),
    /// Decided by the VM's policy.
    Policy(Level),
}

impl Want {
    /// The index this want means in `table`.
    pub fn index(&self, table: &FreqTable) -> usize {
        match self {
            Want::Direct(state) => state.index().min(table.last_index()),
            Want::Policy(level) => level_index(table, table.turbo_available(), *level)
                .expect("named levels are always in range"),
        }
    }
}

/// One VM.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vm {
    pub settings: VmSettings,
    /// Where its vCPUs run; changed only through [`Vm::place`], which
    /// keeps `on_pcpu` in step.
    pub placement: Placement,
    /// The inverse of the placement: each pCPU → the vCPUs that may run
    /// on it, so a vote is found without scanning every want.
    on_pcpu: BTreeMap<CpuId, Vec<Vcpu>>,
    /// The level the VM wants, per core.
    pub wants: BTreeMap<CoreKey, Want>,
    /// Its policy, if it sent one.
    pub policy: Option<crate::policy::ActivePolicy>,
}

impl Vm {
    /// Records a new placement (and its inverse).
    pub fn place(&mut self, placement: Placement) {
        self.on_pcpu.clear();
        for (vcpu, cpus) in &placement.affinity {
            for cpu in cpus {
                self.on_pcpu.entry(*cpu).or_default().push(*vcpu);
            }
        }
        self.placement = placement;
    }

    /// The VM's vote on `cpu` under `table`: the highest level (lowest
    /// index) of the wants that govern `cpu` (those of the vCPUs placed
    /// on it and the pCPU's own), `None` when it asked nothing of it.
    /// The same as scanning every want with [`Vm::governs`].
    pub fn explicit_index(&self, cpu: CpuId, table: &FreqTable) -> Option<usize> {
        let vcpus = self.on_pcpu.get(&cpu).map_or(&[][..], Vec::as_slice);
        // `Pcpu` keys sort after every `Vcpu` key: look one up only if
        // there is any (physical-core wants are rare).
        let pcpu_wants = self
            .wants
            .last_key_value()
            .is_some_and(|(k, _)| matches!(k, CoreKey::Pcpu(_)));
        vcpus
            .iter()
            .filter_map(|v| self.wants.get(&CoreKey::Vcpu(*v)))
            .chain(
                pcpu_wants
                    .then(|| self.wants.get(&CoreKey::Pcpu(cpu)))
                    .flatten(),
            )
            .map(|w| w.index(table))
            .min()
    }

    /// The pCPUs a want on `key` governs, under the current placement.
    pub fn targets(&self, key: CoreKey) -> BTreeSet<CpuId> {
        match key {
            CoreKey::Vcpu(v) => self.placement.affinity.get(&v).cloned().unwrap_or_default(),
            CoreKey::Pcpu(p) => BTreeSet::from([p]),
        }
    }

    /// Whether a want on `key` governs `cpu` (no allocation: the hot path).
    pub fn governs(&self, key: CoreKey, cpu: CpuId) -> bool {
        match key {
            CoreKey::Vcpu(v) => self
                .placement
                .affinity
                .get(&v)
                .is_some_and(|a| a.contains(&cpu)),
            CoreKey::Pcpu(p) => p == cpu,
        }
    }

    /// Every pCPU the VM uses or asked about.
    pub fn footprint(&self) -> BTreeSet<CpuId> {
        let mut cpus = self.placement.all_pcpus();
        cpus.extend(self.wants.keys().flat_map(|k| self.targets(*k)));
        if let Some(p) = &self.policy {
            cpus.extend(p.keys.iter().flat_map(|k| self.targets(*k)));
        }
        cpus
    }
}

/// Calls `f` with every pCPU `key` stands for under `placement` (the
/// vCPU's affinity, or the pCPU itself), without allocating.
pub(crate) fn for_each_target(placement: &Placement, key: CoreKey, mut f: impl FnMut(CpuId)) {
    match key {
        CoreKey::Vcpu(v) => {
            if let Some(cpus) = placement.affinity.get(&v) {
                cpus.iter().copied().for_each(f);
            }
        }
        CoreKey::Pcpu(p) => f(p),
    }
}

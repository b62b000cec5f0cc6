//! What the engine knows of one VM: the operator's settings, where each
//! vCPU runs, and the level the VM wants for each core it asked about.

use std::collections::{BTreeMap, BTreeSet};

use smallvec::SmallVec;
use vmpower_cpufreq::CpuId;
use vmpower_cpufreq::levels::{FreqTable, Level, LevelState, TableShape, shape_level_index};

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
    /// Decided by the busyness controller from the guest's reports
    /// ([`crate::busy`]).
    Busy(Level),
}

impl Want {
    /// The index this want means in a table of this shape.
    #[inline]
    pub fn index_in(&self, shape: TableShape) -> usize {
        match self {
            Want::Direct(state) => state.index().min(usize::from(shape.len).saturating_sub(1)),
            Want::Policy(level) => shape_level_index(shape, shape.turbo, *level)
                .expect("named levels are always in range"),
            // Never turbo; an index past a shorter table is its last.
            Want::Busy(level) => {
                let level = match *level {
                    Level::Index(i) => Level::Index(i.min(usize::from(shape.len) - 1)),
                    other => other,
                };
                shape_level_index(shape, false, level).expect("clamped into range")
            }
        }
    }
}

/// One VM.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vm {
    pub settings: VmSettings,
    /// Where its vCPUs run; changed only through [`Vm::place`], which
    /// keeps `index` in step.
    pub placement: Placement,
    /// Flat views of the placement for the hot path.
    pub index: PlacementIndex,
    /// The level the VM wants, per core.
    pub wants: crate::wants::Wants,
    /// Its policy, if it sent one.
    pub policy: Option<crate::policy::ActivePolicy>,
    /// Its busyness reports and controller state, once it sent one.
    pub busy: Option<crate::busy::BusyState>,
}

impl Vm {
    /// Records a new placement (and its inverse).
    pub fn place(&mut self, placement: Placement) {
        self.index = PlacementIndex::new(&placement);
        self.placement = placement;
    }

    /// The VM's vote on `cpu` under `table`: the highest level (lowest
    /// index) of the wants that govern `cpu` (those of the vCPUs placed
    /// on it and the pCPU's own), `None` when it asked nothing of it.
    /// The same as scanning every want with [`Vm::governs`].
    pub fn explicit_index(&self, cpu: CpuId, table: &FreqTable) -> Option<u16> {
        vote_of(&self.index, &self.wants, cpu, table)
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
        cpus.extend(self.wants.keys().flat_map(|k| self.targets(k)));
        if let Some(p) = &self.policy {
            cpus.extend(p.keys.iter().flat_map(|k| self.targets(*k)));
        }
        cpus
    }
}

/// [`Vm::explicit_index`] from the VM's parts (for callers holding
/// another of its fields mutably).
pub(crate) fn vote_of(
    index: &PlacementIndex,
    wants: &crate::wants::Wants,
    cpu: CpuId,
    table: &FreqTable,
) -> Option<u16> {
    vote_on(index.pairs_on(cpu), wants, cpu, table.shape())
}

/// The VM's vote on `cpu` when `on_cpu` are the (pCPU, vCPU) pairs of
/// its placement on `cpu`: the highest level (lowest index) of those
/// vCPUs' wants and the pCPU's own.
#[inline]
pub(crate) fn vote_on(
    on_cpu: &[(CpuId, Vcpu)],
    wants: &crate::wants::Wants,
    cpu: CpuId,
    shape: TableShape,
) -> Option<u16> {
    let mut best: Option<u16> = None;
    let mut take = |want: &Want| {
        // Below the table's length, which is a u16.
        let index = u16::try_from(want.index_in(shape)).unwrap_or(u16::MAX);
        if best.is_none_or(|b| index < b) {
            best = Some(index);
        }
    };
    for (_, vcpu) in on_cpu {
        if let Some(want) = wants.get(&CoreKey::Vcpu(*vcpu)) {
            take(want);
        }
    }
    if let Some(want) = wants.pcpu(cpu) {
        take(want);
    }
    best
}

/// A placement as two sorted lists of (vCPU, pCPU) pairs, one per
/// direction: one allocation each instead of a set per vCPU, so the hot
/// path finds a key's pCPUs and a pCPU's vCPUs in contiguous memory.
/// Built only from a [`Placement`] ([`Vm::place`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct PlacementIndex {
    /// (vCPU, pCPU), sorted.
    by_vcpu: SmallVec<[(Vcpu, CpuId); INLINE]>,
    /// (pCPU, vCPU), sorted.
    by_pcpu: SmallVec<[(CpuId, Vcpu); INLINE]>,
    /// Each pCPU used, ascending.
    groups: SmallVec<[PcpuGroup; INLINE]>,
}

/// Pairs and pCPUs a placement index holds without allocating.
const INLINE: usize = 8;

/// One pCPU a placement uses.
#[derive(Debug, Clone)]
struct PcpuGroup {
    cpu: CpuId,
    /// The range of its pairs in `by_pcpu`.
    start: u32,
    end: u32,
    /// Where the VM's voter was last found in the pCPU's list
    /// ([`crate::votes::voter_at`]); `u32::MAX` when unknown.
    hint: u32,
}

impl PlacementIndex {
    fn new(placement: &Placement) -> Self {
        let by_vcpu: SmallVec<[(Vcpu, CpuId); INLINE]> = placement
            .affinity
            .iter()
            .flat_map(|(v, cpus)| cpus.iter().map(|c| (*v, *c)))
            .collect();
        let mut by_pcpu: SmallVec<[(CpuId, Vcpu); INLINE]> =
            by_vcpu.iter().map(|(v, c)| (*c, *v)).collect();
        by_pcpu.sort_unstable();
        let mut groups: SmallVec<[PcpuGroup; INLINE]> = SmallVec::new();
        for (i, (cpu, _)) in (0u32..).zip(&by_pcpu) {
            match groups.last_mut() {
                Some(g) if g.cpu == *cpu => g.end = i + 1,
                _ => groups.push(PcpuGroup {
                    cpu: *cpu,
                    start: i,
                    end: i + 1,
                    hint: u32::MAX,
                }),
            }
        }
        PlacementIndex {
            by_vcpu,
            by_pcpu,
            groups,
        }
    }

    /// Calls `f` with every pCPU `key` stands for (the vCPU's affinity in
    /// ascending order, or the pCPU itself), without allocating.
    pub fn for_each_target(&self, key: CoreKey, mut f: impl FnMut(CpuId)) {
        match key {
            CoreKey::Vcpu(v) => {
                let start = self.by_vcpu.partition_point(|(x, _)| *x < v);
                self.by_vcpu[start..]
                    .iter()
                    .take_while(|(x, _)| *x == v)
                    .for_each(|(_, c)| f(*c));
            }
            CoreKey::Pcpu(p) => f(p),
        }
    }

    /// The (pCPU, vCPU) pairs of `cpu`: the vCPUs that may run on it.
    pub fn pairs_on(&self, cpu: CpuId) -> &[(CpuId, Vcpu)] {
        let start = self.by_pcpu.partition_point(|(c, _)| *c < cpu);
        let len = self.by_pcpu[start..]
            .iter()
            .take_while(|(c, _)| *c == cpu)
            .count();
        &self.by_pcpu[start..start + len]
    }

    /// Calls `f` with each pCPU the placement uses, in ascending order:
    /// where the VM's voter was last found in its list (to read and
    /// update with [`crate::votes::voter_at`]), the pCPU and its (pCPU,
    /// vCPU) pairs.
    #[inline]
    pub fn for_each_pcpu(&mut self, mut f: impl FnMut(&mut u32, CpuId, &[(CpuId, Vcpu)])) {
        for g in &mut self.groups {
            let range = usize::try_from(g.start).expect("u32 fits usize")
                ..usize::try_from(g.end).expect("u32 fits usize");
            f(&mut g.hint, g.cpu, &self.by_pcpu[range]);
        }
    }

    /// Forgets where the VM's voters were (its footprint changed).
    pub fn forget_hints(&mut self) {
        for g in &mut self.groups {
            g.hint = u32::MAX;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placement_index_agrees_with_the_affinity() {
        let mut vm = Vm::default();
        let affinity = BTreeMap::from([
            (0, BTreeSet::from([CpuId(3)])),
            (1, BTreeSet::from([CpuId(1), CpuId(3)])),
            (4, BTreeSet::from([CpuId(0), CpuId(7), CpuId(2)])),
            (5, BTreeSet::new()),
        ]);
        vm.place(Placement { vcpus: 6, affinity });
        for v in 0..7 {
            let mut got = Vec::new();
            vm.index.for_each_target(CoreKey::Vcpu(v), |c| got.push(c));
            let want: Vec<CpuId> = vm.targets(CoreKey::Vcpu(v)).into_iter().collect();
            assert_eq!(got, want, "vCPU {v}");
        }
        let mut got = Vec::new();
        vm.index
            .for_each_target(CoreKey::Pcpu(CpuId(9)), |c| got.push(c));
        assert_eq!(got, [CpuId(9)]);
        for cpu in (0..9).map(CpuId) {
            let got: Vec<Vcpu> = vm.index.pairs_on(cpu).iter().map(|(_, v)| *v).collect();
            let want: Vec<Vcpu> = (0..7)
                .filter(|v| vm.governs(CoreKey::Vcpu(*v), cpu))
                .collect();
            assert_eq!(got, want, "{cpu}");
        }
        // Walking the pCPUs gives each used pCPU once, in order, with
        // the same pairs.
        let mut walked = Vec::new();
        let index = vm.index.clone();
        vm.index.for_each_pcpu(|hint, cpu, pairs| {
            assert_eq!(pairs, index.pairs_on(cpu));
            assert_eq!(*hint, u32::MAX, "no voter looked for yet");
            walked.push((cpu, pairs.to_vec()));
        });
        let walked: Vec<CpuId> = walked.into_iter().map(|(c, _)| c).collect();
        assert_eq!(
            walked,
            vm.placement.all_pcpus().into_iter().collect::<Vec<_>>()
        );
        // Re-placing replaces the index.
        vm.place(Placement::pinned(&[5]));
        assert!(vm.index.pairs_on(CpuId(3)).is_empty());
        assert_eq!(vm.index.pairs_on(CpuId(5)), [(CpuId(5), 0)]);
    }
}

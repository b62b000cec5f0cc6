//! The engine's per-pCPU votes: which VMs use (or asked about) each
//! pCPU and what each wants of it, cached so that arbitrating a domain
//! reads integers instead of looking every VM up by name and scanning
//! its wants against its placement.
//!
//! ## Invariants
//! - `users[cpu]` holds one [`Voter`] per VM whose footprint
//!   ([`Vm::footprint`]) contains `cpu`, sorted by VM name (arbitration
//!   breaks ties between equal wants in that order), and no empty list.
//! - Each voter's `explicit` equals `Engine::vote(vm, cpu)` now. Every
//!   change of a VM's wants or placement or of a pCPU's table updates it:
//!   `reindex` (footprint changes), `refresh_votes` (the slow paths; every
//!   `rearbitrate` refreshes the domains it arbitrates first), and the
//!   traffic tick's fast path, which updates the one VM's votes where its
//!   wants changed. Debug builds check the invariant before every
//!   arbitration.
//!
//! No I/O, no clock.

use std::collections::BTreeSet;

use vmpower_types::CpuId;

use crate::arbitrate::Voter;
use crate::engine::Engine;
use crate::ids::VmId;

/// Where `vm`'s voter is in `voters` (sorted by name), if there: a scan
/// by pointer (contiguous, no name read: cheaper than a search by name
/// up to a few hundred voters), else a search by name. Voters hold the
/// engine's own `VmId`s, which the daemon's samples are clones of.
pub(crate) fn voter_position(voters: &[Voter], vm: &VmId) -> Option<usize> {
    const SCAN: usize = 256;
    if voters.len() <= SCAN
        && let Some(i) = voters.iter().position(|v| v.vm.same(vm))
    {
        return Some(i);
    }
    voters.binary_search_by(|v| v.vm.cmp(vm)).ok()
}

/// `vm`'s position in `voters`, checking `hint` (where it was last
/// found) by pointer before searching, and updating it: the traffic tick
/// finds a voter in one load. A hint goes stale when another VM joins or
/// leaves the list; the check catches that and the search refreshes it.
#[inline]
pub(crate) fn voter_at(hint: &mut u32, voters: &[Voter], vm: &VmId) -> Option<usize> {
    if let Ok(i) = usize::try_from(*hint)
        && voters.get(i).is_some_and(|v| v.vm.same(vm))
    {
        return Some(i);
    }
    let i = voter_position(voters, vm)?;
    *hint = u32::try_from(i).unwrap_or(u32::MAX);
    Some(i)
}

impl Engine {
    pub(crate) fn reindex(&mut self, vm: &VmId) {
        let footprint = self.vms.get_mut(vm).map_or_else(BTreeSet::new, |v| {
            v.index.forget_hints();
            v.footprint()
        });
        for voters in self.users.values_mut() {
            voters.retain(|v| v.vm != *vm);
        }
        self.users.retain(|_, s| !s.is_empty());
        for cpu in footprint {
            let explicit = self.vote(vm, cpu);
            // The map's own name, so that ids cloned from it (the
            // daemon's samples) find their voter by pointer.
            let vm = self.vms.get_key_value(vm).map_or(vm, |(k, _)| k);
            let voters = self.users.get_or_insert_with(cpu, Vec::new);
            match voters.binary_search_by(|v| v.vm.cmp(vm)) {
                Ok(i) => voters[i].explicit = explicit,
                Err(i) => voters.insert(
                    i,
                    Voter {
                        vm: vm.clone(),
                        explicit,
                    },
                ),
            }
        }
    }

    pub(crate) fn unindex(&mut self, vm: &VmId, cpus: &BTreeSet<CpuId>) {
        for cpu in cpus {
            if let Some(voters) = self.users.get_mut(cpu) {
                voters.retain(|v| v.vm != *vm);
                if voters.is_empty() {
                    self.users.remove(cpu);
                }
            }
        }
    }

    /// `vm`'s vote on `cpu` as its wants and placement say now (`None`
    /// for an unknown VM or a pCPU that is not controllable).
    pub(crate) fn vote(&self, vm: &VmId, cpu: CpuId) -> Option<u16> {
        let table = &self.host.domain_of(cpu)?.table;
        self.vms.get(vm)?.explicit_index(cpu, table)
    }

    /// Re-reads every vote on `cpu` (the slow path: each VM by name).
    pub(crate) fn refresh_votes(&mut self, cpu: CpuId) {
        let Some(mut voters) = self.users.remove(&cpu) else {
            return;
        };
        voters.retain(|v| self.vms.contains_key(&v.vm));
        for voter in &mut voters {
            voter.explicit = self.vote(&voter.vm, cpu);
        }
        if !voters.is_empty() {
            self.users.insert(cpu, voters);
        }
    }

    /// Whether every cached vote on `cpu` is what its VM says now (for
    /// debug assertions).
    pub(crate) fn votes_fresh(&self, cpu: CpuId) -> bool {
        self.users.get(&cpu).is_none_or(|voters| {
            voters
                .iter()
                .all(|v| self.vms.contains_key(&v.vm) && v.explicit == self.vote(&v.vm, cpu))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use vmpower_proto::{
        CoreType, MacAddr, MacList, Policy, PolicyKind, Request, RequestBody, ScalingUnit,
        TrafficThresholds, VcpuList, VmName,
    };
    use vmpower_types::Khz;
    use vmpower_types::levels::FreqTable;

    use super::*;
    use crate::host::PcpuSpec;
    use crate::ids::ChannelId;
    use crate::policy::traffic::Hysteresis;
    use crate::policy::{PolicyExtensions, PolicySpec};
    use crate::settings::{EngineConfig, VmSettings};
    use crate::vm::Placement;

    const PCPUS: u32 = 6;
    const VMS: [&str; 3] = ["a", "b", "c"];

    /// Every way the engine's state can change that touches votes.
    #[derive(Debug, Clone)]
    enum Op {
        /// vm, vCPU → pCPU(s) (two pCPUs when `wide`).
        Place(usize, Vec<(u32, bool)>),
        /// vm, vCPU or pCPU, unit index.
        Request(usize, u64, bool, usize),
        /// vm, its vCPUs.
        Policy(usize, Vec<u8>),
        RemovePolicy(usize),
        /// Rates per VM (`None`: no counter source).
        Tick(Vec<Option<u32>>),
        RemoveVm(usize),
        /// pCPU, table variant: re-declares it with another table.
        Retable(u32, bool),
        Operator(u32, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                0..3usize,
                prop::collection::vec((0..PCPUS, any::<bool>()), 1..4)
            )
                .prop_map(|(v, p)| Op::Place(v, p)),
            (0..3usize, 0..7u64, any::<bool>(), 0..6usize)
                .prop_map(|(v, id, phys, u)| Op::Request(v, id, phys, u)),
            (0..3usize, prop::collection::vec(0..3u8, 1..3)).prop_map(|(v, c)| Op::Policy(v, c)),
            (0..3usize).prop_map(Op::RemovePolicy),
            prop::collection::vec(prop::option::of(0..300_000u32), 3).prop_map(Op::Tick),
            (0..3usize).prop_map(Op::RemoveVm),
            (0..PCPUS, any::<bool>()).prop_map(|(c, t)| Op::Retable(c, t)),
            (0..PCPUS, any::<bool>()).prop_map(|(c, r)| Op::Operator(c, r)),
        ]
    }

    fn table(short: bool) -> FreqTable {
        let khz: &[u32] = if short {
            // Shorter and without turbo: indexes into the other table
            // run past its end, and Max moves.
            &[2_400_000, 1_600_000, 800_000]
        } else {
            &[2_301_000, 2_300_000, 1_600_000, 1_200_000, 800_000]
        };
        FreqTable::new(khz.iter().copied().map(Khz).collect()).expect("a valid table")
    }

    fn pcpu(cpu: u32, short: bool) -> PcpuSpec {
        // pCPUs 4 and 5 share a domain.
        let domain = if cpu >= 4 {
            vec![CpuId(4), CpuId(5)]
        } else {
            vec![CpuId(cpu)]
        };
        PcpuSpec {
            cpu: CpuId(cpu),
            table: table(short),
            current: Khz(1_000_000),
            domain,
            high_priority: false,
            enable_turbo_moves_to_max: true,
        }
    }

    fn policy(cores: &[u8]) -> PolicySpec {
        PolicySpec {
            policy: Policy {
                macs: MacList::from_slice(&[MacAddr([2, 0, 0, 0, 0, 1])]).expect("fits"),
                traffic: TrafficThresholds {
                    min_pps: 0,
                    avg_pps: 100_000,
                    max_pps: 200_000,
                },
                ..Policy::new(
                    PolicyKind::Traffic,
                    VcpuList::from_slice(cores).expect("fits"),
                )
            },
            ext: PolicyExtensions {
                hysteresis: Some(Hysteresis {
                    band: 0.0,
                    dwell: Duration::ZERO,
                }),
                ..PolicyExtensions::default()
            },
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    fn apply(e: &mut Engine, op: Op, now: Duration) {
        let id = |v: usize| VmId::new(VMS[v]);
        match op {
            Op::Place(v, pins) => {
                let affinity = (0..)
                    .zip(pins)
                    .map(|(vcpu, (p, wide))| {
                        let mut cpus = BTreeSet::from([CpuId(p)]);
                        if wide {
                            cpus.insert(CpuId((p + 1) % PCPUS));
                        }
                        (vcpu, cpus)
                    })
                    .collect::<std::collections::BTreeMap<_, _>>();
                let placement = Placement {
                    vcpus: affinity.len(),
                    affinity,
                };
                let settings = VmSettings {
                    physical_allowed: true,
                    multi_pcpu_allowed: true,
                    requests_override_policy: v != 1,
                    ..VmSettings::default()
                };
                e.add_vm(id(v), settings);
                e.set_placement(&id(v), placement);
            }
            Op::Request(v, resource_id, phys, unit) => {
                let request = Request {
                    vm_name: VmName::new("").expect("empty name"),
                    body: RequestBody::Power {
                        resource_id,
                        core_type: if phys {
                            CoreType::Physical
                        } else {
                            CoreType::Virtual
                        },
                        unit: ScalingUnit::ALL[unit],
                    },
                };
                let channel = ChannelId {
                    vm: id(v),
                    index: 0,
                };
                e.handle(now, &channel, Ok(&request));
            }
            Op::Policy(v, cores) => {
                let _ = e.set_policy(&id(v), policy(&cores), now, jiff::Timestamp::UNIX_EPOCH);
            }
            Op::RemovePolicy(v) => {
                e.remove_policy(&id(v));
            }
            Op::Tick(rates) => {
                let samples = (0..3)
                    .zip(rates)
                    .map(|(v, r)| (id(v), r.map(f64::from).ok_or_else(|| "no source".into())))
                    .collect();
                e.traffic_tick(samples, now);
            }
            Op::RemoveVm(v) => {
                e.remove_vm(&id(v));
            }
            Op::Retable(cpu, short) => e.add_pcpu(pcpu(cpu, short)),
            Op::Operator(cpu, release) => {
                let _ = if release {
                    e.operator_release(CpuId(cpu))
                } else {
                    e.operator_apply(CpuId(cpu), ScalingUnit::ScaleDown)
                };
            }
        }
    }

    /// The invariants of the module doc, checked on every pCPU.
    fn check(e: &Engine) -> Result<(), TestCaseError> {
        for (id, vm) in &e.vms {
            for cpu in vm.footprint() {
                let voters = e.users.get(&cpu).map_or(&[][..], Vec::as_slice);
                prop_assert!(voters.iter().any(|v| v.vm == *id), "{id} missing on {cpu}");
            }
        }
        for (cpu, voters) in e.users.iter() {
            prop_assert!(!voters.is_empty());
            prop_assert!(
                voters.windows(2).all(|w| w[0].vm < w[1].vm),
                "order on {cpu}"
            );
            for v in voters {
                let vm = e.vms.get(&v.vm);
                prop_assert!(vm.is_some_and(|vm| vm.footprint().contains(&cpu)));
            }
            prop_assert!(e.votes_fresh(cpu), "stale vote on {cpu}: {voters:?}");
        }
        Ok(())
    }

    #[test]
    fn voters_are_found_by_pointer_or_by_name() {
        for n in [3usize, 300] {
            let mut ids: Vec<VmId> = (0..n).map(|i| VmId::new(&format!("vm{i:04}"))).collect();
            ids.sort();
            let voters: Vec<Voter> = ids
                .iter()
                .map(|vm| Voter {
                    vm: vm.clone(),
                    explicit: None,
                })
                .collect();
            for (i, id) in ids.iter().enumerate() {
                // The same allocation, and another one with the same name.
                assert_eq!(voter_position(&voters, id), Some(i));
                assert_eq!(voter_position(&voters, &VmId::new(id.as_str())), Some(i));
            }
            assert_eq!(voter_position(&voters, &VmId::new("other")), None);
        }
    }

    #[test]
    fn a_stale_hint_is_caught_and_refreshed() {
        let ids: Vec<VmId> = ["a", "b", "c"].map(VmId::new).to_vec();
        let mut voters: Vec<Voter> = ids
            .iter()
            .map(|vm| Voter {
                vm: vm.clone(),
                explicit: None,
            })
            .collect();
        let mut hint = u32::MAX;
        assert_eq!(voter_at(&mut hint, &voters, &ids[2]), Some(2));
        assert_eq!(hint, 2);
        // Another VM leaves the list: "c" moves, the hint points past it.
        voters.remove(0);
        assert_eq!(voter_at(&mut hint, &voters, &ids[2]), Some(1));
        assert_eq!(hint, 1);
        // A hint at another VM's voter is not believed.
        let mut wrong = 0;
        assert_eq!(voter_at(&mut wrong, &voters, &ids[2]), Some(1));
        assert_eq!(voter_at(&mut wrong, &voters, &ids[0]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn cached_votes_always_match_the_wants(ops in prop::collection::vec(op(), 1..40)) {
            let mut e = Engine::new(EngineConfig::default());
            for cpu in 0..PCPUS {
                e.add_pcpu(pcpu(cpu, false));
            }
            for (i, op) in (1u64..).zip(ops) {
                apply(&mut e, op, Duration::from_millis(100) * u32::try_from(i).expect("few"));
                check(&e)?;
            }
        }
    }
}

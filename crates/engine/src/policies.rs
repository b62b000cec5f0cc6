//! The engine's policy API: accepting, replacing and removing a VM's
//! policy, and feeding it inputs (traffic rates, the wall clock, branch
//! ratios). Every input re-evaluates only the policies it concerns, and
//! frequency changes are asked for only when a domain's level changes.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use vmpower_proto::{CoreType, MacList, Policy, PolicyKind};
use vmpower_types::CpuId;
use vmpower_types::levels::Level;

use crate::arbitrate::Voter;
use crate::cpumap::CpuMap;
use crate::engine::{Action, Engine, Trigger};
use crate::host::Host;
use crate::ids::{Vcpu, VmId};
use crate::policy::drops::{DropEvent, Effective, Learned, TrafficReading};
use crate::policy::traffic::Thresholds;
use crate::policy::{ActivePolicy, PolicySpec, PolicyState, time};
use crate::reject::Rejection;
use crate::settings::Now;
use crate::vm::{CoreKey, Vm, Want, vote_of, vote_on};
use crate::votes::{voter_at, voter_position};

/// What a policy's decision was based on, for logs and the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyInput {
    /// The policy's kind.
    pub kind: PolicyKind,
    /// The packet rate measured (TRAFFIC, TIME traffic hours).
    pub rate_pps: Option<f64>,
    /// The local hour (TIME).
    pub hour: Option<u8>,
    /// The branch ratio of the pCPU (BRANCH_RATIO).
    pub branch_ratio: Option<f64>,
    /// Drops seen in this sample (TRAFFIC): they raised the cores to max.
    pub drops: Option<DropEvent>,
}

/// A policy as `policy show` displays it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyStatus {
    /// The policy.
    pub spec: PolicySpec,
    /// Deciding, or waiting and why.
    pub state: PolicyState,
    /// The cores it owns.
    pub cores: Vec<CoreKey>,
    /// The level it wants per core, where it decided one.
    pub levels: Vec<(CoreKey, Level)>,
    /// The last packet rate measured.
    pub rate_pps: Option<f64>,
    /// The local hour last evaluated.
    pub hour: Option<u8>,
    /// The last drop rate measured (TRAFFIC).
    pub drops_pps: Option<f64>,
    /// The capacities learned from drops (TRAFFIC).
    pub learned: Learned,
    /// The thresholds in force now (TRAFFIC; infinite: not learned yet).
    pub effective: Option<Effective>,
}

impl Engine {
    /// Accepts (or replaces) `vm`'s policy at monotonic time `now` and
    /// wall-clock time `wall`, as the VM itself sent it: physical cores
    /// need the VM's grant and must be its own.
    pub fn set_policy(
        &mut self,
        vm_id: &VmId,
        spec: PolicySpec,
        now: Now,
        wall: Timestamp,
    ) -> Result<Vec<Action>, Rejection> {
        self.install_policy(vm_id, spec, now, wall, false)
    }

    /// Accepts (or replaces) a policy the host operator gave for `vm`
    /// (DPDK's JSON FIFO, whose cores are host CPUs): physical cores need
    /// no grant, only frequency control.
    pub fn set_operator_policy(
        &mut self,
        vm_id: &VmId,
        spec: PolicySpec,
        now: Now,
        wall: Timestamp,
    ) -> Result<Vec<Action>, Rejection> {
        self.install_policy(vm_id, spec, now, wall, true)
    }

    fn install_policy(
        &mut self,
        vm_id: &VmId,
        mut spec: PolicySpec,
        now: Now,
        wall: Timestamp,
        operator: bool,
    ) -> Result<Vec<Action>, Rejection> {
        let vm = self
            .vms
            .get(vm_id)
            .ok_or_else(|| Rejection::UnknownVm(vm_id.to_string()))?;
        spec.ext
            .other_hours
            .get_or_insert(self.config.time_other_hours);
        let p = &spec.policy;
        if p.kind == PolicyKind::BranchRatio && !self.config.branch_counters {
            return Err(Rejection::NoBranchCounters);
        }
        if p.cores.is_empty() {
            return Err(Rejection::InvalidPolicy("the policy names no core".into()));
        }
        if p.kind == PolicyKind::Traffic && p.macs.is_empty() {
            return Err(Rejection::InvalidPolicy(
                "a TRAFFIC policy needs at least one MAC".into(),
            ));
        }
        let mut keys = Vec::new();
        for core in p.cores.as_slice() {
            let key = match p.core_type {
                CoreType::Virtual => {
                    let vcpus = vm.placement.vcpus;
                    if vcpus > 0 && usize::from(*core) >= vcpus {
                        return Err(Rejection::VcpuOutOfRange {
                            vcpu: u64::from(*core),
                            count: vcpus,
                        });
                    }
                    CoreKey::Vcpu(Vcpu::from(*core))
                }
                CoreType::Physical => {
                    let cpu = CpuId(u32::from(*core));
                    if operator {
                        if self.host.leader(cpu).is_none() {
                            return Err(Rejection::NotControllable(cpu));
                        }
                    } else if !vm.settings.physical_allowed {
                        return Err(Rejection::PhysicalNotAllowed);
                    } else if !vm.placement.all_pcpus().contains(&cpu) {
                        return Err(Rejection::PhysicalNotOwned(u64::from(*core)));
                    }
                    CoreKey::Pcpu(cpu)
                }
            };
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        // The old policy's wants go and the new one's come in one
        // arbitration, so a core both govern is never given back between.
        let mut touched = self.drop_policy_wants(vm_id);
        let mut active = ActivePolicy::new(spec, keys);
        if active.spec.policy.kind == PolicyKind::Time {
            active.hour = Some(time::local_hour(&active.spec.tz, wall));
        }
        let vm = self.vms.get_mut(vm_id).expect("checked above");
        vm.policy = Some(active);
        let (more, trigger) = self.policy_wants(vm_id, now);
        touched.extend(more);
        self.reindex(vm_id);
        let trigger = trigger.unwrap_or_else(|| Trigger::PolicyRemoved(vm_id.clone()));
        Ok(self.rearbitrate(&touched, &trigger))
    }

    /// Drops `vm`'s policy; its cores return to whatever the VM asks
    /// directly (nothing: max by default).
    pub fn remove_policy(&mut self, vm_id: &VmId) -> Vec<Action> {
        self.drop_policy(vm_id)
    }

    fn drop_policy(&mut self, vm_id: &VmId) -> Vec<Action> {
        let touched = self.drop_policy_wants(vm_id);
        if touched.is_empty() {
            return Vec::new();
        }
        self.reindex(vm_id);
        let trigger = Trigger::PolicyRemoved(vm_id.clone());
        self.rearbitrate(&touched, &trigger)
    }

    /// Takes the VM's policy and its wants away; returns the pCPUs they
    /// governed (not re-arbitrated yet).
    fn drop_policy_wants(&mut self, vm_id: &VmId) -> BTreeSet<CpuId> {
        let mut touched = BTreeSet::new();
        let Some(vm) = self.vms.get_mut(vm_id) else {
            return touched;
        };
        let Some(old) = vm.policy.take() else {
            return touched;
        };
        for key in &old.keys {
            if matches!(vm.wants.get(key), Some(Want::Policy(_))) {
                vm.wants.remove(key);
            }
            touched.extend(vm.targets(*key));
        }
        touched
    }

    /// A new traffic rate for `vm`'s policy (the summed rx packets/s of its
    /// MACs), or why there is none (no counter source for a MAC).
    pub fn traffic_sample(
        &mut self,
        vm_id: &VmId,
        rate: Result<f64, String>,
        now: Now,
    ) -> Vec<Action> {
        self.traffic_tick(vec![(vm_id.clone(), rate)], now)
    }

    /// One sampling tick: a rate (or why none) for each traffic-driven
    /// policy. Every frequency domain the tick touches is arbitrated once,
    /// not once per VM that changed (many VMs sharing a pCPU may cross at
    /// once); a policy whose level did not move decides nothing.
    ///
    /// A domain touched by several policies is reported with the trigger
    /// of the last of them (in `samples` order). Samples in the order of
    /// [`Engine::traffic_policies`] are matched fastest.
    pub fn traffic_tick(
        &mut self,
        samples: Vec<(VmId, Result<f64, String>)>,
        now: Now,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        self.traffic_tick_into(&samples, now, &mut actions);
        actions
    }

    /// [`Engine::traffic_tick`] appending to `actions`: a caller that
    /// keeps the vector from tick to tick writes the actions into memory
    /// already in cache instead of a fresh allocation.
    ///
    /// A sample is a rate (`f64`: no drops known) or a
    /// [`TrafficReading`] (rate and drops).
    pub fn traffic_tick_into<R: Copy + Into<TrafficReading>>(
        &mut self,
        samples: &[(VmId, Result<R, String>)],
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        // Buffers kept from tick to tick (emptied before they go back).
        let mut scratch = std::mem::take(&mut self.scratch);
        let TickScratch {
            pending,
            triggers,
            leaders,
            order,
        } = &mut scratch;
        let Engine {
            vms,
            users,
            host,
            learned,
            ..
        } = self;
        // Samples come in name order (as `traffic_policies` lists them,
        // holding the engine's own ids): the VMs are walked alongside
        // them, matched by pointer, with no search by name. A sample out
        // of order restarts the walk at its name.
        let mut cursor = vms.range_mut::<VmId, _>(..).peekable();
        for (sample, (vm_id, rate)) in samples.iter().enumerate() {
            while cursor
                .peek()
                .is_some_and(|(k, _)| !k.same(vm_id) && *k < vm_id)
            {
                cursor.next();
            }
            if cursor
                .peek()
                .is_none_or(|(k, _)| !k.same(vm_id) && *k != vm_id)
            {
                cursor = vms.range_mut::<VmId, _>(vm_id..).peekable();
            }
            // The engine's own id: its voters are found by pointer.
            let Some((vm_id, vm)) = cursor.next_if(|(k, _)| k.same(vm_id) || *k == vm_id) else {
                continue;
            };
            let Some(p) = vm.policy.as_mut() else {
                continue;
            };
            if !p.uses_traffic() {
                continue;
            }
            let before = (p.rate.is_ok(), p.traffic.level);
            if let Ok(r) = rate {
                let (h, d) = (p.hysteresis(), p.drop_settings());
                let reading: TrafficReading = (*r).into();
                let ActivePolicy { spec, traffic, .. } = p;
                let t = if spec.ext.adaptive {
                    Thresholds::Adaptive
                } else {
                    Thresholds::Fixed(&spec.policy.traffic)
                };
                traffic.update_reading(t, &h, &d, reading, now);
                if traffic.drop_now.is_some_and(|e| e.level != Level::Max) {
                    spec.ext.learned = Some(traffic.learned);
                    learned.push(vm_id.clone());
                }
                if p.rate.as_ref().ok() != Some(&reading.rate_pps) {
                    p.rate = Ok(reading.rate_pps);
                }
            } else if let Err(why) = rate
                && p.rate.as_ref().err() != Some(why)
            {
                p.rate = Err(why.clone());
            }
            let unchanged = before.0
                && rate.is_ok()
                && before.1 == p.traffic.level
                && p.traffic.drop_now.is_none();
            if unchanged {
                continue;
            }
            leaders.clear();
            let Some(input) = write_traffic_wants(vm, vm_id, users, host, leaders) else {
                continue;
            };
            if leaders.is_empty() {
                continue;
            }
            let index = triggers.len();
            triggers.push((sample, input));
            for leader in leaders.iter() {
                pending.insert(*leader, index);
            }
        }
        // Domains in leader order (the map iterates in key order).
        order.extend(pending.iter().map(|(l, i)| (l, *i)));
        for (leader, _) in order.iter() {
            pending.remove(leader);
        }
        for (leader, index) in order.iter() {
            let (sample, input) = triggers[*index];
            let trigger = || Trigger::Policy {
                vm: samples[sample].0.clone(),
                input,
            };
            self.arbitrate_domain(*leader, trigger, actions);
        }
        triggers.clear();
        order.clear();
        self.scratch = scratch;
    }

    /// The wall clock moved (an hour boundary passed, or the daemon
    /// started): re-evaluates TIME policies whose local hour changed.
    pub fn time_tick(&mut self, wall: Timestamp, now: Now) -> Vec<Action> {
        let mut changed = Vec::new();
        for (id, vm) in &mut self.vms {
            let Some(p) = vm.policy.as_mut() else {
                continue;
            };
            if p.spec.policy.kind != PolicyKind::Time {
                continue;
            }
            let hour = time::local_hour(&p.spec.tz, wall);
            if p.hour != Some(hour) {
                p.hour = Some(hour);
                changed.push(id.clone());
            }
        }
        changed
            .iter()
            .flat_map(|id| self.apply_policy(id, now))
            .collect()
    }

    /// When the next TIME evaluation is due (the earliest next local hour
    /// of any TIME policy), if any.
    pub fn next_time_event(&self, wall: Timestamp) -> Option<Timestamp> {
        self.vms
            .values()
            .filter_map(|vm| vm.policy.as_ref())
            .filter(|p| p.spec.policy.kind == PolicyKind::Time)
            .map(|p| time::next_hour_start(&p.spec.tz, wall))
            .min()
    }

    /// The operator's BRANCH_RATIO threshold per pCPU (`--core-branch-ratio`):
    /// used for a pCPU when the policy sets none; pCPUs not listed use the
    /// engine's default. Replaces the earlier map.
    pub fn set_branch_thresholds(&mut self, thresholds: BTreeMap<CpuId, f64>) {
        self.branch_thresholds = thresholds;
    }

    /// A branch-miss ratio sample of `cpu`; re-evaluates the BRANCH_RATIO
    /// policies that govern it. The threshold is the policy's, else the
    /// operator's for `cpu`, else the engine's default.
    pub fn branch_sample(&mut self, cpu: CpuId, ratio: f64, now: Now) -> Vec<Action> {
        let default = self
            .branch_thresholds
            .get(&cpu)
            .copied()
            .unwrap_or(self.config.branch_threshold);
        let mut changed = Vec::new();
        for (id, vm) in &mut self.vms {
            let governs = vm.policy.as_ref().is_some_and(|p| {
                p.spec.policy.kind == PolicyKind::BranchRatio
                    && p.keys.iter().any(|k| vm.governs(*k, cpu))
            });
            if let (true, Some(p)) = (governs, vm.policy.as_mut()) {
                let threshold = p.spec.ext.branch_threshold.unwrap_or(default);
                p.branch.entry(cpu).or_default().update(threshold, ratio);
                changed.push(id.clone());
            }
        }
        changed
            .iter()
            .flat_map(|id| self.apply_policy(id, now))
            .collect()
    }

    /// The pCPUs BRANCH_RATIO policies want sampled.
    pub fn branch_cpus(&self) -> BTreeSet<CpuId> {
        self.vms
            .values()
            .filter_map(|vm| {
                let p = vm.policy.as_ref()?;
                (p.spec.policy.kind == PolicyKind::BranchRatio).then(|| {
                    p.keys
                        .iter()
                        .flat_map(|k| vm.targets(*k))
                        .collect::<Vec<_>>()
                })
            })
            .flatten()
            .collect()
    }

    /// The MACs each traffic-driven policy wants sampled.
    pub fn traffic_policies(&self) -> Vec<(VmId, MacList)> {
        self.vms
            .iter()
            .filter_map(|(id, vm)| {
                let p = vm.policy.as_ref()?;
                p.uses_traffic().then(|| (id.clone(), p.spec.policy.macs))
            })
            .collect()
    }

    /// Every VM with a policy, and its policy.
    pub fn policies(&self) -> Vec<(VmId, Policy)> {
        self.vms
            .iter()
            .filter_map(|(id, vm)| Some((id.clone(), vm.policy.as_ref()?.spec.policy)))
            .collect()
    }

    /// The VMs whose TRAFFIC policy learned a capacity from drops since
    /// the last call, with what it knows now (for the caller to persist:
    /// [`crate::policy::PolicyExtensions::learned`]).
    pub fn take_learned(&mut self) -> Vec<(VmId, Learned)> {
        let mut vms = std::mem::take(&mut self.learned);
        vms.dedup();
        vms.into_iter()
            .filter_map(|id| {
                let p = self.vms.get(&id)?.policy.as_ref()?;
                Some((id, p.traffic.learned))
            })
            .collect()
    }

    /// What `policy show` displays.
    pub fn policy_status(&self, vm_id: &VmId) -> Option<PolicyStatus> {
        let vm = self.vms.get(vm_id)?;
        let p = vm.policy.as_ref()?;
        let levels: Vec<(CoreKey, Level)> = p
            .keys
            .iter()
            .filter_map(|k| match vm.wants.get(k) {
                Some(Want::Policy(l)) => Some((*k, *l)),
                _ => None,
            })
            .collect();
        let state = match p.level() {
            Ok(_) => PolicyState::Active,
            Err(_) if p.spec.policy.kind == PolicyKind::BranchRatio && !levels.is_empty() => {
                PolicyState::Active
            }
            Err(why) => PolicyState::Waiting(why),
        };
        Some(PolicyStatus {
            spec: p.spec.clone(),
            state,
            cores: p.keys.clone(),
            levels,
            rate_pps: p.rate.as_ref().ok().copied(),
            hour: p.hour,
            drops_pps: p.rate.is_ok().then_some(p.traffic.drops_pps),
            learned: p.traffic.learned,
            effective: p.traffic.effective,
        })
    }

    /// Whether `key` of `vm` is owned by its policy.
    pub(crate) fn policy_owns(&self, vm_id: &VmId, key: CoreKey) -> bool {
        self.vms
            .get(vm_id)
            .and_then(|v| v.policy.as_ref())
            .is_some_and(|p| p.keys.contains(&key))
    }

    /// Takes `key` out of `vm`'s policy (a direct request the operator
    /// allowed to override it).
    pub(crate) fn release_from_policy(&mut self, vm_id: &VmId, key: CoreKey) {
        if let Some(vm) = self.vms.get_mut(vm_id) {
            if let Some(p) = vm.policy.as_mut() {
                p.keys.retain(|k| *k != key);
            }
            if matches!(vm.wants.get(&key), Some(Want::Policy(_))) {
                vm.wants.remove(&key);
            }
            // The caller may refuse the request after this (and then
            // re-arbitrate nothing): the votes must say it already.
            for cpu in vm.targets(key) {
                self.refresh_votes(cpu);
            }
        }
    }

    /// Writes the policy's levels into the VM's wants and re-arbitrates
    /// what changed.
    fn apply_policy(&mut self, vm_id: &VmId, now: Now) -> Vec<Action> {
        let (touched, trigger) = self.policy_wants(vm_id, now);
        // No reindex: a policy's cores count in the VM's footprint whether
        // or not it decided a level, so a level change moves no pCPU in or
        // out of it.
        match trigger {
            Some(trigger) if !touched.is_empty() => self.rearbitrate(&touched, &trigger),
            _ => Vec::new(),
        }
    }

    /// Writes the policy's levels into the VM's wants; returns the pCPUs
    /// whose wants changed and the trigger describing the inputs.
    fn policy_wants(&mut self, vm_id: &VmId, _now: Now) -> (BTreeSet<CpuId>, Option<Trigger>) {
        let mut touched = Vec::new();
        let trigger = self.policy_wants_into(vm_id, &mut touched);
        (touched.into_iter().collect(), trigger)
    }

    /// [`Engine::policy_wants`] into `touched` (emptied first; sorted,
    /// deduplicated): the pCPUs whose wants changed; `None` when the VM
    /// has no policy. The VM's cached votes on those pCPUs are updated
    /// here (no lookup of other VMs).
    fn policy_wants_into(&mut self, vm_id: &VmId, touched: &mut Vec<CpuId>) -> Option<Trigger> {
        let Engine {
            vms, users, host, ..
        } = self;
        let input = write_policy_wants(vms.get_mut(vm_id)?, vm_id, users, host, touched)?;
        Some(Trigger::Policy {
            vm: vm_id.clone(),
            input,
        })
    }
}

/// The buffers of [`Engine::traffic_tick_into`], kept by the engine
/// between ticks (empty between them).
#[derive(Debug, Default)]
pub(crate) struct TickScratch {
    /// Domain leader → index in `triggers` of the last policy that moved
    /// one of its pCPUs (one trigger per policy, not per pCPU).
    pending: CpuMap<usize>,
    /// Per policy that moved: its sample's index and its inputs (the
    /// trigger is made only for an action, with one clone of the id).
    triggers: Vec<(usize, PolicyInput)>,
    /// The domains one policy moved.
    leaders: Vec<CpuId>,
    /// `pending` in leader order.
    order: Vec<(CpuId, usize)>,
}

/// [`write_policy_wants`] for a traffic tick, appending to `leaders` the
/// leaders of the domains to arbitrate. When the policy's level is one
/// for all its cores and every core is a vCPU (TRAFFIC, and TIME in
/// traffic hours), writes it into the wants and walks the VM's pCPUs
/// once, updating its vote on each; only the domains of pCPUs where the
/// vote changed (or that must be retried after a failed write) are
/// appended: arbitrating any other could change nothing. Other policies
/// take the general path.
fn write_traffic_wants(
    vm: &mut Vm,
    vm_id: &VmId,
    users: &mut CpuMap<Vec<Voter>>,
    host: &Host,
    leaders: &mut Vec<CpuId>,
) -> Option<PolicyInput> {
    let p = vm.policy.as_ref()?;
    let uniform = p.spec.policy.kind != PolicyKind::BranchRatio
        && !p.holds()
        && p.keys.iter().all(|k| matches!(k, CoreKey::Vcpu(_)));
    if !uniform {
        let mut touched = Vec::new();
        let input = write_policy_wants(vm, vm_id, users, host, &mut touched);
        leaders.extend(touched.into_iter().filter_map(|c| host.leader(c)));
        leaders.dedup();
        return input;
    }
    let Vm {
        index,
        wants,
        policy,
        ..
    } = vm;
    let p = policy.as_ref()?;
    let want = p.level().ok().map(Want::Policy);
    if wants.set_all(&p.keys, want) {
        index.for_each_pcpu(|hint, cpu, vcpus| {
            // The pCPU's entry, not its domain: one small read.
            let Some(pcpu) = host.pcpus.get(&cpu) else {
                return;
            };
            let vote = vote_on(vcpus, wants, cpu, pcpu.shape);
            if let Some(voters) = users.get_mut(&cpu)
                && let Some(i) = voter_at(hint, voters, vm_id)
                && (voters[i].explicit != vote || host.dirty(pcpu.leader))
            {
                voters[i].explicit = vote;
                leaders.push(pcpu.leader);
            }
        });
    }
    Some(inputs_of(p))
}

/// What `p`'s decision is based on now (for its trigger).
fn inputs_of(p: &ActivePolicy) -> PolicyInput {
    PolicyInput {
        kind: p.spec.policy.kind,
        rate_pps: p.rate.as_ref().ok().copied(),
        hour: p.hour,
        branch_ratio: None,
        drops: p.traffic.drop_now,
    }
}

/// [`Engine::policy_wants_into`] on the VM's entry itself (`vm` is
/// `vm_id`'s): writes its policy's levels into its wants, puts the pCPUs
/// whose wants changed in `touched` (emptied first; sorted, deduplicated)
/// and updates the VM's votes there; the policy's inputs, `None` when the
/// VM has no policy.
fn write_policy_wants(
    vm: &mut Vm,
    vm_id: &VmId,
    users: &mut CpuMap<Vec<Voter>>,
    host: &Host,
    touched: &mut Vec<CpuId>,
) -> Option<PolicyInput> {
    let Vm {
        index,
        wants,
        policy,
        ..
    } = vm;
    let p = policy.as_ref()?;
    touched.clear();
    let per_pcpu = p.spec.policy.kind == PolicyKind::BranchRatio;
    let holds = p.holds();
    let common = if per_pcpu { None } else { p.level().ok() };
    for key in &p.keys {
        let level = if holds {
            // Where the core is, as DPDK's host leaves it: its policy
            // want, else the level we set it at; a core we do not drive
            // stays untouched.
            match wants.get(key) {
                Some(Want::Policy(l)) => Some(*l),
                _ => {
                    let mut at = None;
                    index.for_each_target(*key, |c| {
                        at = at.or_else(|| host.domain_of(c).and_then(|d| d.applied));
                    });
                    at.map(Level::Index)
                }
            }
        } else if per_pcpu {
            // Per pCPU: the highest level any of the key's pCPUs wants.
            let mut best: Option<Level> = None;
            index.for_each_target(*key, |c| {
                // As `max_by_key(is Max)`: the last of the highest.
                if let Some(l) = p.branch.get(&c).and_then(|b| b.level())
                    && best.is_none_or(|b| matches!(l, Level::Max) >= matches!(b, Level::Max))
                {
                    best = Some(l);
                }
            });
            best
        } else {
            common
        };
        // Set or clear the want, noting a change.
        let changed = wants.set(*key, level.map(Want::Policy));
        if changed {
            index.for_each_target(*key, |c| touched.push(c));
        }
    }
    touched.sort_unstable();
    touched.dedup();
    for cpu in touched.iter() {
        let explicit = host
            .domain_of(*cpu)
            .and_then(|d| vote_of(index, wants, *cpu, &d.table));
        // A VM not among the pCPU's voters yet is added, with its
        // vote, by the `reindex` that follows a new policy.
        if let Some(voters) = users.get_mut(cpu)
            && let Some(i) = voter_position(voters, vm_id)
        {
            voters[i].explicit = explicit;
        }
    }
    Some(inputs_of(p))
}

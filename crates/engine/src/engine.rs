//! The engine: a state machine fed the inventory, guest requests and the
//! time, returning the frequency changes and replies they call for.
//!
//! ## Behavior
//! - The channel's VM is the identity. A `vm_name` in a packet that is
//!   neither empty (librte_power sends none) nor the channel's VM is
//!   reported as [`Note::NameMismatch`] and otherwise ignored.
//! - Each channel has a token bucket; a request over the limit is refused.
//! - A direct request moves the VM's own wanted level for that core
//!   (librte_power's semantics); the domain then gets the arbitrated level
//!   (see [`crate::arbitrate`]). The request is acknowledged when it was
//!   valid and every resulting write succeeds, even if a neighbour's want
//!   keeps the pCPU higher (the guest's wish is recorded and takes effect
//!   when the neighbour lets go).
//! - Writes are asked for only when a domain's level changes.
//! - A domain nobody wants anything of any more is released (given back
//!   to its original governor and bounds by the daemon).
//!
//! The engine does no I/O and reads no clock: the daemon applies the
//! [`Action`]s and reports failed writes back with [`Engine::write_failed`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use vmpower_proto::contract::Contract;
use vmpower_proto::{
    CapsReply, CoreType, FreqListReply, QueryKind, Request, RequestBody, ScalingUnit, Verdict,
    VmName,
};
use vmpower_types::levels::{LevelState, ScalingOp};
use vmpower_types::{CpuId, Khz};

use crate::arbitrate::{Voter, Winner, arbitrate};
use crate::cpumap::CpuMap;
use crate::host::{Host, PcpuSpec};
use crate::ids::{ChannelId, Vcpu, VmId};
use crate::ratelimit::TokenBucket;
use crate::reject::Rejection;
use crate::settings::{EngineConfig, Now, VmSettings};
use crate::vm::{CoreKey, Placement, Vm, Want};

/// Why a frequency change happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A guest's direct request.
    Request {
        /// The VM.
        vm: VmId,
        /// The core it named.
        core: CoreKey,
        /// What it asked.
        unit: ScalingUnit,
    },
    /// A VM's vCPUs moved (or the VM appeared).
    Placement(VmId),
    /// A VM went away.
    VmRemoved(VmId),
    /// The operator set or released a pCPU.
    Operator(OperatorAction),
    /// A VM's policy decided, on these inputs.
    Policy {
        /// The VM.
        vm: VmId,
        /// What the decision was based on.
        input: crate::policies::PolicyInput,
    },
    /// A VM's policy was removed or replaced.
    PolicyRemoved(VmId),
    /// The busyness controller moved a vCPU on its guest's report.
    Busyness {
        /// The VM.
        vm: VmId,
        /// The vCPU.
        vcpu: Vcpu,
        /// The busyness reported, per mille.
        permille: u16,
    },
    /// A VM's busyness reports stopped: its controlled vCPUs went to max.
    BusynessStale(VmId),
}

/// What the operator did to a pCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    /// Applied a scaling operation.
    Unit(ScalingUnit),
    /// Gave the pCPU back to the VMs' arbitration.
    Release,
}

/// One domain to set to a new frequency.
#[derive(Debug, Clone, PartialEq)]
pub struct FreqChange {
    /// The domain's leader: the CPU to write.
    pub cpu: CpuId,
    /// Every CPU the write moves (shared with the engine's view of the
    /// domain: no allocation per change).
    pub domain: Arc<[CpuId]>,
    /// The frequency before (as far as the engine knows).
    pub from: Khz,
    /// The frequency to set.
    pub to: Khz,
    /// Its index in the domain's table.
    pub index: usize,
    /// The index before, to undo the engine's view if the write fails.
    pub previous: Option<usize>,
    /// What caused the change.
    pub trigger: Trigger,
    /// Whose want decided the level.
    pub winner: Winner,
}

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write a new frequency (taking the domain over first if needed).
    Set(FreqChange),
    /// Give a domain back: restore its original governor and bounds.
    Release {
        /// The domain's leader.
        cpu: CpuId,
        /// Every CPU of the domain.
        domain: Arc<[CpuId]>,
    },
}

/// The reply a request calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Nothing is sent (CONNECT, disabled channel).
    None,
    /// ACK or NACK echoing the request. An ACK becomes a NACK if any
    /// write of the decision fails.
    Verdict(Verdict),
    /// A FREQ_LIST reply.
    FreqList(FreqListReply),
    /// A CAPS_LIST reply.
    Caps(CapsReply),
    /// The answer to a native HELLO: the contract version granted.
    Hello(u32),
}

/// Things worth a log line and a metric that are not decisions.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// The guest said hello (CONNECT).
    Connected(ChannelId),
    /// The packet named another VM than its channel's.
    NameMismatch {
        /// The channel.
        channel: ChannelId,
        /// The name in the packet.
        claimed: String,
    },
    /// The request was refused or ignored.
    Rejected(Rejection),
    /// The VM's policy was accepted (to be persisted before the ACK).
    PolicySet(VmId, vmpower_proto::Policy),
    /// The VM's policy was removed (to be persisted before the ACK).
    PolicyRemoved(VmId),
    /// The guest asked for a reply contract (native HELLO).
    ContractChosen(ChannelId, Contract),
}

/// Everything one request leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to answer.
    pub reply: Reply,
    /// What to change, in order.
    pub actions: Vec<Action>,
    /// What to log and count.
    pub notes: Vec<Note>,
}

impl Decision {
    fn reject(reason: Rejection) -> Self {
        let reply = if reason.nacked() {
            Reply::Verdict(Verdict::Nack)
        } else {
            Reply::None
        };
        Decision {
            reply,
            actions: Vec::new(),
            notes: vec![Note::Rejected(reason)],
        }
    }
}

/// The decision engine.
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) host: Host,
    pub(crate) vms: BTreeMap<VmId, Vm>,
    /// pCPU → the votes of the VMs that use it or asked about it, in
    /// VM-name order (see [`Voter`]): kept up to date by every change of
    /// a VM's wants or placement or of a pCPU's table.
    pub(crate) users: CpuMap<Vec<Voter>>,
    pub(crate) channels: HashMap<ChannelId, ChannelState>,
    /// The wall clock as last told ([`Engine::set_wall_clock`]).
    wall: jiff::Timestamp,
    /// The time zone of policies that name none (the host's).
    default_tz: jiff::tz::TimeZone,
    /// Operator's per-pCPU BRANCH_RATIO thresholds.
    pub(crate) branch_thresholds: BTreeMap<CpuId, f64>,
    /// The traffic tick's buffers, kept between ticks.
    pub(crate) scratch: crate::policies::TickScratch,
    /// VMs whose TRAFFIC policy learned a capacity since
    /// [`Engine::take_learned`] last asked.
    pub(crate) learned: Vec<VmId>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(EngineConfig::default())
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelState {
    enabled: bool,
    bucket: TokenBucket,
    /// The reply contract in force ([`crate::contract`]).
    pub contract: Contract,
}

impl Engine {
    /// An engine with no pCPUs and no VMs.
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            host: Host::default(),
            vms: BTreeMap::new(),
            users: CpuMap::default(),
            channels: HashMap::new(),
            wall: jiff::Timestamp::UNIX_EPOCH,
            default_tz: jiff::tz::TimeZone::UTC,
            branch_thresholds: BTreeMap::new(),
            scratch: crate::policies::TickScratch::default(),
            learned: Vec::new(),
        }
    }

    /// Tells the engine the wall-clock time (used when a guest's TIME
    /// policy arrives). The daemon calls it before each batch of requests.
    pub fn set_wall_clock(&mut self, wall: jiff::Timestamp) {
        self.wall = wall;
    }

    /// The time zone of policies that name none (default UTC; the daemon
    /// sets the host's).
    pub fn set_default_time_zone(&mut self, tz: jiff::tz::TimeZone) {
        self.default_tz = tz;
    }

    /// The time zone of policies that name none.
    pub fn default_time_zone(&self) -> &jiff::tz::TimeZone {
        &self.default_tz
    }

    /// Declares a controllable pCPU (and its frequency domain).
    pub fn add_pcpu(&mut self, spec: PcpuSpec) {
        let cpu = spec.cpu;
        self.host.add(spec);
        // The domain's table may be new: every vote on it is re-read.
        let cpus = self.host.domain_of(cpu).map(|d| Arc::clone(&d.cpus));
        for cpu in cpus.iter().flat_map(|c| c.iter().copied()) {
            self.refresh_votes(cpu);
        }
    }

    /// Declares a VM (or updates its settings).
    pub fn add_vm(&mut self, vm: VmId, settings: VmSettings) {
        self.vms.entry(vm).or_default().settings = settings;
    }

    /// The settings of a VM.
    pub fn settings(&self, vm: &VmId) -> Option<VmSettings> {
        self.vms.get(vm).map(|v| v.settings)
    }

    /// Forgets a VM; domains only it wanted anything of are released and
    /// the others re-arbitrated.
    pub fn remove_vm(&mut self, vm: &VmId) -> Vec<Action> {
        let Some(old) = self.vms.remove(vm) else {
            return Vec::new();
        };
        self.channels.retain(|c, _| c.vm != *vm);
        let touched = old.footprint();
        self.unindex(vm, &touched);
        self.rearbitrate(&touched, &Trigger::VmRemoved(vm.clone()))
    }

    /// Records where a VM's vCPUs run; re-arbitrates every domain the
    /// change touches. Unknown VMs are added with default settings.
    pub fn set_placement(&mut self, vm: &VmId, placement: Placement) -> Vec<Action> {
        let entry = self.vms.entry(vm.clone()).or_default();
        if entry.placement == placement {
            return Vec::new();
        }
        let mut touched = entry.footprint();
        entry.place(placement);
        touched.extend(entry.footprint());
        self.reindex(vm);
        self.rearbitrate(&touched, &Trigger::Placement(vm.clone()))
    }

    /// Every known VM, by name.
    pub fn vm_ids(&self) -> Vec<VmId> {
        self.vms.keys().cloned().collect()
    }

    /// Every controllable pCPU.
    pub fn pcpus(&self) -> Vec<CpuId> {
        self.host.pcpus.keys().collect()
    }

    /// The placement of a VM.
    pub fn placement(&self, vm: &VmId) -> Option<&Placement> {
        self.vms.get(vm).map(|v| &v.placement)
    }

    /// Enables or disables a channel (a disabled channel's requests are
    /// read and ignored).
    pub fn set_channel_enabled(&mut self, channel: &ChannelId, enabled: bool, now: Now) {
        self.channel(channel, now).enabled = enabled;
    }

    /// How long a channel must wait before its next request is accepted
    /// (zero when it may send now): the daemon stops reading a flooding
    /// channel for that long, so the flood backs up into the guest.
    pub fn channel_wait(&mut self, channel: &ChannelId, now: Now) -> std::time::Duration {
        self.channels
            .get_mut(channel)
            .map_or(std::time::Duration::ZERO, |c| c.bucket.wait(now))
    }

    /// How many requests `channel` may send at `now` before its rate limit
    /// refuses one (a channel not seen yet starts with a full bucket).
    pub fn channel_allowance(&mut self, channel: &ChannelId, now: Now) -> u64 {
        match self.channels.get_mut(channel) {
            Some(c) => c.bucket.available(now),
            None => u64::from(self.config.rate_limit.burst),
        }
    }

    /// Whether a channel is enabled (channels start enabled).
    pub fn channel_enabled(&self, channel: &ChannelId) -> bool {
        self.channels.get(channel).is_none_or(|c| c.enabled)
    }

    /// What a pCPU runs at, as far as the engine knows.
    pub fn known_khz(&self, cpu: CpuId) -> Option<Khz> {
        self.host.known_khz(cpu)
    }

    /// Whether the engine has taken over `cpu`'s domain.
    pub fn is_managed(&self, cpu: CpuId) -> bool {
        self.host
            .domain_of(cpu)
            .is_some_and(|d| d.applied.is_some())
    }

    /// The operator applies `unit` to `cpu`'s domain, overriding the VMs'
    /// arbitration until [`Engine::operator_release`].
    pub fn operator_apply(
        &mut self,
        cpu: CpuId,
        unit: ScalingUnit,
    ) -> Result<Vec<Action>, Rejection> {
        let leader = self
            .host
            .leader(cpu)
            .ok_or(Rejection::NotControllable(cpu))?;
        let domain = self.host.domains.get_mut(&leader).expect("leader exists");
        // The operator's command takes a yielded domain back.
        domain.yielded = false;
        let base = domain.applied.unwrap_or(domain.known_index);
        let mut state = domain
            .operator
            .unwrap_or_else(|| LevelState::new(&domain.table, base));
        state
            .apply_op(&domain.table, op_of(unit))
            .map_err(|e| Rejection::NotApplicable(e.to_string()))?;
        domain.operator = Some(state);
        let trigger = Trigger::Operator(OperatorAction::Unit(unit));
        Ok(self.rearbitrate(&BTreeSet::from([leader]), &trigger))
    }

    /// Gives `cpu`'s domain back to the VMs' arbitration (or releases it
    /// when no VM wants anything of it).
    pub fn operator_release(&mut self, cpu: CpuId) -> Result<Vec<Action>, Rejection> {
        let leader = self
            .host
            .leader(cpu)
            .ok_or(Rejection::NotControllable(cpu))?;
        let domain = self.host.domains.get_mut(&leader).expect("leader exists");
        if domain.operator.take().is_none() {
            return Ok(Vec::new());
        }
        let trigger = Trigger::Operator(OperatorAction::Release);
        Ok(self.rearbitrate(&BTreeSet::from([leader]), &trigger))
    }

    /// Gives `cpu`'s domain up to another writer of its cpufreq files:
    /// nothing is set on it any more (the caller stopped driving it) and
    /// requests for it are refused with [`Rejection::Yielded`] until an
    /// operator's [`Engine::operator_apply`] takes it back. The VMs' wants
    /// are kept. Returns false for a pCPU that is not controllable.
    pub fn yield_pcpu(&mut self, cpu: CpuId) -> bool {
        let Some(leader) = self.host.leader(cpu) else {
            return false;
        };
        let domain = self.host.domains.get_mut(&leader).expect("leader exists");
        domain.yielded = true;
        domain.applied = None;
        domain.operator = None;
        true
    }

    /// Whether `cpu`'s domain was given up to another writer.
    pub fn is_yielded(&self, cpu: CpuId) -> bool {
        self.host.domain_of(cpu).is_some_and(|d| d.yielded)
    }

    /// Whether the operator holds `cpu`'s domain.
    pub fn operator_holds(&self, cpu: CpuId) -> bool {
        self.host
            .domain_of(cpu)
            .is_some_and(|d| d.operator.is_some())
    }

    /// Undoes the engine's view of a change whose write failed.
    pub fn write_failed(&mut self, change: &FreqChange) {
        if let Some(d) = self.host.domains.get_mut(&change.cpu) {
            d.dirty = true;
            d.applied = change.previous;
            if let Some(prev) = d.table.index_of(change.from) {
                d.known_index = prev;
            }
        }
    }

    /// Handles one record from a channel: a decoded request, or the
    /// reason it could not be decoded.
    pub fn handle(
        &mut self,
        now: Now,
        channel: &ChannelId,
        request: Result<&Request, Rejection>,
    ) -> Decision {
        let state = self.channel(channel, now);
        if !state.bucket.try_take(now) {
            return Decision::reject(Rejection::RateLimited);
        }
        if !state.enabled {
            return Decision::reject(Rejection::ChannelDisabled);
        }
        let request = match request {
            Ok(r) => r,
            Err(reason) => return Decision::reject(reason),
        };
        if !self.vms.contains_key(&channel.vm) {
            return Decision::reject(Rejection::UnknownVm(channel.vm.to_string()));
        }
        let mut notes = Vec::new();
        if let Some(claimed) = mismatch(&request.vm_name, &channel.vm) {
            notes.push(Note::NameMismatch {
                channel: channel.clone(),
                claimed,
            });
        }
        let mut decision = match request.body {
            RequestBody::Connect { .. } => {
                // A DPDK guest opened the port: DPDK's replies from now on.
                self.channel(channel, now).contract = Contract::Dpdk;
                Decision {
                    reply: Reply::None,
                    actions: Vec::new(),
                    notes: vec![Note::Connected(channel.clone())],
                }
            }
            RequestBody::Hello { version } => {
                let contract = Contract::granted(version);
                self.channel(channel, now).contract = contract;
                Decision {
                    reply: Reply::Hello(match contract {
                        Contract::Dpdk => 0,
                        Contract::Native(v) => v,
                    }),
                    actions: Vec::new(),
                    notes: vec![Note::ContractChosen(channel.clone(), contract)],
                }
            }
            RequestBody::Power {
                resource_id,
                core_type,
                unit,
            } => self.power(&channel.vm, resource_id, core_type, unit),
            RequestBody::Query { kind, resource_id } => {
                self.query(&channel.vm, request.vm_name, kind, resource_id)
            }
            RequestBody::SetPolicy(policy) => self.guest_policy(&channel.vm, policy, now),
            RequestBody::Busyness(report) => {
                if !self.channel_contract(channel).accepts_busyness() {
                    return Decision::reject(Rejection::BusynessNotNegotiated);
                }
                match self.busyness(&channel.vm, &report, now) {
                    Ok(actions) => Decision {
                        reply: Reply::None,
                        actions,
                        notes: Vec::new(),
                    },
                    Err(reason) => Decision::reject(reason),
                }
            }
            RequestBody::RemovePolicy => {
                let actions = self.remove_policy(&channel.vm);
                Decision {
                    reply: Reply::Verdict(Verdict::Ack),
                    actions,
                    notes: vec![Note::PolicyRemoved(channel.vm.clone())],
                }
            }
        };
        notes.append(&mut decision.notes);
        decision.notes = notes;
        decision
    }

    fn guest_policy(&mut self, vm: &VmId, policy: vmpower_proto::Policy, now: Now) -> Decision {
        let spec = crate::policy::PolicySpec {
            policy,
            ext: crate::policy::PolicyExtensions::default(),
            tz: self.default_tz.clone(),
        };
        match self.set_policy(vm, spec, now, self.wall) {
            Ok(actions) => Decision {
                reply: Reply::Verdict(Verdict::Ack),
                actions,
                notes: vec![Note::PolicySet(vm.clone(), policy)],
            },
            Err(reason) => Decision::reject(reason),
        }
    }

    pub(crate) fn channel(&mut self, channel: &ChannelId, now: Now) -> &mut ChannelState {
        let limit = self.config.rate_limit;
        self.channels
            .entry(channel.clone())
            .or_insert_with(|| ChannelState {
                enabled: true,
                bucket: TokenBucket::new(limit, now),
                contract: Contract::Dpdk,
            })
    }

    /// Resolves the core a request names into the want key and its pCPUs.
    pub(crate) fn resolve(
        &self,
        vm: &Vm,
        resource_id: u64,
        core_type: CoreType,
    ) -> Result<(CoreKey, BTreeSet<CpuId>), Rejection> {
        let (key, targets) = match core_type {
            CoreType::Virtual => {
                let vcpu = Vcpu::try_from(resource_id)
                    .ok()
                    .filter(|v| usize::try_from(*v).is_ok_and(|v| v < vm.placement.vcpus))
                    .ok_or(Rejection::VcpuOutOfRange {
                        vcpu: resource_id,
                        count: vm.placement.vcpus,
                    })?;
                let affinity = vm
                    .placement
                    .affinity
                    .get(&vcpu)
                    .filter(|a| !a.is_empty())
                    .ok_or(Rejection::NoPlacement(vcpu))?;
                if affinity.len() > 1 && !vm.settings.multi_pcpu_allowed {
                    return Err(Rejection::AffinitySpansPcpus {
                        vcpu,
                        pcpus: vmpower_types::cpulist::format_cpu_list(affinity),
                    });
                }
                (CoreKey::Vcpu(vcpu), affinity.clone())
            }
            CoreType::Physical => {
                if !vm.settings.physical_allowed {
                    return Err(Rejection::PhysicalNotAllowed);
                }
                let cpu = u32::try_from(resource_id)
                    .ok()
                    .map(CpuId)
                    .filter(|c| vm.placement.all_pcpus().contains(c))
                    .ok_or(Rejection::PhysicalNotOwned(resource_id))?;
                (CoreKey::Pcpu(cpu), BTreeSet::from([cpu]))
            }
        };
        if let Some(cpu) = targets.iter().find(|c| self.host.leader(**c).is_none()) {
            return Err(Rejection::NotControllable(*cpu));
        }
        if let Some(cpu) = targets.iter().find(|c| {
            self.host
                .domain_of(**c)
                .is_some_and(|d| d.operator.is_some())
        }) {
            return Err(Rejection::OperatorPinned(*cpu));
        }
        if let Some(cpu) = targets
            .iter()
            .find(|c| self.host.domain_of(**c).is_some_and(|d| d.yielded))
        {
            return Err(Rejection::Yielded(*cpu));
        }
        Ok((key, targets))
    }

    fn power(
        &mut self,
        vm_id: &VmId,
        resource_id: u64,
        core_type: CoreType,
        unit: ScalingUnit,
    ) -> Decision {
        let vm = &self.vms[vm_id];
        let (key, targets) = match self.resolve(vm, resource_id, core_type) {
            Ok(t) => t,
            Err(reason) => return Decision::reject(reason),
        };
        if self.policy_owns(vm_id, key) {
            if !vm.settings.requests_override_policy {
                let core = match key {
                    CoreKey::Vcpu(v) => format!("vCPU {v}"),
                    CoreKey::Pcpu(c) => c.to_string(),
                };
                return Decision::reject(Rejection::PolicyOwnsCore(core));
            }
            self.release_from_policy(vm_id, key);
        }
        let vm = &self.vms[vm_id];
        let first = *targets
            .iter()
            .next()
            .expect("resolve returns a non-empty set");
        let domain = self.host.domain_of(first).expect("resolve checked it");
        let base = domain.applied.unwrap_or(domain.known_index);
        let previous = vm.wants.get(&key).copied();
        let mut state = match previous {
            Some(Want::Direct(s)) => s,
            _ => LevelState::new(&domain.table, base),
        };
        if let Err(e) = state.apply_op(&domain.table, op_of(unit)) {
            return Decision::reject(Rejection::NotApplicable(e.to_string()));
        }
        if unit == ScalingUnit::EnableTurbo && domain.enable_turbo_moves_to_max {
            // "Max may have changed": DPDK's backend moves the core there.
            state
                .apply_op(&domain.table, ScalingOp::Max)
                .expect("Max applies to every table");
        }
        // The same want again (a guest repeating itself): nothing can
        // change unless a write of these domains failed since.
        if previous == Some(Want::Direct(state))
            && targets
                .iter()
                .all(|c| self.host.domain_of(*c).is_some_and(|d| !d.dirty))
        {
            return Decision {
                reply: Reply::Verdict(Verdict::Ack),
                actions: Vec::new(),
                notes: Vec::new(),
            };
        }
        let is_new = self
            .vms
            .get_mut(vm_id)
            .expect("checked above")
            .wants
            .insert(key, Want::Direct(state))
            .is_none();
        if is_new {
            self.reindex(vm_id);
        }
        let trigger = Trigger::Request {
            vm: vm_id.clone(),
            core: key,
            unit,
        };
        let actions = self.rearbitrate(&targets, &trigger);
        Decision {
            reply: Reply::Verdict(Verdict::Ack),
            actions,
            notes: Vec::new(),
        }
    }

    fn query(&self, vm_id: &VmId, vm_name: VmName, kind: QueryKind, resource_id: u64) -> Decision {
        let vm = &self.vms[vm_id];
        if !vm.settings.queries_allowed {
            return Decision::reject(Rejection::QueriesNotAllowed);
        }
        let count = vm.placement.vcpus.min(8);
        let single = matches!(kind, QueryKind::Freq | QueryKind::Caps);
        let wanted: Vec<usize> = if single {
            match usize::try_from(resource_id).ok().filter(|v| *v < count) {
                Some(v) => vec![v],
                None => {
                    return Decision::reject(Rejection::VcpuOutOfRange {
                        vcpu: resource_id,
                        count: vm.placement.vcpus,
                    });
                }
            }
        } else {
            (0..count).collect()
        };
        let pcpu_of = |v: usize| {
            Vcpu::try_from(v)
                .ok()
                .and_then(|v| vm.placement.affinity.get(&v))
                .and_then(|a| a.iter().next().copied())
        };
        let num_vcpu = u8::try_from(count).expect("at most 8");
        let reply = match kind {
            QueryKind::Freq | QueryKind::FreqList => {
                let mut freqs_khz = [0u32; 8];
                for v in wanted {
                    freqs_khz[v] = pcpu_of(v)
                        .and_then(|c| self.host.known_khz(c))
                        .map_or(0, |k| k.0);
                }
                Reply::FreqList(FreqListReply {
                    resource_id,
                    unit: 0,
                    vm_name,
                    freqs_khz,
                    num_vcpu,
                })
            }
            QueryKind::Caps | QueryKind::CapsList => {
                let mut turbo = [false; 8];
                let mut priority = [false; 8];
                for v in wanted {
                    if let Some(cpu) = pcpu_of(v) {
                        turbo[v] = self
                            .host
                            .domain_of(cpu)
                            .is_some_and(|d| d.table.turbo_available());
                        priority[v] = self.host.high_priority(cpu);
                    }
                }
                Reply::Caps(CapsReply {
                    resource_id,
                    unit: 0,
                    vm_name,
                    turbo,
                    priority,
                    num_vcpu,
                })
            }
        };
        Decision {
            reply,
            actions: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Re-arbitrates the domains of `cpus`, returning what must change.
    pub(crate) fn rearbitrate(&mut self, cpus: &BTreeSet<CpuId>, trigger: &Trigger) -> Vec<Action> {
        let leaders: BTreeSet<CpuId> = cpus.iter().filter_map(|c| self.host.leader(*c)).collect();
        let mut actions = Vec::new();
        for leader in leaders {
            // The slow path re-reads every vote of the domain (cheap next
            // to what led here), so a caller cannot leave one stale.
            let cpus = self.host.domains.get(&leader).map(|d| Arc::clone(&d.cpus));
            for cpu in cpus.iter().flat_map(|c| c.iter().copied()) {
                self.refresh_votes(cpu);
            }
            self.arbitrate_domain(leader, || trigger.clone(), &mut actions);
        }
        actions
    }

    /// Arbitrates the domain led by `leader`; appends what must change,
    /// with the trigger `trigger` makes (called only for a change).
    pub(crate) fn arbitrate_domain(
        &mut self,
        leader: CpuId,
        trigger: impl FnOnce() -> Trigger,
        actions: &mut Vec<Action>,
    ) {
        let Some(domain) = self.host.domains.get(&leader) else {
            return;
        };
        debug_assert!(
            domain.cpus.iter().all(|c| self.votes_fresh(*c)),
            "cached votes of domain {leader} out of date"
        );
        if domain.yielded {
            return;
        }
        let verdict = arbitrate(domain, &self.users);
        let domain = self.host.domains.get_mut(&leader).expect("leader exists");
        domain.dirty = false;
        match verdict {
            None => {
                if domain.applied.take().is_some() {
                    actions.push(Action::Release {
                        cpu: leader,
                        domain: domain.cpus.clone(),
                    });
                }
            }
            Some(v) if domain.applied == Some(v.index) => {}
            Some(v) => {
                let from = domain
                    .table
                    .get(domain.known_index)
                    .expect("index in table");
                let to = domain.table.get(v.index).expect("arbitrate clamps");
                let previous = domain.applied;
                domain.applied = Some(v.index);
                domain.known_index = v.index;
                actions.push(Action::Set(FreqChange {
                    cpu: leader,
                    domain: domain.cpus.clone(),
                    from,
                    to,
                    index: v.index,
                    previous,
                    trigger: trigger(),
                    winner: v.winner,
                }));
            }
        }
    }
}

fn op_of(unit: ScalingUnit) -> ScalingOp {
    match unit {
        ScalingUnit::ScaleUp => ScalingOp::Up,
        ScalingUnit::ScaleDown => ScalingOp::Down,
        ScalingUnit::ScaleMax => ScalingOp::Max,
        ScalingUnit::ScaleMin => ScalingOp::Min,
        ScalingUnit::EnableTurbo => ScalingOp::EnableTurbo,
        ScalingUnit::DisableTurbo => ScalingOp::DisableTurbo,
    }
}

/// The claimed name when it is neither empty nor the channel's VM.
fn mismatch(claimed: &VmName, vm: &VmId) -> Option<String> {
    let claimed = claimed.as_str();
    (!claimed.is_empty() && claimed != vm.as_str()).then(|| claimed.to_owned())
}

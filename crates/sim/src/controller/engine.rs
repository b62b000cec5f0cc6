//! vmpower's own policies, decided by the real `vmpower-engine`.
//!
//! The controller builds an engine as the daemon does (one pCPU per vCPU,
//! each its own frequency domain, the VM's vCPUs pinned to them), installs
//! each VM's policy with [`Engine::set_policy`], and then feeds it exactly
//! the daemon's inputs:
//! - every `interval` (the daemon's `traffic_interval_ms`, default 100 ms),
//!   each traffic-driven policy's rate from two readings of its counter
//!   over the elapsed time, or "waiting for a second counter reading" at
//!   the first (the daemon's `samplers.rs`), in one
//!   [`Engine::traffic_tick_into`] in the order of
//!   [`Engine::traffic_policies`];
//! - at each local-hour boundary, [`Engine::set_wall_clock`] and
//!   [`Engine::time_tick`] (the daemon's TIME loop).
//!
//! Drop-aware controllers ([`EnginePolicies::drop_aware`]) also read each
//! VM's drop counter and feed the engine a [`TrafficReading`]: the rate
//! the guest received (offered less dropped, as a tap's `tx_packets`
//! counts) and the drops per second (its `tx_dropped`), as the daemon's
//! sampler does with a real source.
//!
//! The engine's [`Action`]s are the frequency writes: a `Set` moves the
//! VM's cores to its index, a `Release` gives them back to the original
//! governor, which for a busy-polling core means max.

use std::collections::HashMap;
use std::time::Duration;

use vmpower_cpufreq::{CpuId, Khz};
use vmpower_engine::policy::drops::TrafficReading;
use vmpower_engine::policy::traffic::Hysteresis;
use vmpower_engine::{
    Action, Engine, EngineConfig, OtherHours, PcpuSpec, Placement, PolicyExtensions, PolicySpec,
    VmId, VmSettings,
};
use vmpower_proto::{
    HourSchedule, MacAddr, MacList, Policy, PolicyKind, TrafficThresholds, VcpuList, WorkloadLevel,
};

use super::{Controller, Observation, Setup, counter_rate};

/// The daemon's default traffic sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// A vmpower policy for one VM.
#[derive(Debug, Clone, PartialEq)]
pub enum VmPolicy {
    /// TRAFFIC with these thresholds and hysteresis (`None`: the engine's
    /// default, 5 % and 500 ms).
    Traffic(TrafficThresholds, Option<Hysteresis>),
    /// TRAFFIC with thresholds learned from drops only (adaptive), with
    /// this hysteresis.
    TrafficAdaptive(Option<Hysteresis>),
    /// TIME with these hours (hours in no set run at medium).
    Time(HourSchedule),
    /// WORKLOAD at this level.
    Workload(WorkloadLevel),
}

/// The engine in the loop.
#[derive(Debug)]
pub struct EnginePolicies {
    name: String,
    policies: Vec<VmPolicy>,
    interval: Duration,
    engine: Engine,
    ids: Vec<VmId>,
    cpu_vm: HashMap<CpuId, usize>,
    /// Position in `ids` of each traffic policy, in the engine's order.
    traffic: Vec<usize>,
    input: Vec<(VmId, Result<TrafficReading, String>)>,
    /// Whether drops are fed to the engine.
    drops: bool,
    /// The drop counters at the last sample.
    last_dropped: Vec<u64>,
    /// All VMs' drops when a policy first learned a capacity, and at the
    /// last sample.
    learning: (Option<u64>, u64),
    actions: Vec<Action>,
    last_sample: Option<(Duration, Vec<u64>)>,
    next_sample: Duration,
    next_hour: Option<jiff::Timestamp>,
}

impl EnginePolicies {
    /// [`EnginePolicies::new`] that also feeds the engine each VM's drops
    /// (drop-aware TRAFFIC, adaptive thresholds).
    pub fn drop_aware(name: &str, policies: Vec<VmPolicy>, interval: Duration) -> Self {
        EnginePolicies {
            drops: true,
            ..Self::new(name, policies, interval)
        }
    }

    /// The packets dropped (all VMs) since a policy first learned a
    /// capacity from drops, up to the last sample; `None` before that (or
    /// when drops are not fed).
    pub fn drops_after_first_learning(&self) -> Option<u64> {
        self.learning.0.map(|at| self.learning.1.saturating_sub(at))
    }

    /// A controller named `name` giving VM `i` the policy `policies[i]`,
    /// its traffic sampled every `interval`.
    pub fn new(name: &str, policies: Vec<VmPolicy>, interval: Duration) -> Self {
        EnginePolicies {
            name: name.to_owned(),
            policies,
            interval,
            engine: Engine::new(EngineConfig::default()),
            ids: Vec::new(),
            cpu_vm: HashMap::new(),
            traffic: Vec::new(),
            input: Vec::new(),
            drops: false,
            last_dropped: Vec::new(),
            learning: (None, 0),
            actions: Vec::new(),
            last_sample: None,
            next_sample: Duration::ZERO,
            next_hour: None,
        }
    }

    fn apply(&mut self, wanted: &mut [usize]) {
        apply_actions(&mut self.actions, &self.cpu_vm, wanted);
    }
}

/// Applies the engine's actions to the VMs' wanted indexes (draining
/// them): a `Set` moves the VM's cores to its index, a `Release` gives
/// them back to the original governor, max for a busy-polling core.
pub(crate) fn apply_actions(
    actions: &mut Vec<Action>,
    cpu_vm: &HashMap<CpuId, usize>,
    wanted: &mut [usize],
) {
    for action in actions.drain(..) {
        let (cpu, index) = match action {
            Action::Set(change) => (change.cpu, change.index),
            Action::Release { cpu, .. } => (cpu, 0),
        };
        if let Some(vm) = cpu_vm.get(&cpu) {
            wanted[*vm] = index;
        }
    }
}

/// Declares `host`'s pCPUs (one per vCPU, each its own domain, at max)
/// and VMs (vCPU `j` of VM `i` pinned to pCPU `i·vcpus + j`) to `engine`,
/// as the daemon does from its inventory. Returns the VMs' ids and each
/// pCPU's VM.
pub(crate) fn place_vms(
    engine: &mut Engine,
    host: &crate::host::SimHost,
) -> anyhow::Result<(Vec<VmId>, HashMap<CpuId, usize>)> {
    let table = host.model.table();
    let max = Khz(host.model.khz()[0]);
    let mut ids = Vec::new();
    let mut cpu_vm = HashMap::new();
    for (i, name) in host.vms.iter().enumerate() {
        let first = u32::try_from(i * host.vcpus)?;
        let pcpus: Vec<u32> = (first..first + u32::try_from(host.vcpus)?).collect();
        for cpu in &pcpus {
            engine.add_pcpu(PcpuSpec {
                cpu: CpuId(*cpu),
                table: table.clone(),
                current: max,
                domain: vec![CpuId(*cpu)],
                high_priority: false,
                enable_turbo_moves_to_max: true,
            });
            cpu_vm.insert(CpuId(*cpu), i);
        }
        let id = VmId::new(name);
        engine.add_vm(id.clone(), VmSettings::default());
        engine.set_placement(&id, Placement::pinned(&pcpus));
        ids.push(id);
    }
    Ok((ids, cpu_vm))
}

/// The MAC the simulator gives VM `i` (locally administered).
fn mac_of(i: usize) -> MacAddr {
    let b = u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes();
    MacAddr([0x02, 0x00, b[0], b[1], b[2], b[3]])
}

fn proto_policy(
    p: &VmPolicy,
    vcpus: usize,
    mac: MacAddr,
) -> anyhow::Result<(Policy, PolicyExtensions)> {
    let cores: Vec<u8> = (0..u8::try_from(vcpus.min(8))?).collect();
    let cores = VcpuList::from_slice(&cores)?;
    let macs = MacList::from_slice(&[mac])?;
    let mut ext = PolicyExtensions::default();
    let policy = match p {
        VmPolicy::Traffic(t, h) => {
            ext.hysteresis = *h;
            Policy {
                macs,
                traffic: *t,
                ..Policy::new(PolicyKind::Traffic, cores)
            }
        }
        VmPolicy::TrafficAdaptive(h) => {
            ext.hysteresis = *h;
            ext.adaptive = true;
            Policy {
                macs,
                ..Policy::new(PolicyKind::Traffic, cores)
            }
        }
        VmPolicy::Time(hours) => {
            // "Medium otherwise": said explicitly, since the daemon's
            // default for unlisted hours leaves the cores where they are
            // (as DPDK's host), which after quiet hours means at min.
            ext.other_hours = Some(OtherHours::Medium);
            Policy {
                macs,
                hours: *hours,
                ..Policy::new(PolicyKind::Time, cores)
            }
        }
        VmPolicy::Workload(w) => Policy {
            workload: *w,
            ..Policy::new(PolicyKind::Workload, cores)
        },
    };
    Ok((policy, ext))
}

impl Controller for EnginePolicies {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn start(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        let host = setup.host;
        anyhow::ensure!(
            self.policies.len() == host.vms.len(),
            "{}: {} policies for {} VMs",
            self.name,
            self.policies.len(),
            host.vms.len()
        );
        anyhow::ensure!(
            host.vcpus <= 8,
            "a policy covers at most 8 vCPUs (got {})",
            host.vcpus
        );
        let mut engine = Engine::new(EngineConfig::default());
        engine.set_wall_clock(setup.start_wall);
        let now = Duration::ZERO;
        let (ids, cpu_vm) = place_vms(&mut engine, host)?;
        self.cpu_vm = cpu_vm;
        self.ids.clear();
        for (i, (name, id)) in host.vms.iter().zip(ids).enumerate() {
            let (policy, ext) = proto_policy(&self.policies[i], host.vcpus, mac_of(i))?;
            let spec = PolicySpec {
                policy,
                ext,
                tz: jiff::tz::TimeZone::UTC,
            };
            self.actions.extend(
                engine
                    .set_policy(&id, spec, now, setup.start_wall)
                    .map_err(|e| {
                        anyhow::anyhow!("{}: the engine refused VM {name}'s policy: {e}", self.name)
                    })?,
            );
            self.ids.push(id);
        }
        // The engine's order of traffic policies, holding its own ids.
        let listed = engine.traffic_policies();
        self.traffic = listed
            .iter()
            .filter_map(|(id, _)| self.ids.iter().position(|x| x == id))
            .collect();
        self.input = listed
            .into_iter()
            .map(|(id, _)| (id, Err(String::new())))
            .collect();
        self.next_hour = engine.next_time_event(setup.start_wall);
        self.engine = engine;
        self.last_sample = None;
        self.next_sample = Duration::ZERO;
        self.last_dropped.clear();
        self.learning = (None, 0);
        Ok(())
    }

    fn decide(&mut self, obs: &Observation<'_>, wanted: &mut [usize]) {
        if !self.actions.is_empty() {
            self.apply(wanted);
        }
        if self.next_hour.is_some_and(|t| obs.wall >= t) {
            self.engine.set_wall_clock(obs.wall);
            let actions = self.engine.time_tick(obs.wall, obs.now);
            self.actions.extend(actions);
            self.next_hour = self.engine.next_time_event(obs.wall);
            self.apply(wanted);
        }
        if self.traffic.is_empty() || obs.now < self.next_sample {
            return;
        }
        self.next_sample = obs.now + self.interval;
        match &mut self.last_sample {
            None => {
                for (input, _) in self.input.iter_mut().zip(&self.traffic) {
                    input.1 = Err("waiting for a second counter reading".to_owned());
                }
                self.last_sample = Some((obs.now, obs.counters.to_vec()));
                self.last_dropped = obs.dropped.to_vec();
            }
            Some((at, prev)) => {
                let elapsed = obs.now.saturating_sub(*at);
                for (input, vm) in self.input.iter_mut().zip(&self.traffic) {
                    let offered = counter_rate(prev[*vm], obs.counters[*vm], elapsed);
                    input.1 = Ok(if self.drops {
                        let (was, now) = (
                            self.last_dropped.get(*vm).copied().unwrap_or(0),
                            obs.dropped.get(*vm).copied().unwrap_or(0),
                        );
                        let drops_pps = counter_rate(was, now, elapsed);
                        TrafficReading {
                            rate_pps: (offered - drops_pps).max(0.0),
                            drops_pps,
                        }
                    } else {
                        offered.into()
                    });
                }
                self.last_dropped.clear();
                self.last_dropped.extend_from_slice(obs.dropped);
                *at = obs.now;
                prev.copy_from_slice(obs.counters);
            }
        }
        self.engine
            .traffic_tick_into(&self.input, obs.now, &mut self.actions);
        if self.drops {
            let total: u64 = obs.dropped.iter().sum();
            if !self.engine.take_learned().is_empty() && self.learning.0.is_none() {
                self.learning.0 = Some(total);
            }
            self.learning.1 = total;
        }
        self.apply(wanted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::SimHost;
    use crate::packet::PacketParams;
    use crate::power::CpuModel;

    fn host(vms: usize) -> SimHost {
        let names = (0..vms).map(|i| format!("vm{i}")).collect();
        SimHost::new(
            CpuModel::load("xeon-gold-6230").unwrap(),
            PacketParams::default(),
            names,
            1,
        )
    }

    const T: TrafficThresholds = TrafficThresholds {
        min_pps: 0,
        avg_pps: 1_000,
        max_pps: 2_000,
    };

    /// Feeds `rates` (pps, one per 10 ms step) and returns the index wanted
    /// after each step.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    fn drive(c: &mut EnginePolicies, host: &SimHost, rates: &[f64]) -> Vec<usize> {
        let setup = Setup {
            host,
            step: Duration::from_millis(10),
            steps: rates.len(),
            start_wall: jiff::Timestamp::UNIX_EPOCH,
            future: None,
        };
        c.start(&setup).unwrap();
        let mut wanted = vec![0];
        let mut counter = 0.0;
        let mut out = Vec::new();
        for (k, r) in rates.iter().enumerate() {
            let now = Duration::from_millis(10 * k as u64);
            let obs = Observation {
                step: k,
                now,
                wall: jiff::Timestamp::UNIX_EPOCH,
                counters: &[counter as u64],
                queued: &[0.0],
                busy: &[0.0],
                dropped: &[0],
            };
            c.decide(&obs, &mut wanted);
            out.push(wanted[0]);
            counter += r * 0.01;
        }
        out
    }

    #[test]
    fn traffic_follows_the_daemon_sampling_and_hysteresis() {
        let host = host(1);
        let mut c = EnginePolicies::new(
            "t",
            vec![VmPolicy::Traffic(T, None)],
            Duration::from_millis(100),
        );
        // 1 s at 500 pps, then 1 s at 3000, then 2 s at 500.
        let mut rates = vec![500.0; 100];
        rates.extend(vec![3000.0; 100]);
        rates.extend(vec![500.0; 200]);
        let w = drive(&mut c, &host, &rates);
        let min = host.min();
        // The first sample only sets a baseline (no rate yet): max holds.
        assert_eq!(w[5], 0);
        // From the second sample (100 ms) on: min.
        assert_eq!(w[15], min);
        // The rise at 1.0 s is seen at the next sample (1.1 s): max.
        assert_eq!(w[105], min, "not before a sample");
        assert_eq!(w[110], 0);
        // The fall at 2.0 s is seen at 2.1 s; down only after 500 ms below.
        assert_eq!(w[250], 0, "dwell holds max");
        assert_eq!(w[300], min);
    }

    #[test]
    fn workload_and_time_decide_at_once() {
        let host = host(2);
        let mut c = EnginePolicies::new(
            "t",
            vec![
                VmPolicy::Workload(WorkloadLevel::Medium),
                VmPolicy::Time(HourSchedule {
                    quiet: vmpower_proto::HourSet::from_hours([0]).unwrap(),
                    ..HourSchedule::default()
                }),
            ],
            DEFAULT_INTERVAL,
        );
        let setup = Setup {
            host: &host,
            step: Duration::from_millis(10),
            steps: 1,
            start_wall: jiff::Timestamp::UNIX_EPOCH,
            future: None,
        };
        c.start(&setup).unwrap();
        let mut wanted = vec![0, 0];
        let obs = Observation {
            step: 0,
            now: Duration::ZERO,
            wall: jiff::Timestamp::UNIX_EPOCH,
            counters: &[0, 0],
            queued: &[0.0, 0.0],
            busy: &[0.0, 0.0],
            dropped: &[0, 0],
        };
        c.decide(&obs, &mut wanted);
        assert_eq!(
            wanted,
            vec![host.medium(), host.min()],
            "hour 0 UTC is quiet"
        );
    }
}

//! The bench setup shared by the `tick` bench and the `tick_profile`
//! example: an engine with 1,024 VMs with a TRAFFIC policy each on their
//! 8 vCPUs, pinned round-robin over the host's pCPUs (see `tick.rs`).

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use vmpower_engine::policy::traffic::Hysteresis;
use vmpower_engine::{
    Action, Engine, EngineConfig, PcpuSpec, Placement, PolicyExtensions, PolicySpec, VmId,
    VmSettings,
};
use vmpower_proto::{MacAddr, MacList, Policy, PolicyKind, TrafficThresholds, VcpuList};
use vmpower_types::levels::FreqTable;
use vmpower_types::{CpuId, Khz};

const VMS: u32 = 1_024;
const VCPUS: u32 = 8;
const AVG_PPS: u32 = 100_000;
const MAX_PPS: u32 = 200_000;

fn table() -> FreqTable {
    FreqTable::new(
        [2_301_000, 2_300_000, 1_600_000, 1_200_000, 800_000]
            .map(Khz)
            .to_vec(),
    )
    .expect("a valid table")
}

fn policy(i: u32) -> Policy {
    let [_, _, a, b] = i.to_be_bytes();
    let mac = MacAddr([0x02, 0, 0, 0, a, b]);
    Policy {
        macs: MacList::from_slice(&[mac]).expect("one MAC fits"),
        traffic: TrafficThresholds {
            min_pps: 0,
            avg_pps: AVG_PPS,
            max_pps: MAX_PPS,
        },
        ..Policy::new(
            PolicyKind::Traffic,
            VcpuList::from_slice(&[0, 1, 2, 3, 4, 5, 6, 7]).expect("8 vCPUs fit"),
        )
    }
}

/// An engine with `pcpus` pCPUs and 1,024 VMs with a TRAFFIC policy each,
/// all at the level of `start_pps` (already decided).
pub fn engine(pcpus: u32, hysteresis: Option<Hysteresis>, start_pps: f64) -> (Engine, Vec<VmId>) {
    let mut e = Engine::new(EngineConfig::default());
    for cpu in 0..pcpus {
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(cpu),
            table: table(),
            current: Khz(2_300_000),
            domain: vec![CpuId(cpu)],
            high_priority: false,
            enable_turbo_moves_to_max: true,
        });
    }
    let wall: Timestamp = "2026-11-24T12:00:00Z".parse().expect("a timestamp");
    let mut ids = Vec::new();
    for i in 0..VMS {
        let id = VmId::new(&format!("vm{i}"));
        e.add_vm(id.clone(), VmSettings::default());
        let pins: Vec<u32> = (0..VCPUS).map(|v| (i * VCPUS + v) % pcpus).collect();
        e.set_placement(&id, Placement::pinned(&pins));
        let spec = PolicySpec {
            policy: policy(i),
            ext: PolicyExtensions {
                hysteresis,
                ..PolicyExtensions::default()
            },
            tz: TimeZone::UTC,
        };
        e.set_policy(&id, spec, Duration::ZERO, wall)
            .expect("the policy is accepted");
        e.traffic_sample(&id, Ok(start_pps), Duration::from_millis(1));
        ids.push(id);
    }
    // The daemon's sampler feeds a tick in the order the engine lists
    // its traffic policies (by name, its own ids): so does the bench.
    let listed: Vec<VmId> = e.traffic_policies().into_iter().map(|(id, _)| id).collect();
    assert_eq!(listed.len(), ids.len(), "every VM has a traffic policy");
    (e, listed)
}

/// One tick: a rate for every policy at monotonic time `now`, fed as the
/// daemon's sampler does (`traffic_tick`); returns the number of actions.
/// One tick as the daemon's sampler runs it: the samples built, the
/// engine's tick into the actions vector the sampler keeps (emptied of the
/// last tick's actions first); the number of actions.
pub fn tick(
    e: &mut Engine,
    ids: &[VmId],
    rate: f64,
    now: Duration,
    actions: &mut Vec<Action>,
) -> usize {
    let samples: Vec<(VmId, Result<f64, String>)> =
        ids.iter().map(|id| (id.clone(), Ok(rate))).collect();
    actions.clear();
    e.traffic_tick_into(&samples, now, actions);
    actions.len()
}

/// Hysteresis off: every crossing of a threshold changes the level at once.
pub fn no_hysteresis() -> Hysteresis {
    Hysteresis {
        band: 0.0,
        dwell: Duration::ZERO,
    }
}

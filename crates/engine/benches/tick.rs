//! Cost of one TRAFFIC sampling tick of the engine: `traffic_tick` fed
//! for each of 1,024 VMs, each with a TRAFFIC policy on its 8 vCPUs, as
//! the daemon's sampler does once per interval. Reports, never asserts.
//!
//! ## Setup
//! 1,024 VMs × 8 vCPUs = 8,192 vCPUs pinned round-robin over `PCPUS`
//! pCPUs (each its own frequency domain, 5-step table), so VMs share
//! pCPUs and every level change is arbitrated against the other VMs
//! there. Two host sizes: 64 pCPUs (128 VMs per pCPU, heavy sharing) and
//! 1,024 pCPUs (8 VMs per pCPU).
//!
//! ## Cases
//! - `steady`: every rate stays in the same band, no level changes, no
//!   action (the common tick).
//! - `crossing`: every policy's rate jumps across both thresholds each
//!   tick (alternately far below `avg_pps` and above `max_pps`), with a
//!   zero hysteresis band and dwell so each tick changes every policy's
//!   level and every pCPU's frequency (the worst case).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use vmpower_cpufreq::levels::FreqTable;
use vmpower_cpufreq::{CpuId, Khz};
use vmpower_engine::policy::traffic::Hysteresis;
use vmpower_engine::{
    Engine, EngineConfig, PcpuSpec, Placement, PolicyExtensions, PolicySpec, VmId, VmSettings,
};
use vmpower_proto::{
    CoreType, HourSchedule, MacAddr, MacList, Policy, PolicyKind, TrafficThresholds, VcpuList,
    WorkloadLevel,
};

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
        kind: PolicyKind::Traffic,
        cores: VcpuList::from_slice(&[0, 1, 2, 3, 4, 5, 6, 7]).expect("8 vCPUs fit"),
        core_type: CoreType::Virtual,
        macs: MacList::from_slice(&[mac]).expect("one MAC fits"),
        traffic: TrafficThresholds {
            min_pps: 0,
            avg_pps: AVG_PPS,
            max_pps: MAX_PPS,
        },
        hours: HourSchedule::default(),
        workload: WorkloadLevel::High,
        turbo_boost: false,
    }
}

/// An engine with `pcpus` pCPUs and 1,024 VMs with a TRAFFIC policy each,
/// all at the level of `start_pps` (already decided).
fn engine(pcpus: u32, hysteresis: Option<Hysteresis>, start_pps: f64) -> (Engine, Vec<VmId>) {
    let mut e = Engine::new(EngineConfig::default());
    for cpu in 0..pcpus {
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(cpu),
            table: table(),
            current: Khz(2_300_000),
            domain: vec![CpuId(cpu)],
            high_priority: false,
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
    (e, ids)
}

/// One tick: a rate for every policy at monotonic time `now`, fed as the
/// daemon's sampler does (`traffic_tick`); returns the number of actions.
fn tick(e: &mut Engine, ids: &[VmId], rate: f64, now: Duration) -> usize {
    let samples = ids.iter().map(|id| (id.clone(), Ok(rate))).collect();
    e.traffic_tick(samples, now).len()
}

fn bench_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick_1024_traffic_policies");
    for pcpus in [64u32, 1_024] {
        // Steady: 150 kpps stays medium (between avg and max), no change.
        let (mut e, ids) = engine(pcpus, None, 150_000.0);
        let mut now = Duration::from_millis(100);
        assert_eq!(
            tick(&mut e, &ids, 150_000.0, now),
            0,
            "steady means no action"
        );
        group.bench_function(BenchmarkId::new("steady", pcpus), |b| {
            b.iter(|| {
                now += Duration::from_millis(100);
                black_box(tick(&mut e, &ids, black_box(150_000.0), now))
            });
        });

        // Crossing: min ↔ max every tick, no hysteresis.
        let zero = Hysteresis {
            band: 0.0,
            dwell: Duration::ZERO,
        };
        let (mut e, ids) = engine(pcpus, Some(zero), 10_000.0);
        let mut now = Duration::from_millis(100);
        let mut high = true;
        let first = tick(&mut e, &ids, 250_000.0, now);
        assert!(
            first >= usize::try_from(pcpus).expect("fits"),
            "crossing changes every pCPU"
        );
        group.bench_function(BenchmarkId::new("crossing", pcpus), |b| {
            b.iter(|| {
                now += Duration::from_millis(100);
                high = !high;
                let rate = if high { 250_000.0 } else { 10_000.0 };
                black_box(tick(&mut e, &ids, black_box(rate), now))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_tick);
criterion_main!(benches);

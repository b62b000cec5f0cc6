//! Cost of one TRAFFIC sampling tick of the engine: `traffic_tick` fed
//! for each of 1,024 VMs, each with a TRAFFIC policy on its 8 vCPUs, as
//! the daemon's sampler does once per interval. Reports, never asserts.
//!
//! ## Setup
//! 1,024 VMs × 8 vCPUs = 8,192 vCPUs pinned round-robin over `PCPUS`
//! pCPUs (each its own frequency domain, 5-step table), so VMs share
//! pCPUs and every level change is arbitrated against the other VMs
//! there. Two host sizes: 64 pCPUs (128 VMs per pCPU, heavy sharing) and
//! 1,024 pCPUs (8 VMs per pCPU). Samples come in the order the engine
//! lists its traffic policies, as the daemon's sampler feeds them.
//!
//! ## Cases
//! - `steady`: every rate stays in the same band, no level changes, no
//!   action (the common tick).
//! - `crossing`: every policy's rate jumps across both thresholds each
//!   tick (alternately far below `avg_pps` and above `max_pps`), with a
//!   zero hysteresis band and dwell so each tick changes every policy's
//!   level and every pCPU's frequency (the worst case).

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use common::{engine, no_hysteresis, tick};

fn bench_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick_1024_traffic_policies");
    // Kept from tick to tick, as the daemon's sampler keeps it.
    let mut actions = Vec::new();
    for pcpus in [64u32, 1_024] {
        // Steady: 150 kpps stays medium (between avg and max), no change.
        let (mut e, ids) = engine(pcpus, None, 150_000.0);
        let mut now = Duration::from_millis(100);
        assert_eq!(
            tick(&mut e, &ids, 150_000.0, now, &mut actions),
            0,
            "steady means no action"
        );
        group.bench_function(BenchmarkId::new("steady", pcpus), |b| {
            b.iter(|| {
                now += Duration::from_millis(100);
                black_box(tick(&mut e, &ids, black_box(150_000.0), now, &mut actions))
            });
        });

        // Crossing: min ↔ max every tick, no hysteresis.
        let (mut e, ids) = engine(pcpus, Some(no_hysteresis()), 10_000.0);
        let mut now = Duration::from_millis(100);
        let mut high = true;
        let first = tick(&mut e, &ids, 250_000.0, now, &mut actions);
        assert!(
            first >= usize::try_from(pcpus).expect("fits"),
            "crossing changes every pCPU"
        );
        group.bench_function(BenchmarkId::new("crossing", pcpus), |b| {
            b.iter(|| {
                now += Duration::from_millis(100);
                high = !high;
                let rate = if high { 250_000.0 } else { 10_000.0 };
                black_box(tick(&mut e, &ids, black_box(rate), now, &mut actions))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_tick);
criterion_main!(benches);

//! The simulator decides as the daemon does: one trace driven through the
//! real `vmpowerd` (its `run_with`, on a fake sysfs tree, with a TRAFFIC
//! policy from its policy directory and traffic counters that read the
//! trace at the time the daemon samples them) and through the simulator's
//! engine controller gives the same sequence of frequencies on the VM's
//! pCPU, each change within a bound of the other's time.
//!
//! The bound is sampling jitter: the daemon's 100 ms sampler runs at its
//! own phase against the trace, the simulator's at the trace's start; a
//! change is seen up to one interval apart, plus the scheduling slack of
//! a shared machine. The trace only moves between neighbouring levels
//! (min ↔ medium ↔ max), so a sample straddling a step cannot call for a
//! third level: the sequences must match exactly. The counters are a
//! function of the time they are read (the trace's packets so far), so a
//! stalled test thread cannot bunch packets into one sample. Bounded:
//! about 7 s.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{SimDaemon, TraceCounters};
use vmpower_proto::TrafficThresholds;
use vmpower_sim::controller::engine::{EnginePolicies, VmPolicy};
use vmpower_sim::controller::{Controller, Observation, Setup};
use vmpower_sim::host::SimHost;
use vmpower_sim::packet::PacketParams;
use vmpower_sim::power::CpuModel;

const STEP: Duration = Duration::from_millis(10);
const INTERVAL: Duration = Duration::from_millis(100);
/// How far apart the daemon's and the simulator's changes may be.
const BOUND: Duration = Duration::from_millis(350);

const T: TrafficThresholds = TrafficThresholds {
    min_pps: 0,
    avg_pps: 1_000_000,
    max_pps: 4_000_000,
};

/// Rates per 10 ms step: low, mid, high, mid, low (min, medium, max,
/// medium, min), each long enough for the 500 ms dwell.
fn trace() -> Vec<f64> {
    let mut r = Vec::new();
    for (pps, steps) in [
        (200_000.0, 100),
        (1_800_000.0, 120),
        (8_000_000.0, 120),
        (1_800_000.0, 150),
        (200_000.0, 150),
    ] {
        r.extend(std::iter::repeat_n(pps, steps));
    }
    r
}

/// (seconds from the trace's start, kHz) of each change the simulator's
/// engine controller asks for.
fn simulated(model: &CpuModel, rates: &[f64]) -> Vec<(f64, u32)> {
    let host = SimHost::new(
        model.clone(),
        PacketParams::default(),
        vec!["vm0".into()],
        1,
    );
    let mut c = EnginePolicies::new("sim", vec![VmPolicy::Traffic(T, None)], INTERVAL);
    let setup = Setup {
        host: &host,
        step: STEP,
        steps: rates.len(),
        start_wall: jiff::Timestamp::UNIX_EPOCH,
        future: None,
    };
    c.start(&setup).expect("the engine takes the policy");
    let khz = model.khz();
    let mut wanted = vec![0];
    let mut last = 0;
    let mut counter = 0.0;
    let mut changes = Vec::new();
    for (k, r) in rates.iter().enumerate() {
        let now = STEP * u32::try_from(k).expect("a short trace");
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let counters = [counter as u64];
        let obs = Observation {
            step: k,
            now,
            wall: jiff::Timestamp::UNIX_EPOCH,
            counters: &counters,
            queued: &[0.0],
            busy: &[0.0],
            dropped: &[0],
        };
        c.decide(&obs, &mut wanted);
        if wanted[0] != last {
            last = wanted[0];
            changes.push((now.as_secs_f64(), khz[last]));
        }
        counter += r * STEP.as_secs_f64();
    }
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_and_the_simulator_decide_alike() {
    let model = CpuModel::load("xeon-gold-6230").unwrap();
    let mut daemon = SimDaemon::new(&model, T, |_| {});
    let rates = Arc::new(trace());
    // The trace starts once the daemon is up (well within 2 s).
    let start = Instant::now() + Duration::from_secs(2);
    let counters = TraceCounters {
        start,
        step: STEP,
        rates: Arc::clone(&rates),
    };
    daemon.start(Box::new(counters)).await;
    assert!(Instant::now() < start, "the daemon took over 2 s to start");
    let fake = daemon.fake();
    // The daemon's writes noted as they appear, until the trace's end.
    let setspeed = "devices/system/cpu/cpu1/cpufreq/scaling_setspeed";
    let end = start + STEP * u32::try_from(rates.len()).unwrap();
    let mut seen = 0;
    let mut daemon_changes: Vec<(f64, u32)> = Vec::new();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let writes = fake.writes_to(setspeed);
        let t = Instant::now()
            .saturating_duration_since(start)
            .as_secs_f64();
        for w in &writes[seen..] {
            daemon_changes.push((t, w.trim().parse().unwrap()));
        }
        seen = writes.len();
    }
    daemon.stop().await;
    // Repeated writes of one value are not changes.
    daemon_changes.dedup_by_key(|c| c.1);
    let sim = simulated(&model, &rates);
    let levels = |c: &[(f64, u32)]| c.iter().map(|x| x.1).collect::<Vec<_>>();
    assert_eq!(
        levels(&daemon_changes),
        levels(&sim),
        "daemon {daemon_changes:?}\nsimulator {sim:?}"
    );
    assert_eq!(
        levels(&sim),
        vec![1_000_000, 1_500_000, 2_100_000, 1_500_000, 1_000_000]
    );
    let worst = daemon_changes
        .iter()
        .zip(&sim)
        .map(|(d, s)| (d.0 - s.0).abs())
        .fold(0.0f64, f64::max);
    eprintln!("largest gap between the daemon's and the simulator's changes: {worst:.3} s");
    for (d, s) in daemon_changes.iter().zip(&sim) {
        let gap = (d.0 - s.0).abs();
        assert!(
            gap <= BOUND.as_secs_f64(),
            "a change {gap:.3} s apart: daemon {daemon_changes:?}\nsimulator {sim:?}"
        );
    }
}

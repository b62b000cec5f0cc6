//! An operator's own traffic, replayed: the real daemon (its `run_with`
//! on a fake host) samples a TRAFFIC policy's counters while they follow
//! a known trace, keeps the rates in its record, stops (writing the open
//! block) and starts again; `vmpowerctl traffic export`'s code pages the
//! record out through the control socket as a trace; the simulator reads
//! it and runs every controller and the oracle over it.
//!
//! Checked: the exported trace has the record's step; every exported step
//! that lies within one segment of the trace (not within 150 ms of a
//! change) holds that segment's rate within 10 %; the steps of the trace's
//! last segment (written only at stop) are there; the simulator's oracle
//! spends no more than static max. Bounded: about 5 s.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{SimDaemon, TraceCounters};
use vmpower_proto::TrafficThresholds;
use vmpower_sim::host::SimHost;
use vmpower_sim::packet::PacketParams;
use vmpower_sim::power::CpuModel;
use vmpower_sim::run::{RunOptions, simulate};
use vmpower_sim::scenario::{self, Comparison};
use vmpower_sim::trace::csv;
use vmpowerctl::cli::ExportArgs;

const STEP: Duration = Duration::from_millis(10);
const RECORD_STEP_MS: u64 = 100;
const T: TrafficThresholds = TrafficThresholds {
    min_pps: 0,
    avg_pps: 1_000_000,
    max_pps: 4_000_000,
};

/// (packets/s, 10 ms steps) of each segment.
const SEGMENTS: [(f64, usize); 4] = [
    (300_000.0, 80),
    (5_000_000.0, 100),
    (1_500_000.0, 80),
    (600_000.0, 60),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_record_exports_as_a_trace_the_simulator_replays() {
    let model = CpuModel::load("xeon-gold-6230").unwrap();
    let mut daemon = SimDaemon::new(&model, T, |c| {
        c.traffic_interval_ms = 50;
        c.traffic_record_step_ms = RECORD_STEP_MS;
    });
    let rates: Vec<f64> = SEGMENTS
        .iter()
        .flat_map(|&(r, n)| std::iter::repeat_n(r, n))
        .collect();
    let rates = Arc::new(rates);
    let start = Instant::now() + Duration::from_millis(1500);
    let counters = TraceCounters {
        start,
        step: STEP,
        rates: Arc::clone(&rates),
    };
    daemon.start(Box::new(counters)).await;
    assert!(
        Instant::now() < start,
        "the daemon took over 1.5 s to start"
    );
    // The trace's start on the wall clock (the record's time base).
    let start_unix_ms = jiff::Timestamp::now().as_millisecond()
        + i64::try_from(start.saturating_duration_since(Instant::now()).as_millis()).unwrap();
    let end = start + STEP * u32::try_from(rates.len()).unwrap();
    tokio::time::sleep_until(end.into()).await;
    // The open block is written at stop; the record outlives the run.
    daemon.stop().await;
    daemon
        .start(Box::new(TraceCounters {
            start,
            step: STEP,
            rates: Arc::new(Vec::new()),
        }))
        .await;

    let socket = daemon.socket();
    let text = tokio::task::spawn_blocking(move || {
        let args = ExportArgs {
            vm: Some("vm0".into()),
            since: None,
            until: None,
            output: None,
        };
        let mut out = Vec::new();
        vmpowerctl::export::run(&socket, &args, &mut out, "memory").expect("export");
        String::from_utf8(out).unwrap()
    })
    .await
    .unwrap();
    daemon.stop().await;

    let trace = csv::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(trace.step, Duration::from_millis(RECORD_STEP_MS));
    assert_eq!(trace.vms, ["vm0"]);
    let first_ms: i64 = text
        .split("(unix ms ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no start in the header: {text}"));
    // Each exported step against the trace's segment, away from changes.
    let mut bounds = Vec::new();
    let mut at = 0;
    for &(r, n) in &SEGMENTS {
        bounds.push((at as i64 * 10, (at + n) as i64 * 10, r));
        at += n;
    }
    let margin = 150;
    let mut checked = vec![0; SEGMENTS.len()];
    for (k, pps) in trace.rates[0].iter().enumerate() {
        let step_start = first_ms + k as i64 * RECORD_STEP_MS as i64 - start_unix_ms;
        let step_end = step_start + RECORD_STEP_MS as i64;
        for (i, &(from, to, r)) in bounds.iter().enumerate() {
            if step_start >= from + margin && step_end <= to - margin {
                assert!(
                    (pps - r).abs() <= 0.1 * r,
                    "step {k} ({step_start}..{step_end} ms into the trace): {pps} pps, the trace {r}\n{text}"
                );
                checked[i] += 1;
            }
        }
    }
    assert!(
        checked.iter().all(|&c| c >= 1),
        "steps checked per segment: {checked:?}\n{text}"
    );

    let host = SimHost::new(model, PacketParams::default(), trace.vms.clone(), 1);
    let opts = RunOptions::default();
    let mut list = scenario::controllers(&host, &trace, opts.start_wall, &Comparison::default());
    let report = simulate(&host, &mut trace.source(), Some(&trace), &mut list, opts).unwrap();
    let by = |name: &str| {
        report
            .results
            .iter()
            .find(|r| r.controller == name)
            .unwrap()
    };
    assert!(by("oracle").energy_j <= by("static max").energy_j);
    assert!(report.results.iter().all(|r| r.offered > 0.0));
}

//! A short trace end to end: generated, written as CSV and read back,
//! every controller of the standard comparison over it, the table, JSON
//! and plots written, and a TRAFFIC policy tuned and parsed back by the
//! control API's policy-file reader. Bounded: a few seconds.

use std::time::Duration;

use vmpower_sim::host::SimHost;
use vmpower_sim::packet::PacketParams;
use vmpower_sim::power::CpuModel;
use vmpower_sim::run::{RunOptions, simulate};
use vmpower_sim::scenario::{self, Comparison};
use vmpower_sim::trace::generate::{GenSpec, Generated, Shape};
use vmpower_sim::trace::{Trace, csv};

fn short(shape: Shape) -> Trace {
    let mut spec = GenSpec::new(shape, 2, Duration::from_secs(60), 7e6, 5);
    spec.period = spec.duration;
    let t = Trace::collect(&mut Generated::new(spec)).expect("a valid spec");
    // Through the CSV format and back (rates rounded to whole pps).
    csv::parse(&csv::write(&t)).expect("the CSV writer's output parses")
}

fn host(trace: &Trace) -> SimHost {
    SimHost::new(
        CpuModel::load("xeon-gold-6230").expect("a built-in model"),
        PacketParams::default(),
        trace.vms.clone(),
        1,
    )
}

#[test]
fn every_controller_on_a_short_trace() {
    let trace = short(Shape::Step);
    let host = host(&trace);
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
    let max = by("static max");
    let oracle = by("oracle");
    assert!((max.energy_pct_of_static_max - 100.0).abs() < 1e-6);
    assert_eq!(max.dropped, 0.0, "the trace fits at max");
    assert_eq!(
        oracle.dropped, 0.0,
        "the oracle never drops when max does not"
    );
    for r in &report.results {
        assert!(r.offered > 0.0);
        assert!(r.latency_p50_us > 0.0 && r.latency_p50_us <= r.latency_p999_us);
        // No zero-drop schedule spends less than the oracle's.
        if r.dropped == 0.0 {
            assert!(
                r.energy_j >= oracle.energy_j * (1.0 - 1e-9),
                "{} beats the oracle",
                r.controller
            );
        }
    }
    // The engine decided something: its TRAFFIC policy moved the cores.
    let traffic = by("vmpower TRAFFIC");
    assert!(traffic.transitions > 0);
    assert!(traffic.energy_pct_of_static_max < 100.0);
    // The reports render.
    let table = vmpower_sim::report::table::render(&report);
    assert!(table.contains("oracle") && table.contains("DPDK TRAFFIC"));
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["results"].as_array().unwrap().len(),
        report.results.len()
    );
    let font = std::path::Path::new(vmpower_sim::report::plots::DEFAULT_FONT);
    if font.exists() {
        let dir = tempfile::tempdir().unwrap();
        vmpower_sim::report::plots::load_font(font).unwrap();
        let pngs = vmpower_sim::report::plots::write_all(dir.path(), "t", &report, "t").unwrap();
        assert_eq!(pngs.len(), 3);
        for p in pngs {
            assert!(std::fs::metadata(&p).unwrap().len() > 1000);
            assert!(p.with_extension("svg").exists());
        }
    }
}

#[test]
fn tuned_policy_is_a_valid_policy_file() {
    let trace = short(Shape::Diurnal);
    let one = Trace::new(
        trace.step,
        vec![trace.vms[0].clone()],
        vec![trace.rates[0].clone()],
    )
    .unwrap();
    let host = host(&one);
    let (fit, _) = one.split(0.7);
    let (best, tried, unavoidable) =
        vmpower_sim::tune::search(&host, &fit, Duration::from_millis(100)).unwrap();
    assert!(tried > 100);
    assert!(best.dropped <= unavoidable + 0.5);
    let text = vmpower_sim::tune::operator_policy_file("vm0", 1, &best, "note");
    let file = vmpower_api::PolicyFile::parse(&text).unwrap();
    let policy = file.policy().unwrap();
    assert_eq!(policy.traffic.avg_pps, best.avg_pps);
    assert_eq!(policy.traffic.max_pps, best.max_pps);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, vmpower_sim::tune::guest_policy_file(1, &best)).unwrap();
    let guest = vmpower_guest::cli::policy::from_file(&path).unwrap();
    assert_eq!(guest.traffic.avg_pps, best.avg_pps);
    assert_eq!(guest.traffic.max_pps, best.max_pps);
}

//! The drop-aware and adaptive TRAFFIC lines in the evaluator: the real
//! engine fed the model's drops. On a short step trace (rates jumping past
//! what min serves), drop-aware TRAFFIC drops fewer packets than the same
//! thresholds without drops, and both drop-fed lines record a learning
//! event. The ignored test prints, for the whole standard set, each line's
//! energy ratio to the oracle, its drops and its drops after the first
//! learning event (`cargo nextest run -p vmpower-sim --release
//! --run-ignored only drop_aware`).

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use vmpower_sim::controller::engine::{DEFAULT_INTERVAL, EnginePolicies, VmPolicy};
use vmpower_sim::controller::oracle::Oracle;
use vmpower_sim::controller::{Controller, Observation, Setup};
use vmpower_sim::host::SimHost;
use vmpower_sim::power::CpuModel;
use vmpower_sim::run::{RunOptions, simulate};
use vmpower_sim::scenario::default_thresholds;
use vmpower_sim::standard::{Case, StandardSpec, cases, default_params, trace};

/// A controller the test can still read after the run.
struct Probe(Rc<RefCell<EnginePolicies>>);

impl Controller for Probe {
    fn name(&self) -> String {
        self.0.borrow().name()
    }
    fn start(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        self.0.borrow_mut().start(setup)
    }
    fn decide(&mut self, obs: &Observation<'_>, wanted: &mut [usize]) {
        self.0.borrow_mut().decide(obs, wanted);
    }
}

/// Per line: (name, energy × oracle, dropped, dropped after the first
/// learning event).
type Line = (String, Option<f64>, f64, Option<u64>);

fn run_case(spec: &StandardSpec, case: &Case) -> Vec<Line> {
    let model = CpuModel::load(&spec.cpu).unwrap();
    let params = default_params(&model);
    let t = trace(spec, case, spec.seed).unwrap();
    let host = SimHost::new(model, params, t.vms.clone(), 1);
    let th = default_thresholds(&host);
    let n = host.vms.len();
    let aware = Rc::new(RefCell::new(EnginePolicies::drop_aware(
        "vmpower TRAFFIC drop-aware",
        vec![VmPolicy::Traffic(th, None); n],
        DEFAULT_INTERVAL,
    )));
    let adaptive = Rc::new(RefCell::new(EnginePolicies::drop_aware(
        "vmpower TRAFFIC adaptive",
        vec![VmPolicy::TrafficAdaptive(None); n],
        DEFAULT_INTERVAL,
    )));
    let mut list: Vec<Box<dyn Controller>> = vec![
        Box::new(EnginePolicies::new(
            "vmpower TRAFFIC",
            vec![VmPolicy::Traffic(th, None); n],
            DEFAULT_INTERVAL,
        )),
        Box::new(Probe(Rc::clone(&aware))),
        Box::new(Probe(Rc::clone(&adaptive))),
        Box::new(Oracle::default()),
    ];
    let report = simulate(
        &host,
        &mut t.source(),
        Some(&t),
        &mut list,
        RunOptions::default(),
    )
    .unwrap();
    let learned = [
        None,
        aware.borrow().drops_after_first_learning(),
        adaptive.borrow().drops_after_first_learning(),
        None,
    ];
    report
        .results
        .iter()
        .zip(learned)
        .map(|(r, l)| (r.controller.clone(), r.energy_ratio_to_oracle, r.dropped, l))
        .collect()
}

#[test]
fn drops_fed_to_the_engine_cut_the_drops_and_are_learned() {
    let spec = StandardSpec {
        seconds: 60,
        ..StandardSpec::default()
    };
    let case = cases().into_iter().find(|c| c.name == "step").unwrap();
    let lines = run_case(&spec, &case);
    for l in &lines {
        println!("{l:?}");
    }
    let (plain, aware, adaptive) = (&lines[0], &lines[1], &lines[2]);
    assert!(
        plain.2 > 0.0,
        "the trace must make fixed thresholds drop: {plain:?}"
    );
    assert!(aware.2 < plain.2, "drop-aware {aware:?} vs {plain:?}");
    assert!(aware.3.is_some(), "drop-aware never learned: {aware:?}");
    assert!(adaptive.3.is_some(), "adaptive never learned: {adaptive:?}");
}

#[test]
#[ignore = "the whole standard set: minutes; prints the figures"]
fn drop_aware_figures_on_the_standard_set() {
    let spec = StandardSpec::default();
    println!("trace | line | energy × oracle | dropped | dropped after first learning");
    for case in cases() {
        for (name, ratio, dropped, after) in run_case(&spec, &case) {
            println!(
                "{} | {name} | {} | {dropped:.0} | {}",
                case.name,
                ratio.map_or("-".to_owned(), |r| format!("{r:.3}")),
                after.map_or("-".to_owned(), |a| a.to_string())
            );
        }
    }
}

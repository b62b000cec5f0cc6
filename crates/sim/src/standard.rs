//! The standard trace set and the report `docs/energy.md` is made of.
//!
//! For each generator shape (and a whole day of the diurnal one, at 1 s
//! steps, where TIME policies have hours to work with): a seeded trace of
//! `vms` VMs; TRAFFIC tuned
//! ([`crate::tune`]) on a *training* trace of the same shape drawn with
//! another seed (`seed + 1000`, VM 0); then every controller (the tuned
//! one included) on the whole standard trace, all VMs. A separate draw
//! rather than a split keeps each shape's event (a flash crowd, say) in the
//! trace compared on. The same set is
//! then rerun under other power models for the sensitivity section.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::host::SimHost;
use crate::packet::PacketParams;
use crate::power::CpuModel;
use crate::run::{RunOptions, RunReport, simulate};
use crate::scenario::{self, Comparison};
use crate::trace::Trace;
use crate::trace::generate::{GenSpec, Generated, Shape};
use crate::tune::{self, Candidate};

/// The standard set's settings.
#[derive(Debug, Clone, Serialize)]
pub struct StandardSpec {
    /// VMs per trace.
    pub vms: usize,
    /// Each trace's length, s.
    pub seconds: u64,
    /// Peak per VM, packets/s.
    pub peak_pps: f64,
    /// Seed.
    pub seed: u64,
    /// The CPU model.
    pub cpu: String,
}

impl Default for StandardSpec {
    fn default() -> Self {
        StandardSpec {
            vms: 4,
            seconds: 600,
            peak_pps: 7e6,
            seed: 1,
            cpu: "xeon-gold-6230".to_owned(),
        }
    }
}

/// One trace of the set: a generator shape over a length at a step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Case {
    /// Its name in tables and plot files.
    pub name: &'static str,
    /// The generator.
    pub shape: Shape,
    /// Its length (`None`: the spec's `seconds`).
    pub seconds: Option<u64>,
    /// Its step, ms.
    pub step_ms: u64,
}

/// The standard cases: every shape over `seconds` at 10 ms, and a diurnal
/// day at 1 s.
pub fn cases() -> Vec<Case> {
    let mut all: Vec<Case> = Shape::ALL
        .iter()
        .map(|s| Case {
            name: s.name(),
            shape: *s,
            seconds: None,
            step_ms: 10,
        })
        .collect();
    all.push(Case {
        name: "diurnal-day",
        shape: Shape::Diurnal,
        seconds: Some(24 * 3600),
        step_ms: 1000,
    });
    all
}

/// One trace's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TraceOutcome {
    /// The case.
    pub case: Case,
    /// The tuned candidate (on the training trace).
    pub tuned: Candidate,
    /// What static max drops on the training trace.
    pub unavoidable: f64,
    /// The held-out comparison.
    pub report: RunReport,
}

/// Generates one standard trace.
pub fn trace(spec: &StandardSpec, case: &Case, seed: u64) -> anyhow::Result<Trace> {
    let duration = Duration::from_secs(case.seconds.unwrap_or(spec.seconds));
    let mut g = GenSpec::new(case.shape, spec.vms, duration, spec.peak_pps, seed);
    g.period = duration;
    g.step = Duration::from_millis(case.step_ms);
    Ok(Trace::collect(&mut Generated::new(g))?)
}

/// The packet model's defaults with `model`'s transition latency.
pub fn default_params(model: &CpuModel) -> PacketParams {
    PacketParams {
        transition_latency: Duration::from_micros(model.transition_latency_us),
        ..PacketParams::default()
    }
}

/// Runs the set under `model` and `params`.
pub fn run_set(
    spec: &StandardSpec,
    model: &CpuModel,
    params: PacketParams,
) -> anyhow::Result<Vec<TraceOutcome>> {
    let mut out = Vec::new();
    for case in cases() {
        let t = trace(spec, &case, spec.seed)?;
        let training = trace(spec, &case, spec.seed + 1000)?;
        let host = SimHost::new(model.clone(), params, t.vms.clone(), 1);
        let vm0 = Trace::new(
            training.step,
            vec![training.vms[0].clone()],
            vec![training.rates[0].clone()],
        )?;
        let host0 = SimHost::new(model.clone(), params, vm0.vms.clone(), 1);
        let (tuned, _, unavoidable) =
            tune::search(&host0, &vm0, crate::controller::engine::DEFAULT_INTERVAL)?;
        let cmp = Comparison {
            tuned: Some((tuned.thresholds(), tuned.hysteresis())),
            ..Comparison::default()
        };
        let opts = RunOptions::default();
        let mut list = scenario::controllers(&host, &t, opts.start_wall, &cmp);
        let report = simulate(&host, &mut t.source(), Some(&t), &mut list, opts)?;
        out.push(TraceOutcome {
            case,
            tuned,
            unavoidable,
            report,
        });
    }
    Ok(out)
}

/// Writes the plots of `outcomes` into `dir` and returns the Markdown
/// sections (tables and images, linked relative to `link_prefix`).
pub fn markdown(
    outcomes: &[TraceOutcome],
    dir: &Path,
    link_prefix: &str,
    plots: bool,
) -> anyhow::Result<String> {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Summary: energy as a ratio to the oracle's (packets dropped)\n"
    );
    let names = controller_names(outcomes);
    let _ = writeln!(md, "| trace | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(names.len()));
    for o in outcomes {
        let cells: Vec<String> = o
            .report
            .results
            .iter()
            .map(|r| {
                format!(
                    "{} ({:.0})",
                    r.energy_ratio_to_oracle
                        .map_or("-".to_owned(), |x| format!("{x:.3}")),
                    r.dropped
                )
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", o.case.name, cells.join(" | "));
    }
    let goal: Vec<String> = outcomes
        .iter()
        .filter(|o| {
            o.report.results.iter().any(|r| {
                r.controller.ends_with("tuned")
                    && r.dropped == 0.0
                    && r.energy_ratio_to_oracle.is_some_and(|x| x <= 1.15)
            })
        })
        .map(|o| o.case.name.to_owned())
        .collect();
    let _ = writeln!(
        md,
        "\nThe goal for vmpower TRAFFIC with tuned thresholds, within 15 % of the oracle's energy with zero drops, is met on {} of {} traces ({}).",
        goal.len(),
        outcomes.len(),
        if goal.is_empty() {
            "none".to_owned()
        } else {
            goal.join(", ")
        }
    );
    for o in outcomes {
        let r = &o.report;
        let _ = writeln!(
            md,
            "\n### {} ({:.0} s at {} ms, {} VMs)\n",
            o.case.name, r.duration_s, r.step_ms, r.vms
        );
        let t = &o.tuned;
        let _ = writeln!(
            md,
            "Tuned on vm0 of a training trace (seed + 1000): avg_pps {}, max_pps {}, band {}, dwell {} ms ({:.0} packets dropped there; static max drops {:.0}).\n",
            t.avg_pps, t.max_pps, t.band, t.dwell_ms, t.dropped, o.unavoidable
        );
        md.push_str(&crate::report::markdown::results_table(r));
        if plots {
            let stem = o.case.name;
            crate::report::plots::write_all(dir, stem, r, &format!("{stem}: offered rate, vm0"))?;
            for kind in ["timeline", "energy-drops", "oracle-gap"] {
                let _ = writeln!(md, "\n![{stem} {kind}]({link_prefix}{stem}-{kind}.png)");
            }
        }
    }
    Ok(md)
}

/// The other models the sensitivity section reruns the set under: every
/// built-in model but `main` (the assumed x86 tables and the vendor-model
/// ARM tables alike), in [`crate::power::builtin_names`] order.
pub fn sensitivity_models(main: &str) -> anyhow::Result<Vec<CpuModel>> {
    crate::power::builtin_names()
        .into_iter()
        .filter(|n| *n != main)
        .map(|n| Ok(CpuModel::load(n)?))
        .collect()
}

/// One line per controller: its energy (% of static max) on each trace,
/// for the sensitivity section.
pub fn sensitivity_rows(label: &str, outcomes: &[TraceOutcome]) -> String {
    let mut md = String::new();
    for o in outcomes {
        let cells: Vec<String> = o
            .report
            .results
            .iter()
            .map(|r| format!("{:.1} ({:.0})", r.energy_pct_of_static_max, r.dropped))
            .collect();
        let _ = writeln!(md, "| {label} | {} | {} |", o.case.name, cells.join(" | "));
    }
    md
}

/// The controllers' names, in table order.
pub fn controller_names(outcomes: &[TraceOutcome]) -> Vec<String> {
    outcomes
        .first()
        .map(|o| {
            o.report
                .results
                .iter()
                .map(|r| r.controller.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The sensitivity table: `main` (run under `model` with the default
/// packet model), then the same set under `model`'s cube-law fallback,
/// under each of `others`, and under `model` with a 10× transition latency
/// and with three times the memory-bound time per packet (the cycles cut
/// to keep a core's capacity at max).
pub fn sensitivity(
    spec: &StandardSpec,
    model: &CpuModel,
    main: &[TraceOutcome],
    others: &[CpuModel],
) -> anyhow::Result<String> {
    let names = controller_names(main);
    let mut md = format!("| model | trace | {} |\n", names.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---:|".repeat(names.len()));
    md.push_str(&sensitivity_rows(&model.name, main));
    let cube = model.cube_law();
    let rows = run_set(spec, &cube, default_params(&cube))?;
    md.push_str(&sensitivity_rows(&cube.name, &rows));
    for other in others {
        let rows = run_set(spec, other, default_params(other))?;
        md.push_str(&sensitivity_rows(&other.name, &rows));
    }
    let base = default_params(model);
    let slow = PacketParams {
        transition_latency: base.transition_latency * 10,
        ..base
    };
    let label = format!(
        "{}, transition {} µs",
        model.name,
        slow.transition_latency.as_micros()
    );
    md.push_str(&sensitivity_rows(&label, &run_set(spec, model, slow)?));
    // Three times the memory-bound time, fewer cycles so that a core at
    // max serves as many packets as before (the traces still fit).
    let fmax_hz = f64::from(model.khz()[0]) * 1e3;
    let per_packet_s = 1.0 / base.service_pps(model.khz()[0]);
    let memory_ns = base.memory_ns_per_packet * 3.0;
    let memory = PacketParams {
        memory_ns_per_packet: memory_ns,
        cycles_per_packet: (per_packet_s - memory_ns * 1e-9) * fmax_hz,
        ..base
    };
    let label = format!(
        "{}, {:.0} of {:.0} ns/packet memory-bound",
        model.name,
        memory_ns,
        per_packet_s * 1e9
    );
    md.push_str(&sensitivity_rows(&label, &run_set(spec, model, memory)?));
    Ok(md)
}

/// The busyness section of docs/energy.md: for each trace, the busyness
/// controllers beside DPDK's thresholds and the Kubernetes-style one
/// (energy × oracle, drops, p99, transitions), and which targets are met.
pub fn busyness_section(outcomes: &[TraceOutcome]) -> String {
    const LINES: [&str; 4] = [
        "DPDK TRAFFIC",
        "vmpower busyness",
        "vmpower busyness 90-96 %",
        "Kubernetes-style",
    ];
    let mut md = String::from("| trace |");
    for l in LINES {
        let _ = write!(md, " {l}: × oracle, dropped, p99 µs, transitions |");
    }
    let _ = writeln!(md, "\n|---|{}", "---|".repeat(LINES.len()));
    let find = |o: &TraceOutcome, name: &str| {
        o.report
            .results
            .iter()
            .find(|r| r.controller == name)
            .cloned()
    };
    for o in outcomes {
        let _ = write!(md, "| {} |", o.case.name);
        for l in LINES {
            match find(o, l) {
                Some(r) => {
                    let _ = write!(
                        md,
                        " {}, {:.0}, {:.2}, {} |",
                        r.energy_ratio_to_oracle
                            .map_or("-".to_owned(), |x| format!("{x:.3}")),
                        r.dropped,
                        r.latency_p99_us,
                        r.transitions
                    );
                }
                None => md.push_str(" - |"),
            }
        }
        md.push('\n');
    }
    let met =
        |name: &str, ok: &dyn Fn(&TraceOutcome, &crate::metrics::ControllerResult) -> bool| {
            let names: Vec<&str> = outcomes
                .iter()
                .filter(|o| find(o, name).is_some_and(|r| ok(o, &r)))
                .map(|o| o.case.name)
                .collect();
            format!(
                "{} of {} ({})",
                names.len(),
                outcomes.len(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        };
    for name in ["vmpower busyness", "vmpower busyness 90-96 %"] {
        let within = met(name, &|_, r| {
            r.dropped == 0.0 && r.energy_ratio_to_oracle.is_some_and(|x| x <= 1.05)
        });
        // Better: no more drops than the other, and less energy.
        let better_than = |other: &'static str| {
            met(name, &move |o, r| {
                find(o, other).is_some_and(|d| r.dropped <= d.dropped && r.energy_j <= d.energy_j)
            })
        };
        let _ = writeln!(
            md,
            "\n**{name}**: within 5 % of the oracle's energy with zero drops on {within}; \
             no more drops and less energy than DPDK TRAFFIC on {}; than the Kubernetes-style \
             controller on {}.",
            better_than("DPDK TRAFFIC"),
            better_than("Kubernetes-style"),
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitivity_reruns_under_every_other_builtin() {
        let names: Vec<String> = sensitivity_models("xeon-gold-6230")
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert!(!names.iter().any(|n| n.contains("6230")), "{names:?}");
        assert_eq!(names.len(), crate::power::builtin_names().len() - 1);
        assert!(names.iter().any(|n| n.contains("RK3399")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("RK3588")), "{names:?}");
    }
}

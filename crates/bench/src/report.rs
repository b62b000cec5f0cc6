//! What a scenario reports: named figures with units and, where issue 3
//! sets one, a target. Printed as a table (or JSON); with several
//! repetitions, the median and the spread of each figure.
//!
//! The harness reports, it never asserts: a missed target is printed as
//! "not met", the exit code stays 0.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

/// Issue 3's target for a figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The figure should be at most this.
    AtMost(f64),
    /// The figure should be at least this.
    AtLeast(f64),
}

impl Target {
    /// Whether `value` meets the target.
    pub fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(t) => value <= t,
            Target::AtLeast(t) => value >= t,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtMost(t) => format!("<= {}", fmt_num(t)),
            Target::AtLeast(t) => format!(">= {}", fmt_num(t)),
        }
    }
}

/// One figure of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// What was measured, e.g. `daemon CPU time`.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its unit, e.g. `ms`.
    pub unit: &'static str,
    /// Issue 3's target, if it sets one for this figure.
    pub target: Option<Target>,
}

/// Everything one run of a scenario reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The figures, in print order.
    pub metrics: Vec<Metric>,
    /// Settings and remarks (rate limit, sizes, ...), printed once.
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a figure without a target.
    pub fn add(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            unit,
            target: None,
        });
    }

    /// Adds a figure with its target.
    pub fn add_target(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        target: Target,
    ) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            unit,
            target: Some(target),
        });
    }

    /// Adds a remark.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The report as a table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for n in &self.notes {
            let _ = writeln!(out, "# {n}");
        }
        let width = self.metrics.iter().map(|m| m.name.len()).max().unwrap_or(0);
        for m in &self.metrics {
            let verdict = m.target.map_or(String::new(), |t| {
                let met = if t.met(m.value) { "met" } else { "NOT met" };
                format!("  (target {} {}: {met})", t.describe(), m.unit)
            });
            let _ = writeln!(
                out,
                "{:width$}  {:>14} {}{verdict}",
                m.name,
                fmt_num(m.value),
                m.unit
            );
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "value": m.value,
                    "unit": m.unit,
                    "target_met": m.target.map(|t| t.met(m.value)),
                })
            })
            .collect();
        json!({ "metrics": metrics, "notes": self.notes })
    }
}

/// The median of each figure over several runs (matched by name), with
/// the smallest and largest value as the spread.
pub fn summarize(runs: &[Report]) -> Report {
    let mut summary = Report::default();
    let Some(first) = runs.first() else {
        return summary;
    };
    summary.notes.clone_from(&first.notes);
    summary.note(format!(
        "median of {} runs; [min .. max] in the name",
        runs.len()
    ));
    for m in &first.metrics {
        let mut values: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.metrics.iter().find(|x| x.name == m.name))
            .map(|x| x.value)
            .collect();
        values.sort_by(f64::total_cmp);
        let median = median_sorted(&values);
        let (lo, hi) = (values[0], values[values.len() - 1]);
        summary.metrics.push(Metric {
            name: format!("{} [{} .. {}]", m.name, fmt_num(lo), fmt_num(hi)),
            value: median,
            unit: m.unit,
            target: m.target,
        });
    }
    summary
}

/// The median of sorted, non-empty values (mean of the middle two).
fn median_sorted(values: &[f64]) -> f64 {
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Latency percentiles of a set of samples, in µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles (nearest rank) of `samples`, which are sorted in place.
    /// `None` for no samples.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        samples.sort_unstable();
        let last = samples.len().checked_sub(1)?;
        let at = |per_10k: usize| micros(samples[last * per_10k / 10_000]);
        Some(Percentiles {
            p50: at(5_000),
            p90: at(9_000),
            p99: at(9_900),
            p999: at(9_990),
            max: micros(samples[last]),
        })
    }
}

/// A duration in µs.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A number with a precision fit for its size.
fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut s: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let p = Percentiles::of(&mut s).unwrap();
        assert_eq!(p.p50.round(), 500.0);
        assert_eq!(p.p90.round(), 900.0);
        assert_eq!(p.p99.round(), 990.0);
        assert_eq!(p.p999.round(), 999.0);
        assert_eq!(p.max.round(), 1000.0);
        assert!(Percentiles::of(&mut []).is_none());
    }

    #[test]
    fn summary_is_the_median_with_spread() {
        let run = |v: f64| {
            let mut r = Report::default();
            r.add_target("cpu", v, "ms", Target::AtMost(60.0));
            r
        };
        let s = summarize(&[run(50.0), run(10.0), run(70.0)]);
        assert_eq!(s.metrics[0].value, 50.0);
        assert!(
            s.metrics[0].name.contains("[10 .. 70]"),
            "{}",
            s.metrics[0].name
        );
        assert!(s.table().contains("met"));
        let s = summarize(&[run(1.0), run(4.0)]);
        assert_eq!(s.metrics[0].value, 2.5);
    }

    #[test]
    fn targets() {
        assert!(Target::AtMost(60.0).met(60.0));
        assert!(!Target::AtMost(60.0).met(61.0));
        assert!(Target::AtLeast(1e6).met(2e6));
        assert!(!Target::AtLeast(1e6).met(9e5));
        let mut r = Report::default();
        r.add_target("x", 61.0, "ms", Target::AtMost(60.0));
        assert!(r.table().contains("NOT met"));
        assert_eq!(r.json()["metrics"][0]["target_met"], false);
    }
}

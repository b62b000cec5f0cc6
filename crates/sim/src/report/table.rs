//! The comparison as a terminal table.

use std::fmt::Write as _;

use crate::run::RunReport;

/// The table of one run.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} VM(s) x {} vCPU, {:.0} s at {} ms, {}",
        report.vms, report.vcpus, report.duration_s, report.step_ms, report.cpu_model
    );
    let _ = writeln!(
        out,
        "{:<22} {:>12} {:>8} {:>8} {:>12} {:>9} {:>9} {:>10} {:>10} {:>8}",
        "controller",
        "energy J",
        "% max",
        "x oracle",
        "dropped",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "under s",
        "trans."
    );
    for r in &report.results {
        let ratio = r
            .energy_ratio_to_oracle
            .map_or("-".to_owned(), |x| format!("{x:.3}"));
        let _ = writeln!(
            out,
            "{:<22} {:>12.1} {:>8.1} {:>8} {:>12.0} {:>9.2} {:>9.2} {:>10.2} {:>10.2} {:>8}",
            r.controller,
            r.energy_j,
            r.energy_pct_of_static_max,
            ratio,
            r.dropped,
            r.latency_p50_us,
            r.latency_p99_us,
            r.latency_p999_us,
            r.under_provisioned_s,
            r.transitions
        );
    }
    out
}

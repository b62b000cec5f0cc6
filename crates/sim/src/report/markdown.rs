//! The Markdown forms of a run: the results table and a one-page report
//! embedding the plots.

use std::fmt::Write as _;

use crate::run::RunReport;

/// The per-controller results as a Markdown table.
pub fn results_table(r: &RunReport) -> String {
    let mut md = String::from(
        "| controller | energy J | % of static max | × oracle | dropped | p50 µs | p99 µs | p99.9 µs | under-provisioned s | transitions |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in &r.results {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            c.controller,
            c.energy_j,
            c.energy_pct_of_static_max,
            c.energy_ratio_to_oracle
                .map_or("-".to_owned(), |x| format!("{x:.3}")),
            c.dropped,
            c.latency_p50_us,
            c.latency_p99_us,
            c.latency_p999_us,
            c.under_provisioned_s,
            c.transitions
        );
    }
    md
}

/// A one-page report of one run, its plots (written beside it as
/// `<stem>-*.png`) embedded.
pub fn one_page(r: &RunReport, stem: &str, source: &str) -> String {
    let mut md = format!(
        "# vmpower-sim: {source}\n\n{} VM(s) x {} vCPU, {:.0} s at {} ms, CPU model {}. \
         Simulated (see docs/energy.md for the models and their sources).\n\n",
        r.vms, r.vcpus, r.duration_s, r.step_ms, r.cpu_model
    );
    md.push_str(&results_table(r));
    for kind in ["timeline", "energy-drops", "oracle-gap"] {
        let _ = write!(md, "\n![{kind}]({stem}-{kind}.png)\n");
    }
    md
}

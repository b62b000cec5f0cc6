//! The CSV trace format: one row per VM and step, `time_ms,vm,pps`.
//!
//! ## Format
//! - A header line `time_ms,vm,pps`, then rows; `#` starts a comment line.
//! - `time_ms` is the start of the step in ms from the trace's start; the
//!   step is the smallest positive difference between two times (at least
//!   10 ms). A VM with no row for a step offers 0 packets/s then.
//! - `pps` is the offered rate over that step, packets per second.
//!
//! Rows may come in any order; VMs are listed in order of first
//! appearance.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::{Trace, TraceError};

/// Why a CSV trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// A line that is not `time_ms,vm,pps`.
    #[error("line {line}: {why}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The rows do not make a trace.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// Parses a CSV trace.
pub fn parse(text: &str) -> Result<Trace, CsvError> {
    let mut rows: Vec<(u64, usize, f64)> = Vec::new();
    let mut vms: Vec<String> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut header = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| CsvError::Line { line: n + 1, why };
        if !header {
            if line.replace(' ', "") != "time_ms,vm,pps" {
                return Err(bad(format!(
                    "expected the header time_ms,vm,pps, got {line:?}"
                )));
            }
            header = true;
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [time, vm, pps] = fields[..] else {
            return Err(bad(format!("expected 3 fields, got {}", fields.len())));
        };
        let time: u64 = time
            .parse()
            .map_err(|_| bad(format!("time_ms {time:?} is not a whole number")))?;
        let pps: f64 = pps
            .parse()
            .map_err(|_| bad(format!("pps {pps:?} is not a number")))?;
        if vm.is_empty() {
            return Err(bad("empty vm".to_owned()));
        }
        let slot = *index.entry(vm.to_owned()).or_insert_with(|| {
            vms.push(vm.to_owned());
            vms.len() - 1
        });
        rows.push((time, slot, pps));
    }
    let mut times: Vec<u64> = rows.iter().map(|r| r.0).collect();
    times.sort_unstable();
    times.dedup();
    let step_ms = times.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(10);
    let start = times.first().copied().unwrap_or(0);
    let last = times.last().copied().unwrap_or(0);
    let steps = usize::try_from((last - start) / step_ms + 1).unwrap_or(usize::MAX);
    let mut rates = vec![vec![0.0; steps]; vms.len()];
    for (time, vm, pps) in rows {
        if (time - start) % step_ms != 0 {
            return Err(CsvError::Line {
                line: 0,
                why: format!("time {time} ms is not on the {step_ms} ms grid"),
            });
        }
        let i = usize::try_from((time - start) / step_ms).unwrap_or(usize::MAX);
        rates[vm][i] = pps;
    }
    Ok(Trace::new(Duration::from_millis(step_ms), vms, rates)?)
}

/// Writes a trace as CSV (rates rounded to whole packets/s).
pub fn write(trace: &Trace) -> String {
    let step_ms = trace.step.as_millis();
    let mut out = String::from("time_ms,vm,pps\n");
    for i in 0..trace.len() {
        for (vm, series) in trace.vms.iter().zip(&trace.rates) {
            let t = step_ms * i as u128;
            let _ = writeln!(out, "{t},{vm},{:.0}", series[i]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = Trace::new(
            Duration::from_millis(10),
            vec!["a".into(), "b".into()],
            vec![vec![1.0, 2.0, 3.0], vec![0.0, 5.0, 0.0]],
        )
        .unwrap();
        assert_eq!(parse(&write(&t)).unwrap(), t);
    }

    #[test]
    fn missing_rows_are_zero_and_errors_name_the_line() {
        let t = parse("# c\ntime_ms,vm,pps\n0,a,5\n20,a,7\n10,b,3\n").unwrap();
        assert_eq!(t.rates, vec![vec![5.0, 0.0, 7.0], vec![0.0, 3.0, 0.0]]);
        let e = parse("time_ms,vm,pps\n0,a,x\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
        assert!(
            parse("time_ms,vm,pps\n0,a,1\n5,a,1\n").is_err(),
            "5 ms step"
        );
    }
}

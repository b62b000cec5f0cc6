//! `vmpowerctl traffic export`: the daemon's record of sampled packet
//! rates as a trace that `vmpower-sim run --trace` and `vmpower-sim tune
//! --trace` replay: the CSV format `time_ms,vm,pps` of vmpower-sim, times
//! from the first exported step, one row per VM and measured step.
//!
//! Steps the daemon did not measure (it was down, a policy's counters
//! were missing) are left out, and a comment at the end counts them: the
//! simulator replays a missing row as 0 packets/s.

use std::fmt::Write as _;

use vmpower_api::rate_record::RatePage;

/// Why pages cannot become one trace.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    /// The record changed step within the window.
    #[error(
        "the record's step changes from {first} ms to {then} ms at unix ms {at} (traffic_record_step_ms was changed): export the parts separately with --until / --since"
    )]
    MixedSteps {
        /// The step of the first block.
        first: u32,
        /// The other step.
        then: u32,
        /// Where it changed.
        at: u64,
    },
    /// A VM name the CSV format cannot hold.
    #[error(
        "VM name {0:?} cannot go in a trace (it holds a comma, or starts or ends with a space): export the other VMs with --vm"
    )]
    VmName(String),
}

/// Turns pages, in order, into trace text.
#[derive(Debug, Default)]
pub struct TraceWriter {
    /// The first block's start and step, once seen.
    origin: Option<(u64, u32)>,
    rows: u64,
    missing: u64,
    vms: std::collections::BTreeSet<String>,
}

impl TraceWriter {
    /// The text of `page`'s rows (with the header before the first).
    pub fn page(&mut self, page: &RatePage, version: &str) -> Result<String, ExportError> {
        let mut out = String::new();
        for block in &page.blocks {
            let vm = &block.vm;
            if vm.contains(',') || vm.trim() != vm {
                return Err(ExportError::VmName(vm.clone()));
            }
            if self.origin.is_none() {
                // Time 0 is the first measured step of any VM (what the
                // simulator takes as the trace's start): blocks of one
                // start are together in a page (a page that ends inside
                // them may shift time 0 a few steps late).
                if !block.rates.iter().any(Option::is_some) {
                    continue;
                }
                let first = page
                    .blocks
                    .iter()
                    .filter(|b| b.start_ms == block.start_ms && b.step_ms == block.step_ms)
                    .filter_map(|b| b.rates.iter().position(Option::is_some))
                    .min()
                    .unwrap_or(0);
                let start_ms = block.start_ms + first as u64 * u64::from(block.step_ms);
                let at =
                    jiff::Timestamp::from_millisecond(i64::try_from(start_ms).unwrap_or(i64::MAX))
                        .map(|t| t.to_string())
                        .unwrap_or_else(|_| "?".to_owned());
                let _ = writeln!(
                    out,
                    "# vmpowerd's record of sampled packet rates, exported by vmpowerctl {version}\n\
                     # start {at} (unix ms {start_ms}), step {} ms\n\
                     time_ms,vm,pps",
                    block.step_ms
                );
                self.origin = Some((start_ms, block.step_ms));
            }
            let Some((start, step)) = self.origin else {
                continue;
            };
            if block.step_ms != step {
                return Err(ExportError::MixedSteps {
                    first: step,
                    then: block.step_ms,
                    at: block.start_ms,
                });
            }
            self.vms.insert(vm.clone());
            for (i, rate) in block.rates.iter().enumerate() {
                let Some(at) = (block.start_ms + i as u64 * u64::from(step)).checked_sub(start)
                else {
                    // Before the first measured step (other VMs' blocks
                    // of the same time).
                    continue;
                };
                let Some(pps) = rate else {
                    self.missing += 1;
                    continue;
                };
                let _ = writeln!(out, "{at},{vm},{pps}");
                self.rows += 1;
            }
        }
        Ok(out)
    }

    /// The closing comment; `None` when nothing was exported.
    pub fn finish(&self) -> Option<String> {
        self.origin.map(|_| {
            format!(
                "# {} rates of {} VMs; {} steps not measured (left out: replayed as 0 packets/s)\n",
                self.rows,
                self.vms.len(),
                self.missing
            )
        })
    }
}

/// Why an export failed, for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    /// A bad flag (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The daemon could not be reached (exit 1).
    #[error(transparent)]
    Client(#[from] vmpower_api::ClientError),
    /// The daemon refused (its kind gives the exit code).
    #[error("{}", .0.message)]
    Daemon(vmpower_api::CtlError),
    /// The pages cannot become one trace (exit 4).
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Nothing recorded in the window (exit 3).
    #[error("{0}")]
    Empty(String),
    /// Writing the output failed (exit 4).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file, or standard output.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Asks the daemon for every page of the record `args` selects and writes
/// the trace to `out`, page by page.
pub fn run(
    socket: &std::path::Path,
    args: &crate::cli::ExportArgs,
    out: &mut dyn std::io::Write,
    out_name: &str,
) -> Result<(), ExportFailure> {
    let version = env!("CARGO_PKG_VERSION");
    let mut client = vmpower_api::Client::connect(socket)?;
    let mut writer = TraceWriter::default();
    let mut after = None;
    let write = |out: &mut dyn std::io::Write, text: &str| {
        out.write_all(text.as_bytes())
            .map_err(|source| ExportFailure::Write {
                path: out_name.to_owned(),
                source,
            })
    };
    loop {
        let request = args
            .request(after.take())
            .map_err(|e| ExportFailure::Usage(e.to_string()))?;
        let page = match client.traffic_record(&request)? {
            vmpower_api::CtlResponse::Ok(page) => page,
            vmpower_api::CtlResponse::Error(e) => return Err(ExportFailure::Daemon(e)),
        };
        write(out, &writer.page(&page, version)?)?;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    match writer.finish() {
        Some(end) => write(out, &end),
        None => Err(ExportFailure::Empty(format!(
            "no packet rates recorded{}{}: the daemon records the rates of VMs with a TRAFFIC policy (traffic_record_step_ms) and writes each VM's rates every 60 steps",
            args.vm
                .as_deref()
                .map(|v| format!(" for VM {v}"))
                .unwrap_or_default(),
            if args.since.is_some() || args.until.is_some() {
                " in that window"
            } else {
                ""
            },
        ))),
    }
}

#[cfg(test)]
mod tests {
    use vmpower_api::rate_record::RateBlock;

    use super::*;

    fn block(vm: &str, start_ms: u64, step_ms: u32, rates: &[Option<f32>]) -> RateBlock {
        RateBlock {
            vm: vm.into(),
            start_ms,
            step_ms,
            rates: rates.to_vec(),
        }
    }

    #[test]
    fn rows_are_timed_from_the_first_step_and_unmeasured_steps_are_left_out() {
        let mut w = TraceWriter::default();
        let page = RatePage {
            blocks: vec![
                block("a", 60_000, 1000, &[Some(10.0), None, Some(30.5)]),
                block("b", 60_000, 1000, &[Some(1.0)]),
            ],
            next: None,
        };
        let text = w.page(&page, "9.9").unwrap();
        let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(rows, ["time_ms,vm,pps", "0,a,10", "2000,a,30.5", "0,b,1"]);
        assert!(text.contains("unix ms 60000"), "{text}");
        let more = RatePage {
            blocks: vec![block("a", 63_000, 1000, &[Some(7.0)])],
            next: None,
        };
        assert_eq!(w.page(&more, "9.9").unwrap(), "3000,a,7\n");
        assert_eq!(
            w.finish().unwrap(),
            "# 4 rates of 2 VMs; 1 steps not measured (left out: replayed as 0 packets/s)\n"
        );
    }

    #[test]
    fn a_change_of_step_and_a_name_the_format_cannot_hold_are_refused() {
        let mut w = TraceWriter::default();
        let page = RatePage {
            blocks: vec![
                block("a", 0, 1000, &[Some(1.0)]),
                block("a", 60_000, 100, &[Some(1.0)]),
            ],
            next: None,
        };
        let err = w.page(&page, "v").unwrap_err();
        assert_eq!(
            err,
            ExportError::MixedSteps {
                first: 1000,
                then: 100,
                at: 60_000
            }
        );
        assert!(err.to_string().contains("--since"), "{err}");
        let mut w = TraceWriter::default();
        let page = RatePage {
            blocks: vec![block("a,b", 0, 1000, &[Some(1.0)])],
            next: None,
        };
        assert!(matches!(w.page(&page, "v"), Err(ExportError::VmName(n)) if n == "a,b"));
    }

    #[test]
    fn time_0_is_the_first_measured_step() {
        let mut w = TraceWriter::default();
        let page = RatePage {
            blocks: vec![
                block("a", 0, 100, &[None]),
                block("a", 6000, 100, &[None, None, Some(5.0), None, Some(6.0)]),
                block("b", 6000, 100, &[Some(1.0), Some(2.0), Some(3.0)]),
            ],
            next: None,
        };
        let text = w.page(&page, "v").unwrap();
        let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            rows,
            [
                "time_ms,vm,pps",
                "200,a,5",
                "400,a,6",
                "0,b,1",
                "100,b,2",
                "200,b,3"
            ]
        );
        assert!(text.contains("(unix ms 6000)"), "{text}");
        assert!(w.finish().unwrap().contains("3 steps not measured"));
    }

    #[test]
    fn nothing_exported_has_no_closing_comment() {
        assert_eq!(TraceWriter::default().finish(), None);
    }
}

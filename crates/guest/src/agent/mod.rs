//! `vmpower-guest agent`: a long-running loop that tells the host, every
//! interval, how busy this guest's vCPUs are (feature `agent`).
//!
//! ## Behavior
//! - At start the power channel is opened and the host asked for native
//!   contract v2 (HELLO); a host that does not grant it (DPDK's, an older
//!   vmpowerd) ends the agent with [`AgentError`] naming what was granted.
//! - Every `interval` (fixed rate; ticks missed while the guest was
//!   descheduled are skipped, not bunched), one [`Sample`] is taken
//!   ([`source`]: DPDK telemetry, or `/proc/stat`) and sent as a BUSYNESS
//!   report: one entry per CPU (= vCPU index in a guest), the 64 lowest
//!   CPUs at most, with the application's rx-missed count. A sample with
//!   no entry (a source's first) sends nothing.
//! - Every `renegotiate` the channel is opened again (CONNECT, HELLO): a
//!   host that reconnected in between put the channel back on DPDK's
//!   contract and drops reports until then. A failed send or reopening is
//!   logged once, retried with a bounded backoff, and logged again when
//!   reports flow; the report sequence continues across reopenings.
//! - The loop ends when `stop` says so (or its sender is dropped).

pub mod backoff;
pub mod deltas;
pub mod procstat;
pub mod source;

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use vmpower_proto::{BusyEntry, BusynessReport};

use crate::busyness::{BusynessReporter, ReporterError};
use crate::channel::Channel;
use crate::error::ChannelError;
use backoff::Backoff;
use deltas::CpuBusyness;
use source::Sampler;
pub use source::{Sample, SourceConfig, SourceKind};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// How often a report is sent.
    pub interval: Duration,
    /// How often the channel is opened again (HELLO renegotiated).
    pub renegotiate: Duration,
    /// Where busyness comes from.
    pub source: SourceConfig,
}

/// Why the agent stopped before being told to.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The power channel could not be opened at start.
    #[error("cannot open the power channel")]
    Open(#[source] ChannelError),
    /// The host does not take busyness reports on this channel, or the
    /// interval is out of range.
    #[error(transparent)]
    Reporter(ReporterError),
}

/// What the agent did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Reports written.
    pub sent: u64,
    /// Samples with nothing to report.
    pub empty: u64,
    /// Reports that could not be written.
    pub failed: u64,
    /// Times the channel was opened (the first included).
    pub opened: u64,
}

/// Runs the agent until `stop` receives (or its sender is dropped).
/// `open` opens the power channel (CONNECT and HELLO included).
pub fn run(
    config: &AgentConfig,
    mut open: impl FnMut() -> Result<Channel, ChannelError>,
    stop: &Receiver<()>,
) -> Result<AgentStats, AgentError> {
    let channel = open().map_err(AgentError::Open)?;
    let mut reporter =
        Some(BusynessReporter::new(channel, config.interval).map_err(AgentError::Reporter)?);
    eprintln!(
        "vmpower-guest agent: reporting busyness every {:?} on {}",
        config.interval,
        reporter.as_ref().map_or_else(Default::default, |r| r
            .channel()
            .path()
            .display()
            .to_string())
    );
    let mut stats = AgentStats {
        opened: 1,
        ..AgentStats::default()
    };
    let mut sampler = Sampler::new(config.source.clone());
    let mut reopen = Backoff::new(config.interval, config.source.max_backoff);
    let mut next_seq = 0u64;
    let mut opened_at = Instant::now();
    let mut failing = false;
    let mut said_too_many = false;
    let mut next = Instant::now() + config.interval;
    loop {
        match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(stats),
        }
        let now = Instant::now();
        next += config.interval;
        if next <= now {
            next = now + config.interval;
        }
        let sample = sampler.sample(now);
        if let Some(r) = &reporter
            && now.duration_since(opened_at) >= config.renegotiate
        {
            next_seq = r.next_seq();
            reporter = None;
        }
        if reporter.is_none() && reopen.ready(now) {
            match open()
                .map_err(ReporterError::Channel)
                .and_then(|c| BusynessReporter::new(c, config.interval))
            {
                Ok(r) => {
                    reporter = Some(r.with_seq(next_seq));
                    opened_at = now;
                    stats.opened += 1;
                    reopen.succeeded();
                }
                Err(e) => {
                    let wait = reopen.failed(now);
                    if !failing {
                        eprintln!("vmpower-guest agent: {e}; retrying (next in {wait:?})");
                        failing = true;
                    }
                }
            }
        }
        let (entries, dropped) = entries(&sample.cpus);
        if dropped > 0 && !said_too_many {
            eprintln!(
                "vmpower-guest agent: {dropped} CPUs beyond the report's 64 entries (or numbered above 65535) are not reported"
            );
            said_too_many = true;
        }
        if entries.is_empty() {
            stats.empty += 1;
            continue;
        }
        let Some(r) = reporter.as_mut() else {
            stats.failed += 1;
            continue;
        };
        match r.report(&entries, sample.rx_missed) {
            Ok(()) => {
                stats.sent += 1;
                if failing {
                    eprintln!("vmpower-guest agent: reports flow again");
                    failing = false;
                }
            }
            Err(e) => {
                stats.failed += 1;
                next_seq = r.next_seq().wrapping_add(1);
                reporter = None;
                let wait = reopen.failed(now);
                if !failing {
                    eprintln!("vmpower-guest agent: {e}; reopening the channel (next in {wait:?})");
                    failing = true;
                }
            }
        }
    }
}

/// The report's entries: one per CPU that fits a vCPU number, the lowest
/// 64; and how many were left out.
pub fn entries(cpus: &[CpuBusyness]) -> (Vec<BusyEntry>, usize) {
    let mut out: Vec<BusyEntry> = cpus
        .iter()
        .filter_map(|c| {
            u16::try_from(c.cpu).ok().map(|vcpu| BusyEntry {
                vcpu,
                permille: c.permille,
            })
        })
        .collect();
    out.sort_by_key(|e| e.vcpu);
    let dropped = cpus.len() - out.len().min(BusynessReport::CAPACITY);
    out.truncate(BusynessReport::CAPACITY);
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_the_lowest_64_cpus_that_fit() {
        let cpus: Vec<CpuBusyness> = (0..70u32)
            .rev()
            .chain([70_000])
            .map(|cpu| CpuBusyness { cpu, permille: 5 })
            .collect();
        let (e, dropped) = entries(&cpus);
        assert_eq!(e.len(), 64);
        assert_eq!(
            e[0],
            BusyEntry {
                vcpu: 0,
                permille: 5
            }
        );
        assert_eq!(e[63].vcpu, 63);
        assert_eq!(dropped, 7);
    }
}

//! Telling the host how busy this guest's vCPUs are: the native
//! contract's BUSYNESS report (version 2), for the `vmpower-guest agent`
//! and for applications that are not DPDK and know their own busyness.
//!
//! ```no_run
//! use std::time::Duration;
//! use vmpower_guest::{BusynessReporter, Channel, ChannelConfig, PortRoots};
//!
//! let channel = Channel::open(0, &PortRoots::default(), ChannelConfig::default())?;
//! let mut reporter = BusynessReporter::new(channel, Duration::from_millis(100))?;
//! loop {
//!     // vCPU 1 spent 73 % of the last interval doing work, vCPU 2 12 %.
//!     reporter.report_fractions(&[(1, 0.73), (2, 0.12)], None)?;
//!     std::thread::sleep(reporter.interval());
//! }
//! # Ok::<(), vmpower_guest::ReporterError>(())
//! ```
//!
//! ## Behavior
//! - [`BusynessReporter::new`] needs a channel whose host granted native
//!   version 2 or later in its HELLO answer (vmpowerd with busyness
//!   control); on DPDK's host or an older vmpowerd it fails, since the
//!   host would drop every report.
//! - Reports are never answered, accepted or refused (the host counts and
//!   logs refusals): a report is written and that is all. Its `seq` goes
//!   up by one per report, so the host can count lost ones.
//! - Busyness is per mille of the interval's time spent doing work, per
//!   vCPU (the CPU number inside the guest); at most 64 vCPUs per report.
//!
//! ## Limitations
//! If the host side reconnects (a daemon restart), the channel is back on
//! DPDK's contract and reports are dropped until the guest opens the
//! channel again: long-running reporters reopen it now and then (the
//! agent does, `--renegotiate`).

use std::time::Duration;

use vmpower_proto::contract::Contract;
use vmpower_proto::{BusyEntry, BusynessError, BusynessReport, RequestBody};

use crate::channel::Channel;
use crate::error::ChannelError;

/// The shortest report interval a reporter accepts.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest report interval a reporter accepts.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// Why a busyness report could not be made or sent.
#[derive(Debug, thiserror::Error)]
pub enum ReporterError {
    /// The host did not grant native version 2 in its HELLO answer.
    #[error(
        "the host granted the {} contract on {path}: busyness reports need vmpower's native contract v2 or later (a vmpowerd with busyness control)",
        granted.label()
    )]
    NotGranted {
        /// What the host granted.
        granted: Contract,
        /// The channel's port.
        path: std::path::PathBuf,
    },
    /// The interval is outside [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
    #[error("report interval {interval:?} is outside 10 ms to 60 s")]
    Interval {
        /// The interval asked for.
        interval: Duration,
    },
    /// A busy fraction is not a number in 0..=1.
    #[error("vCPU {vcpu}: busy fraction {fraction} is not within 0 to 1")]
    Fraction {
        /// The vCPU.
        vcpu: u16,
        /// The value given.
        fraction: f64,
    },
    /// The entries do not make a valid report.
    #[error(transparent)]
    Report(#[from] BusynessError),
    /// Writing the report failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

/// Sends BUSYNESS reports over a channel granted native v2.
#[derive(Debug)]
pub struct BusynessReporter {
    channel: Channel,
    interval: Duration,
    seq: u64,
}

impl BusynessReporter {
    /// A reporter over `channel` (already open, its HELLO answered),
    /// reporting every `interval` (the host uses it for its staleness
    /// bound; the caller keeps the pace).
    pub fn new(channel: Channel, interval: Duration) -> Result<Self, ReporterError> {
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(ReporterError::Interval { interval });
        }
        if !channel.contract().accepts_busyness() {
            return Err(ReporterError::NotGranted {
                granted: channel.contract(),
                path: channel.path().to_owned(),
            });
        }
        Ok(BusynessReporter {
            channel,
            interval,
            seq: 0,
        })
    }

    /// Continues a sequence: the next report's `seq` is `seq` (a reporter
    /// over a reopened channel, so that the host counts no false gap).
    pub fn with_seq(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// Stops reporting and gives the channel back (for other requests).
    pub fn into_channel(self) -> Channel {
        self.channel
    }

    /// The `seq` the next report carries.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// The report interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The channel reports go over.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Sends one report: `entries` (1..=64, distinct vCPUs, at most 1000
    /// per mille each) and the total rx-missed packets over the guest's
    /// ports, if known. Nothing is sent if the report is invalid.
    pub fn report(
        &mut self,
        entries: &[BusyEntry],
        rx_missed: Option<u64>,
    ) -> Result<(), ReporterError> {
        let interval_ms = u32::try_from(self.interval.as_millis()).expect("at most 60 s");
        let report = BusynessReport::new(self.seq, entries, interval_ms, rx_missed)?;
        self.channel.send_only(RequestBody::Busyness(report))?;
        self.seq = self.seq.wrapping_add(1);
        Ok(())
    }

    /// Sends one report from busy fractions (0.0 idle to 1.0 fully busy)
    /// per vCPU.
    pub fn report_fractions(
        &mut self,
        fractions: &[(u16, f64)],
        rx_missed: Option<u64>,
    ) -> Result<(), ReporterError> {
        let mut entries = Vec::with_capacity(fractions.len());
        for &(vcpu, fraction) in fractions {
            let permille =
                permille_of(fraction).ok_or(ReporterError::Fraction { vcpu, fraction })?;
            entries.push(BusyEntry { vcpu, permille });
        }
        self.report(&entries, rx_missed)
    }
}

/// A busy fraction (0..=1) in per mille, rounded; `None` when it is not
/// a number in that range.
pub fn permille_of(fraction: f64) -> Option<u16> {
    if !(0.0..=1.0).contains(&fraction) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    // Within 0..=1000 after the check above.
    Some((fraction * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_become_per_mille() {
        assert_eq!(permille_of(0.0), Some(0));
        assert_eq!(permille_of(0.7305), Some(731));
        assert_eq!(permille_of(1.0), Some(1000));
        assert_eq!(permille_of(1.0001), None);
        assert_eq!(permille_of(-0.1), None);
        assert_eq!(permille_of(f64::NAN), None);
    }
}

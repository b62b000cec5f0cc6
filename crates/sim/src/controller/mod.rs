//! Frequency controllers: each decides, at every step, the frequency
//! (table index, 0 = highest) it wants for each VM's cores.
//!
//! The set is open: a controller is anything implementing [`Controller`].
//! Online controllers see only what a host sees: the time and each VM's
//! free-running RX packet counter (and, for feedback controllers, the ring
//! occupancy a guest could report). Offline ones (the oracle) get the
//! whole trace in [`Setup::future`].

pub mod busyness;
pub mod dpdk;
pub mod engine;
pub mod kubernetes;
pub mod oracle;
pub mod static_max;

use std::time::Duration;

use crate::host::SimHost;
use crate::trace::Trace;

/// What a controller is told before the first step.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The host.
    pub host: &'a SimHost,
    /// The trace's step.
    pub step: Duration,
    /// How many steps.
    pub steps: usize,
    /// The wall-clock time of step 0 (TIME policies).
    pub start_wall: jiff::Timestamp,
    /// The whole trace, for offline controllers only (`None` when the
    /// trace is streamed).
    pub future: Option<&'a Trace>,
}

/// What a controller sees at the start of a step.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The step about to run.
    pub step: usize,
    /// Simulated monotonic time at its start (as the daemon's `now`).
    pub now: Duration,
    /// The wall clock at its start.
    pub wall: jiff::Timestamp,
    /// Each VM's RX packet counter (offered packets since the start).
    pub counters: &'a [u64],
    /// Each VM's ring occupancy per vCPU, packets.
    pub queued: &'a [f64],
    /// Each VM's busyness per vCPU over the last step: the fraction of
    /// the step its poll loop spent on packets at the frequency in force
    /// (what DPDK's `/eal/lcore/usage` reports; a guest agent reports it
    /// to the host).
    pub busy: &'a [f64],
    /// Each VM's drop counter under this controller (packets dropped
    /// because its ring was full, since the start): what a tap's
    /// `tx_dropped` or a VF's `rx_dropped` would count.
    pub dropped: &'a [u64],
}

/// A frequency controller.
pub trait Controller {
    /// Its name in tables and plots.
    fn name(&self) -> String;

    /// Prepares for a run.
    fn start(&mut self, setup: &Setup<'_>) -> anyhow::Result<()>;

    /// Sets `wanted[vm]` (already holding the last decision) to the table
    /// index it wants from now on; the change takes effect after the
    /// transition latency.
    fn decide(&mut self, obs: &Observation<'_>, wanted: &mut [usize]);
}

/// Packets per second from two counter readings `elapsed` apart.
pub(crate) fn counter_rate(prev: u64, cur: u64, elapsed: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let delta = cur.saturating_sub(prev) as f64;
    delta / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

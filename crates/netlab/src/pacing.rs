//! Pacing: how many packets are due after each step so that a feed follows
//! a changing rate, for the [`crate::sender`] (real packets) and for
//! synthetic feeds that add them to a fake counter.
//!
//! ## Behavior
//! - The packets owed grow by `rate × dt` at each step; the whole part is
//!   due now, the fraction is carried, so low rates are paced exactly (one
//!   packet every 10 ms at 100 pps even with 2 ms steps).
//! - What is owed is capped at `backlog` worth of the current rate (and at
//!   least one packet): a feed that stalls (a loaded machine, a slow send)
//!   sends less for a while; it never catches up in a burst that would look
//!   like a rate above the script's.
//!
//! Pure: the caller measures `dt` and does the sending.

use std::time::Duration;

/// Packets × nanoseconds in one packet (the pacer's unit: exact integers).
const ONE: u128 = 1_000_000_000;

/// Turns a rate and elapsed time into whole packets due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacer {
    /// Packets owed, in packet-nanoseconds per second (1 packet = [`ONE`]).
    owed: u128,
    /// The most owed at once, as time at the current rate.
    backlog: Duration,
}

impl Pacer {
    /// A pacer that never owes more than `backlog` worth of packets.
    pub fn new(backlog: Duration) -> Self {
        Pacer { owed: 0, backlog }
    }

    /// The packets due after `dt` at `rate_pps` (the fraction carried).
    pub fn due(&mut self, rate_pps: u64, dt: Duration) -> u64 {
        let rate = u128::from(rate_pps);
        let cap = (rate * self.backlog.as_nanos()).max(ONE);
        self.owed = (self.owed + rate * dt.as_nanos()).min(cap);
        let whole = self.owed / ONE;
        self.owed %= ONE;
        u64::try_from(whole).unwrap_or(u64::MAX)
    }

    /// Puts back `packets` that could not be sent, to be tried at the next
    /// step (still within the cap).
    pub fn unsent(&mut self, packets: u64) {
        self.owed += u128::from(packets) * ONE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKLOG: Duration = Duration::from_millis(10);

    fn run(pacer: &mut Pacer, rate: u64, step: Duration, steps: u32) -> u64 {
        (0..steps).map(|_| pacer.due(rate, step)).sum()
    }

    #[test]
    fn a_steady_rate_is_paced_exactly() {
        let mut p = Pacer::new(BACKLOG);
        let step = Duration::from_millis(2);
        assert_eq!(run(&mut p, 12_000, step, 500), 12_000, "one second");
        let mut p = Pacer::new(BACKLOG);
        assert_eq!(run(&mut p, 100, step, 500), 100, "fractions carried");
        let mut p = Pacer::new(BACKLOG);
        let sends: Vec<u64> = (0..10).map(|_| p.due(100, step)).collect();
        assert_eq!(sends, [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn a_stall_is_never_caught_up_in_a_burst() {
        let mut p = Pacer::new(BACKLOG);
        // Half a second without a step at 10 kpps: 10 ms worth at most.
        assert_eq!(p.due(10_000, Duration::from_millis(500)), 100);
        // Below one packet of backlog, one packet still goes out.
        let mut p = Pacer::new(BACKLOG);
        assert_eq!(p.due(10, Duration::from_secs(5)), 1);
    }

    #[test]
    fn rate_changes_take_effect_at_once_and_zero_sends_nothing() {
        let mut p = Pacer::new(BACKLOG);
        let step = Duration::from_millis(5);
        assert_eq!(run(&mut p, 0, step, 100), 0);
        assert_eq!(run(&mut p, 2_000, step, 100), 1_000);
        assert_eq!(run(&mut p, 400, step, 100), 200);
    }

    #[test]
    fn unsent_packets_are_retried_within_the_cap() {
        let mut p = Pacer::new(BACKLOG);
        assert_eq!(p.due(1_000, Duration::from_millis(5)), 5);
        p.unsent(3);
        assert_eq!(p.due(1_000, Duration::from_millis(2)), 5);
        p.unsent(50);
        assert_eq!(p.due(1_000, Duration::ZERO), 10, "capped at 10 ms");
    }
}

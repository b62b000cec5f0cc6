//! Packets per second from successive readings of a free-running packet
//! counter, over measured elapsed time. Pure: readings and times are inputs.
//!
//! ## The reset and wrap rule
//! Between two readings `prev` and `cur` taken `elapsed` apart:
//! - `cur >= prev`: the delta is `cur - prev`.
//! - `cur < prev` with both values within 32 bits: the counter may be a
//!   32-bit one that wrapped (IFLA_STATS, or a driver keeping 32-bit
//!   counters behind a 64-bit field). The wrapped delta
//!   `cur + 2^32 - prev` is taken if it is plausible (see below).
//! - otherwise the counter went down: a **reset** (device re-created,
//!   driver reloaded, VF reassigned). No rate is reported for this reading
//!   (one sample is skipped), and `cur` becomes the new baseline. A rate
//!   computed from `cur` alone would count packets over an unknown time.
//!
//! A delta is plausible when it is at most `max_pps × elapsed` (default
//! [`DEFAULT_MAX_PPS`], above any link's line rate); an implausible delta is
//! treated as a reset too, so a reset can never produce an absurd rate,
//! and no rate is ever negative. At most one 32-bit wrap per interval is
//! assumed (at 100 ms that is 42 G packets/s). A change of source (the MAC
//! moved from a tap to a VF, say) is also a reset. A reading no later
//! than the baseline reports [`RateOutcome::TooSoon`] and keeps it.

use std::time::{Duration, Instant};

use super::{MacAddr, MacReading, MacSample, SourceKind};

/// Rates above this many packets per second are implausible (≈ 670 Gbit/s
/// of minimum-size frames): such deltas are taken as resets.
pub const DEFAULT_MAX_PPS: f64 = 1.0e9;

const WRAP_32: u64 = 1 << 32;

/// The packet delta between two readings, or `None` for a reset (see the
/// module docs for the rule).
pub fn counter_delta(prev: u64, cur: u64, elapsed: Duration, max_pps: f64) -> Option<u64> {
    let delta = if cur >= prev {
        cur - prev
    } else if prev < WRAP_32 && cur < WRAP_32 {
        cur + WRAP_32 - prev
    } else {
        return None;
    };
    // u64 → f64 loses precision only above 2^53 packets, far beyond any cap.
    #[allow(clippy::cast_precision_loss)]
    let plausible = (delta as f64) <= max_pps * elapsed.as_secs_f64();
    plausible.then_some(delta)
}

/// The packet rate between two readings `elapsed` apart, in packets/s.
pub fn rate_pps(prev: u64, cur: u64, elapsed: Duration, max_pps: f64) -> RateOutcome {
    if elapsed.is_zero() {
        return RateOutcome::TooSoon;
    }
    match counter_delta(prev, cur, elapsed, max_pps) {
        #[allow(clippy::cast_precision_loss)]
        Some(delta) => RateOutcome::Rate(delta as f64 / elapsed.as_secs_f64()),
        None => RateOutcome::Reset,
    }
}

/// What one reading gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateOutcome {
    /// Packets per second since the previous reading.
    Rate(f64),
    /// The first reading (or the first after the MAC went missing): a baseline.
    First,
    /// Counter reset or source change: a new baseline, no rate this time.
    Reset,
    /// No time elapsed since the baseline: the reading was ignored.
    TooSoon,
}

/// Turns one MAC's successive readings into rates.
#[derive(Clone, Debug)]
pub struct RateMeter {
    last: Option<(SourceKind, u64, Instant)>,
    max_pps: f64,
}

impl Default for RateMeter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PPS)
    }
}

impl RateMeter {
    /// A meter with no baseline, treating rates above `max_pps` as resets.
    pub fn new(max_pps: f64) -> Self {
        Self {
            last: None,
            max_pps,
        }
    }

    /// Feeds one reading of `source`'s counter taken at `now`.
    pub fn observe(&mut self, source: &SourceKind, counter: u64, now: Instant) -> RateOutcome {
        // Compared once (a device name): this runs for every MAC each tick.
        let same = matches!(&self.last, Some((last_source, _, _)) if last_source == source);
        let outcome = match &self.last {
            None => RateOutcome::First,
            Some(_) if !same => RateOutcome::Reset,
            Some((_, prev, at)) => match now.checked_duration_since(*at) {
                Some(elapsed) => rate_pps(*prev, counter, elapsed, self.max_pps),
                None => RateOutcome::TooSoon,
            },
        };
        if outcome != RateOutcome::TooSoon {
            match &mut self.last {
                // The common case: same source, new reading; no clone.
                Some((_, prev, at)) if same => {
                    *prev = counter;
                    *at = now;
                }
                last => *last = Some((source.clone(), counter, now)),
            }
        }
        outcome
    }

    /// Drops the baseline (the MAC went missing).
    pub fn forget(&mut self) {
        self.last = None;
    }
}

#[derive(Clone, Debug, Default)]
struct MacState {
    meter: RateMeter,
    rate_pps: Option<f64>,
    /// The drop counter's meter (same reset and wrap rule).
    drop_meter: RateMeter,
    /// Drops per second since the previous reading (0 after a baseline
    /// or a reset, `None` without a drop counter).
    drops_pps: Option<f64>,
    /// Drops counted at the last reading.
    dropped: u64,
}

/// The latest rate of every sampled MAC, fed one batch per tick.
///
/// After a reset the MAC keeps its previous rate for that tick (the
/// skipped sample); a missing MAC has no rate until it is found again and
/// two readings have been taken.
///
/// The MACs are kept sorted in a vector: a batch in MAC order (the
/// sampler's) is matched in one merge walk, other lookups by binary
/// search; no hashing on the per-tick path.
#[derive(Clone, Debug)]
pub struct MacRates {
    /// Sorted by key (the MAC as a number, same order), unique.
    macs: Vec<(u64, MacAddr, MacState)>,
    max_pps: f64,
}

/// A MAC as a number that sorts like it (one compare instead of a memcmp).
fn key(mac: MacAddr) -> u64 {
    let [a, b, c, d, e, f] = mac.0;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

impl Default for MacRates {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PPS)
    }
}

impl MacRates {
    /// Empty, treating rates above `max_pps` as resets.
    pub fn new(max_pps: f64) -> Self {
        Self {
            macs: Vec::new(),
            max_pps,
        }
    }

    /// Feeds one tick's batch, read at `now`.
    pub fn update(&mut self, samples: &[MacSample], now: Instant) {
        self.feed(samples, now, |_, _, _| {});
    }

    /// [`MacRates::update`], then `out` holds each sample's latest rate, in
    /// the batch's order (what [`MacRates::rate_pps`] would say for it).
    pub fn update_into(&mut self, samples: &[MacSample], now: Instant, out: &mut Vec<Option<f64>>) {
        out.clear();
        self.feed(samples, now, |r, _, _| out.push(r));
    }

    /// [`MacRates::update_into`], and `packets` holds the packets each
    /// sample counted since the previous reading of its MAC (0 for a
    /// baseline, a reset or a missing MAC), `drops` each sample's drops
    /// per second (`None`: its source has no drop counter) and the drops
    /// it counted since the previous reading.
    pub fn update_counting(
        &mut self,
        samples: &[MacSample],
        now: Instant,
        out: &mut Vec<Option<f64>>,
        packets: &mut Vec<u64>,
        drops: &mut Vec<(Option<f64>, u64)>,
    ) {
        out.clear();
        packets.clear();
        drops.clear();
        self.feed(samples, now, |r, n, d| {
            out.push(r);
            packets.push(n);
            drops.push(d);
        });
    }

    fn feed(
        &mut self,
        samples: &[MacSample],
        now: Instant,
        mut each: impl FnMut(Option<f64>, u64, (Option<f64>, u64)),
    ) {
        // Where the previous sample's MAC is: in a sorted batch the next
        // MAC is found right after it, without a search.
        let mut hint = 0;
        for sample in samples {
            let k = key(sample.mac);
            let at = |i: usize| self.macs.get(i).is_some_and(|(m, _, _)| *m == k);
            hint = if at(hint) {
                hint
            } else if at(hint + 1) {
                hint + 1
            } else {
                match self.macs.binary_search_by_key(&k, |(m, _, _)| *m) {
                    Ok(i) => i,
                    Err(i) => {
                        let state = MacState::new(self.max_pps);
                        self.macs.insert(i, (k, sample.mac, state));
                        i
                    }
                }
            };
            let state = &mut self.macs[hint].2;
            let packets = state.observe(&sample.reading, now);
            each(state.rate_pps, packets, (state.drops_pps, state.dropped));
        }
    }

    /// The latest rate of `mac`, if it has one.
    pub fn rate_pps(&self, mac: MacAddr) -> Option<f64> {
        let i = self
            .macs
            .binary_search_by_key(&key(mac), |(m, _, _)| *m)
            .ok()?;
        self.macs[i].2.rate_pps
    }

    /// A policy's rate: the sum over its MACs that have a rate, or `None`
    /// when none has one yet.
    pub fn policy_rate_pps(&self, macs: &[MacAddr]) -> Option<f64> {
        let mut rates = macs.iter().filter_map(|&m| self.rate_pps(m)).peekable();
        rates.peek()?;
        Some(rates.sum())
    }

    /// Keeps only the MACs for which `keep` is true (drop removed policies').
    pub fn retain(&mut self, mut keep: impl FnMut(MacAddr) -> bool) {
        self.macs.retain(|&(_, mac, _)| keep(mac));
    }
}

impl MacState {
    fn new(max_pps: f64) -> Self {
        Self {
            meter: RateMeter::new(max_pps),
            rate_pps: None,
            drop_meter: RateMeter::new(max_pps),
            drops_pps: None,
            dropped: 0,
        }
    }

    /// Feeds a reading; the packets counted since the previous one (0
    /// when it gave no rate: a baseline, a reset, a missing MAC).
    fn observe(&mut self, reading: &MacReading, now: Instant) -> u64 {
        match reading {
            MacReading::Found {
                source,
                rx_packets,
                drops,
            } => {
                self.dropped = 0;
                match drops {
                    Some(d) => {
                        let prev = self.drop_meter.last.as_ref().map(|(_, c, _)| *c);
                        match self.drop_meter.observe(source, *d, now) {
                            RateOutcome::Rate(r) => {
                                self.drops_pps = Some(r);
                                self.dropped = prev.map_or(0, |p| d.checked_sub(p).unwrap_or(*d));
                            }
                            RateOutcome::TooSoon => {}
                            RateOutcome::First | RateOutcome::Reset => self.drops_pps = Some(0.0),
                        }
                    }
                    None => {
                        self.drop_meter.forget();
                        self.drops_pps = None;
                    }
                }
                let prev = self.meter.last.as_ref().map(|(_, c, _)| *c);
                match self.meter.observe(source, *rx_packets, now) {
                    RateOutcome::Rate(r) => {
                        self.rate_pps = Some(r);
                        // A 32-bit counter that wrapped counts from 0.
                        prev.map_or(0, |p| rx_packets.checked_sub(p).unwrap_or(*rx_packets))
                    }
                    _ => 0,
                }
            }
            MacReading::Missing(_) => {
                self.meter.forget();
                self.rate_pps = None;
                self.drop_meter.forget();
                self.drops_pps = None;
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS100: Duration = Duration::from_millis(100);

    fn netdev() -> SourceKind {
        SourceKind::Netdev {
            ifname: "veth0".into(),
        }
    }

    #[test]
    fn steady_counter_gives_its_rate() {
        assert_eq!(
            rate_pps(1_000, 2_000, MS100, DEFAULT_MAX_PPS),
            RateOutcome::Rate(10_000.0)
        );
        assert_eq!(
            rate_pps(7, 7, MS100, DEFAULT_MAX_PPS),
            RateOutcome::Rate(0.0)
        );
    }

    #[test]
    fn a_32_bit_counter_that_wraps_gives_the_wrapped_delta() {
        let prev = u64::from(u32::MAX) - 499;
        assert_eq!(
            rate_pps(prev, 500, MS100, DEFAULT_MAX_PPS),
            RateOutcome::Rate(10_000.0)
        );
    }

    #[test]
    fn a_64_bit_counter_going_down_is_a_reset() {
        assert_eq!(
            rate_pps(5_000_000_000, 10, MS100, DEFAULT_MAX_PPS),
            RateOutcome::Reset
        );
    }

    #[test]
    fn a_small_counter_reset_is_not_taken_for_a_wrap() {
        // From 3e9 to 5 in 100 ms would be a wrap of ~1.3e9 packets: 13 Gpps.
        assert_eq!(
            rate_pps(3_000_000_000, 5, MS100, DEFAULT_MAX_PPS),
            RateOutcome::Reset
        );
        assert_eq!(
            counter_delta(3_000_000_000, 5, MS100, DEFAULT_MAX_PPS),
            None
        );
    }

    #[test]
    fn an_implausible_jump_is_a_reset() {
        assert_eq!(
            rate_pps(0, 1_000_000_000, MS100, DEFAULT_MAX_PPS),
            RateOutcome::Reset
        );
        assert_eq!(rate_pps(0, 1_000, MS100, 5_000.0), RateOutcome::Reset);
        assert_eq!(rate_pps(0, 500, MS100, 5_000.0), RateOutcome::Rate(5_000.0));
    }

    #[test]
    fn zero_elapsed_is_too_soon() {
        assert_eq!(
            rate_pps(0, 10, Duration::ZERO, DEFAULT_MAX_PPS),
            RateOutcome::TooSoon
        );
    }

    #[test]
    fn meter_baselines_then_rates_and_skips_one_sample_after_reset() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        assert_eq!(m.observe(&netdev(), 100, t0), RateOutcome::First);
        assert_eq!(
            m.observe(&netdev(), 200, t0 + MS100),
            RateOutcome::Rate(1_000.0)
        );
        assert_eq!(m.observe(&netdev(), 200, t0 + MS100), RateOutcome::TooSoon);
        assert_eq!(
            m.observe(&netdev(), 300, t0 + 2 * MS100),
            RateOutcome::Rate(1_000.0)
        );
        assert_eq!(
            m.observe(&netdev(), 5_000_000_000, t0 + 3 * MS100),
            RateOutcome::Reset
        );
        assert_eq!(m.observe(&netdev(), 4, t0 + 4 * MS100), RateOutcome::Reset);
        assert_eq!(
            m.observe(&netdev(), 54, t0 + 5 * MS100),
            RateOutcome::Rate(500.0)
        );
    }

    #[test]
    fn meter_treats_a_change_of_source_as_a_reset() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        m.observe(&netdev(), 100, t0);
        let tap = SourceKind::Tap {
            ifname: "vnet0".into(),
        };
        assert_eq!(m.observe(&tap, 150, t0 + MS100), RateOutcome::Reset);
        assert_eq!(
            m.observe(&tap, 250, t0 + 2 * MS100),
            RateOutcome::Rate(1_000.0)
        );
        m.forget();
        assert_eq!(m.observe(&tap, 900, t0 + 3 * MS100), RateOutcome::First);
    }

    fn found(mac: MacAddr, rx_packets: u64) -> MacSample {
        MacSample {
            mac,
            reading: MacReading::Found {
                source: netdev(),
                rx_packets,
                drops: None,
            },
        }
    }

    #[test]
    fn drop_counters_give_drops_per_second_and_counts() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let with_drops = |rx_packets, drops| MacSample {
            mac,
            reading: MacReading::Found {
                source: netdev(),
                rx_packets,
                drops,
            },
        };
        let t0 = Instant::now();
        let mut rates = MacRates::default();
        let (mut out, mut packets, mut drops) = (Vec::new(), Vec::new(), Vec::new());
        let mut tick = |sample, at| {
            rates.update_counting(&[sample], at, &mut out, &mut packets, &mut drops);
            drops[0]
        };
        assert_eq!(
            tick(with_drops(0, Some(100)), t0),
            (Some(0.0), 0),
            "baseline"
        );
        assert_eq!(
            tick(with_drops(1_000, Some(150)), t0 + MS100),
            (Some(500.0), 50)
        );
        assert_eq!(
            tick(with_drops(2_000, Some(150)), t0 + MS100 * 2),
            (Some(0.0), 0)
        );
        // A source without a drop counter has no drop rate.
        assert_eq!(tick(with_drops(3_000, None), t0 + MS100 * 3), (None, 0));
    }

    #[test]
    fn mac_rates_sum_per_policy_hold_on_reset_and_clear_on_missing() {
        let (a, b, c) = (
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            MacAddr([2, 0, 0, 0, 0, 3]),
        );
        let t0 = Instant::now();
        let mut rates = MacRates::default();
        rates.update(&[found(a, 0), found(b, 0)], t0);
        assert_eq!(rates.policy_rate_pps(&[a, b]), None);
        rates.update(&[found(a, 100), found(b, 50)], t0 + MS100);
        assert_eq!(rates.policy_rate_pps(&[a, b, c]), Some(1_500.0));
        // a resets: it keeps its last rate for this tick.
        rates.update(&[found(a, 0), found(b, 100)], t0 + 2 * MS100);
        assert_eq!(rates.rate_pps(a), Some(1_000.0));
        assert_eq!(rates.rate_pps(b), Some(500.0));
        let missing = MacSample {
            mac: b,
            reading: MacReading::Missing(crate::traffic::MissingReason::NotFound),
        };
        rates.update(&[found(a, 30), missing], t0 + 3 * MS100);
        assert_eq!(rates.policy_rate_pps(&[a, b]), Some(300.0));
        assert_eq!(rates.rate_pps(b), None);
        rates.retain(|m| m != a);
        assert_eq!(rates.rate_pps(a), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Batches in any order, with repeats and missing MACs, give each
        /// MAC the rate its own meter gives (the sorted vector with its
        /// walk hint finds every MAC).
        #[test]
        fn rates_match_one_meter_per_mac(
            ticks in proptest::collection::vec(
                proptest::collection::vec((0u8..12, 0u64..1_000, any::<bool>()), 0..16),
                1..8,
            ),
        ) {
            let t0 = Instant::now();
            let mut rates = MacRates::default();
            let mut reference: std::collections::HashMap<MacAddr, MacState> =
                std::collections::HashMap::new();
            let mut counter = 0u64;
            let mut got = Vec::new();
            for (t, batch) in ticks.iter().enumerate() {
                let now = t0 + MS100 * u32::try_from(t + 1).unwrap();
                let samples: Vec<MacSample> = batch
                    .iter()
                    .map(|&(m, step, found)| {
                        counter += step;
                        MacSample {
                            mac: MacAddr([2, 0, 0, 0, 0, m]),
                            reading: if found {
                                MacReading::Found { source: netdev(), rx_packets: counter, drops: None }
                            } else {
                                MacReading::Missing(crate::traffic::MissingReason::NotFound)
                            },
                        }
                    })
                    .collect();
                rates.update_into(&samples, now, &mut got);
                for s in &samples {
                    reference
                        .entry(s.mac)
                        .or_insert_with(|| MacState::new(DEFAULT_MAX_PPS))
                        .observe(&s.reading, now);
                }
                prop_assert!(rates.macs.windows(2).all(|w| w[0].0 < w[1].0));
                prop_assert_eq!(got.len(), samples.len());
                // Each sample's rate as fed (a repeated MAC: its last one).
                for (i, (s, r)) in samples.iter().zip(&got).enumerate() {
                    if samples[i + 1..].iter().all(|t| t.mac != s.mac) {
                        prop_assert_eq!(*r, rates.rate_pps(s.mac));
                    }
                }
                for m in 0u8..12 {
                    let mac = MacAddr([2, 0, 0, 0, 0, m]);
                    prop_assert_eq!(rates.rate_pps(mac), reference.get(&mac).and_then(|s| s.rate_pps));
                }
            }
        }

        /// A counter growing at a constant rate, read at irregular
        /// intervals, gives that rate within one packet per interval; with
        /// a 32-bit counter (value masked) this crosses the wrap.
        #[test]
        fn constant_rate_is_measured(
            rate in 0u32..50_000_000,
            start in any::<u64>(),
            wide in any::<bool>(),
            steps in proptest::collection::vec(1u64..2_000, 1..20),
        ) {
            let start = if wide { start >> 1 } else { start & 0xffff_ffff };
            let t0 = Instant::now();
            let mut meter = RateMeter::default();
            let mut elapsed_ms = 0u64;
            let value = |ms: u64| {
                let grown = start + u64::from(rate) * ms / 1000;
                if wide { grown } else { grown & 0xffff_ffff }
            };
            meter.observe(&netdev(), value(0), t0);
            for step in steps {
                elapsed_ms += step;
                let now = t0 + Duration::from_millis(elapsed_ms);
                match meter.observe(&netdev(), value(elapsed_ms), now) {
                    RateOutcome::Rate(r) => {
                        let slack = 1.0 / Duration::from_millis(step).as_secs_f64() + 1e-6;
                        prop_assert!((r - f64::from(rate)).abs() <= slack, "rate {r} vs {rate}");
                    }
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }

        /// Whatever the readings do (resets, jumps, wraps), a rate is never
        /// negative, NaN, or above the plausibility cap.
        #[test]
        fn arbitrary_readings_give_sane_rates(
            readings in proptest::collection::vec((any::<u64>(), 0u64..5_000), 1..40),
            max_pps in 1.0f64..2.0e9,
        ) {
            let t0 = Instant::now();
            let mut meter = RateMeter::new(max_pps);
            let mut ms = 0;
            for (counter, step) in readings {
                ms += step;
                if let RateOutcome::Rate(r) = meter.observe(&netdev(), counter, t0 + Duration::from_millis(ms)) {
                    prop_assert!(r.is_finite() && r >= 0.0 && r <= max_pps * (1.0 + 1e-9), "rate {r}");
                }
            }
        }
    }
}

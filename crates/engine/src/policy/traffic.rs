//! TRAFFIC: the level a measured packet rate calls for, with hysteresis so
//! the frequency does not flap when the rate hovers at a threshold.
//!
//! ## Behavior
//! - Going up is immediate: a rate at or above `max_pps` → max, at or above
//!   `avg_pps` → medium (DPDK's thresholds).
//! - Going down needs the rate to fall below the threshold by the band
//!   (`band` of the threshold, default 5 %), and to stay there for the
//!   dwell time (default 500 ms) — fast up, slow down.
//! - `min_pps` is carried by the protocol and unused, as in DPDK.
//! - Drops (see [`super::drops`]): drops at a level below max raise it to
//!   max at once and lower the thresholds to what was learned; an adaptive
//!   policy has only learned thresholds, starts at max and goes down one
//!   level per dwell.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vmpower_proto::TrafficThresholds;
use vmpower_types::levels::Level;

use super::drops::{DropEvent, DropSettings, Effective, Learned, TrafficReading, effective};

/// Hysteresis of a TRAFFIC policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hysteresis {
    /// How far below a threshold (as a fraction of it) the rate must fall
    /// before the level goes down.
    pub band: f64,
    /// How long the rate must stay below before the level goes down.
    #[serde(with = "millis")]
    pub dwell: Duration,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Hysteresis {
            band: 0.05,
            dwell: Duration::from_millis(500),
        }
    }
}

pub(super) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Rank of a level for comparisons: higher is faster.
fn rank(level: Level) -> u8 {
    match level {
        Level::Min => 0,
        Level::Medium => 1,
        Level::Max | Level::Index(_) => 2,
    }
}

/// The level a rate calls for without hysteresis (DPDK's rule).
pub fn raw_level(t: &TrafficThresholds, rate_pps: f64) -> Level {
    level_for(&fixed(t), rate_pps)
}

/// A policy's configured thresholds as [`Effective`] ones.
fn fixed(t: &TrafficThresholds) -> Effective {
    Effective {
        avg: f64::from(t.avg_pps),
        max: f64::from(t.max_pps),
    }
}

/// The level `t` calls for at `rate_pps`.
fn level_for(t: &Effective, rate_pps: f64) -> Level {
    if rate_pps >= t.max {
        Level::Max
    } else if rate_pps >= t.avg {
        Level::Medium
    } else {
        Level::Min
    }
}

/// One level lower than `level` (min stays min).
fn one_below(level: Level) -> Level {
    match rank(level) {
        2 => Level::Medium,
        _ => Level::Min,
    }
}

/// How a TRAFFIC policy's thresholds are set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Thresholds<'a> {
    /// The policy's pps, lowered by what drops taught.
    Fixed(&'a TrafficThresholds),
    /// Only what drops taught (starts at max, probes down).
    Adaptive,
}

/// The level a rate calls for when going *down* from `current`: each
/// threshold lowered by the band.
fn lowered_level(t: &Effective, band: f64, rate_pps: f64) -> Level {
    let factor = 1.0 - band.clamp(0.0, 1.0);
    if rate_pps >= t.max * factor {
        Level::Max
    } else if rate_pps >= t.avg * factor {
        Level::Medium
    } else {
        Level::Min
    }
}

/// The running state of one TRAFFIC evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficState {
    /// The level in force (`None` before the first sample).
    pub level: Option<Level>,
    /// Since when the rate has called for a lower level, if it does.
    below_since: Option<Duration>,
    /// Capacities learned from drops.
    pub learned: Learned,
    /// The drop event of the last sample, if it had drops.
    pub drop_now: Option<DropEvent>,
    /// The last drop event (at any level).
    pub last_drop: Option<DropEvent>,
    /// The last sample's drop rate.
    pub drops_pps: f64,
    /// The thresholds in force at the last sample.
    pub effective: Option<Effective>,
}

impl TrafficState {
    /// No sample yet.
    pub const fn new() -> Self {
        TrafficState {
            level: None,
            below_since: None,
            learned: Learned {
                min: None,
                medium: None,
            },
            drop_now: None,
            last_drop: None,
            drops_pps: 0.0,
            effective: None,
        }
    }

    /// Feeds one rate sample (no drops) at monotonic time `now` to fixed
    /// thresholds; returns the level in force afterwards.
    pub fn update(
        &mut self,
        t: &TrafficThresholds,
        h: &Hysteresis,
        rate_pps: f64,
        now: Duration,
    ) -> Level {
        self.update_reading(
            Thresholds::Fixed(t),
            h,
            &DropSettings::default(),
            rate_pps.into(),
            now,
        )
    }

    /// The thresholds in force at `now`.
    pub fn effective(&self, t: Thresholds<'_>, d: &DropSettings, now: Duration) -> Effective {
        let configured = match t {
            Thresholds::Fixed(t) => Some((f64::from(t.avg_pps), f64::from(t.max_pps))),
            Thresholds::Adaptive => None,
        };
        effective(configured, &self.learned, d, now)
    }

    /// Feeds one sample (rate and drops) at monotonic time `now`; returns
    /// the level in force afterwards.
    pub fn update_reading(
        &mut self,
        t: Thresholds<'_>,
        h: &Hysteresis,
        d: &DropSettings,
        reading: TrafficReading,
        now: Duration,
    ) -> Level {
        let rate_pps = reading.rate_pps;
        self.drops_pps = reading.drops_pps;
        self.drop_now = None;
        let adaptive = matches!(t, Thresholds::Adaptive);
        self.effective = Some(self.effective(t, d, now));
        if reading.drops_pps > 0.0 {
            // The guest did not keep up: max at once, and remember.
            let level = self.level.unwrap_or(Level::Max);
            self.learned.learn(level, rate_pps, now);
            let event = DropEvent {
                level,
                rate_pps,
                drops_pps: reading.drops_pps,
                at: now,
            };
            self.drop_now = Some(event);
            self.last_drop = Some(event);
            self.below_since = None;
            self.level = Some(Level::Max);
            self.effective = Some(self.effective(t, d, now));
            return Level::Max;
        }
        let e = self.effective(t, d, now);
        let up = level_for(&e, rate_pps);
        let Some(current) = self.level else {
            // Adaptive starts at max until it has learned (fail safe).
            let first = if adaptive { Level::Max } else { up };
            self.level = Some(first);
            return first;
        };
        if rank(up) >= rank(current) {
            self.below_since = None;
            self.level = Some(up);
            return up;
        }
        // The rate is below a threshold; is it below by the band?
        let mut down = lowered_level(&e, h.band, rate_pps);
        if adaptive && rank(down) < rank(one_below(current)) {
            // Probing: one level per dwell.
            down = one_below(current);
        }
        if rank(down) >= rank(current) {
            self.below_since = None;
            return current;
        }
        let since = *self.below_since.get_or_insert(now);
        if now.saturating_sub(since) >= h.dwell {
            self.below_since = None;
            self.level = Some(down);
            down
        } else {
            current
        }
    }
}

impl Default for TrafficState {
    fn default() -> Self {
        TrafficState::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TrafficThresholds = TrafficThresholds {
        min_pps: 0,
        avg_pps: 1_800_000,
        max_pps: 2_000_000,
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn dpdk_thresholds() {
        assert_eq!(raw_level(&T, 2_000_000.0), Level::Max);
        assert_eq!(raw_level(&T, 1_999_999.0), Level::Medium);
        assert_eq!(raw_level(&T, 1_800_000.0), Level::Medium);
        assert_eq!(raw_level(&T, 1_799_999.0), Level::Min);
        assert_eq!(raw_level(&T, 0.0), Level::Min);
    }

    #[test]
    fn fast_up_slow_down_with_band() {
        let h = Hysteresis::default();
        let mut s = TrafficState::new();
        assert_eq!(s.update(&T, &h, 100.0, ms(0)), Level::Min);
        assert_eq!(
            s.update(&T, &h, 2_100_000.0, ms(100)),
            Level::Max,
            "up at once"
        );
        // Just below max but inside the 5 % band: stays max, no dwell.
        assert_eq!(s.update(&T, &h, 1_950_000.0, ms(200)), Level::Max);
        assert_eq!(s.update(&T, &h, 1_950_000.0, ms(2000)), Level::Max);
        // Below the band: medium only after 500 ms below.
        assert_eq!(s.update(&T, &h, 1_850_000.0, ms(2100)), Level::Max);
        assert_eq!(s.update(&T, &h, 1_850_000.0, ms(2500)), Level::Max);
        assert_eq!(s.update(&T, &h, 1_850_000.0, ms(2600)), Level::Medium);
        // A blip back up resets the dwell.
        assert_eq!(s.update(&T, &h, 100.0, ms(2700)), Level::Medium);
        assert_eq!(s.update(&T, &h, 1_800_000.0, ms(3000)), Level::Medium);
        assert_eq!(s.update(&T, &h, 100.0, ms(3100)), Level::Medium);
        assert_eq!(s.update(&T, &h, 100.0, ms(3500)), Level::Medium);
        assert_eq!(s.update(&T, &h, 100.0, ms(3600)), Level::Min);
    }

    #[test]
    fn no_hysteresis_follows_dpdk_exactly() {
        let h = Hysteresis {
            band: 0.0,
            dwell: Duration::ZERO,
        };
        let mut s = TrafficState::new();
        for (rate, level) in [
            (2_000_000.0, Level::Max),
            (1_999_999.0, Level::Medium),
            (1_799_999.0, Level::Min),
            (1_800_000.0, Level::Medium),
        ] {
            assert_eq!(s.update(&T, &h, rate, ms(0)), level, "{rate}");
        }
    }

    fn reading(rate_pps: f64, drops_pps: f64) -> TrafficReading {
        TrafficReading {
            rate_pps,
            drops_pps,
        }
    }

    #[test]
    fn drops_raise_to_max_at_once_and_move_the_threshold_down() {
        let (h, d) = (Hysteresis::default(), DropSettings::default());
        let t = Thresholds::Fixed(&T);
        let mut s = TrafficState::new();
        assert_eq!(
            s.update_reading(t, &h, &d, reading(1_850_000.0, 0.0), ms(0)),
            Level::Medium
        );
        // The guest drops at medium while receiving 1.9 Mpps: max at once.
        assert_eq!(
            s.update_reading(t, &h, &d, reading(1_900_000.0, 5_000.0), ms(100)),
            Level::Max
        );
        let event = s.drop_now.expect("a drop event");
        assert_eq!(
            (event.level, event.rate_pps, event.drops_pps),
            (Level::Medium, 1_900_000.0, 5_000.0)
        );
        assert_eq!(s.learned.medium.map(|c| c.rate_pps), Some(1_900_000.0));
        // Max now starts at 1.71 Mpps (90 % of the capacity), not 2 Mpps:
        // 1.75 Mpps no longer goes down to medium, even after the dwell.
        assert_eq!(
            s.update_reading(t, &h, &d, reading(1_750_000.0, 0.0), ms(200)),
            Level::Max
        );
        assert_eq!(s.drop_now, None);
        assert_eq!(
            s.update_reading(t, &h, &d, reading(1_750_000.0, 0.0), ms(5_000)),
            Level::Max
        );
        // After the cooldown the operator's thresholds hold again.
        assert_eq!(
            s.update_reading(t, &h, &d, reading(1_750_000.0, 0.0), ms(61_000)),
            Level::Max,
            "the dwell starts"
        );
        assert_eq!(
            s.update_reading(t, &h, &d, reading(1_750_000.0, 0.0), ms(61_600)),
            Level::Medium
        );
    }

    #[test]
    fn adaptive_starts_at_max_probes_down_and_learns() {
        let (h, d) = (Hysteresis::default(), DropSettings::default());
        let t = Thresholds::Adaptive;
        let mut s = TrafficState::new();
        assert_eq!(
            s.update_reading(t, &h, &d, reading(10.0, 0.0), ms(0)),
            Level::Max
        );
        // One level per dwell.
        assert_eq!(
            s.update_reading(t, &h, &d, reading(10.0, 0.0), ms(100)),
            Level::Max
        );
        assert_eq!(
            s.update_reading(t, &h, &d, reading(10.0, 0.0), ms(600)),
            Level::Medium
        );
        assert_eq!(
            s.update_reading(t, &h, &d, reading(10.0, 0.0), ms(700)),
            Level::Medium
        );
        assert_eq!(
            s.update_reading(t, &h, &d, reading(10.0, 0.0), ms(1_200)),
            Level::Min
        );
        // Drops at min at 1,000 pps: max, min's capacity is learned.
        assert_eq!(
            s.update_reading(t, &h, &d, reading(1_000.0, 50.0), ms(2_000)),
            Level::Max
        );
        // 950 pps is above 900 (capacity less 10 %): never min again, even
        // long after any cooldown; medium (unknown capacity) is probed.
        for n in 1..200 {
            let level = s.update_reading(t, &h, &d, reading(950.0, 0.0), ms(2_000 + n * 1_000));
            assert_ne!(level, Level::Min, "at {n} s");
        }
        assert_eq!(s.level, Some(Level::Medium));
        // Low again: min.
        s.update_reading(t, &h, &d, reading(500.0, 0.0), ms(300_000));
        assert_eq!(
            s.update_reading(t, &h, &d, reading(500.0, 0.0), ms(300_600)),
            Level::Min
        );
    }

    mod prop {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// After drops at level L while receiving R, the level is
            /// never L or lower at a rate at or above R until the cooldown
            /// has passed (fixed) — or ever (adaptive).
            #[test]
            fn never_back_to_a_dropping_level_at_that_rate(
                adaptive in any::<bool>(),
                steps in proptest::collection::vec(
                    (0u32..3_000_000, proptest::bool::weighted(0.1), 1u64..2_000),
                    1..200,
                ),
            ) {
                let (h, d) = (Hysteresis::default(), DropSettings::default());
                let t = if adaptive { Thresholds::Adaptive } else { Thresholds::Fixed(&T) };
                let mut s = TrafficState::new();
                let mut now = Duration::ZERO;
                // (level, rate, at) of each drop event below max.
                let mut seen: Vec<(Level, f64, Duration)> = Vec::new();
                for (rate, drops, dt) in steps {
                    now += Duration::from_millis(dt);
                    let rate = f64::from(rate);
                    let before = s.level;
                    let level = s.update_reading(
                        t, &h, &d, reading(rate, if drops { 10.0 } else { 0.0 }), now,
                    );
                    if drops {
                        prop_assert_eq!(level, Level::Max);
                        if let Some(l) = before.filter(|l| rank(*l) < 2) {
                            seen.retain(|(sl, ..)| *sl != l);
                            seen.push((l, rate, now));
                        }
                        continue;
                    }
                    for (l, r, at) in &seen {
                        let cooled = !adaptive && now.saturating_sub(*at) >= d.cooldown;
                        if rate >= *r && !cooled {
                            prop_assert!(
                                rank(level) > rank(*l),
                                "at {:?} {:?} at {} pps after drops at {:?} at {} pps",
                                now, level, rate, l, r
                            );
                        }
                    }
                }
            }
        }
    }
}

//! The busyness controller's rule for one vCPU, pure: from the busyness
//! the guest measured at the frequency its pCPU ran at, the level that
//! keeps it inside the target band with the least frequency.
//!
//! ## Behavior
//! - Inside the band (`low..=high`): the want stays where it is (the
//!   deadband).
//! - Above the band: up at once (no cooldown: a busy poll loop is about
//!   to drop packets), proportionally: the lowest frequency predicted to
//!   bring busyness to the band's middle (`busy × f_now / f ≤ mid`), and
//!   at least one level above the frequency the report was measured at.
//!   At or above [`BusyConfig::saturated`] the demand is unknown (the loop
//!   is never idle): straight to max.
//! - Below the band: down once [`BusyConfig::cooldown`] has passed since
//!   the vCPU's last change, proportionally, to the lowest frequency
//!   predicted to stay at or below the band's middle; never below what
//!   the table offers.
//! - Turbo is never chosen: the controller's max is the table's highest
//!   frequency without turbo ([`Level::Max`] with turbo off).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vmpower_cpufreq::levels::{FreqTable, Level, level_index};

use crate::settings::{Now, RateLimit};

/// The busyness controller's settings (engine-wide).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusyConfig {
    /// The band's lower edge, as a fraction of the time busy (0.75).
    pub low: f64,
    /// The band's upper edge (0.85).
    pub high: f64,
    /// At or above this busyness the demand is unknown: max (0.98).
    pub saturated: f64,
    /// The least time between a vCPU's last change and a step down
    /// (100 ms).
    pub cooldown: Duration,
    /// The guest's report interval is clamped to at least this (10 ms).
    pub interval_min: Duration,
    /// ... and at most this (1 s).
    pub interval_max: Duration,
    /// A VM whose reports stop for this many (clamped) intervals has its
    /// reported vCPUs put at max (3).
    pub stale_intervals: u32,
    /// Reports a VM may send: `burst` at once, `per_second` sustained
    /// (20, 200/s).
    pub max_rate: RateLimit,
}

impl Default for BusyConfig {
    fn default() -> Self {
        BusyConfig::DEFAULT
    }
}

impl BusyConfig {
    /// The defaults (a constant, for callers that repeat them).
    pub const DEFAULT: BusyConfig = BusyConfig {
        low: 0.75,
        high: 0.85,
        saturated: 0.98,
        cooldown: Duration::from_millis(100),
        interval_min: Duration::from_millis(10),
        interval_max: Duration::from_secs(1),
        stale_intervals: 3,
        max_rate: RateLimit {
            burst: 20,
            per_second: 200,
        },
    };
}

/// Why a [`BusyConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BusyConfigError {
    /// The band is not `0 < low < high < saturated <= 1`.
    #[error(
        "busyness band must satisfy 0 < low < high < saturated <= 1, got low {low}, high {high}, saturated {saturated}"
    )]
    Band {
        /// The band's lower edge.
        low: f64,
        /// The band's upper edge.
        high: f64,
        /// The saturation threshold.
        saturated: f64,
    },
    /// The interval range is empty or starts at zero.
    #[error("report interval range {min:?}..={max:?} must be non-empty and start above zero")]
    Interval {
        /// The lower bound.
        min: Duration,
        /// The upper bound.
        max: Duration,
    },
    /// Zero intervals of silence.
    #[error("stale_intervals must be at least 1")]
    StaleIntervals,
    /// A rate limit of zero.
    #[error("the report rate limit must allow at least one report (burst and per_second >= 1)")]
    Rate,
}

impl BusyConfig {
    /// Checks the settings; each error names the bad one.
    pub fn validate(&self) -> Result<(), BusyConfigError> {
        let band_ok = 0.0 < self.low
            && self.low < self.high
            && self.high < self.saturated
            && self.saturated <= 1.0;
        if !band_ok {
            return Err(BusyConfigError::Band {
                low: self.low,
                high: self.high,
                saturated: self.saturated,
            });
        }
        if self.interval_min.is_zero() || self.interval_min > self.interval_max {
            return Err(BusyConfigError::Interval {
                min: self.interval_min,
                max: self.interval_max,
            });
        }
        if self.stale_intervals == 0 {
            return Err(BusyConfigError::StaleIntervals);
        }
        if self.max_rate.burst == 0 || self.max_rate.per_second == 0 {
            return Err(BusyConfigError::Rate);
        }
        Ok(())
    }

    /// The band's middle: where a step aims.
    pub fn target(&self) -> f64 {
        (self.low + self.high) / 2.0
    }

    /// How long a VM reporting every `interval_ms` may stay silent
    /// before its vCPUs go to max.
    pub fn stale_after(&self, interval_ms: u32) -> Duration {
        let interval = Duration::from_millis(u64::from(interval_ms))
            .clamp(self.interval_min, self.interval_max);
        interval * self.stale_intervals
    }
}

/// One vCPU's controller state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuControl {
    /// The index the controller wants in the pCPU's table.
    pub index: usize,
    /// When it last changed (`None`: never since the first report).
    pub changed: Option<Now>,
    /// The last busyness reported, per mille.
    pub permille: u16,
}

/// The next index for a vCPU whose guest measured `busy` (0..=1) while
/// its pCPU ran at index `at` of `table`; `want` is the controller's
/// current want (`None` before the first report).
pub fn next_index(
    config: &BusyConfig,
    table: &FreqTable,
    at: usize,
    want: Option<&VcpuControl>,
    busy: f64,
    now: Now,
) -> usize {
    let top = level_index(table, false, Level::Max).expect("Max is always in range");
    let bottom = table.last_index();
    let at = at.clamp(top, bottom);
    let kept = want.map_or(at, |w| w.index.clamp(top, bottom));
    let freqs = table.freqs();
    let f_now = f64::from(freqs[at].0);
    // The lowest frequency (highest index) predicted to keep busyness at
    // or below the band's middle.
    let proportional = || {
        let need = f_now * busy / config.target();
        (top..=bottom)
            .rev()
            .find(|i| f64::from(freqs[*i].0) >= need)
            .unwrap_or(top)
    };
    if busy >= config.saturated {
        top
    } else if busy > config.high {
        proportional().min(at.saturating_sub(1)).max(top)
    } else if busy < config.low {
        let cooled = want
            .and_then(|w| w.changed)
            .is_none_or(|t| now.saturating_sub(t) >= config.cooldown);
        if cooled { proportional() } else { kept }
    } else {
        kept
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use vmpower_cpufreq::Khz;

    use super::*;

    fn table() -> FreqTable {
        FreqTable::new(
            [
                3_001_000, 3_000_000, 2_600_000, 2_200_000, 1_800_000, 1_400_000, 1_000_000,
            ]
            .into_iter()
            .map(Khz)
            .collect(),
        )
        .expect("valid")
    }

    fn control(index: usize, changed: Option<u64>) -> VcpuControl {
        VcpuControl {
            index,
            changed: changed.map(Duration::from_millis),
            permille: 0,
        }
    }

    #[test]
    fn steps_are_proportional_not_one_level() {
        let c = BusyConfig::default();
        let t = table();
        // 50 % busy at 3.0 GHz: 1.875 GHz would make 80 %; 2.2 GHz is
        // the lowest that stays at or below it.
        assert_eq!(next_index(&c, &t, 1, None, 0.5, Duration::ZERO), 3);
        // 95 % busy at 1.4 GHz: needs 1.66 GHz → 1.8 GHz.
        assert_eq!(next_index(&c, &t, 5, None, 0.95, Duration::ZERO), 4);
        // Saturated: max, never turbo.
        assert_eq!(next_index(&c, &t, 6, None, 1.0, Duration::ZERO), 1);
        // In the band: where the want is.
        let w = control(2, Some(0));
        assert_eq!(next_index(&c, &t, 2, Some(&w), 0.8, Duration::ZERO), 2);
    }

    #[test]
    fn down_waits_for_the_cooldown_up_does_not() {
        let c = BusyConfig::default();
        let t = table();
        let w = control(1, Some(1_000));
        let at = |ms| Duration::from_millis(ms);
        assert_eq!(next_index(&c, &t, 1, Some(&w), 0.3, at(1_050)), 1);
        assert_eq!(next_index(&c, &t, 1, Some(&w), 0.3, at(1_100)), 5);
        let w = control(5, Some(1_000));
        assert_eq!(next_index(&c, &t, 5, Some(&w), 0.9, at(1_001)), 4);
    }

    #[test]
    fn config_errors_name_the_setting() {
        let bad = BusyConfig {
            low: 0.9,
            ..BusyConfig::default()
        };
        assert!(matches!(bad.validate(), Err(BusyConfigError::Band { .. })));
        let bad = BusyConfig {
            interval_min: Duration::ZERO,
            ..BusyConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("interval"));
        assert!(BusyConfig::default().validate().is_ok());
        let c = BusyConfig::default();
        assert_eq!(c.stale_after(100), Duration::from_millis(300));
        assert_eq!(c.stale_after(0), Duration::from_millis(30));
        assert_eq!(c.stale_after(u32::MAX), Duration::from_secs(3));
    }

    proptest! {
        /// Above the band, a vCPU below max always moves up; below the
        /// band past the cooldown, it never stays at a level when a lower
        /// one is predicted to stay within the band's middle; the result
        /// is always a real, non-turbo level.
        #[test]
        fn never_stays_out_of_band_when_a_level_fixes_it(
            at in 0usize..7,
            want in 1usize..7,
            permille in 0u16..=1000,
        ) {
            let c = BusyConfig::default();
            let t = table();
            let busy = f64::from(permille) / 1000.0;
            let w = control(want, Some(0));
            let now = Duration::from_secs(1);
            let next = next_index(&c, &t, at, Some(&w), busy, now);
            prop_assert!((1..=6).contains(&next));
            let at = at.max(1);
            let khz = |i: usize| f64::from(t.freqs()[i].0);
            if busy > c.high && at > 1 {
                prop_assert!(next < at, "above the band at {at}: stayed at {next}");
            }
            if busy < c.low {
                prop_assert!(busy * khz(at) / khz(next) <= c.target() + 1e-9);
                if next < 6 {
                    prop_assert!(busy * khz(at) / khz(next + 1) > c.target(),
                        "a lower level {} would do", next + 1);
                }
            }
        }
    }
}

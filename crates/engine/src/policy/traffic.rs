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

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vmpower_proto::TrafficThresholds;
use vmpower_types::levels::Level;

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

mod millis {
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
    if rate_pps >= f64::from(t.max_pps) {
        Level::Max
    } else if rate_pps >= f64::from(t.avg_pps) {
        Level::Medium
    } else {
        Level::Min
    }
}

/// The level a rate calls for when going *down* from `current`: each
/// threshold lowered by the band.
fn lowered_level(t: &TrafficThresholds, band: f64, rate_pps: f64) -> Level {
    let factor = 1.0 - band.clamp(0.0, 1.0);
    if rate_pps >= f64::from(t.max_pps) * factor {
        Level::Max
    } else if rate_pps >= f64::from(t.avg_pps) * factor {
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
}

impl TrafficState {
    /// No sample yet.
    pub const fn new() -> Self {
        TrafficState {
            level: None,
            below_since: None,
        }
    }

    /// Feeds one rate sample at monotonic time `now`; returns the level in
    /// force afterwards.
    pub fn update(
        &mut self,
        t: &TrafficThresholds,
        h: &Hysteresis,
        rate_pps: f64,
        now: Duration,
    ) -> Level {
        let up = raw_level(t, rate_pps);
        let Some(current) = self.level else {
            self.level = Some(up);
            return up;
        };
        if rank(up) >= rank(current) {
            self.below_since = None;
            self.level = Some(up);
            return up;
        }
        // The rate is below a threshold; is it below by the band?
        let down = lowered_level(t, h.band, rate_pps);
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
}

//! Drop-aware TRAFFIC: what a policy learns from the packets its guest
//! dropped, and the thresholds that learning leaves in force.
//!
//! ## Behavior
//! - A sample whose drop rate is above zero ([`TrafficReading::drops_pps`])
//!   raises the policy's cores to max at once, ignoring the dwell, and is a
//!   [`DropEvent`] (kept for the history's reason and `policy show`).
//! - A drop event at a level below max *learns* that level's capacity: the
//!   rate the guest received while it dropped (what it could serve at that
//!   level). The threshold that leaves the level upwards then comes down to
//!   that capacity less [`DropSettings::margin`], so the next crossing
//!   comes before the drops. The newest event at a level replaces what was
//!   learned there (a new software release may serve less).
//! - Fixed thresholds (the policy's pps) are only ever lowered by what was
//!   learned, and what was learned is forgotten after
//!   [`DropSettings::cooldown`] without a new event at that level (the
//!   operator's numbers hold again).
//! - Adaptive policies ([`crate::policy::PolicyExtensions::adaptive`]) have
//!   no thresholds but what they learned, and keep it (it is persisted with
//!   the policy); they start at max and probe one level down per dwell
//!   while a level's capacity is unknown.
//! - So a level at which drops were seen at rate R is never taken again at
//!   a rate at or above R less the margin, unless the cooldown passed (fixed
//!   thresholds) — adaptive policies never take it again at that rate.
//!
//! Pure: no I/O, time passed in.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vmpower_types::levels::Level;

/// One TRAFFIC sample: the packets per second the guest received and the
/// packets per second dropped because it did not keep up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrafficReading {
    /// Received packets per second (the policy's rate).
    pub rate_pps: f64,
    /// Dropped packets per second (0 when the source has no drop counter).
    pub drops_pps: f64,
}

impl From<f64> for TrafficReading {
    /// A rate without drops (sources and callers that know no drops).
    fn from(rate_pps: f64) -> Self {
        TrafficReading {
            rate_pps,
            drops_pps: 0.0,
        }
    }
}

/// How a TRAFFIC policy reacts to drops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DropSettings {
    /// Safety margin below a learned capacity, as a fraction of it: the
    /// level is left upwards at `capacity × (1 − margin)`.
    pub margin: f64,
    /// How long what was learned lowers fixed thresholds after the last
    /// drop event at that level.
    #[serde(with = "super::traffic::millis")]
    pub cooldown: Duration,
}

impl Default for DropSettings {
    fn default() -> Self {
        DropSettings {
            margin: 0.1,
            cooldown: Duration::from_secs(60),
        }
    }
}

/// Drops seen at a level below max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropEvent {
    /// The level in force when the drops were seen.
    pub level: Level,
    /// The rate received then (the level's capacity, as learned).
    pub rate_pps: f64,
    /// The drop rate.
    pub drops_pps: f64,
    /// Monotonic time of the sample.
    pub at: Duration,
}

/// A learned capacity: the rate at which drops began at a level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Packets per second the guest served at that level while dropping.
    pub rate_pps: f64,
    /// Monotonic time it was learned (not persisted: a restored capacity
    /// counts from the restore).
    #[serde(skip)]
    pub at: Duration,
}

/// What a policy learned, per level below max.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Learned {
    /// The capacity at min.
    pub min: Option<Capacity>,
    /// The capacity at medium.
    pub medium: Option<Capacity>,
}

impl Learned {
    /// Nothing learned at any level.
    pub fn is_empty(&self) -> bool {
        self.min.is_none() && self.medium.is_none()
    }

    /// Records drops at `level` while receiving `rate_pps`; false for max
    /// (there is nothing above it to learn for).
    pub fn learn(&mut self, level: Level, rate_pps: f64, now: Duration) -> bool {
        let slot = match level {
            Level::Min => &mut self.min,
            Level::Medium => &mut self.medium,
            Level::Max | Level::Index(_) => return false,
        };
        *slot = Some(Capacity {
            rate_pps: rate_pps.max(0.0),
            at: now,
        });
        true
    }

    /// Restamps every capacity at `now` (restored from the store: its
    /// cooldown starts again).
    pub fn restamp(&mut self, now: Duration) {
        for c in [&mut self.min, &mut self.medium].into_iter().flatten() {
            c.at = now;
        }
    }
}

/// The thresholds (pps) in force: `avg` enters medium, `max` enters max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effective {
    /// Rate at or above which the level is at least medium.
    pub avg: f64,
    /// Rate at or above which the level is max.
    pub max: f64,
}

/// The thresholds in force given the configured ones (`None`: adaptive),
/// what was learned and the settings, at `now`.
pub fn effective(
    configured: Option<(f64, f64)>,
    learned: &Learned,
    s: &DropSettings,
    now: Duration,
) -> Effective {
    let adaptive = configured.is_none();
    let (avg, max) = configured.unwrap_or((f64::INFINITY, f64::INFINITY));
    let lowered = |c: Option<Capacity>| {
        c.filter(|c| adaptive || now.saturating_sub(c.at) < s.cooldown)
            .map_or(f64::INFINITY, |c| {
                c.rate_pps * (1.0 - s.margin.clamp(0.0, 1.0))
            })
    };
    let max = max.min(lowered(learned.medium));
    let avg = avg.min(lowered(learned.min)).min(max);
    Effective { avg, max }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn learned_capacity_lowers_fixed_thresholds_until_the_cooldown() {
        let set = DropSettings::default();
        let mut l = Learned::default();
        assert!(l.learn(Level::Medium, 1_000.0, s(10)));
        assert!(!l.learn(Level::Max, 5.0, s(10)), "nothing above max");
        let e = effective(Some((800.0, 2_000.0)), &l, &set, s(20));
        assert_eq!(e.max, 900.0);
        assert_eq!(e.avg, 800.0);
        let e = effective(Some((800.0, 2_000.0)), &l, &set, s(70));
        assert_eq!(e.max, 2_000.0, "cooldown passed");
        // A lower medium capacity pulls avg down with it.
        l.learn(Level::Medium, 500.0, s(80));
        let e = effective(Some((800.0, 2_000.0)), &l, &set, s(81));
        assert_eq!((e.avg, e.max), (450.0, 450.0));
    }

    #[test]
    fn adaptive_keeps_what_it_learned_and_knows_nothing_else() {
        let set = DropSettings::default();
        let mut l = Learned::default();
        let e = effective(None, &l, &set, s(0));
        assert!(e.avg.is_infinite() && e.max.is_infinite());
        l.learn(Level::Min, 100.0, s(0));
        let e = effective(None, &l, &set, s(10_000));
        assert_eq!(e.avg, 90.0);
        assert!(e.max.is_infinite());
        let text = serde_json::to_string(&l).unwrap();
        assert_eq!(text, r#"{"min":{"rate_pps":100.0},"medium":null}"#);
        let back: Learned = serde_json::from_str(&text).unwrap();
        assert_eq!(back.min.map(|c| c.rate_pps), Some(100.0));
    }
}

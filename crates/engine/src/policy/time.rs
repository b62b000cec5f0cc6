//! TIME: which kind of hour it is, in the policy's time zone, and when the
//! next local hour begins (so the daemon sleeps until then instead of
//! polling).
//!
//! ## Behavior
//! - An hour in `busy` is busy (max), else in `quiet` quiet (min), else in
//!   `traffic` a traffic hour (the TRAFFIC rule), else an "other" hour
//!   (the level the operator configured, medium by default). DPDK checks
//!   busy, then quiet, then traffic in the same order.
//! - Local time comes from the IANA zone; across a daylight-saving change
//!   the local hour is what a wall clock there shows (an hour can be
//!   skipped or repeated).

use jiff::Timestamp;
use jiff::tz::TimeZone;
use vmpower_proto::HourSchedule;

/// What kind of hour it is for a TIME policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HourClass {
    /// In the busy hours: max.
    Busy,
    /// In the quiet hours: min.
    Quiet,
    /// In the traffic hours: the TRAFFIC rule.
    Traffic,
    /// None of them: the configured level.
    Other,
}

/// Classifies a local hour.
pub fn classify(hours: &HourSchedule, hour: u8) -> HourClass {
    if hours.busy.contains(hour) {
        HourClass::Busy
    } else if hours.quiet.contains(hour) {
        HourClass::Quiet
    } else if hours.traffic.contains(hour) {
        HourClass::Traffic
    } else {
        HourClass::Other
    }
}

/// The local hour (0..=23) at `at` in `tz`.
pub fn local_hour(tz: &TimeZone, at: Timestamp) -> u8 {
    u8::try_from(tz.to_datetime(at).hour()).expect("an hour is 0..=23")
}

/// The instant the next local hour begins in `tz`, strictly after `at`.
pub fn next_hour_start(tz: &TimeZone, at: Timestamp) -> Timestamp {
    let local = tz.to_datetime(at);
    let into_hour_ns = i64::from(local.minute()) * 60_000_000_000
        + i64::from(local.second()) * 1_000_000_000
        + i64::from(local.subsec_nanosecond());
    let left = jiff::SignedDuration::from_nanos(3_600_000_000_000 - into_hour_ns);
    at.checked_add(left).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmpower_proto::HourSet;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn busy_then_quiet_then_traffic() {
        let hours = HourSchedule {
            busy: HourSet::from_hours([17, 18]).unwrap(),
            quiet: HourSet::from_hours([2, 18]).unwrap(),
            traffic: HourSet::from_hours([8, 2]).unwrap(),
        };
        assert_eq!(classify(&hours, 18), HourClass::Busy);
        assert_eq!(classify(&hours, 2), HourClass::Quiet);
        assert_eq!(classify(&hours, 8), HourClass::Traffic);
        assert_eq!(classify(&hours, 0), HourClass::Other, "hour 0 is not busy");
    }

    #[test]
    fn hours_across_a_daylight_saving_change() {
        let paris = TimeZone::get("Europe/Paris").unwrap();
        // 2026-03-29: 02:00 CET does not exist; clocks go 01:59 → 03:00.
        let before = ts("2026-03-29T00:30:00Z"); // 01:30 local
        assert_eq!(local_hour(&paris, before), 1);
        let next = next_hour_start(&paris, before);
        assert_eq!(next, ts("2026-03-29T01:00:00Z"));
        assert_eq!(local_hour(&paris, next), 3, "02:00 is skipped");
        // 2026-10-25: 02:00-03:00 happens twice.
        let first = ts("2026-10-25T00:10:00Z"); // 02:10 CEST
        assert_eq!(local_hour(&paris, first), 2);
        let again = next_hour_start(&paris, first);
        assert_eq!(again, ts("2026-10-25T01:00:00Z"));
        assert_eq!(local_hour(&paris, again), 2, "02:00 again, in CET");
        assert_eq!(next_hour_start(&paris, again), ts("2026-10-25T02:00:00Z"));
    }

    #[test]
    fn half_hour_zones_and_exact_boundaries() {
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        let at = ts("2026-06-01T10:00:00Z"); // 15:30 local
        assert_eq!(local_hour(&kolkata, at), 15);
        assert_eq!(next_hour_start(&kolkata, at), ts("2026-06-01T10:30:00Z"));
        // Exactly on a boundary: the next one is an hour later.
        let utc = TimeZone::UTC;
        let on = ts("2026-06-01T10:00:00Z");
        assert_eq!(next_hour_start(&utc, on), ts("2026-06-01T11:00:00Z"));
    }
}

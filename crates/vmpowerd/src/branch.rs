//! Whether this host can sample branch misses for BRANCH_RATIO policies.
//!
//! The kernel lists the hardware events a PMU offers under
//! `/sys/bus/event_source/devices/cpu/events/`; without `branch-misses`
//! and `branch-instructions` there, `perf_event_open` cannot count them
//! (as on these virtual machines), so BRANCH_RATIO policies are refused
//! with that reason rather than silently ignored.
//!
//! ## Limitations
//! The sampler that reads the counters through `perf_event_open` is not
//! built yet: a host that has the events still gets its policies accepted
//! only once it is (see the policies issue's notes).

use std::path::Path;

/// Whether BRANCH_RATIO policies can be served on this host: the PMU
/// must offer the events, and a sampler must exist to read them.
pub fn host_has_branch_counters() -> bool {
    SAMPLER_BUILT && pmu_has_branch_events(Path::new("/sys"))
}

/// Whether the CPU PMU under `sys_root` offers branch counters.
pub fn pmu_has_branch_events(sys_root: &Path) -> bool {
    let events = sys_root.join("bus/event_source/devices/cpu/events");
    events.join("branch-misses").exists() && events.join("branch-instructions").exists()
}

/// Set once the perf_event_open sampler exists.
const SAMPLER_BUILT: bool = false;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_events_are_read_from_the_pmu_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!pmu_has_branch_events(dir.path()));
        let events = dir.path().join("bus/event_source/devices/cpu/events");
        std::fs::create_dir_all(&events).unwrap();
        std::fs::write(events.join("branch-misses"), "event=0xc5\n").unwrap();
        assert!(!pmu_has_branch_events(dir.path()), "both events are needed");
        std::fs::write(events.join("branch-instructions"), "event=0xc4\n").unwrap();
        assert!(pmu_has_branch_events(dir.path()));
    }
}

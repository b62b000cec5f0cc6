//! What the operator allows each VM, and how fast a channel may talk.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vmpower_proto::Layout;

/// Per-VM operator settings. The defaults are the safe ones: a guest may
/// only act on the single pCPU each of its vCPUs is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VmSettings {
    /// The byte layout its channels carry.
    pub layout: Layout,
    /// Answer QUERY_FREQ/QUERY_CAPS (and their list forms).
    pub queries_allowed: bool,
    /// Accept requests with `core_type` physical, for the VM's own pCPUs.
    pub physical_allowed: bool,
    /// A vCPU whose affinity spans several pCPUs drives all of them
    /// (otherwise such a request is refused).
    pub multi_pcpu_allowed: bool,
    /// A direct request for a core the VM's policy owns takes the core out
    /// of the policy (otherwise it is refused).
    #[serde(default)]
    pub requests_override_policy: bool,
}

/// A token bucket's shape: `burst` requests at once, refilled at
/// `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests a channel may send at once.
    pub burst: u32,
    /// Requests per second it may sustain.
    pub per_second: u32,
}

impl Default for RateLimit {
    /// 200 at once, 1000/s sustained: far above what any guest library
    /// sends (one request per frequency change), far below a flood.
    fn default() -> Self {
        RateLimit {
            burst: 200,
            per_second: 1000,
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Per-channel rate limit.
    pub rate_limit: RateLimit,
    /// Whether the host offers hardware branch counters (BRANCH_RATIO
    /// policies are refused otherwise).
    pub branch_counters: bool,
    /// Default BRANCH_RATIO threshold.
    pub branch_threshold: f64,
    /// What a TIME policy that says nothing does in hours of none of its
    /// sets (a guest's never says: DPDK's layout cannot).
    pub time_other_hours: crate::policy::OtherHours,
    /// The busyness controller's band, cooldown, staleness and rate.
    #[serde(default)]
    pub busyness: crate::busy::BusyConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rate_limit: RateLimit::default(),
            branch_counters: false,
            branch_threshold: crate::policy::branch::DEFAULT_THRESHOLD,
            time_other_hours: crate::policy::OtherHours::Unchanged,
            busyness: crate::busy::BusyConfig::default(),
        }
    }
}

/// Monotonic time since the daemon started, passed into every call: the
/// engine never reads a clock.
pub type Now = Duration;

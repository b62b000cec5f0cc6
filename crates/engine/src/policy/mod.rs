//! Power policies: a guest (or the operator) hands over a policy once and
//! the engine decides its cores' levels from then on, from inputs the
//! daemon samples — packet rates, the time, branch ratios.
//!
//! Each kind lives in its own file ([`traffic`], [`time`], [`branch`]);
//! this module holds what a policy is ([`PolicySpec`]), the extensions the
//! binary layout cannot carry ([`PolicyExtensions`]) and the running state
//! of an accepted policy (`ActivePolicy`).
//!
//! ## Behavior
//! - A policy owns its cores: the VM's direct requests for them are
//!   refused (`policy_owns_core`) unless the operator allowed requests to
//!   override the policy for that VM; such a request then takes the core
//!   out of the policy until the policy is replaced or removed.
//! - A policy that cannot decide yet (TRAFFIC whose MACs have no counter
//!   source, BRANCH_RATIO before its first samples) is *waiting*, with
//!   the reason visible; a waiting policy does not touch its cores.
//! - Hours outside busy/quiet/traffic take [`PolicyExtensions::other_hours`]
//!   (the engine's default, [`OtherHours::Unchanged`] as DPDK: the cores
//!   stay where they are); traffic hours of a waiting TRAFFIC source do too.

pub mod branch;
pub mod drops;
pub mod time;
pub mod traffic;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vmpower_proto::{Policy, PolicyKind, WorkloadLevel};
use vmpower_types::CpuId;
use vmpower_types::levels::Level;

use crate::vm::CoreKey;
use branch::BranchState;
use drops::{DropSettings, Learned};
use time::HourClass;
use traffic::{Hysteresis, TrafficState};

/// What a TIME policy does in an hour none of its sets lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherHours {
    /// Leave the cores where they are, as DPDK's host does.
    #[default]
    Unchanged,
    /// The lowest frequency.
    Min,
    /// The middle of the table.
    Medium,
    /// The highest allowed frequency.
    Max,
}

impl OtherHours {
    /// The level it sets, `None` for [`OtherHours::Unchanged`].
    pub fn level(self) -> Option<Level> {
        match self {
            OtherHours::Unchanged => None,
            OtherHours::Min => Some(Level::Min),
            OtherHours::Medium => Some(Level::Medium),
            OtherHours::Max => Some(Level::Max),
        }
    }
}

/// What a policy may say beyond DPDK's binary layout (policy files, the
/// control API). Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyExtensions {
    /// IANA time zone of a TIME policy's hours (default: the host's).
    pub time_zone: Option<String>,
    /// What hours in none of the TIME sets do; `None`: the engine's
    /// [`crate::EngineConfig::time_other_hours`], filled in when the policy
    /// is accepted.
    pub other_hours: Option<OtherHours>,
    /// TRAFFIC hysteresis (default: 5 % band, 500 ms dwell).
    pub hysteresis: Option<Hysteresis>,
    /// BRANCH_RATIO threshold (default: the daemon's per-core setting,
    /// 0.01 as DPDK).
    pub branch_threshold: Option<f64>,
    /// TRAFFIC thresholds learned from drops instead of the policy's pps
    /// (which are then ignored); default false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adaptive: bool,
    /// TRAFFIC reaction to drops (default: 10 % margin, 60 s cooldown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drops: Option<DropSettings>,
    /// The capacities a TRAFFIC policy learned from drops, kept with it so
    /// they survive a restart (written by the engine, not the sender).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned: Option<Learned>,
}

/// An accepted policy as the engine needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// The policy as sent.
    pub policy: Policy,
    /// What the layout cannot carry.
    pub ext: PolicyExtensions,
    /// The time zone of TIME hours, resolved by the caller from
    /// `ext.time_zone` (the engine does no I/O).
    pub tz: jiff::tz::TimeZone,
}

/// Why a policy is not deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyState {
    /// Deciding its cores' levels.
    Active,
    /// Accepted, waiting for an input, with the reason.
    Waiting(String),
}

/// An accepted policy and its running state.
#[derive(Debug, Clone)]
pub(crate) struct ActivePolicy {
    pub spec: PolicySpec,
    /// The cores it owns.
    pub keys: Vec<CoreKey>,
    pub traffic: TrafficState,
    /// The last rate measured, or why there is none.
    pub rate: Result<f64, String>,
    /// The local hour last evaluated (TIME).
    pub hour: Option<u8>,
    /// Branch ratio state per pCPU (BRANCH_RATIO).
    pub branch: BTreeMap<CpuId, BranchState>,
}

impl ActivePolicy {
    pub fn new(spec: PolicySpec, keys: Vec<CoreKey>) -> Self {
        let mut traffic = TrafficState::new();
        // Restored capacities count their cooldown from the restore.
        traffic.learned = spec.ext.learned.unwrap_or_default();
        traffic.learned.restamp(Duration::ZERO);
        ActivePolicy {
            spec,
            keys,
            traffic,
            rate: Err("no traffic sample yet".to_owned()),
            hour: None,
            branch: BTreeMap::new(),
        }
    }

    pub fn hysteresis(&self) -> Hysteresis {
        self.spec.ext.hysteresis.unwrap_or_default()
    }

    pub fn drop_settings(&self) -> DropSettings {
        self.spec.ext.drops.unwrap_or_default()
    }

    /// The level for the policy's cores from the inputs in force (for all
    /// kinds but BRANCH_RATIO, which decides per pCPU), or why none.
    pub fn level(&self) -> Result<Level, String> {
        let p = &self.spec.policy;
        match p.kind {
            PolicyKind::Workload => Ok(match p.workload {
                WorkloadLevel::High => Level::Max,
                WorkloadLevel::Medium => Level::Medium,
                WorkloadLevel::Low => Level::Min,
            }),
            PolicyKind::Traffic => self.traffic_level(),
            PolicyKind::Time => {
                let hour = self.hour.ok_or("local hour not evaluated yet")?;
                let other = || {
                    self.other_hours().level().ok_or_else(|| {
                        format!("hour {hour} is in none of its sets: its cores stay where they are")
                    })
                };
                match time::classify(&p.hours, hour) {
                    HourClass::Busy => Ok(Level::Max),
                    HourClass::Quiet => Ok(Level::Min),
                    HourClass::Traffic => self.traffic_level().or_else(|_| other()),
                    HourClass::Other => other(),
                }
            }
            PolicyKind::BranchRatio => Err("decided per pCPU".to_owned()),
        }
    }

    fn other_hours(&self) -> OtherHours {
        self.spec.ext.other_hours.unwrap_or_default()
    }

    /// Whether the policy leaves its cores where they are now: a TIME
    /// policy in an hour of none of its sets (or a traffic hour without a
    /// rate) with [`OtherHours::Unchanged`]. Its cores then keep the
    /// VM's wants, or are held at the level they run at.
    pub fn holds(&self) -> bool {
        let p = &self.spec.policy;
        if p.kind != PolicyKind::Time || self.other_hours() != OtherHours::Unchanged {
            return false;
        }
        self.hour
            .is_some_and(|hour| match time::classify(&p.hours, hour) {
                HourClass::Other => true,
                HourClass::Traffic => self.traffic_level().is_err(),
                HourClass::Busy | HourClass::Quiet => false,
            })
    }

    fn traffic_level(&self) -> Result<Level, String> {
        match (&self.rate, self.traffic.level) {
            (Err(why), _) => Err(why.clone()),
            (Ok(_), Some(level)) => Ok(level),
            (Ok(_), None) => Err("no traffic sample yet".to_owned()),
        }
    }

    /// Whether the policy needs traffic samples.
    pub fn uses_traffic(&self) -> bool {
        let p = &self.spec.policy;
        p.kind == PolicyKind::Traffic || (p.kind == PolicyKind::Time && !p.hours.traffic.is_empty())
    }
}

//! The values the façade takes and returns: a change asked of a CPU,
//! what applying it did, what releasing a CPU did.

use crate::levels::{Level, ScalingOp};
use crate::types::{CpuId, Khz};

/// A change asked of a CPU: a guest's operation or a wanted level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// SCALE_UP, SCALE_DOWN, ... as librte_power applies them.
    Op(ScalingOp),
    /// A level the engine wants.
    Level(Level),
}

impl From<ScalingOp> for Change {
    fn from(op: ScalingOp) -> Self {
        Change::Op(op)
    }
}

impl From<Level> for Change {
    fn from(level: Level) -> Self {
        Change::Level(level)
    }
}

/// What [`CpuFreq::apply`](super::CpuFreq::apply) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The CPU's level frequency before.
    pub old_khz: Khz,
    /// The CPU's level frequency now (what the domain is set to).
    pub new_khz: Khz,
    /// The table index now.
    pub index: usize,
    /// Whether sysfs was written.
    pub changed: bool,
    /// Every CPU of the frequency domain (all moved).
    pub domain_cpus: Vec<CpuId>,
}

/// What [`CpuFreq::release`](super::CpuFreq::release) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The domain's original settings are back.
    Restored,
    /// Other CPUs of the domain are still in use; restored when they go.
    HeldBy(Vec<CpuId>),
    /// The CPU was not taken over.
    NotTaken,
}

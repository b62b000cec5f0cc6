//! Setting a CPU's frequency through cpufreq, one mechanism per driver family.
//!
//! [`FrequencyControl`] is the seam: take a frequency domain over, set it to
//! a frequency from its table, read the setting back, release it. Two
//! mechanisms implement it, each in its own directory with the same shape
//! (`mod.rs` for the docs, `control.rs` for the implementation and its unit
//! tests):
//!
//! - [`setspeed`]: the `userspace` governor and `scaling_setspeed`
//!   (acpi-cpufreq, intel_cpufreq, amd-pstate passive, cppc_cpufreq);
//! - [`bounds`]: `scaling_min_freq = scaling_max_freq` (intel_pstate active,
//!   amd-pstate-epp).
//!
//! A control instance drives one *frequency domain* (a cpufreq policy): it
//! writes through one CPU's `cpufreq/` link and every CPU of the domain
//! moves. [`SetOutcome::domain`] says which, so that the caller (the engine)
//! can arbitrate.
//!
//! ## Behavior
//! - Writes only when the value changes: the file is read first and left
//!   alone when it already holds the wanted value.
//! - Notices, never assumes: before writing, a file that no longer holds
//!   what this control last wrote (another tool moved it) fails with
//!   [`BackendError::ChangedExternally`] and nothing is written; after
//!   writing, a file that does not read back what was written fails the
//!   same way.
//! - Recording the originals for restore is not done here: the caller
//!   records them ([`crate::takeover`]) before calling `prepare`.

pub mod bounds;
pub(crate) mod common;
pub mod setspeed;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sysfs::SysfsError;
use crate::types::{CpuId, Driver, Khz};

pub use common::{read_khz, write_bounds_ordered};

/// Why a frequency control operation failed. Every variant names the CPU
/// and, where a file is involved, the file and the value.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The CPU is offline or has no cpufreq policy.
    #[error("{cpu}: offline or without cpufreq ({path} missing)")]
    Offline {
        /// The CPU.
        cpu: CpuId,
        /// The missing directory or file.
        path: PathBuf,
    },
    /// The driver has no backend here.
    #[error("{cpu}: driver {driver:?} is not supported")]
    UnknownDriver {
        /// The CPU.
        cpu: CpuId,
        /// The driver's `scaling_driver` name.
        driver: String,
    },
    /// The governor a mechanism needs is not offered.
    #[error("{cpu}: governor {wanted:?} is not offered in {path} ({offered:?})")]
    GovernorNotOffered {
        /// The CPU.
        cpu: CpuId,
        /// `scaling_available_governors`.
        path: PathBuf,
        /// The governor needed.
        wanted: String,
        /// What the file lists.
        offered: String,
    },
    /// The kernel refused a value (EINVAL).
    #[error("{cpu}: the kernel refused {value:?} in {path} (EINVAL)")]
    Refused {
        /// The CPU.
        cpu: CpuId,
        /// The file.
        path: PathBuf,
        /// The value written.
        value: String,
    },
    /// Not allowed to write.
    #[error("{cpu}: permission denied writing {value:?} to {path}")]
    PermissionDenied {
        /// The CPU.
        cpu: CpuId,
        /// The file.
        path: PathBuf,
        /// The value written.
        value: String,
    },
    /// A file does not hold what this control last wrote, or did not
    /// accept what it just wrote: someone else changed it.
    #[error("{cpu}: {path} holds {found:?}, expected {expected:?} (changed by someone else)")]
    ChangedExternally {
        /// The CPU.
        cpu: CpuId,
        /// The file.
        path: PathBuf,
        /// What this control wrote or was about to rely on.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// A frequency outside the CPU's table.
    #[error("{cpu}: {khz} is not in the CPU's frequency table")]
    NotInTable {
        /// The CPU.
        cpu: CpuId,
        /// The frequency asked for.
        khz: Khz,
    },
    /// Any other sysfs failure.
    #[error("{cpu}: sysfs access failed")]
    Sysfs {
        /// The CPU.
        cpu: CpuId,
        /// The failure, naming file and value.
        #[source]
        source: SysfsError,
    },
}

impl BackendError {
    /// Whether another writer changed a file this control relies on.
    pub fn is_foreign_write(&self) -> bool {
        matches!(self, BackendError::ChangedExternally { .. })
    }

    /// Attaches `cpu` to a sysfs failure, keeping EINVAL, permission and
    /// missing-file failures as their own variants.
    pub fn from_sysfs(cpu: CpuId, err: SysfsError) -> Self {
        match err {
            SysfsError::Refused { path, value } => BackendError::Refused { cpu, path, value },
            SysfsError::PermissionDenied { path, value } => {
                BackendError::PermissionDenied { cpu, path, value }
            }
            SysfsError::NotFound { path } => BackendError::Offline { cpu, path },
            other => BackendError::Sysfs { cpu, source: other },
        }
    }

    /// The CPU the error is about.
    pub fn cpu(&self) -> CpuId {
        match self {
            BackendError::Offline { cpu, .. }
            | BackendError::UnknownDriver { cpu, .. }
            | BackendError::GovernorNotOffered { cpu, .. }
            | BackendError::Refused { cpu, .. }
            | BackendError::PermissionDenied { cpu, .. }
            | BackendError::ChangedExternally { cpu, .. }
            | BackendError::NotInTable { cpu, .. }
            | BackendError::Sysfs { cpu, .. } => *cpu,
        }
    }
}

/// How a driver's CPUs are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    /// `userspace` governor, `scaling_setspeed`.
    Setspeed,
    /// `scaling_min_freq = scaling_max_freq`.
    Bounds,
}

impl Mechanism {
    /// The mechanism for a driver; `None` for a driver this crate does not
    /// drive ([`Driver::Other`]).
    pub fn for_driver(driver: &Driver) -> Option<Self> {
        match driver {
            Driver::AcpiCpufreq
            | Driver::IntelCpufreq
            | Driver::AmdPstate
            | Driver::CppcCpufreq => Some(Mechanism::Setspeed),
            Driver::IntelPstate | Driver::AmdPstateEpp => Some(Mechanism::Bounds),
            Driver::Other(_) => None,
        }
    }

    /// The mechanism for `cpu`'s driver, or [`BackendError::UnknownDriver`].
    pub fn for_cpu(cpu: CpuId, driver: &Driver) -> Result<Self, BackendError> {
        Mechanism::for_driver(driver).ok_or_else(|| BackendError::UnknownDriver {
            cpu,
            driver: driver.sysfs_name().to_owned(),
        })
    }
}

/// What a successful `set` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOutcome {
    /// The setting before (`None` when unreadable, e.g. `<unsupported>`).
    pub old: Option<Khz>,
    /// The setting now.
    pub new: Khz,
    /// Whether anything was written.
    pub written: bool,
    /// Every CPU of the frequency domain: all moved with this one.
    pub domain: Vec<CpuId>,
}

/// Drives one frequency domain (cpufreq policy).
pub trait FrequencyControl: Send + std::fmt::Debug {
    /// The mechanism.
    fn mechanism(&self) -> Mechanism;

    /// The CPU whose `cpufreq/` link this control writes through.
    fn cpu(&self) -> CpuId;

    /// Every CPU of the domain, including [`FrequencyControl::cpu`].
    fn domain(&self) -> &[CpuId];

    /// Takes the domain over (e.g. sets the `userspace` governor). The
    /// caller must have recorded the originals first.
    fn prepare(&mut self) -> Result<(), BackendError>;

    /// Sets the domain to `khz` (an entry of its table), writing only when
    /// the setting differs.
    fn set(&mut self, khz: Khz) -> Result<SetOutcome, BackendError>;

    /// The current setting (`None` when not set, e.g. `<unsupported>`).
    fn current(&self) -> Result<Option<Khz>, BackendError>;

    /// Checks, without writing, that a prepared domain still holds what
    /// this control set (its governor, the frequency it last wrote):
    /// [`BackendError::ChangedExternally`] names the file another tool
    /// changed. An unprepared domain passes.
    fn verify(&self) -> Result<(), BackendError>;

    /// Forgets what this control wrote; the caller restores the originals.
    fn release(&mut self);
}

/// A control by `mechanism` for the domain `domain` (its sibling CPUs),
/// written through `cpu`'s `cpufreq/` link.
pub fn make_control(
    io: std::sync::Arc<dyn crate::sysfs::SysfsIo>,
    mechanism: Mechanism,
    cpu: CpuId,
    domain: Vec<CpuId>,
) -> Box<dyn FrequencyControl> {
    match mechanism {
        Mechanism::Setspeed => Box::new(setspeed::SetspeedControl::new(io, cpu, domain)),
        Mechanism::Bounds => Box::new(bounds::BoundsControl::new(io, cpu, domain)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_errors_keep_their_kind_and_gain_the_cpu() {
        let path = PathBuf::from("devices/system/cpu/cpu5/cpufreq/scaling_setspeed");
        let cases = [
            (
                SysfsError::Refused {
                    path: path.clone(),
                    value: "1".into(),
                },
                "Refused",
            ),
            (
                SysfsError::PermissionDenied {
                    path: path.clone(),
                    value: "1".into(),
                },
                "PermissionDenied",
            ),
            (SysfsError::NotFound { path: path.clone() }, "Offline"),
        ];
        for (err, kind) in cases {
            let e = BackendError::from_sysfs(CpuId(5), err);
            assert!(format!("{e:?}").starts_with(kind), "{e:?}");
            assert_eq!(e.cpu(), CpuId(5));
            assert!(e.to_string().contains("cpu5"), "{e}");
        }
    }

    #[test]
    fn controls_include_their_cpu_in_the_domain() {
        let fake = std::sync::Arc::new(crate::fake::FakeSysfs::builder(1).build().unwrap());
        for mech in [Mechanism::Setspeed, Mechanism::Bounds] {
            let c = make_control(fake.clone(), mech, CpuId(0), vec![CpuId(3), CpuId(1)]);
            assert_eq!(c.domain(), [CpuId(0), CpuId(1), CpuId(3)]);
            assert_eq!((c.cpu(), c.mechanism()), (CpuId(0), mech));
        }
    }
}

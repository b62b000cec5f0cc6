//! Reading a CPU's original settings and putting recorded settings back.
//! Order and idempotence are described in the parent module.

use crate::backend::common::{self, read, read_khz, read_khz_required, write_checked};
use crate::backend::{BackendError, write_bounds_ordered};
use crate::sysfs::SysfsIo;
use crate::turbo::{TurboError, TurboSwitch};
use crate::types::CpuId;
use crate::uncore_control::{self, UncoreError};

use super::{CpuOriginal, TakeoverRecord};

const USERSPACE: &str = "userspace";
const EPP: &str = "energy_performance_preference";

/// One thing a record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeoverItem {
    /// A CPU's governor and bounds.
    Cpu(CpuId),
    /// The global turbo switch.
    Turbo(TurboSwitch),
    /// An uncore domain, by directory name.
    Uncore(String),
}

/// Why one item could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A CPU (offline, refused value, permission...).
    #[error("restoring a CPU failed")]
    Cpu(#[from] BackendError),
    /// The turbo switch.
    #[error("restoring the turbo switch failed")]
    Turbo(#[from] TurboError),
    /// An uncore domain.
    #[error("restoring an uncore domain failed")]
    Uncore(#[from] UncoreError),
}

/// An item left in the record and why.
#[derive(Debug)]
pub struct RestoreFailure {
    /// The item.
    pub item: TakeoverItem,
    /// Why.
    pub error: RestoreError,
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// Items put back and dropped from the record.
    pub restored: Vec<TakeoverItem>,
    /// Items left in the record.
    pub failed: Vec<RestoreFailure>,
}

impl RestoreReport {
    /// Whether everything was restored (the record is now empty).
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// CPUs left in the record because they are offline.
    pub fn offline(&self) -> Vec<CpuId> {
        self.failed
            .iter()
            .filter_map(|f| match (&f.item, &f.error) {
                (TakeoverItem::Cpu(cpu), RestoreError::Cpu(BackendError::Offline { .. })) => {
                    Some(*cpu)
                }
                _ => None,
            })
            .collect()
    }
}

/// Reads `cpu`'s governor, bounds, speed (under `userspace`) and EPP.
pub fn read_cpu_original(io: &dyn SysfsIo, cpu: CpuId) -> Result<CpuOriginal, BackendError> {
    common::ensure_online(io, cpu)?;
    let governor = read(io, cpu, "scaling_governor")?;
    let setspeed = if governor == USERSPACE {
        read_khz(io, cpu, "scaling_setspeed")?
    } else {
        None
    };
    let epp = if io.exists(&common::file(cpu, EPP)) {
        Some(read(io, cpu, EPP)?)
    } else {
        None
    };
    Ok(CpuOriginal {
        min: read_khz_required(io, cpu, "scaling_min_freq")?,
        max: read_khz_required(io, cpu, "scaling_max_freq")?,
        governor,
        setspeed,
        epp,
    })
}

/// Puts `original` back on `cpu`, writing only what differs.
pub fn restore_cpu(
    io: &dyn SysfsIo,
    cpu: CpuId,
    original: &CpuOriginal,
) -> Result<(), BackendError> {
    common::ensure_online(io, cpu)?;
    write_bounds_ordered(io, cpu, original.min, original.max)?;
    if read(io, cpu, "scaling_governor")? != original.governor {
        write_checked(io, cpu, "scaling_governor", &original.governor)?;
    }
    if let Some(speed) = original.setspeed
        && read_khz(io, cpu, "scaling_setspeed")? != Some(speed)
    {
        write_checked(io, cpu, "scaling_setspeed", &speed.0.to_string())?;
    }
    if let Some(epp) = &original.epp
        && read(io, cpu, EPP)? != *epp
    {
        write_checked(io, cpu, EPP, epp)?;
    }
    Ok(())
}

/// Restores every item of `record`, dropping each one restored.
pub(super) fn restore_record(io: &dyn SysfsIo, record: &mut TakeoverRecord) -> RestoreReport {
    let mut report = RestoreReport::default();
    if let Some(turbo) = record.turbo.clone() {
        let item = TakeoverItem::Turbo(turbo.switch);
        match turbo.switch.write_raw(io, &turbo.value) {
            Ok(_) => {
                record.turbo = None;
                report.restored.push(item);
            }
            Err(e) => report.failed.push(RestoreFailure {
                item,
                error: e.into(),
            }),
        }
    }
    for (domain, range) in record.uncore.clone() {
        let item = TakeoverItem::Uncore(domain.clone());
        match uncore_control::write_range_ordered(io, &domain, range) {
            Ok(_) => {
                record.uncore.remove(&domain);
                report.restored.push(item);
            }
            Err(e) => report.failed.push(RestoreFailure {
                item,
                error: e.into(),
            }),
        }
    }
    for (cpu, original) in record.cpus.clone() {
        let item = TakeoverItem::Cpu(cpu);
        match restore_cpu(io, cpu, &original) {
            Ok(()) => {
                record.cpus.remove(&cpu);
                report.restored.push(item);
            }
            Err(e) => report.failed.push(RestoreFailure {
                item,
                error: e.into(),
            }),
        }
    }
    report
}

//! [`SetspeedControl`]: drives a frequency domain through the `userspace`
//! governor and `scaling_setspeed`. No level logic here.

use std::sync::Arc;

use crate::backend::common::{self, read, read_khz, write_checked};
use crate::backend::{BackendError, FrequencyControl, Mechanism, SetOutcome};
use crate::sysfs::SysfsIo;
use crate::types::{CpuId, Khz};

/// The governor this mechanism needs.
pub const USERSPACE: &str = "userspace";

/// A frequency domain driven by `scaling_setspeed`.
pub struct SetspeedControl {
    io: Arc<dyn SysfsIo>,
    cpu: CpuId,
    domain: Vec<CpuId>,
    prepared: bool,
    last: Option<Khz>,
}

impl std::fmt::Debug for SetspeedControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetspeedControl")
            .field("root", &self.io.root())
            .field("cpu", &self.cpu)
            .field("domain", &self.domain)
            .field("prepared", &self.prepared)
            .field("last", &self.last)
            .finish()
    }
}

impl SetspeedControl {
    /// A control for `domain`, written through `cpu` (added to the domain
    /// if missing).
    pub fn new(io: Arc<dyn SysfsIo>, cpu: CpuId, mut domain: Vec<CpuId>) -> Self {
        if !domain.contains(&cpu) {
            domain.push(cpu);
            domain.sort_unstable();
        }
        SetspeedControl {
            io,
            cpu,
            domain,
            prepared: false,
            last: None,
        }
    }

    fn check_governor(&self) -> Result<(), BackendError> {
        let governor = read(&*self.io, self.cpu, "scaling_governor")?;
        if governor == USERSPACE {
            Ok(())
        } else {
            Err(BackendError::ChangedExternally {
                cpu: self.cpu,
                path: common::file(self.cpu, "scaling_governor"),
                expected: USERSPACE.to_owned(),
                found: governor,
            })
        }
    }
}

impl FrequencyControl for SetspeedControl {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Setspeed
    }

    fn cpu(&self) -> CpuId {
        self.cpu
    }

    fn domain(&self) -> &[CpuId] {
        &self.domain
    }

    fn prepare(&mut self) -> Result<(), BackendError> {
        let io = &*self.io;
        common::ensure_online(io, self.cpu)?;
        let offered = read(io, self.cpu, "scaling_available_governors")?;
        if !offered.split_whitespace().any(|g| g == USERSPACE) {
            return Err(BackendError::GovernorNotOffered {
                cpu: self.cpu,
                path: common::file(self.cpu, "scaling_available_governors"),
                wanted: USERSPACE.to_owned(),
                offered,
            });
        }
        if read(io, self.cpu, "scaling_governor")? != USERSPACE {
            write_checked(io, self.cpu, "scaling_governor", USERSPACE)?;
        }
        self.prepared = true;
        self.last = None;
        Ok(())
    }

    /// Prepares first when not prepared (the caller must have recorded
    /// the originals).
    fn set(&mut self, khz: Khz) -> Result<SetOutcome, BackendError> {
        if !self.prepared {
            self.prepare()?;
        }
        self.check_governor()?;
        let io = &*self.io;
        let cur = read_khz(io, self.cpu, "scaling_setspeed")?;
        if let Some(last) = self.last
            && cur != Some(last)
        {
            return Err(BackendError::ChangedExternally {
                cpu: self.cpu,
                path: common::file(self.cpu, "scaling_setspeed"),
                expected: last.0.to_string(),
                found: cur.map_or_else(|| common::UNSUPPORTED.to_owned(), |k| k.0.to_string()),
            });
        }
        let written = cur != Some(khz);
        if written {
            write_checked(io, self.cpu, "scaling_setspeed", &khz.0.to_string())?;
        }
        self.last = Some(khz);
        Ok(SetOutcome {
            old: cur,
            new: khz,
            written,
            domain: self.domain.clone(),
        })
    }

    fn current(&self) -> Result<Option<Khz>, BackendError> {
        read_khz(&*self.io, self.cpu, "scaling_setspeed")
    }

    fn release(&mut self) {
        self.prepared = false;
        self.last = None;
    }
}

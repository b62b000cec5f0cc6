//! [`SetspeedControl`]: drives a frequency domain through the `userspace`
//! governor and `scaling_setspeed`. No level logic here.

use crate::backend::common::DomainState;
use std::sync::Arc;

use crate::backend::common::{self, read, read_khz, write_checked};
use crate::backend::{BackendError, FrequencyControl, Mechanism, SetOutcome};
use crate::sysfs::SysfsIo;
use crate::types::{CpuId, Khz};

/// The governor this mechanism needs.
pub const USERSPACE: &str = "userspace";

/// A frequency domain driven by `scaling_setspeed`.
pub struct SetspeedControl {
    s: DomainState,
}

impl std::fmt::Debug for SetspeedControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SetspeedControl").field(&self.s).finish()
    }
}

impl SetspeedControl {
    /// A control for `domain`, written through `cpu` (added to the domain
    /// if missing).
    pub fn new(io: Arc<dyn SysfsIo>, cpu: CpuId, domain: Vec<CpuId>) -> Self {
        SetspeedControl {
            s: DomainState::new(io, cpu, domain),
        }
    }

    fn check_governor(&self) -> Result<(), BackendError> {
        let governor = read(&*self.s.io, self.s.cpu, "scaling_governor")?;
        if governor == USERSPACE {
            Ok(())
        } else {
            Err(BackendError::ChangedExternally {
                cpu: self.s.cpu,
                path: common::file(self.s.cpu, "scaling_governor"),
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
        self.s.cpu
    }

    fn domain(&self) -> &[CpuId] {
        &self.s.domain
    }

    fn prepare(&mut self) -> Result<(), BackendError> {
        let io = &*self.s.io;
        common::ensure_online(io, self.s.cpu)?;
        let offered = read(io, self.s.cpu, "scaling_available_governors")?;
        if !offered.split_whitespace().any(|g| g == USERSPACE) {
            return Err(BackendError::GovernorNotOffered {
                cpu: self.s.cpu,
                path: common::file(self.s.cpu, "scaling_available_governors"),
                wanted: USERSPACE.to_owned(),
                offered,
            });
        }
        if read(io, self.s.cpu, "scaling_governor")? != USERSPACE {
            write_checked(io, self.s.cpu, "scaling_governor", USERSPACE)?;
        }
        self.s.prepared = true;
        self.s.last = None;
        Ok(())
    }

    /// Prepares first when not prepared (the caller must have recorded
    /// the originals).
    fn set(&mut self, khz: Khz) -> Result<SetOutcome, BackendError> {
        if !self.s.prepared {
            self.prepare()?;
        }
        self.check_governor()?;
        let io = &*self.s.io;
        let cur = read_khz(io, self.s.cpu, "scaling_setspeed")?;
        if let Some(last) = self.s.last
            && cur != Some(last)
        {
            return Err(BackendError::ChangedExternally {
                cpu: self.s.cpu,
                path: common::file(self.s.cpu, "scaling_setspeed"),
                expected: last.0.to_string(),
                found: cur.map_or_else(|| common::UNSUPPORTED.to_owned(), |k| k.0.to_string()),
            });
        }
        let written = cur != Some(khz);
        if written {
            write_checked(io, self.s.cpu, "scaling_setspeed", &khz.0.to_string())?;
        }
        self.s.last = Some(khz);
        Ok(SetOutcome {
            old: cur,
            new: khz,
            written,
            domain: self.s.domain.clone(),
        })
    }

    fn current(&self) -> Result<Option<Khz>, BackendError> {
        read_khz(&*self.s.io, self.s.cpu, "scaling_setspeed")
    }

    fn release(&mut self) {
        self.s.prepared = false;
        self.s.last = None;
    }
}

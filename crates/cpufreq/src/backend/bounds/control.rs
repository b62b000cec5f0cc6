//! [`BoundsControl`]: drives a frequency domain by pinning
//! `scaling_min_freq = scaling_max_freq`. No level logic here.

use crate::backend::common::DomainState;
use std::sync::Arc;

use crate::backend::common::{self, read_khz_required, write_bounds_ordered};
use crate::backend::{BackendError, FrequencyControl, Mechanism, SetOutcome};
use crate::sysfs::SysfsIo;
use crate::types::{CpuId, Khz};

/// A frequency domain driven by pinned bounds.
pub struct BoundsControl {
    s: DomainState,
}

impl std::fmt::Debug for BoundsControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BoundsControl").field(&self.s).finish()
    }
}

impl BoundsControl {
    /// A control for `domain`, written through `cpu` (added to the domain
    /// if missing).
    pub fn new(io: Arc<dyn SysfsIo>, cpu: CpuId, domain: Vec<CpuId>) -> Self {
        BoundsControl {
            s: DomainState::new(io, cpu, domain),
        }
    }

    fn bounds(&self) -> Result<(Khz, Khz), BackendError> {
        let io = &*self.s.io;
        Ok((
            read_khz_required(io, self.s.cpu, "scaling_min_freq")?,
            read_khz_required(io, self.s.cpu, "scaling_max_freq")?,
        ))
    }
}

impl BoundsControl {
    /// Both bounds still hold the frequency last written (if any).
    fn check_pinned(&self, min: Khz, max: Khz) -> Result<(), BackendError> {
        if let Some(last) = self.s.last {
            for (name, found) in [("scaling_min_freq", min), ("scaling_max_freq", max)] {
                if found != last {
                    return Err(BackendError::ChangedExternally {
                        cpu: self.s.cpu,
                        path: common::file(self.s.cpu, name),
                        expected: last.0.to_string(),
                        found: found.0.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl FrequencyControl for BoundsControl {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Bounds
    }

    fn cpu(&self) -> CpuId {
        self.s.cpu
    }

    fn domain(&self) -> &[CpuId] {
        &self.s.domain
    }

    fn prepare(&mut self) -> Result<(), BackendError> {
        common::ensure_online(&*self.s.io, self.s.cpu)?;
        self.bounds()?;
        self.s.prepared = true;
        self.s.last = None;
        Ok(())
    }

    fn set(&mut self, khz: Khz) -> Result<SetOutcome, BackendError> {
        if !self.s.prepared {
            self.prepare()?;
        }
        let (min, max) = self.bounds()?;
        self.check_pinned(min, max)?;
        let written = write_bounds_ordered(&*self.s.io, self.s.cpu, khz, khz)?;
        self.s.last = Some(khz);
        Ok(SetOutcome {
            old: (min == max).then_some(max),
            new: khz,
            written,
            domain: self.s.domain.clone(),
        })
    }

    /// The pinned frequency; `None` while the bounds are apart.
    fn current(&self) -> Result<Option<Khz>, BackendError> {
        let (min, max) = self.bounds()?;
        Ok((min == max).then_some(max))
    }

    fn verify(&self) -> Result<(), BackendError> {
        if !self.s.prepared {
            return Ok(());
        }
        let (min, max) = self.bounds()?;
        self.check_pinned(min, max)
    }

    fn release(&mut self) {
        self.s.prepared = false;
        self.s.last = None;
    }
}

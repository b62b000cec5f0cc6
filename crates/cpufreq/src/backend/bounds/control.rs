//! [`BoundsControl`]: drives a frequency domain by pinning
//! `scaling_min_freq = scaling_max_freq`. No level logic here.

use std::sync::Arc;

use crate::backend::common::{self, read_khz_required, write_bounds_ordered};
use crate::backend::{BackendError, FrequencyControl, Mechanism, SetOutcome};
use crate::sysfs::SysfsIo;
use crate::types::{CpuId, Khz};

/// A frequency domain driven by pinned bounds.
pub struct BoundsControl {
    io: Arc<dyn SysfsIo>,
    cpu: CpuId,
    domain: Vec<CpuId>,
    prepared: bool,
    last: Option<Khz>,
}

impl std::fmt::Debug for BoundsControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundsControl")
            .field("root", &self.io.root())
            .field("cpu", &self.cpu)
            .field("domain", &self.domain)
            .field("prepared", &self.prepared)
            .field("last", &self.last)
            .finish()
    }
}

impl BoundsControl {
    /// A control for `domain`, written through `cpu` (added to the domain
    /// if missing).
    pub fn new(io: Arc<dyn SysfsIo>, cpu: CpuId, mut domain: Vec<CpuId>) -> Self {
        if !domain.contains(&cpu) {
            domain.push(cpu);
            domain.sort_unstable();
        }
        BoundsControl {
            io,
            cpu,
            domain,
            prepared: false,
            last: None,
        }
    }

    fn bounds(&self) -> Result<(Khz, Khz), BackendError> {
        let io = &*self.io;
        Ok((
            read_khz_required(io, self.cpu, "scaling_min_freq")?,
            read_khz_required(io, self.cpu, "scaling_max_freq")?,
        ))
    }
}

impl FrequencyControl for BoundsControl {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Bounds
    }

    fn cpu(&self) -> CpuId {
        self.cpu
    }

    fn domain(&self) -> &[CpuId] {
        &self.domain
    }

    fn prepare(&mut self) -> Result<(), BackendError> {
        common::ensure_online(&*self.io, self.cpu)?;
        self.bounds()?;
        self.prepared = true;
        self.last = None;
        Ok(())
    }

    fn set(&mut self, khz: Khz) -> Result<SetOutcome, BackendError> {
        if !self.prepared {
            self.prepare()?;
        }
        let (min, max) = self.bounds()?;
        if let Some(last) = self.last {
            for (name, found) in [("scaling_min_freq", min), ("scaling_max_freq", max)] {
                if found != last {
                    return Err(BackendError::ChangedExternally {
                        cpu: self.cpu,
                        path: common::file(self.cpu, name),
                        expected: last.0.to_string(),
                        found: found.0.to_string(),
                    });
                }
            }
        }
        let written = write_bounds_ordered(&*self.io, self.cpu, khz, khz)?;
        self.last = Some(khz);
        Ok(SetOutcome {
            old: (min == max).then_some(max),
            new: khz,
            written,
            domain: self.domain.clone(),
        })
    }

    /// The pinned frequency; `None` while the bounds are apart.
    fn current(&self) -> Result<Option<Khz>, BackendError> {
        let (min, max) = self.bounds()?;
        Ok((min == max).then_some(max))
    }

    fn release(&mut self) {
        self.prepared = false;
        self.last = None;
    }
}

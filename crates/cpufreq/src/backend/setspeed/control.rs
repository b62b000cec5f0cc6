//! [`SetspeedControl`]: drives a frequency domain through the `userspace`
//! governor and `scaling_setspeed`. No level logic here.
//!
//! `scaling_setspeed` is kept open from `prepare` to `release`: a change
//! is one read (is it still what we wrote?), one write and one read-back,
//! with no allocation.

use std::sync::Arc;

use crate::backend::common::{self, DomainState, read, read_khz, write_checked};
use crate::backend::{BackendError, FrequencyControl, Mechanism, SetOutcome};
use crate::sysfs::{Access, SysfsError, SysfsFile, SysfsIo, format_u32};
use crate::types::{CpuId, Khz};

/// The governor this mechanism needs.
pub const USERSPACE: &str = "userspace";

/// Room for any value `scaling_setspeed` shows (`<unsupported>`, a kHz
/// figure); anything longer fails to parse.
const READ_BUF: usize = 32;

/// A frequency domain driven by `scaling_setspeed`.
pub struct SetspeedControl {
    s: DomainState,
    /// `scaling_setspeed`, open while the domain is prepared.
    setspeed: Option<Box<dyn SysfsFile>>,
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
            setspeed: None,
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

    /// A failure of the open file, as `Offline` when the CPU's `cpufreq/`
    /// went away (the kernel answers `EBUSY`/`ENODEV` on an open file of
    /// an inactive policy).
    fn file_error(&self, err: crate::sysfs::SysfsError) -> BackendError {
        match common::ensure_online(&*self.s.io, self.s.cpu) {
            Err(offline) => offline,
            Ok(()) => BackendError::from_sysfs(self.s.cpu, err),
        }
    }

    /// The current setting through the open file.
    fn read_open(&self, file: &dyn SysfsFile) -> Result<Option<Khz>, BackendError> {
        let mut buf = [0u8; READ_BUF];
        let n = file.read_into(&mut buf).map_err(|e| self.file_error(e))?;
        common::parse_khz_bytes(self.s.cpu, file.path(), &buf[..n])
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
        self.setspeed = None;
        self.open_setspeed()?;
        self.s.prepared = true;
        self.s.last = None;
        Ok(())
    }

    /// Prepares first when not prepared (the caller must have recorded
    /// the originals). The file must still hold what was last written; a
    /// file that does not (or reads `<unsupported>`) is looked at closer,
    /// naming the governor when that is what moved.
    ///
    /// A descriptor that failed (I/O error, CPU gone) is dropped and
    /// opened again at the next `set`, without touching the governor: a
    /// policy the kernel rebuilt (driver reloaded, CPU back online) is
    /// then read afresh, and a governor changed meanwhile is reported.
    fn set(&mut self, khz: Khz) -> Result<SetOutcome, BackendError> {
        let result = self.set_open(khz);
        if matches!(
            result,
            Err(BackendError::Offline { .. }
                | BackendError::Sysfs {
                    source: SysfsError::Io { .. },
                    ..
                })
        ) {
            self.setspeed = None;
        }
        result
    }

    fn current(&self) -> Result<Option<Khz>, BackendError> {
        match self.setspeed.as_deref() {
            Some(file) => self.read_open(file),
            None => read_khz(&*self.s.io, self.s.cpu, "scaling_setspeed"),
        }
    }

    fn verify(&self) -> Result<(), BackendError> {
        if !self.s.prepared {
            return Ok(());
        }
        self.check_governor()?;
        let Some(last) = self.s.last else {
            return Ok(());
        };
        let cur = self.current()?;
        if cur == Some(last) {
            return Ok(());
        }
        Err(BackendError::ChangedExternally {
            cpu: self.s.cpu,
            path: common::file(self.s.cpu, "scaling_setspeed"),
            expected: last.0.to_string(),
            found: cur.map_or_else(|| common::UNSUPPORTED.to_owned(), |k| k.0.to_string()),
        })
    }

    fn release(&mut self) {
        self.setspeed = None;
        self.s.prepared = false;
        self.s.last = None;
    }
}

impl SetspeedControl {
    /// Opens `scaling_setspeed` (read-write) unless it is open.
    fn open_setspeed(&mut self) -> Result<(), BackendError> {
        if self.setspeed.is_none() {
            let file = self
                .s
                .io
                .open(
                    &common::file(self.s.cpu, "scaling_setspeed"),
                    Access::ReadWrite,
                )
                .map_err(|e| BackendError::from_sysfs(self.s.cpu, e))?;
            self.setspeed = Some(file);
        }
        Ok(())
    }

    /// [`FrequencyControl::set`] on the open file.
    fn set_open(&mut self, khz: Khz) -> Result<SetOutcome, BackendError> {
        if !self.s.prepared {
            self.prepare()?;
        }
        self.open_setspeed()?;
        let file = self
            .setspeed
            .as_deref()
            .expect("open_setspeed opened scaling_setspeed");
        let cur = self.read_open(file)?;
        if cur.is_none() || (self.s.last.is_some() && cur != self.s.last) {
            // Under `userspace` the file always holds a number: the
            // governor is the first suspect.
            self.check_governor()?;
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
        }
        let written = cur != Some(khz);
        if written {
            let mut digits = [0u8; 10];
            let value = format_u32(khz.0, &mut digits);
            file.write(value)
                .map_err(|e| BackendError::from_sysfs(self.s.cpu, e))?;
            let mut buf = [0u8; READ_BUF];
            let n = file.read_into(&mut buf).map_err(|e| self.file_error(e))?;
            let found = buf[..n].trim_ascii();
            if found != value.as_bytes() {
                return Err(BackendError::ChangedExternally {
                    cpu: self.s.cpu,
                    path: common::file(self.s.cpu, "scaling_setspeed"),
                    expected: value.to_owned(),
                    found: String::from_utf8_lossy(found).into_owned(),
                });
            }
        }
        self.s.last = Some(khz);
        Ok(SetOutcome {
            old: cur,
            new: khz,
            written,
            domain: self.s.domain.clone(),
        })
    }
}

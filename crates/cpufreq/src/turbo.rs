//! The machine-wide turbo switch: `cpufreq/boost` (acpi-cpufreq,
//! amd-pstate, cppc) or `intel_pstate/no_turbo` (inverted: 1 means off).
//!
//! Per-core turbo (a core allowed its table's index 0 or not) is level
//! semantics and lives in [`crate::levels`]; this module only reads and
//! sets the global switch. Recording its original value before the first
//! change is the caller's job ([`crate::takeover`]).
//!
//! ## Behavior
//! - [`TurboSwitch::detect`] prefers `intel_pstate/no_turbo` when both
//!   exist (intel_pstate owns turbo then; `boost` is absent or ignored).
//! - [`TurboSwitch::set_enabled`] writes only when the value differs and
//!   reads it back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::discovery::paths;
use crate::sysfs::{SysfsError, SysfsIo};

/// Why reading or setting the turbo switch failed.
#[derive(Debug, thiserror::Error)]
pub enum TurboError {
    /// The switch file failed to read or write (names file and value).
    #[error("turbo switch access failed")]
    Sysfs(#[from] SysfsError),
    /// The file holds something other than 0 or 1.
    #[error("{path}: expected 0 or 1, found {found:?}")]
    BadValue {
        /// The switch file.
        path: PathBuf,
        /// Its content.
        found: String,
    },
    /// The file did not keep what was written.
    #[error(
        "{path}: wrote {expected:?} but it reads {found:?} (changed by someone else or refused)"
    )]
    ChangedExternally {
        /// The switch file.
        path: PathBuf,
        /// What was written.
        expected: String,
        /// What it reads.
        found: String,
    },
}

/// Which global switch a machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TurboSwitch {
    /// `devices/system/cpu/cpufreq/boost`: 1 = turbo on.
    Boost,
    /// `devices/system/cpu/intel_pstate/no_turbo`: 1 = turbo off.
    NoTurbo,
}

impl TurboSwitch {
    /// The switch present under `io`'s root, if any.
    pub fn detect(io: &dyn SysfsIo) -> Option<Self> {
        [TurboSwitch::NoTurbo, TurboSwitch::Boost]
            .into_iter()
            .find(|s| io.exists(&s.path()))
    }

    /// The switch file, relative to the sysfs root.
    pub fn path(self) -> PathBuf {
        match self {
            TurboSwitch::Boost => paths::boost(),
            TurboSwitch::NoTurbo => paths::intel_pstate("no_turbo"),
        }
    }

    /// The raw file content (`0` or `1`), as recorded for restore.
    pub fn read_raw(self, io: &dyn SysfsIo) -> Result<String, TurboError> {
        let path = self.path();
        let found = io.read(&path)?.trim().to_owned();
        if found == "0" || found == "1" {
            Ok(found)
        } else {
            Err(TurboError::BadValue { path, found })
        }
    }

    /// Writes a raw value (`0` or `1`) when it differs, then reads it back.
    /// Returns whether it wrote.
    pub fn write_raw(self, io: &dyn SysfsIo, value: &str) -> Result<bool, TurboError> {
        if self.read_raw(io)? == value {
            return Ok(false);
        }
        let path = self.path();
        io.write(&path, value)?;
        let found = self.read_raw(io)?;
        if found != value {
            return Err(TurboError::ChangedExternally {
                path,
                expected: value.to_owned(),
                found,
            });
        }
        Ok(true)
    }

    /// Whether turbo is on machine-wide.
    pub fn enabled(self, io: &dyn SysfsIo) -> Result<bool, TurboError> {
        let on = self.read_raw(io)? == "1";
        Ok(match self {
            TurboSwitch::Boost => on,
            TurboSwitch::NoTurbo => !on,
        })
    }

    /// Turns turbo on or off machine-wide; returns whether it wrote.
    pub fn set_enabled(self, io: &dyn SysfsIo, enabled: bool) -> Result<bool, TurboError> {
        let one = match self {
            TurboSwitch::Boost => enabled,
            TurboSwitch::NoTurbo => !enabled,
        };
        self.write_raw(io, if one { "1" } else { "0" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::Sysfs;
    use std::fs;

    fn tree(boost: Option<&str>, no_turbo: Option<&str>) -> (tempfile::TempDir, Sysfs) {
        let dir = tempfile::tempdir().unwrap();
        for (rel, v) in [
            (paths::boost(), boost),
            (paths::intel_pstate("no_turbo"), no_turbo),
        ] {
            if let Some(v) = v {
                let p = dir.path().join(rel);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, format!("{v}\n")).unwrap();
            }
        }
        let io = Sysfs::new(dir.path());
        (dir, io)
    }

    #[test]
    fn detect_prefers_no_turbo_and_finds_none() {
        let (_d, io) = tree(Some("1"), Some("0"));
        assert_eq!(TurboSwitch::detect(&io), Some(TurboSwitch::NoTurbo));
        let (_d, io) = tree(Some("1"), None);
        assert_eq!(TurboSwitch::detect(&io), Some(TurboSwitch::Boost));
        let (_d, io) = tree(None, None);
        assert_eq!(TurboSwitch::detect(&io), None);
    }

    #[test]
    fn no_turbo_is_inverted() {
        let (_d, io) = tree(None, Some("0"));
        let s = TurboSwitch::NoTurbo;
        assert!(s.enabled(&io).unwrap());
        assert!(s.set_enabled(&io, false).unwrap());
        assert_eq!(s.read_raw(&io).unwrap(), "1");
        assert!(!s.enabled(&io).unwrap());
        assert!(
            !s.set_enabled(&io, false).unwrap(),
            "no write when unchanged"
        );
    }

    #[test]
    fn bad_content_is_reported_with_path() {
        let (_d, io) = tree(Some("maybe"), None);
        let err = TurboSwitch::Boost.enabled(&io).unwrap_err();
        assert!(
            err.to_string().contains("cpufreq/boost") && err.to_string().contains("maybe"),
            "{err}"
        );
    }
}

//! Setting the uncore (mesh/L3) frequency range of a package/die domain
//! through `intel_uncore_frequency/package_PP_die_DD/`.
//!
//! A domain is named by its directory (`package_00_die_00`), as discovery
//! lists it. Recording the original bounds before the first change is the
//! caller's job ([`crate::takeover`]).
//!
//! ## Behavior
//! - [`set_range`] refuses a range outside the domain's initial range
//!   (`initial_min_freq_khz..=initial_max_freq_khz`) or with min above max,
//!   before writing anything.
//! - It writes only the files that differ, the maximum first when the new
//!   minimum is above the current maximum, else the minimum first, so that
//!   `min <= max` holds after every write; each write is read back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::discovery::paths;
use crate::sysfs::{SysfsError, SysfsIo};
use crate::types::Khz;

/// Why an uncore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UncoreError {
    /// A file failed to read or write (names file and value).
    #[error("uncore {domain}: sysfs access failed")]
    Sysfs {
        /// The domain directory name.
        domain: String,
        /// The failure.
        #[source]
        source: SysfsError,
    },
    /// A file does not hold a number.
    #[error("{path}: expected kHz, found {found:?}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// Its content.
        found: String,
    },
    /// The asked range is outside the initial range or inverted.
    #[error(
        "uncore {domain}: range {min}..={max} outside {initial_min}..={initial_max} or inverted"
    )]
    OutOfRange {
        /// The domain directory name.
        domain: String,
        /// Asked minimum.
        min: Khz,
        /// Asked maximum.
        max: Khz,
        /// `initial_min_freq_khz`.
        initial_min: Khz,
        /// `initial_max_freq_khz`.
        initial_max: Khz,
    },
    /// A file did not keep what was written.
    #[error("{path}: wrote {expected} but it reads {found} (changed by someone else)")]
    ChangedExternally {
        /// The file.
        path: PathBuf,
        /// What was written.
        expected: Khz,
        /// What it reads.
        found: Khz,
    },
}

/// A min/max pair of an uncore domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UncoreRange {
    /// Minimum, kHz.
    pub min: Khz,
    /// Maximum, kHz.
    pub max: Khz,
}

/// `intel_uncore_frequency/<domain>/<file>`.
pub fn uncore_path(domain: &str, file: &str) -> PathBuf {
    paths::uncore_root().join(domain).join(file)
}

fn read_khz(io: &dyn SysfsIo, domain: &str, file: &str) -> Result<Khz, UncoreError> {
    let path = uncore_path(domain, file);
    let found = io.read(&path).map_err(|source| UncoreError::Sysfs {
        domain: domain.to_owned(),
        source,
    })?;
    found
        .trim()
        .parse::<u32>()
        .map(Khz)
        .map_err(|_| UncoreError::BadValue { path, found })
}

/// The range the domain started with (`initial_*_freq_khz`).
pub fn initial_range(io: &dyn SysfsIo, domain: &str) -> Result<UncoreRange, UncoreError> {
    Ok(UncoreRange {
        min: read_khz(io, domain, "initial_min_freq_khz")?,
        max: read_khz(io, domain, "initial_max_freq_khz")?,
    })
}

/// The range in force (`min_freq_khz`, `max_freq_khz`).
pub fn current_range(io: &dyn SysfsIo, domain: &str) -> Result<UncoreRange, UncoreError> {
    Ok(UncoreRange {
        min: read_khz(io, domain, "min_freq_khz")?,
        max: read_khz(io, domain, "max_freq_khz")?,
    })
}

/// The uncore frequency now (`current_freq_khz`).
pub fn current_freq(io: &dyn SysfsIo, domain: &str) -> Result<Khz, UncoreError> {
    read_khz(io, domain, "current_freq_khz")
}

/// Sets the domain's range within its initial range; returns whether it
/// wrote anything.
pub fn set_range(io: &dyn SysfsIo, domain: &str, want: UncoreRange) -> Result<bool, UncoreError> {
    check_range(io, domain, want)?;
    write_range_ordered(io, domain, want)
}

/// Fails with [`UncoreError::OutOfRange`] unless `want` is ordered and
/// inside the domain's initial range.
pub fn check_range(io: &dyn SysfsIo, domain: &str, want: UncoreRange) -> Result<(), UncoreError> {
    let initial = initial_range(io, domain)?;
    if want.min > want.max || want.min < initial.min || want.max > initial.max {
        return Err(UncoreError::OutOfRange {
            domain: domain.to_owned(),
            min: want.min,
            max: want.max,
            initial_min: initial.min,
            initial_max: initial.max,
        });
    }
    Ok(())
}

/// Writes a range in an accepted order without checking the initial
/// range (restore writes back exactly what was recorded).
pub(crate) fn write_range_ordered(
    io: &dyn SysfsIo,
    domain: &str,
    want: UncoreRange,
) -> Result<bool, UncoreError> {
    let cur = current_range(io, domain)?;
    let order = if want.min > cur.max {
        [
            ("max_freq_khz", want.max, cur.max),
            ("min_freq_khz", want.min, cur.min),
        ]
    } else {
        [
            ("min_freq_khz", want.min, cur.min),
            ("max_freq_khz", want.max, cur.max),
        ]
    };
    let mut written = false;
    for (file, value, now) in order {
        if value == now {
            continue;
        }
        let path = uncore_path(domain, file);
        io.write(&path, &value.0.to_string())
            .map_err(|source| UncoreError::Sysfs {
                domain: domain.to_owned(),
                source,
            })?;
        let found = read_khz(io, domain, file)?;
        if found != value {
            return Err(UncoreError::ChangedExternally {
                path,
                expected: value,
                found,
            });
        }
        written = true;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeSysfs;

    const D: &str = "package_00_die_00";

    fn range(min: u32, max: u32) -> UncoreRange {
        UncoreRange {
            min: Khz(min),
            max: Khz(max),
        }
    }

    #[test]
    fn range_checks_happen_before_any_write() {
        let fake = FakeSysfs::builder(1)
            .uncore(Khz(800_000), Khz(2_400_000))
            .build()
            .unwrap();
        for bad in [
            range(700_000, 2_000_000),
            range(800_000, 2_500_000),
            range(2_000_000, 1_000_000),
        ] {
            let err = set_range(&fake, D, bad).unwrap_err();
            assert!(matches!(err, UncoreError::OutOfRange { .. }), "{err:?}");
        }
        assert!(fake.writes().is_empty());
        assert_eq!(current_range(&fake, D).unwrap(), range(800_000, 2_400_000));
    }

    #[test]
    fn only_differing_files_are_written() {
        let fake = FakeSysfs::builder(1)
            .uncore(Khz(800_000), Khz(2_400_000))
            .build()
            .unwrap();
        assert!(set_range(&fake, D, range(800_000, 1_600_000)).unwrap());
        assert_eq!(fake.writes().len(), 1);
        assert!(!set_range(&fake, D, range(800_000, 1_600_000)).unwrap());
        assert_eq!(fake.writes().len(), 1);
        assert_eq!(current_freq(&fake, D).unwrap(), Khz(1_600_000));
    }

    #[test]
    fn missing_domain_names_the_file() {
        let fake = FakeSysfs::builder(1).build().unwrap();
        let err = current_freq(&fake, "package_09_die_00").unwrap_err();
        let chain = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(chain.contains("package_09_die_00"), "{chain}");
    }
}

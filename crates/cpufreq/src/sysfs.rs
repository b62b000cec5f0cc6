//! The narrow seam between this crate and the kernel: reading and writing
//! files under a configurable root that stands for `/sys`.
//!
//! [`SysfsIo`] is the trait every backend goes through; [`Sysfs`] is the
//! real implementation over a directory (the real `/sys`, or a fake tree
//! laid out the same way). The fake tree of the `test-utils` feature
//! implements the same trait and adds the kernel's write checks.
//!
//! ## Behavior
//! - Paths are relative to the root, e.g.
//!   `devices/system/cpu/cpu0/cpufreq/scaling_governor`.
//! - Reads return the content without its trailing newline.
//! - Each write is one `write(2)` on a file opened with truncation (the
//!   kernel ignores `O_TRUNC` on sysfs; a tree of plain files needs it).
//! - Every failure names the path and, for writes, the value.
//! - [`SysfsIo::open`] keeps a file open for repeated reads and writes
//!   (the frequency set path); see [`SysfsFile`].

mod file;

pub use file::{Access, OpenFile, SysfsFile, format_u32};

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a sysfs read or write failed. Every variant names the file and,
/// for writes, the value.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// The file does not exist (offline CPU, missing driver feature).
    #[error("{path}: no such file")]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The kernel refused the value (EINVAL).
    #[error("{path}: the kernel refused {value:?} (EINVAL)")]
    Refused {
        /// The file.
        path: PathBuf,
        /// The value written.
        value: String,
    },
    /// Not allowed to write (EACCES/EPERM).
    #[error("{path}: permission denied writing {value:?}")]
    PermissionDenied {
        /// The file.
        path: PathBuf,
        /// The value written.
        value: String,
    },
    /// Any other I/O failure.
    #[error("{path}: {op} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// `read`, `write {value}` or `list`.
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The content could not be parsed as expected.
    #[error("{path}: cannot parse {content:?} as {expected}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was read.
        content: String,
        /// What was expected, e.g. "a frequency in kHz".
        expected: &'static str,
    },
}

impl SysfsError {
    /// Classifies an I/O error from writing `value` to `path`.
    pub fn from_write(path: PathBuf, value: &str, err: io::Error) -> Self {
        match err.raw_os_error() {
            Some(code) if code == libc_codes::EINVAL => SysfsError::Refused {
                path,
                value: value.to_owned(),
            },
            Some(code) if code == libc_codes::EACCES || code == libc_codes::EPERM => {
                SysfsError::PermissionDenied {
                    path,
                    value: value.to_owned(),
                }
            }
            _ if err.kind() == io::ErrorKind::NotFound => SysfsError::NotFound { path },
            _ => SysfsError::Io {
                path,
                op: format!("write {value:?}"),
                source: err,
            },
        }
    }

    /// Classifies an I/O error from reading `path`.
    pub fn from_read(path: PathBuf, err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::NotFound {
            SysfsError::NotFound { path }
        } else {
            SysfsError::Io {
                path,
                op: "read".to_owned(),
                source: err,
            }
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SysfsError::NotFound { path }
            | SysfsError::Refused { path, .. }
            | SysfsError::PermissionDenied { path, .. }
            | SysfsError::Io { path, .. }
            | SysfsError::Parse { path, .. } => path,
        }
    }
}

/// errno values, spelled out to avoid a libc dependency for three numbers.
mod libc_codes {
    pub const EPERM: i32 = 1;
    pub const EACCES: i32 = 13;
    pub const EINVAL: i32 = 22;
}

/// Read and write access to a sysfs tree. Paths are relative to the root
/// that stands for `/sys`.
pub trait SysfsIo: Send + Sync {
    /// The directory that stands for `/sys`.
    fn root(&self) -> &Path;

    /// Reads a file, without its trailing newline.
    fn read(&self, rel: &Path) -> Result<String, SysfsError>;

    /// Writes `value` with one write on a truncated file.
    fn write(&self, rel: &Path, value: &str) -> Result<(), SysfsError>;

    /// Opens a file for repeated reads and writes, one system call each.
    /// Implementations with write rules (the fake tree) apply them to
    /// writes through the returned file too.
    fn open(&self, rel: &Path, access: Access) -> Result<Box<dyn SysfsFile>, SysfsError>;

    /// Whether the path exists.
    fn exists(&self, rel: &Path) -> bool {
        self.root().join(rel).exists()
    }

    /// Names of the entries of a directory, sorted.
    fn list_dir(&self, rel: &Path) -> Result<Vec<String>, SysfsError> {
        let path = self.root().join(rel);
        let entries = fs::read_dir(&path).map_err(|e| SysfsError::Io {
            path: path.clone(),
            op: "list".to_owned(),
            source: e,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// The real sysfs (or a plain directory tree laid out like it).
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// Sysfs under `root` (`/sys` on a real host).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }
}

impl SysfsIo for Sysfs {
    fn root(&self) -> &Path {
        &self.root
    }

    fn read(&self, rel: &Path) -> Result<String, SysfsError> {
        read_file(&self.root.join(rel))
    }

    fn write(&self, rel: &Path, value: &str) -> Result<(), SysfsError> {
        write_file(&self.root.join(rel), value)
    }

    fn open(&self, rel: &Path, access: Access) -> Result<Box<dyn SysfsFile>, SysfsError> {
        Ok(Box::new(OpenFile::open(self.root.join(rel), access)?))
    }
}

/// Reads a whole file and strips one trailing newline.
pub fn read_file(path: &Path) -> Result<String, SysfsError> {
    let mut s = fs::read_to_string(path).map_err(|e| SysfsError::from_read(path.to_owned(), e))?;
    if s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

/// Writes `value` with a single `write(2)` on a file opened with `O_TRUNC`.
pub fn write_file(path: &Path, value: &str) -> Result<(), SysfsError> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| SysfsError::from_write(path.to_owned(), value, e))?;
    let n = file
        .write(value.as_bytes())
        .map_err(|e| SysfsError::from_write(path.to_owned(), value, e))?;
    if n != value.len() {
        return Err(SysfsError::Io {
            path: path.to_owned(),
            op: format!("write {value:?}"),
            source: io::Error::new(io::ErrorKind::WriteZero, format!("short write: {n} bytes")),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_truncates_and_read_strips_newline() {
        let dir = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(dir.path());
        fs::write(dir.path().join("scaling_setspeed"), "<unsupported>\n").unwrap();
        sysfs
            .write(Path::new("scaling_setspeed"), "2300000")
            .unwrap();
        assert_eq!(
            sysfs.read(Path::new("scaling_setspeed")).unwrap(),
            "2300000"
        );
    }

    #[test]
    fn missing_file_is_not_found_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(dir.path());
        let err = sysfs
            .read(Path::new("devices/system/cpu/cpu9/online"))
            .unwrap_err();
        assert!(matches!(err, SysfsError::NotFound { .. }));
        assert!(err.to_string().contains("cpu9/online"), "{err}");
        let err = sysfs.write(Path::new("nope"), "1").unwrap_err();
        assert!(matches!(err, SysfsError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn einval_and_eacces_are_classified() {
        let p = PathBuf::from("x");
        let e = SysfsError::from_write(p.clone(), "5", io::Error::from_raw_os_error(22));
        assert!(matches!(e, SysfsError::Refused { ref value, .. } if value == "5"));
        let e = SysfsError::from_write(p.clone(), "5", io::Error::from_raw_os_error(13));
        assert!(matches!(e, SysfsError::PermissionDenied { .. }));
        let e = SysfsError::from_write(p, "5", io::Error::from_raw_os_error(5));
        assert!(matches!(e, SysfsError::Io { .. }));
    }
}

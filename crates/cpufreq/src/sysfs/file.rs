//! Files kept open for repeated reads and writes: the frequency set path
//! reads, writes and reads back the same file on every change, and one
//! `pread`/`pwrite` on an open descriptor costs a fraction of
//! open + stat + read + close.
//!
//! [`SysfsFile`] is the seam ([`super::SysfsIo::open`] hands one out);
//! [`OpenFile`] is the real implementation over a descriptor. The fake tree
//! of the `test-utils` feature hands out its own implementation, which
//! goes through the fake kernel's checks like every other write.
//!
//! ## Behavior
//! - Reads are one `pread` at offset 0: sysfs regenerates the content on
//!   every read from offset 0, so the value is always fresh.
//! - Writes are one `pwrite` at offset 0. sysfs ignores the offset and the
//!   file size; a plain file (a fake tree served to another process) does
//!   not, so on any file system other than sysfs the write is followed by
//!   an `ftruncate` to the written length — the same result as the
//!   truncating open of [`super::write_file`].
//! - Every failure names the full path and, for writes, the value.
//!
//! ## Limitations
//! - A read returns at most the caller's buffer; a longer content is cut
//!   (callers size the buffer for what they expect and fail to parse the
//!   rest).

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::SysfsError;

/// `SYSFS_MAGIC` from `linux/magic.h`: `statfs.f_type` of sysfs.
const SYSFS_MAGIC: u64 = 0x6265_6572;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read only (files without a store method refuse writers).
    Read,
    /// Read and write.
    ReadWrite,
}

/// A sysfs file kept open: each read and each write is one system call.
pub trait SysfsFile: Send + Sync + fmt::Debug {
    /// The file's full path (as errors name it).
    fn path(&self) -> &Path;

    /// Reads the content from its start into `buf` and returns its length
    /// without the trailing newline.
    fn read_into(&self, buf: &mut [u8]) -> Result<usize, SysfsError>;

    /// Writes `value` with one write at the start of the file.
    fn write(&self, value: &str) -> Result<(), SysfsError>;
}

/// A file of a real directory tree, open on a descriptor.
pub struct OpenFile {
    fd: OwnedFd,
    path: PathBuf,
    /// Not sysfs: a write must cut what an older, longer value left.
    truncate: bool,
}

impl fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenFile")
            .field("path", &self.path)
            .field("truncate", &self.truncate)
            .finish()
    }
}

impl OpenFile {
    /// Opens `path`.
    pub fn open(path: PathBuf, access: Access) -> Result<Self, SysfsError> {
        let mode = match access {
            Access::Read => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        };
        let fd = rustix::fs::open(&path, mode | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
            let err = io::Error::from(e);
            match access {
                Access::Read => SysfsError::from_read(path.clone(), err),
                Access::ReadWrite => SysfsError::from_write(path.clone(), "(open)", err),
            }
        })?;
        let on_sysfs = rustix::fs::fstatfs(&fd)
            .ok()
            .and_then(|st| u64::try_from(st.f_type).ok())
            == Some(SYSFS_MAGIC);
        Ok(OpenFile {
            fd,
            path,
            truncate: !on_sysfs,
        })
    }
}

impl SysfsFile for OpenFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_into(&self, buf: &mut [u8]) -> Result<usize, SysfsError> {
        let n = rustix::io::pread(&self.fd, &mut *buf, 0)
            .map_err(|e| SysfsError::from_read(self.path.clone(), e.into()))?;
        Ok(strip_newline(&buf[..n]))
    }

    fn write(&self, value: &str) -> Result<(), SysfsError> {
        let fail =
            |e: rustix::io::Errno| SysfsError::from_write(self.path.clone(), value, e.into());
        let n = rustix::io::pwrite(&self.fd, value.as_bytes(), 0).map_err(fail)?;
        if n != value.len() {
            return Err(SysfsError::Io {
                path: self.path.clone(),
                op: format!("write {value:?}"),
                source: io::Error::new(io::ErrorKind::WriteZero, format!("short write: {n} bytes")),
            });
        }
        if self.truncate {
            let len = u64::try_from(n).expect("a usize length fits in u64");
            rustix::fs::ftruncate(&self.fd, len).map_err(fail)?;
        }
        Ok(())
    }
}

/// The length of `content` without one trailing newline.
pub(crate) fn strip_newline(content: &[u8]) -> usize {
    match content.last() {
        Some(b'\n') => content.len() - 1,
        _ => content.len(),
    }
}

/// Formats `value` in decimal into `buf` (no allocation); returns the text.
pub fn format_u32(value: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    let mut v = value;
    loop {
        i -= 1;
        buf[i] = b'0' + u8::try_from(v % 10).expect("a decimal digit fits in u8");
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn format_u32_matches_to_string() {
        for v in [0, 7, 10, 800_000, 2_301_000, 1_000_000_000, u32::MAX] {
            let mut buf = [0u8; 10];
            assert_eq!(format_u32(v, &mut buf), v.to_string());
        }
    }

    #[test]
    fn plain_files_are_cut_to_the_written_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scaling_setspeed");
        fs::write(&path, "<unsupported>\n").unwrap();
        let file = OpenFile::open(path.clone(), Access::ReadWrite).unwrap();
        assert!(file.truncate, "a temp dir is not sysfs");
        let mut buf = [0u8; 32];
        let n = file.read_into(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<unsupported>");
        file.write("2301000").unwrap();
        file.write("800000").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "800000");
        // A change by another writer is seen by the next read.
        fs::write(&path, "1500000\n").unwrap();
        let n = file.read_into(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"1500000");
    }

    #[test]
    fn failures_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpu9").join("online");
        let err = OpenFile::open(path, Access::Read).unwrap_err();
        assert!(matches!(err, SysfsError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("cpu9/online"), "{err}");
        let ro = dir.path().join("scaling_cur_freq");
        fs::write(&ro, "800000\n").unwrap();
        let file = OpenFile::open(ro, Access::Read).unwrap();
        let err = file.write("1").unwrap_err();
        assert!(err.to_string().contains("scaling_cur_freq"), "{err}");
    }
}

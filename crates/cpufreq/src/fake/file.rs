//! [`FakeFile`]: the fake tree's [`SysfsFile`]. Every read and write goes
//! through the same path as [`crate::SysfsIo::read`]/[`crate::SysfsIo::write`]
//! on the [`super::FakeSysfs`] that opened it, so a backend that keeps files
//! open meets the kernel's checks, the failure hooks and the write log
//! exactly as one that opens them each time.
//!
//! ## Behavior
//! - Opening a missing file fails with [`SysfsError::NotFound`], as
//!   `open(2)` does; a file that disappears later (CPU taken offline)
//!   fails each read and write with `NotFound`.
//! - A file opened [`Access::Read`] refuses writes (`EBADF`, as a
//!   descriptor opened read-only).
//!
//! ## Limitations
//! - The file is looked up by path on every access, where the kernel's
//!   descriptor stays bound to its attribute; for a tree whose files
//!   never move while open (the daemon's case) the two agree. Opening
//!   read-write a file the kernel has no store method for succeeds here;
//!   the write then fails with `EACCES` as it would at the kernel's open.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Shared;
use crate::sysfs::{Access, SysfsError, SysfsFile};

/// `EBADF`: writing a descriptor opened read-only.
const EBADF: i32 = 9;

/// A file of a fake tree, opened through [`super::FakeSysfs`].
#[derive(Debug)]
pub(crate) struct FakeFile {
    shared: Arc<Shared>,
    rel: PathBuf,
    path: PathBuf,
    access: Access,
}

impl FakeFile {
    /// Opens `rel` (relative to the fake root).
    pub fn open(shared: Arc<Shared>, rel: &Path, access: Access) -> Result<Self, SysfsError> {
        let path = shared.root().join(rel);
        if !path.is_file() {
            return Err(SysfsError::NotFound { path });
        }
        Ok(FakeFile {
            shared,
            rel: rel.to_owned(),
            path,
            access,
        })
    }
}

impl SysfsFile for FakeFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_into(&self, buf: &mut [u8]) -> Result<usize, SysfsError> {
        let content = self.shared.read(&self.rel)?;
        let n = content.len().min(buf.len());
        buf[..n].copy_from_slice(&content.as_bytes()[..n]);
        Ok(n)
    }

    fn write(&self, value: &str) -> Result<(), SysfsError> {
        if self.access == Access::Read {
            return Err(SysfsError::from_write(
                self.path.clone(),
                value,
                io::Error::from_raw_os_error(EBADF),
            ));
        }
        self.shared.write(&self.rel, value)
    }
}

#[cfg(test)]
mod tests {
    use crate::discovery::paths;
    use crate::fake::{FailKind, FakeSysfs};
    use crate::sysfs::{Access, SysfsError, SysfsIo};
    use crate::types::CpuId;

    #[test]
    fn writes_through_an_open_file_meet_the_kernel_rules_and_hooks() {
        let fake = FakeSysfs::builder(2).governor("userspace").build().unwrap();
        let rel = paths::cpufreq_file(CpuId(1), "scaling_setspeed");
        let file = fake.open(&rel, Access::ReadWrite).unwrap();
        file.write("2000000").unwrap();
        let mut buf = [0u8; 16];
        let n = file.read_into(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"2000000");
        // Not a table entry: refused as by a fresh open.
        let err = file.write("1234567").unwrap_err();
        assert!(matches!(err, SysfsError::Refused { .. }), "{err:?}");
        fake.fail_next_write(&rel, FailKind::PermissionDenied);
        let err = file.write("800000").unwrap_err();
        assert!(
            matches!(err, SysfsError::PermissionDenied { .. }),
            "{err:?}"
        );
        assert_eq!(fake.writes_to(&rel), ["2000000"]);
        // Another tool changes the governor: setspeed reads unsupported.
        fake.external_kernel_write(
            paths::cpufreq_file(CpuId(1), "scaling_governor"),
            "ondemand",
        )
        .unwrap();
        let n = file.read_into(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<unsupported>");
        assert!(file.write("800000").is_err());
    }

    #[test]
    fn missing_offline_and_read_only_files_fail() {
        let fake = FakeSysfs::builder(2).build().unwrap();
        let rel = paths::cpufreq_file(CpuId(1), "scaling_cur_freq");
        let err = fake
            .open(
                &paths::cpufreq_file(CpuId(7), "scaling_setspeed"),
                Access::Read,
            )
            .unwrap_err();
        assert!(matches!(err, SysfsError::NotFound { .. }), "{err:?}");
        let file = fake.open(&rel, Access::Read).unwrap();
        assert!(file.write("800000").is_err());
        fake.set_online(CpuId(1), false).unwrap();
        let mut buf = [0u8; 16];
        let err = file.read_into(&mut buf).unwrap_err();
        assert!(matches!(err, SysfsError::NotFound { .. }), "{err:?}");
    }
}

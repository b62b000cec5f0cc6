//! A fake sysfs tree for tests and demos: a real directory laid out like
//! `/sys/devices/system/cpu`, plus [`FakeSysfs`], a [`SysfsIo`] that applies
//! the kernel's checks and side effects to every write.
//!
//! In-process users (backends under test) get kernel behaviour through
//! [`FakeSysfs`]; another process pointed at [`FakeSysfs::path`] with
//! `--sysfs-root` sees the same files (but writes it makes bypass the rules).
//!
//! ```
//! use vmpower_cpufreq::fake::FakeSysfs;
//! use vmpower_cpufreq::{Driver, SysfsIo};
//! use std::path::Path;
//!
//! let fake = FakeSysfs::builder(4).driver(Driver::AcpiCpufreq).domain_size(2).build().unwrap();
//! let gov = Path::new("devices/system/cpu/cpu1/cpufreq/scaling_governor");
//! fake.write(gov, "userspace").unwrap();
//! // cpu0 shares cpu1's policy directory.
//! let gov0 = Path::new("devices/system/cpu/cpu0/cpufreq/scaling_governor");
//! assert_eq!(fake.read(gov0).unwrap(), "userspace");
//! ```
//!
//! ## Behavior
//! - Test hooks: injected failures ([`FakeSysfs::fail_next_write`],
//!   [`FakeSysfs::fail_all_writes`]), changes by "another tool"
//!   ([`FakeSysfs::external_write`] raw, [`FakeSysfs::external_kernel_write`]
//!   through the kernel rules), a log of accepted writes
//!   ([`FakeSysfs::writes`]), CPU hotplug ([`FakeSysfs::set_online`]).
//! - Failures are emulated here, not with permissions: root ignores them.
//! - Reads and writes through [`FakeSysfs`] are serialized by a lock, so
//!   in-process readers never see a half-written file.
//! - Files kept open ([`SysfsIo::open`]) read and write through the same
//!   rules, hooks and log (module `file`).
//!
//! ## Limitations
//! See the `kernel` module for the rules not emulated.

mod builder;
mod file;
mod kernel;
mod tree;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use builder::{
    FakeSysfsBuilder, GENERIC_GOVERNORS, SETPOLICY_GOVERNORS, available_governors, is_setpolicy,
};

use crate::sysfs::{Access, SysfsError, SysfsFile, SysfsIo, read_file};
use crate::types::{CpuId, Driver, Khz};
use file::FakeFile;
use kernel::Kernel;
use tree::Spec;

/// Why a fake tree could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The description is inconsistent.
    #[error("invalid fake host: {0}")]
    Invalid(String),
    /// The directory for the tree could not be created.
    #[error("{path}: cannot create the fake tree's directory")]
    Dir {
        /// The directory (the temporary directory's parent if not known).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing a file of the tree failed.
    #[error("cannot write the fake tree")]
    Tree(#[from] SysfsError),
}

/// The errno an injected failure imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// `EINVAL`: [`SysfsError::Refused`].
    Refused,
    /// `EACCES`: [`SysfsError::PermissionDenied`].
    PermissionDenied,
    /// `EBUSY`: [`SysfsError::Io`].
    Busy,
}

/// One write the fake kernel accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    /// The path as the caller gave it.
    pub path: PathBuf,
    /// The file it resolved to, relative to the root (through the
    /// `cpuN/cpufreq` link: `devices/system/cpu/cpufreq/policyM/...`).
    pub file: PathBuf,
    /// The value, without a trailing newline.
    pub value: String,
}

#[derive(Debug)]
struct Injected {
    file: PathBuf,
    kind: FailKind,
    once: bool,
}

#[derive(Debug, Default)]
struct State {
    failures: Vec<Injected>,
    log: Vec<WriteRecord>,
    targets: HashMap<PathBuf, Khz>,
}

/// A fake sysfs tree with the kernel's write rules; removed on drop unless
/// [`keep`](Self::keep) is called or it was built [`in_dir`](FakeSysfsBuilder::in_dir).
#[derive(Debug)]
pub struct FakeSysfs {
    shared: Arc<Shared>,
    temp: Option<tempfile::TempDir>,
}

/// What a [`FakeSysfs`] and the files it opened share.
#[derive(Debug)]
pub(crate) struct Shared {
    root: PathBuf,
    canonical_root: PathBuf,
    spec: Spec,
    state: Mutex<State>,
}

impl FakeSysfs {
    /// A builder for a host of `cpus` CPUs.
    pub fn builder(cpus: u32) -> FakeSysfsBuilder {
        FakeSysfsBuilder::new(cpus)
    }

    pub(crate) fn create(spec: Spec, dir: Option<PathBuf>) -> Result<Self, FakeError> {
        let (root, temp) = match dir {
            Some(dir) => {
                fs::create_dir_all(&dir).map_err(|source| FakeError::Dir {
                    path: dir.clone(),
                    source,
                })?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("fake-sysfs-")
                    .tempdir()
                    .map_err(|source| FakeError::Dir {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        tree::write_tree(&root, &spec)?;
        let canonical_root = fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
        let fake = FakeSysfs {
            shared: Arc::new(Shared {
                root,
                canonical_root,
                spec,
                state: Mutex::new(State::default()),
            }),
            temp,
        };
        fake.with_kernel(|k| k.settle_all())?;
        Ok(fake)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    fn with_kernel<T>(&self, f: impl FnOnce(&mut Kernel<'_>) -> T) -> T {
        self.shared.with_kernel(f)
    }

    /// The directory standing for `/sys` (pass it as `--sysfs-root`).
    pub fn path(&self) -> &Path {
        &self.shared.root
    }

    /// Number of CPUs of the fake host, online or not.
    pub fn cpu_count(&self) -> u32 {
        self.shared.spec.cpus
    }

    /// The emulated driver, `None` for a host without cpufreq.
    pub fn driver(&self) -> Option<&Driver> {
        self.shared.spec.driver.as_ref()
    }

    /// The file `rel` resolves to, relative to the root (symlinks followed);
    /// `rel` itself if it does not exist.
    pub fn resolve(&self, rel: &Path) -> PathBuf {
        self.shared.resolve(rel)
    }

    /// The next write to this file (by any path resolving to it) fails.
    pub fn fail_next_write(&self, rel: impl AsRef<Path>, kind: FailKind) {
        let file = self.resolve(rel.as_ref());
        self.lock().failures.push(Injected {
            file,
            kind,
            once: true,
        });
    }

    /// Every write to this file fails until [`clear_failures`](Self::clear_failures).
    pub fn fail_all_writes(&self, rel: impl AsRef<Path>, kind: FailKind) {
        let file = self.resolve(rel.as_ref());
        self.lock().failures.push(Injected {
            file,
            kind,
            once: false,
        });
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// Another tool writes the file directly, bypassing every kernel rule
    /// and side effect, the failure hooks and the log (creates the file if
    /// missing: also the way to put garbage in a file).
    pub fn external_write(&self, rel: impl AsRef<Path>, value: &str) -> Result<(), SysfsError> {
        let _state = self.lock();
        tree::put(
            &self.shared.root.join(rel.as_ref()),
            value.strip_suffix('\n').unwrap_or(value),
        )
    }

    /// Another tool (tuned, an operator) writes through the kernel: the
    /// rules and side effects apply, the failure hooks and the log do not.
    pub fn external_kernel_write(
        &self,
        rel: impl AsRef<Path>,
        value: &str,
    ) -> Result<(), SysfsError> {
        self.with_kernel(|k| k.write(rel.as_ref(), value))
    }

    /// Takes a CPU offline or brings it back, as writing `cpuN/online`
    /// would (not logged). cpu0 has no `online` file: `NotFound`.
    pub fn set_online(&self, cpu: CpuId, online: bool) -> Result<(), SysfsError> {
        self.with_kernel(|k| k.set_online(cpu.0, online))
    }

    /// Every accepted write through [`SysfsIo::write`], oldest first.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.lock().log.clone()
    }

    /// The values accepted for one file (by any path resolving to it).
    pub fn writes_to(&self, rel: impl AsRef<Path>) -> Vec<String> {
        let file = self.resolve(rel.as_ref());
        self.lock()
            .log
            .iter()
            .filter(|r| r.file == file)
            .map(|r| r.value.clone())
            .collect()
    }

    /// Forgets the write log.
    pub fn clear_writes(&self) {
        self.lock().log.clear();
    }

    /// Keeps the tree on disk after the fake is dropped; returns its root.
    pub fn keep(mut self) -> PathBuf {
        match self.temp.take() {
            Some(temp) => temp.keep(),
            None => self.shared.root.clone(),
        }
    }
}

impl SysfsIo for FakeSysfs {
    fn root(&self) -> &Path {
        &self.shared.root
    }

    fn read(&self, rel: &Path) -> Result<String, SysfsError> {
        self.shared.read(rel)
    }

    fn write(&self, rel: &Path, value: &str) -> Result<(), SysfsError> {
        self.shared.write(rel, value)
    }

    fn open(&self, rel: &Path, access: Access) -> Result<Box<dyn SysfsFile>, SysfsError> {
        Ok(Box::new(FakeFile::open(self.shared.clone(), rel, access)?))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_kernel<T>(&self, f: impl FnOnce(&mut Kernel<'_>) -> T) -> T {
        let mut state = self.lock();
        let mut kernel = Kernel {
            root: &self.root,
            spec: &self.spec,
            targets: &mut state.targets,
        };
        f(&mut kernel)
    }

    /// The directory standing for `/sys`.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, rel: &Path) -> PathBuf {
        fs::canonicalize(self.root.join(rel))
            .ok()
            .and_then(|p| {
                p.strip_prefix(&self.canonical_root)
                    .ok()
                    .map(Path::to_path_buf)
            })
            .unwrap_or_else(|| rel.to_owned())
    }

    fn injected(state: &mut State, file: &Path) -> Option<FailKind> {
        let index = state.failures.iter().position(|f| f.file == file)?;
        let kind = state.failures[index].kind;
        if state.failures[index].once {
            state.failures.remove(index);
        }
        Some(kind)
    }

    /// A read, serialized with the writes.
    pub(crate) fn read(&self, rel: &Path) -> Result<String, SysfsError> {
        let _state = self.lock();
        read_file(&self.root.join(rel))
    }

    /// A write through the failure hooks, the kernel's rules and the log.
    pub(crate) fn write(&self, rel: &Path, value: &str) -> Result<(), SysfsError> {
        let file = self.resolve(rel);
        let path = self.root.join(rel);
        let mut state = self.lock();
        if let Some(kind) = Self::injected(&mut state, &file) {
            let value = value.to_owned();
            return Err(match kind {
                FailKind::Refused => SysfsError::Refused { path, value },
                FailKind::PermissionDenied => SysfsError::PermissionDenied { path, value },
                FailKind::Busy => SysfsError::Io {
                    path,
                    op: format!("write {value:?}"),
                    source: io::Error::from_raw_os_error(16),
                },
            });
        }
        let mut kernel = Kernel {
            root: &self.root,
            spec: &self.spec,
            targets: &mut state.targets,
        };
        kernel.write(rel, value)?;
        state.log.push(WriteRecord {
            path: rel.to_owned(),
            file,
            value: value.strip_suffix('\n').unwrap_or(value).to_owned(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::paths;

    #[test]
    fn hooks_match_a_file_by_any_path_to_it() {
        let fake = FakeSysfs::builder(2).domain_size(2).build().unwrap();
        let via_policy = paths::policy_dir("policy0").join("scaling_governor");
        let via_cpu1 = paths::cpufreq_file(CpuId(1), "scaling_governor");
        fake.fail_next_write(&via_policy, FailKind::Refused);
        assert!(fake.write(&via_cpu1, "performance").is_err());
        fake.write(&via_cpu1, "performance").unwrap();
        fake.write(
            &paths::cpufreq_file(CpuId(0), "scaling_governor"),
            "ondemand",
        )
        .unwrap();
        assert_eq!(fake.writes_to(&via_policy), vec!["performance", "ondemand"]);
        assert_eq!(fake.writes()[0].file, via_policy);
    }

    #[test]
    fn in_dir_failure_names_the_directory() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = FakeSysfs::builder(1)
            .in_dir(file.path().join("sys"))
            .build()
            .unwrap_err();
        assert!(matches!(err, FakeError::Dir { .. }), "{err:?}");
        assert!(err.to_string().contains("sys"), "{err}");
    }
}

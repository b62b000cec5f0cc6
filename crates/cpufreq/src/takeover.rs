//! Taking over and giving back: the on-disk record of what every CPU,
//! the global turbo switch and every uncore domain looked like before this
//! crate first wrote to them, and the restore that puts it all back.
//!
//! ## Invariants
//! - An item is recorded, and the record is on disk (written atomically:
//!   temporary file in the same directory, fsync, rename, fsync of the
//!   directory), before the first write to it. A [`Takeover::take_cpu`]
//!   that returns `Ok` guarantees it.
//! - An item already in the record is never recorded again: after a crash
//!   the record keeps the *original* values, not the ones this crate set.
//! - The record file is deleted only when it is empty: everything restored.
//!
//! ## Behavior
//! - The file is JSON, versioned ([`RECORD_VERSION`]); an unknown version
//!   is refused, never guessed at.
//! - [`restore_from_file`] needs nothing but the file and a sysfs root;
//!   [`restore_from`] the same for a record kept elsewhere ([`RecordSink`]).
//! - Restore order: the global turbo switch first (so that a `no_turbo`
//!   limit does not clamp the bounds being restored), then uncore domains,
//!   then CPUs. Per CPU: bounds (in an accepted order), then the governor,
//!   then the `userspace` governor's speed if that was the original, then
//!   the energy-performance preference (intel_pstate refuses it under the
//!   `performance` governor, so it goes after the governor). Each file is
//!   written only when it differs, so restore is idempotent.
//! - A CPU that went offline (no `cpufreq/`) is reported and kept in the
//!   record; the rest are restored.

mod restore;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::BackendError;
use crate::sysfs::SysfsIo;
use crate::turbo::{TurboError, TurboSwitch};
use crate::types::{CpuId, Khz};
use crate::uncore_control::{self, UncoreError, UncoreRange};

pub use restore::{
    RestoreError, RestoreFailure, RestoreReport, TakeoverItem, read_cpu_original, restore_cpu,
};

/// The version of the record format this crate writes and reads.
pub const RECORD_VERSION: u32 = 1;

/// Why the record could not be read, written or extended.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    /// A caller-provided [`RecordSink`] failed.
    #[error("takeover record in {place}: {op} failed")]
    Sink {
        /// Where the record is kept (e.g. the database file).
        place: String,
        /// What was done.
        op: &'static str,
        /// The failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading, writing, renaming or syncing the record failed.
    #[error("takeover record {path}: {op} failed")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was done.
        op: &'static str,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid record.
    #[error("takeover record {path}: not a valid record")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The file was written by an incompatible version.
    #[error("takeover record {path}: version {found}, this build reads {RECORD_VERSION}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A CPU's original settings could not be read.
    #[error(transparent)]
    Cpu(#[from] BackendError),
    /// The turbo switch could not be read.
    #[error(transparent)]
    Turbo(#[from] TurboError),
    /// An uncore domain could not be read.
    #[error(transparent)]
    Uncore(#[from] UncoreError),
}

/// A CPU's settings before takeover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuOriginal {
    /// `scaling_governor`.
    pub governor: String,
    /// `scaling_min_freq`.
    pub min: Khz,
    /// `scaling_max_freq`.
    pub max: Khz,
    /// `scaling_setspeed`, when the original governor was `userspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setspeed: Option<Khz>,
    /// `energy_performance_preference`, where present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epp: Option<String>,
}

/// The global turbo switch before takeover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurboOriginal {
    /// Which switch.
    pub switch: TurboSwitch,
    /// Its raw content, `0` or `1`.
    pub value: String,
}

/// Everything taken over, as stored on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverRecord {
    /// Format version, [`RECORD_VERSION`].
    pub version: u32,
    /// Per CPU.
    #[serde(default)]
    pub cpus: BTreeMap<CpuId, CpuOriginal>,
    /// The global turbo switch, if touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turbo: Option<TurboOriginal>,
    /// Per uncore domain directory name.
    #[serde(default)]
    pub uncore: BTreeMap<String, UncoreRange>,
}

impl Default for TakeoverRecord {
    fn default() -> Self {
        TakeoverRecord {
            version: RECORD_VERSION,
            cpus: BTreeMap::new(),
            turbo: None,
            uncore: BTreeMap::new(),
        }
    }
}

impl TakeoverRecord {
    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty() && self.turbo.is_none() && self.uncore.is_empty()
    }

    /// Reads a record file; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, TakeoverError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_err(path, "read", source)),
        };
        let record: TakeoverRecord =
            serde_json::from_slice(&bytes).map_err(|source| TakeoverError::Corrupt {
                path: path.to_owned(),
                source,
            })?;
        if record.version != RECORD_VERSION {
            return Err(TakeoverError::UnsupportedVersion {
                path: path.to_owned(),
                found: record.version,
            });
        }
        Ok(Some(record))
    }

    /// Writes the record atomically to `path`, or deletes `path` when the
    /// record is empty.
    pub fn store(&self, path: &Path) -> Result<(), TakeoverError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if self.is_empty() {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(source) => return Err(io_err(path, "remove", source)),
            }
            return sync_dir(&dir);
        }
        let name = path
            .file_name()
            .map_or_else(|| "takeover".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.tmp"));
        let data = serde_json::to_vec_pretty(self).map_err(|source| TakeoverError::Corrupt {
            path: path.to_owned(),
            source,
        })?;
        let mut file = File::create(&tmp).map_err(|e| io_err(&tmp, "create", e))?;
        file.write_all(&data)
            .map_err(|e| io_err(&tmp, "write", e))?;
        file.sync_all().map_err(|e| io_err(&tmp, "fsync", e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| io_err(path, "rename", e))?;
        sync_dir(&dir)
    }
}

fn io_err(path: &Path, op: &'static str, source: io::Error) -> TakeoverError {
    TakeoverError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), TakeoverError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, "fsync directory", e))
}

/// Where the takeover record is kept durably: a file ([`FileSink`], the
/// default) or a store the caller provides (the daemon keeps it in its
/// SQLite state database). `store` must not return before the record is
/// durable: the invariants above rest on it.
pub trait RecordSink: Send + std::fmt::Debug {
    /// What a previous run left, if anything.
    fn load(&self) -> Result<Option<TakeoverRecord>, TakeoverError>;
    /// Stores the record durably; an empty record means nothing is taken
    /// over (the sink may delete it).
    fn store(&mut self, record: &TakeoverRecord) -> Result<(), TakeoverError>;
}

/// The record as a JSON file written atomically.
#[derive(Debug, Clone)]
pub struct FileSink {
    path: PathBuf,
}

impl FileSink {
    /// A record file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSink { path: path.into() }
    }

    /// The record file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl RecordSink for FileSink {
    fn load(&self) -> Result<Option<TakeoverRecord>, TakeoverError> {
        TakeoverRecord::load(&self.path)
    }

    fn store(&mut self, record: &TakeoverRecord) -> Result<(), TakeoverError> {
        record.store(&self.path)
    }
}

/// The durable record and its in-memory copy.
#[derive(Debug)]
pub struct Takeover {
    sink: Box<dyn RecordSink>,
    record: TakeoverRecord,
}

impl Takeover {
    /// Opens the record file at `path`, loading what a previous run left
    /// there (restore it before taking anything over), or starting empty.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, TakeoverError> {
        Self::with_sink(Box::new(FileSink::new(path)))
    }

    /// Opens the record kept in `sink`.
    pub fn with_sink(sink: Box<dyn RecordSink>) -> Result<Self, TakeoverError> {
        let record = sink.load()?.unwrap_or_default();
        Ok(Takeover { sink, record })
    }

    /// What is recorded.
    pub fn record(&self) -> &TakeoverRecord {
        &self.record
    }

    /// Records `cpu`'s original settings unless already recorded, and
    /// stores the record. Returns whether it was newly recorded.
    pub fn take_cpu(&mut self, io: &dyn SysfsIo, cpu: CpuId) -> Result<bool, TakeoverError> {
        if self.record.cpus.contains_key(&cpu) {
            return Ok(false);
        }
        let original = read_cpu_original(io, cpu)?;
        self.record.cpus.insert(cpu, original);
        self.persist_or_forget(|r| {
            r.cpus.remove(&cpu);
        })
    }

    /// Records the turbo switch's original value unless already recorded.
    pub fn take_turbo(
        &mut self,
        io: &dyn SysfsIo,
        switch: TurboSwitch,
    ) -> Result<bool, TakeoverError> {
        if self.record.turbo.is_some() {
            return Ok(false);
        }
        let value = switch.read_raw(io)?;
        self.record.turbo = Some(TurboOriginal { switch, value });
        self.persist_or_forget(|r| r.turbo = None)
    }

    /// Records an uncore domain's original range unless already recorded.
    pub fn take_uncore(&mut self, io: &dyn SysfsIo, domain: &str) -> Result<bool, TakeoverError> {
        if self.record.uncore.contains_key(domain) {
            return Ok(false);
        }
        let range = uncore_control::current_range(io, domain)?;
        self.record.uncore.insert(domain.to_owned(), range);
        self.persist_or_forget(|r| {
            r.uncore.remove(domain);
        })
    }

    fn persist_or_forget(
        &mut self,
        undo: impl FnOnce(&mut TakeoverRecord),
    ) -> Result<bool, TakeoverError> {
        match self.sink.store(&self.record) {
            Ok(()) => Ok(true),
            Err(e) => {
                undo(&mut self.record);
                Err(e)
            }
        }
    }

    /// Restores one CPU and drops it from the record. `Ok(false)` when it
    /// was not taken over. On failure the CPU stays recorded.
    pub fn release_cpu(&mut self, io: &dyn SysfsIo, cpu: CpuId) -> Result<bool, TakeoverError> {
        let Some(original) = self.record.cpus.get(&cpu) else {
            return Ok(false);
        };
        restore_cpu(io, cpu, original)?;
        self.record.cpus.remove(&cpu);
        self.sink.store(&self.record)?;
        Ok(true)
    }

    /// Drops `cpu` from the record without restoring it (its frequency
    /// domain is still held through a sibling that will restore it).
    pub fn forget_cpu(&mut self, cpu: CpuId) -> Result<bool, TakeoverError> {
        if self.record.cpus.remove(&cpu).is_none() {
            return Ok(false);
        }
        self.sink.store(&self.record)?;
        Ok(true)
    }

    /// Restores everything recorded, keeps what could not be restored,
    /// and stores the record (deleting the file when it is empty). `Err`
    /// only when the record itself cannot be stored.
    pub fn restore_all(&mut self, io: &dyn SysfsIo) -> Result<RestoreReport, TakeoverError> {
        let report = restore::restore_record(io, &mut self.record);
        self.sink.store(&self.record)?;
        Ok(report)
    }
}

/// Restores everything a record file holds, with no other state (after a
/// crash). A missing file restores nothing.
pub fn restore_from_file(path: &Path, io: &dyn SysfsIo) -> Result<RestoreReport, TakeoverError> {
    Takeover::open(path)?.restore_all(io)
}

/// Restores everything a sink holds, with no other state (after a crash).
pub fn restore_from(
    sink: Box<dyn RecordSink>,
    io: &dyn SysfsIo,
) -> Result<RestoreReport, TakeoverError> {
    Takeover::with_sink(sink)?.restore_all(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TakeoverRecord {
        let mut r = TakeoverRecord::default();
        r.cpus.insert(
            CpuId(3),
            CpuOriginal {
                governor: "schedutil".into(),
                min: Khz(800_000),
                max: Khz(2_301_000),
                setspeed: None,
                epp: Some("balance_performance".into()),
            },
        );
        r.turbo = Some(TurboOriginal {
            switch: TurboSwitch::Boost,
            value: "1".into(),
        });
        r.uncore.insert(
            "package_00_die_00".into(),
            UncoreRange {
                min: Khz(800_000),
                max: Khz(2_400_000),
            },
        );
        r
    }

    /// The on-disk format is a contract with a future build restoring after
    /// a crash: changing this golden text needs a version bump.
    #[test]
    fn format_is_pinned() {
        let json = serde_json::to_value(sample()).unwrap();
        let golden: serde_json::Value = serde_json::from_str(
            r#"{"version":1,
                "cpus":{"3":{"governor":"schedutil","min":800000,"max":2301000,
                             "epp":"balance_performance"}},
                "turbo":{"switch":"Boost","value":"1"},
                "uncore":{"package_00_die_00":{"min":800000,"max":2400000}}}"#,
        )
        .unwrap();
        assert_eq!(json, golden);
    }

    #[test]
    fn store_load_round_trip_and_empty_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        sample().store(&path).unwrap();
        assert_eq!(TakeoverRecord::load(&path).unwrap(), Some(sample()));
        assert!(
            !dir.path().join(".t.json.tmp").exists(),
            "temp file renamed away"
        );
        TakeoverRecord::default().store(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(TakeoverRecord::load(&path).unwrap(), None);
        // Deleting twice is fine.
        TakeoverRecord::default().store(&path).unwrap();
    }

    #[test]
    fn older_fields_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        fs::write(
            &path,
            r#"{"version":1,"cpus":{"0":{"governor":"ondemand","min":1,"max":2}}}"#,
        )
        .unwrap();
        let r = TakeoverRecord::load(&path).unwrap().unwrap();
        assert_eq!(r.cpus[&CpuId(0)].epp, None);
        assert!(r.turbo.is_none() && r.uncore.is_empty());
    }
}

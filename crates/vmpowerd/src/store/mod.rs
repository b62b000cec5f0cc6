//! The daemon's state database: one SQLite file (`vmpower.db`) in the
//! state directory holding the accepted policies, the operator's per-VM
//! settings and vCPU→pCPU map, the cpufreq takeover record, a bounded
//! history of frequency decisions and the record of sampled packet rates.
//!
//! One file per table family: [`policies`], [`settings`], [`takeover`],
//! [`history`], [`rates`]; [`schema`] creates and migrates the tables.
//!
//! ## Durability
//! The file is in WAL mode. Every write is committed before its call
//! returns: the committed frames are in the kernel's page cache, so
//! nothing acknowledged is lost to a kill -9 or any crash of the daemon.
//! Whether a commit is also fsynced (`synchronous=FULL`) depends on what
//! must survive a power loss or an OS crash:
//! - the operator's settings, vCPU→pCPU map and policies (control API,
//!   policy files, FIFOs): fsynced, since after a reboot only the database
//!   brings them back;
//! - a guest's policy and its removal: not fsynced. A power loss or OS
//!   crash also ends every guest, whose application sends its policy
//!   again when it starts; the fsync (1–20 ms on a loaded disk) would sit
//!   between the guest's request and its ACK, which DPDK's `guest_cli`
//!   waits 10 ms for;
//! - the takeover record: not fsynced, since what it restores (sysfs) does
//!   not survive a power loss or an OS crash either;
//! - history and the rate record: not fsynced (`synchronous=NORMAL`), not
//!   a promise.
//!
//! The next `FULL` commit fsyncs the frames before it too.

//! ## Behavior
//! - Every write is one `BEGIN IMMEDIATE` transaction: it takes the write
//!   lock at once, so two processes never deadlock upgrading read locks;
//!   `busy_timeout` makes a second writer wait instead of failing.
//! - `foreign_keys=ON` is set on every connection (SQLite's default is off)
//!   so that later schema versions may rely on it; version 1 has none.
//! - Times are passed in (unix seconds for policies, unix milliseconds for
//!   history): the store never reads a clock.
//! - Decoding a row never panics: a corrupt row is a [`StoreError`] naming
//!   the table and the row (its VM, or its id).
//!
//! ## Limitations
//! - [`Store`] is one connection: `Send`, not `Sync`. An operator's
//!   writes block for an fsync (milliseconds on a disk): async callers
//!   should hold it behind a mutex and call it from `spawn_blocking` or a
//!   dedicated thread.
//! - This module must not read the clock, sysfs or the environment.

pub mod history;
pub mod policies;
pub mod rates;
pub mod schema;
pub mod settings;
pub mod takeover;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use history::HistoryEntry;
pub use policies::{PolicySource, StoredPolicy};
pub use schema::SCHEMA_VERSION;
pub use takeover::DbTakeoverSink;

/// The database's file name inside the state directory.
pub const DB_FILE_NAME: &str = "vmpower.db";

/// The size (bytes) the WAL file is truncated to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 4 << 20;

/// Why the state database could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An SQLite call failed.
    #[error("state database {path}: {op} failed")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The failure.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite kept another journal mode when asked for WAL (e.g. on a
    /// file system without shared-memory support).
    #[error("state database {path}: journal mode WAL refused, still {mode}")]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode in force.
        mode: String,
    },
    /// The file was written by a newer vmpowerd.
    #[error(
        "state database {path}: schema version {found} is newer than the {supported} this \
         vmpowerd supports; refusing to touch it (run a newer vmpowerd, or move the file away)"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: u32,
    },
    /// A JSON column of a row does not decode.
    #[error("state database {path}: table {table}, {row}: column {column} does not decode")]
    CorruptJson {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The row: its id and key (VM).
        row: String,
        /// The column.
        column: &'static str,
        /// The decoding failure.
        #[source]
        source: serde_json::Error,
    },
    /// A row holds a value this version cannot use (unknown format version,
    /// unparsable source, negative CPU number...).
    #[error("state database {path}: table {table}, {row}: {what}")]
    CorruptRow {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The row: its id and key (VM).
        row: String,
        /// What is wrong with it.
        what: String,
    },
    /// A value could not be encoded for storage.
    #[error("state database {path}: encoding {what} failed")]
    Encode {
        /// The database file.
        path: PathBuf,
        /// What was being encoded.
        what: &'static str,
        /// The failure.
        #[source]
        source: serde_json::Error,
    },
    /// A number does not fit SQLite's signed 64-bit integers.
    #[error("state database {path}: {what} {value} is out of range")]
    OutOfRange {
        /// The database file.
        path: PathBuf,
        /// Which number.
        what: &'static str,
        /// Its value.
        value: u64,
    },
}

/// How the store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// The most history entries kept; older ones are deleted as new ones
    /// arrive. 0 keeps none.
    pub history_limit: u64,
    /// How long a write waits for another connection's lock.
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    /// 100,000 history entries (about 13 MB with short reasons and
    /// inputs), a 5 s busy timeout.
    fn default() -> Self {
        StoreOptions {
            history_limit: 100_000,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// `PRAGMA synchronous` of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Synchronous {
    /// fsync the WAL at every commit: for promises.
    Full,
    /// No fsync at commit: for history.
    Normal,
}

/// The open state database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
    synchronous: Synchronous,
}

impl Store {
    /// Opens (creating if needed) `dir/vmpower.db`.
    pub fn open_in_dir(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        Self::open(dir.join(DB_FILE_NAME), options)
    }

    /// Opens (creating if needed) the database at `path`, sets WAL mode,
    /// `synchronous=FULL`, the busy timeout and `foreign_keys=ON`, and
    /// migrates the schema to [`SCHEMA_VERSION`]. A file with a newer
    /// schema is refused ([`StoreError::SchemaTooNew`]) and left untouched.
    pub fn open(path: impl Into<PathBuf>, options: StoreOptions) -> Result<Self, StoreError> {
        let path = path.into();
        let err = |op: &'static str| {
            let path = &path;
            move |source| sql_err(path, op, source)
        };
        let mut conn = Connection::open(&path).map_err(err("open"))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(err("set busy_timeout"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(err("set journal_mode=WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal {
                path: path.clone(),
                mode,
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err("set synchronous=FULL"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err("set foreign_keys=ON"))?;
        // A large history batch grows the WAL; truncate it back to this
        // after each checkpoint instead of keeping the high-water mark.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(err("set journal_size_limit"))?;
        schema::migrate(&mut conn, &path)?;
        Ok(Store {
            conn,
            path,
            options,
            synchronous: Synchronous::Full,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> StoreOptions {
        self.options
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::read_version(&self.conn).map_err(|e| sql_err(&self.path, "read schema version", e))
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction under the given
    /// `synchronous` level, and commits.
    fn write<T>(
        &mut self,
        sync: Synchronous,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.set_synchronous(sync)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sql_err(&self.path, op, e))?;
        let out = f(&tx).map_err(|e| sql_err(&self.path, op, e))?;
        tx.commit().map_err(|e| sql_err(&self.path, op, e))?;
        Ok(out)
    }

    /// Switches `PRAGMA synchronous` when it differs from what is wanted.
    fn set_synchronous(&mut self, want: Synchronous) -> Result<(), StoreError> {
        if self.synchronous != want {
            let (value, op) = match want {
                Synchronous::Full => ("FULL", "set synchronous=FULL"),
                Synchronous::Normal => ("NORMAL", "set synchronous=NORMAL"),
            };
            self.conn
                .pragma_update(None, "synchronous", value)
                .map_err(|e| sql_err(&self.path, op, e))?;
            self.synchronous = want;
        }
        Ok(())
    }

    /// Runs a read on the connection, naming `op` on failure.
    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        f(&self.conn).map_err(|e| sql_err(&self.path, op, e))
    }

    /// Encodes `value` as JSON text.
    fn encode<T: serde::Serialize + ?Sized>(
        &self,
        what: &'static str,
        value: &T,
    ) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|source| StoreError::Encode {
            path: self.path.clone(),
            what,
            source,
        })
    }

    /// Decodes a JSON column of a row.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        row: &str,
        column: &'static str,
        text: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|source| StoreError::CorruptJson {
            path: self.path.clone(),
            table,
            row: row.to_owned(),
            column,
            source,
        })
    }

    /// A [`StoreError::CorruptRow`].
    fn corrupt(&self, table: &'static str, row: &str, what: String) -> StoreError {
        StoreError::CorruptRow {
            path: self.path.clone(),
            table,
            row: row.to_owned(),
            what,
        }
    }

    /// Converts an unsigned number to SQLite's integer.
    fn to_sql_int(&self, what: &'static str, value: u64) -> Result<i64, StoreError> {
        i64::try_from(value).map_err(|_| StoreError::OutOfRange {
            path: self.path.clone(),
            what,
            value,
        })
    }
}

fn sql_err(path: &Path, op: &'static str, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_owned(),
        op,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Store {
        Store::open_in_dir(dir, StoreOptions::default()).expect("open")
    }

    #[test]
    fn opens_in_wal_mode_with_full_sync_and_foreign_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        assert_eq!(store.path(), dir.path().join(DB_FILE_NAME));
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let sync: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("synchronous");
        assert_eq!(sync, 2, "FULL is 2");
        let fk: i64 = store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .expect("foreign_keys");
        assert_eq!(fk, 1);
    }

    #[test]
    fn synchronous_switches_only_when_asked_and_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        let level = |s: &Store| -> i64 {
            s.conn
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .expect("synchronous")
        };
        store.set_synchronous(Synchronous::Normal).expect("normal");
        assert_eq!(level(&store), 1);
        store.set_synchronous(Synchronous::Full).expect("full");
        assert_eq!(level(&store), 2);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE_NAME);
        std::fs::write(&path, vec![0x5a_u8; 8192]).expect("write");
        let err = Store::open(&path, StoreOptions::default()).expect_err("garbage");
        assert!(matches!(err, StoreError::Sqlite { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        assert_eq!(store.to_sql_int("x", 7).expect("fits"), 7);
        let err = store.to_sql_int("time", u64::MAX).expect_err("too big");
        assert!(err.to_string().contains("time"), "{err}");
    }
}

//! The cpufreq takeover record (what every CPU, the turbo switch and the
//! uncore domains looked like before the daemon first wrote to them), kept
//! in the state database.
//!
//! ## Invariants
//! - "Never leave a machine worse than we found it": a save is committed
//!   (in the kernel's page cache) before it returns, so the daemon may
//!   write sysfs right after and a kill -9 or a crash of the daemon
//!   leaves the record for the next start. It is not fsynced: what it
//!   restores, sysfs, does not survive a power loss or an OS crash either
//!   (the CPUs come back with their boot defaults), so an fsync would buy
//!   nothing and cost the first request to each pCPU milliseconds.
//! - One row holding the whole record as the same serde JSON the file
//!   format uses: the record is small (a few hundred bytes per CPU), always
//!   saved whole, and one row makes a save atomic without a diff.
//! - Saving an empty record deletes the row, as
//!   [`TakeoverRecord::store`] deletes the file: "nothing to restore" has
//!   one representation.
//!
//! ## Behavior
//! A record whose `version` is not [`RECORD_VERSION`] is refused, never
//! guessed at; so is one that does not decode.

use rusqlite::OptionalExtension;
use vmpower_cpufreq::takeover::{RECORD_VERSION, RecordSink, TakeoverError, TakeoverRecord};

use super::{Store, StoreError, Synchronous};

const TABLE: &str = "takeover";
const ROW: &str = "row 1";

impl Store {
    /// Saves `record` in place of the previous one (committed, not
    /// fsynced: see the module's invariants); an empty record clears it.
    pub fn save_takeover(&mut self, record: &TakeoverRecord) -> Result<(), StoreError> {
        if record.is_empty() {
            return self.clear_takeover();
        }
        let json = self.encode("takeover record", record)?;
        self.write(Synchronous::Normal, "save takeover record", |tx| {
            tx.execute(
                "INSERT INTO takeover (id, record) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                [json],
            )
        })?;
        Ok(())
    }

    /// The saved record; `None` when there is nothing to restore.
    pub fn load_takeover(&self) -> Result<Option<TakeoverRecord>, StoreError> {
        let json: Option<String> = self.read("load takeover record", |conn| {
            conn.query_row("SELECT record FROM takeover WHERE id = 1", [], |r| r.get(0))
                .optional()
        })?;
        let Some(json) = json else {
            return Ok(None);
        };
        let record: TakeoverRecord = self.decode(TABLE, ROW, "record", &json)?;
        if record.version != RECORD_VERSION {
            return Err(self.corrupt(
                TABLE,
                ROW,
                format!(
                    "takeover record version {} unknown (this build reads {RECORD_VERSION})",
                    record.version
                ),
            ));
        }
        Ok(Some(record))
    }

    /// Deletes the record (everything was restored), durably.
    pub fn clear_takeover(&mut self) -> Result<(), StoreError> {
        self.write(Synchronous::Normal, "clear takeover record", |tx| {
            tx.execute("DELETE FROM takeover", [])
        })?;
        Ok(())
    }
}

/// The takeover record kept in the state database, for
/// [`vmpower_cpufreq::CpuFreq::with_sink`]. It holds its own connection
/// (the record is written from the frequency path, the rest of the store
/// from elsewhere); every store is durable (`synchronous=FULL`) before it
/// returns, as the takeover invariants require.
#[derive(Debug)]
pub struct DbTakeoverSink {
    store: Store,
}

impl DbTakeoverSink {
    /// A sink over its own connection to the database.
    pub fn new(store: Store) -> Self {
        DbTakeoverSink { store }
    }
}

fn sink_err(store: &Store, op: &'static str, e: StoreError) -> TakeoverError {
    TakeoverError::Sink {
        place: store.path().display().to_string(),
        op,
        source: Box::new(e),
    }
}

impl RecordSink for DbTakeoverSink {
    fn load(&self) -> Result<Option<TakeoverRecord>, TakeoverError> {
        self.store
            .load_takeover()
            .map_err(|e| sink_err(&self.store, "load", e))
    }

    fn store(&mut self, record: &TakeoverRecord) -> Result<(), TakeoverError> {
        self.store
            .save_takeover(record)
            .map_err(|e| sink_err(&self.store, "store", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[test]
    fn a_record_of_another_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_in_dir(dir.path(), StoreOptions::default()).expect("open");
        let record = TakeoverRecord {
            version: RECORD_VERSION + 1,
            ..TakeoverRecord::default()
        };
        let json = serde_json::to_string(&record).expect("encode");
        store
            .conn
            .execute("INSERT INTO takeover (id, record) VALUES (1, ?1)", [json])
            .expect("raw insert");
        let err = store.load_takeover().expect_err("version");
        assert!(
            matches!(&err, StoreError::CorruptRow { table: TABLE, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("version"), "{err}");
    }

    #[test]
    fn saving_an_empty_record_clears_the_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open_in_dir(dir.path(), StoreOptions::default()).expect("open");
        store
            .conn
            .execute("INSERT INTO takeover (id, record) VALUES (1, '{}')", [])
            .expect("raw insert");
        store
            .save_takeover(&TakeoverRecord::default())
            .expect("save empty");
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM takeover", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 0);
        assert_eq!(store.load_takeover().expect("load"), None);
    }
}

//! The bounded history of frequency decisions: when, which VM, which pCPU,
//! from what to what, why, and the inputs (e.g. the measured packet rate).
//!
//! ## Invariants
//! - At most [`StoreOptions::history_limit`](super::StoreOptions) rows
//!   after every append: the oldest are deleted in the same transaction.
//! - Ids only grow (`INTEGER PRIMARY KEY`, only the oldest rows are ever
//!   deleted, so SQLite's next rowid is always the newest + 1).
//!
//! ## Behavior
//! - Bounding is cheap: after inserting, one range delete `id <= newest -
//!   limit` on the primary key. It starts at the oldest surviving row and
//!   stops at the cut, so it touches only the rows it deletes (one per
//!   insert in steady state): no scan, no count. With a batch the cut is
//!   taken once for the whole batch.
//! - Appends are not fsynced (`synchronous=NORMAL`, see the module doc of
//!   [`super`]): a kill -9 loses none, a power loss at most the last few.
//!   Under load, append with [`Store::append_history_batch`]: one
//!   transaction for the whole batch.
//! - [`Store::history`] returns newest first (by time, then id) and uses
//!   the index on `(at_ms)` or `(vm, at_ms)`.

use rusqlite::params;
use vmpower_api::answers::DecisionInputs;
use vmpower_cpufreq::{CpuId, Khz};
use vmpower_engine::VmId;

use super::{Store, StoreError, Synchronous};

const TABLE: &str = "history";

/// One decision.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// When, unix milliseconds (passed in by the caller).
    pub at_ms: u64,
    /// The VM it was for; `None` for the daemon's own (restore at stop).
    pub vm: Option<VmId>,
    /// The host CPU written.
    pub pcpu: CpuId,
    /// Its frequency before, when known.
    pub old: Option<Khz>,
    /// Its frequency after.
    pub new: Khz,
    /// Why, in words (the policy kind and threshold crossed, the request).
    pub reason: String,
    /// What the decision was based on, e.g. a policy's measured rate.
    pub inputs: DecisionInputs,
}

/// An entry encoded for its row.
struct Encoded<'a> {
    at_ms: i64,
    vm: Option<&'a str>,
    pcpu: u32,
    old: Option<u32>,
    new: u32,
    reason: &'a str,
    inputs: String,
}

const COLUMNS: &str = "SELECT id, at_ms, vm, pcpu, old_khz, new_khz, reason, inputs FROM history";
const ORDER: &str = "ORDER BY at_ms DESC, id DESC LIMIT ?";

impl Store {
    /// Appends one entry (one transaction); see
    /// [`Store::append_history_batch`] for many.
    pub fn append_history(&mut self, entry: &HistoryEntry) -> Result<(), StoreError> {
        self.append_history_batch(std::slice::from_ref(entry))
    }

    /// Appends `entries` in one transaction and deletes the oldest beyond
    /// the limit in the same transaction.
    pub fn append_history_batch(&mut self, entries: &[HistoryEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let encoded = entries
            .iter()
            .map(|e| {
                Ok(Encoded {
                    at_ms: self.to_sql_int("history time", e.at_ms)?,
                    vm: e.vm.as_ref().map(VmId::as_str),
                    pcpu: e.pcpu.0,
                    old: e.old.map(|k| k.0),
                    new: e.new.0,
                    reason: &e.reason,
                    inputs: self.encode("history inputs", &e.inputs)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let limit = i64::try_from(self.options.history_limit).unwrap_or(i64::MAX);
        self.write(Synchronous::Normal, "append history", |tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO history (at_ms, vm, pcpu, old_khz, new_khz, reason, inputs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in &encoded {
                insert.execute(params![
                    e.at_ms, e.vm, e.pcpu, e.old, e.new, e.reason, e.inputs
                ])?;
            }
            let cut = tx.last_insert_rowid().saturating_sub(limit);
            if cut > 0 {
                tx.prepare_cached("DELETE FROM history WHERE id <= ?1")?
                    .execute([cut])?;
            }
            Ok(())
        })
    }

    /// Up to `limit` entries, newest first; only `vm`'s when given, only
    /// those at or after `since_ms` when given.
    pub fn history(
        &self,
        vm: Option<&VmId>,
        since_ms: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let since = since_ms
            .map(|s| self.to_sql_int("history since", s))
            .transpose()?;
        let rows = self.read("read history", |conn| {
            let mut stmt;
            let rows = match (vm, since) {
                (None, None) => {
                    stmt = conn.prepare_cached(&format!("{COLUMNS} {ORDER}"))?;
                    stmt.query_map(params![limit], raw)?
                }
                (Some(vm), None) => {
                    stmt = conn.prepare_cached(&format!("{COLUMNS} WHERE vm = ? {ORDER}"))?;
                    stmt.query_map(params![vm.as_str(), limit], raw)?
                }
                (None, Some(since)) => {
                    stmt = conn.prepare_cached(&format!("{COLUMNS} WHERE at_ms >= ? {ORDER}"))?;
                    stmt.query_map(params![since, limit], raw)?
                }
                (Some(vm), Some(since)) => {
                    stmt = conn.prepare_cached(&format!(
                        "{COLUMNS} WHERE vm = ? AND at_ms >= ? {ORDER}"
                    ))?;
                    stmt.query_map(params![vm.as_str(), since, limit], raw)?
                }
            };
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(|r| self.decode_history(r)).collect()
    }

    /// How many entries are kept.
    pub fn history_len(&self) -> Result<u64, StoreError> {
        let n: i64 = self.read("count history", |conn| {
            conn.query_row("SELECT count(*) FROM history", [], |r| r.get(0))
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn decode_history(&self, raw: RawEntry) -> Result<HistoryEntry, StoreError> {
        let vm_text = raw.vm.as_deref().unwrap_or("-");
        let row = format!("row {} (VM {vm_text})", raw.id);
        let number = |what: &str, value: i64| {
            u32::try_from(value)
                .map_err(|_| self.corrupt(TABLE, &row, format!("{what} {value} out of range")))
        };
        let pcpu = CpuId(number("pcpu", raw.pcpu)?);
        let old = raw
            .old_khz
            .map(|k| number("old_khz", k).map(Khz))
            .transpose()?;
        let new = Khz(number("new_khz", raw.new_khz)?);
        let at_ms = u64::try_from(raw.at_ms)
            .map_err(|_| self.corrupt(TABLE, &row, format!("at_ms {} negative", raw.at_ms)))?;
        let inputs = self.decode(TABLE, &row, "inputs", &raw.inputs)?;
        Ok(HistoryEntry {
            at_ms,
            vm: raw.vm.as_deref().map(VmId::new),
            pcpu,
            old,
            new,
            reason: raw.reason,
            inputs,
        })
    }
}

/// One `history` row as read, before decoding.
struct RawEntry {
    id: i64,
    at_ms: i64,
    vm: Option<String>,
    pcpu: i64,
    old_khz: Option<i64>,
    new_khz: i64,
    reason: String,
    inputs: String,
}

fn raw(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok(RawEntry {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        vm: row.get(2)?,
        pcpu: row.get(3)?,
        old_khz: row.get(4)?,
        new_khz: row.get(5)?,
        reason: row.get(6)?,
        inputs: row.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn plan(store: &Store, sql: &str) -> String {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        let details: Vec<String> = stmt
            .query_map([], |r| r.get(3))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        details.join("; ")
    }

    #[test]
    fn filtered_queries_use_the_indexes_not_a_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_in_dir(dir.path(), StoreOptions::default()).expect("open");
        let by_vm = plan(
            &store,
            &format!("{COLUMNS} WHERE vm = 'a' AND at_ms >= 5 {ORDER}").replace('?', "10"),
        );
        assert!(by_vm.contains("history_by_vm_time"), "{by_vm}");
        let by_time = plan(
            &store,
            &format!("{COLUMNS} WHERE at_ms >= 5 {ORDER}").replace('?', "10"),
        );
        assert!(by_time.contains("history_by_time"), "{by_time}");
        let newest = plan(&store, &format!("{COLUMNS} {ORDER}").replace('?', "10"));
        assert!(!newest.contains("TEMP B-TREE"), "no sort: {newest}");
    }

    #[test]
    fn a_negative_cpu_is_a_corrupt_row_naming_the_vm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_in_dir(dir.path(), StoreOptions::default()).expect("open");
        store
            .conn
            .execute(
                "INSERT INTO history (at_ms, vm, pcpu, old_khz, new_khz, reason, inputs)
                 VALUES (1, 'vm-q', -2, NULL, 1000, 'r', '{}')",
                [],
            )
            .expect("raw insert");
        let err = store.history(None, None, 10).expect_err("negative pcpu");
        assert!(
            matches!(&err, StoreError::CorruptRow { table: TABLE, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("vm-q"), "{err}");
    }
}

//! The record of sampled packet rates ([`crate::traffic::record`]): blocks
//! of one VM's per-step rates, kept for a bounded time and read back in
//! time order for `vmpowerctl traffic export`.
//!
//! ## Invariants
//! - One row per (VM, block start); a block written again replaces the
//!   row (a restart within a block writes its part of it again, its own
//!   steps only: the earlier part is merged, a step known in either is
//!   kept).
//! - After every append, no row starts before the cut the caller passes
//!   (its retention), in the same transaction: the table stays bounded by
//!   VMs × retention.
//!
//! ## Behavior
//! - Appends are not fsynced (`synchronous=NORMAL`): a record, not a
//!   promise.
//! - Reads are paged by `(start_ms, vm)` so an export of a week never sits
//!   in one answer.

use rusqlite::{OptionalExtension, params};
use vmpower_engine::VmId;

use super::{Store, StoreError, Synchronous};
use crate::traffic::record::RateBlock;

const TABLE: &str = "traffic_rates";

/// Where a page of [`Store::rate_blocks`] starts: after this block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCursor {
    /// The last block's start, unix ms.
    pub start_ms: u64,
    /// The last block's VM.
    pub vm: String,
}

/// The rates as the column holds them.
fn encode_rates(rates: &[f32]) -> Vec<u8> {
    rates.iter().flat_map(|r| r.to_le_bytes()).collect()
}

/// Merges two versions of a block step by step: a known step wins.
fn merge(old: &[f32], new: &[f32]) -> Vec<f32> {
    (0..old.len().max(new.len()))
        .map(|i| {
            let n = new.get(i).copied().unwrap_or(f32::NAN);
            if n.is_nan() {
                old.get(i).copied().unwrap_or(f32::NAN)
            } else {
                n
            }
        })
        .collect()
}

impl Store {
    /// Writes `blocks` and deletes every block that starts before
    /// `keep_since_ms`, in one transaction.
    pub fn append_rate_blocks(
        &mut self,
        blocks: &[RateBlock],
        keep_since_ms: u64,
    ) -> Result<(), StoreError> {
        let cut = self.to_sql_int("rate record cut", keep_since_ms)?;
        let starts = blocks
            .iter()
            .map(|b| self.to_sql_int("rate block start", b.start_ms))
            .collect::<Result<Vec<_>, _>>()?;
        let path = self.path.clone();
        let old: Vec<Option<Vec<u8>>> = self.read("read rate blocks", |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT rates FROM traffic_rates WHERE vm = ?1 AND start_ms = ?2",
            )?;
            blocks
                .iter()
                .zip(&starts)
                .map(|(b, s)| {
                    stmt.query_row(params![b.vm.as_str(), s], |r| r.get(0))
                        .optional()
                })
                .collect()
        })?;
        let encoded: Vec<Vec<u8>> = blocks
            .iter()
            .zip(old)
            .map(|(b, old)| match old {
                Some(bytes) => {
                    let old = decode_rates(&bytes).ok_or_else(|| StoreError::CorruptRow {
                        path: path.clone(),
                        table: TABLE,
                        row: format!("{} at {}", b.vm, b.start_ms),
                        what: format!("{} bytes of rates, not a multiple of 4", bytes.len()),
                    })?;
                    Ok(encode_rates(&merge(&old, &b.rates)))
                }
                None => Ok(encode_rates(&b.rates)),
            })
            .collect::<Result<_, StoreError>>()?;
        self.write(Synchronous::Normal, "append rate record", |tx| {
            let mut put = tx.prepare_cached(
                "INSERT INTO traffic_rates (vm, start_ms, step_ms, rates) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (vm, start_ms) DO UPDATE SET step_ms = excluded.step_ms, rates = excluded.rates",
            )?;
            for ((b, start), rates) in blocks.iter().zip(&starts).zip(&encoded) {
                put.execute(params![b.vm.as_str(), start, b.step_ms, rates])?;
            }
            tx.prepare_cached("DELETE FROM traffic_rates WHERE start_ms < ?1")?
                .execute([cut])?;
            Ok(())
        })
    }

    /// Up to `limit` blocks in order of (start, VM): only `vm`'s when
    /// given, only those starting in `[since_ms, until_ms)`, after
    /// `cursor` when given.
    pub fn rate_blocks(
        &self,
        vm: Option<&str>,
        since_ms: u64,
        until_ms: u64,
        cursor: Option<&RateCursor>,
        limit: usize,
    ) -> Result<Vec<RateBlock>, StoreError> {
        let since = self.to_sql_int("rate record since", since_ms)?;
        let until = self.to_sql_int("rate record until", until_ms)?;
        let (after_ms, after_vm) = match cursor {
            Some(c) => (
                self.to_sql_int("rate record cursor", c.start_ms)?,
                c.vm.as_str(),
            ),
            None => (-1, ""),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, i64, i64, Vec<u8>)> = self.read("read rate record", |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT vm, start_ms, step_ms, rates FROM traffic_rates
                 WHERE start_ms >= ?1 AND start_ms < ?2
                   AND (?3 IS NULL OR vm = ?3)
                   AND (start_ms > ?4 OR (start_ms = ?4 AND vm > ?5))
                 ORDER BY start_ms, vm LIMIT ?6",
            )?;
            stmt.query_map(params![since, until, vm, after_ms, after_vm, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })?;
        rows.into_iter()
            .map(|(vm, start, step, bytes)| {
                let row = format!("{vm} at {start}");
                let rates = decode_rates(&bytes).ok_or_else(|| {
                    self.corrupt(
                        TABLE,
                        &row,
                        format!("{} bytes of rates, not a multiple of 4", bytes.len()),
                    )
                })?;
                let start_ms = u64::try_from(start)
                    .map_err(|_| self.corrupt(TABLE, &row, format!("negative start {start}")))?;
                let step_ms = u32::try_from(step)
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| self.corrupt(TABLE, &row, format!("step {step} ms")))?;
                Ok(RateBlock {
                    vm: VmId::new(&vm),
                    start_ms,
                    step_ms,
                    rates,
                })
            })
            .collect()
    }
}

/// The rates of a column; `None` when its length is not whole f32s.
fn decode_rates(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn block(vm: &str, start_ms: u64, rates: &[f32]) -> RateBlock {
        RateBlock {
            vm: VmId::new(vm),
            start_ms,
            step_ms: 1000,
            rates: rates.to_vec(),
        }
    }

    fn open(dir: &std::path::Path) -> Store {
        Store::open_in_dir(dir, StoreOptions::default()).expect("open")
    }

    fn same(a: &[RateBlock], b: &[RateBlock]) -> bool {
        // NaN != NaN: compare the bytes.
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (&x.vm, x.start_ms, x.step_ms, encode_rates(&x.rates))
                    == (&y.vm, y.start_ms, y.step_ms, encode_rates(&y.rates))
            })
    }

    #[test]
    fn blocks_come_back_in_time_then_vm_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        let written = [
            block("b", 60_000, &[1.0, f32::NAN, 3.0]),
            block("a", 60_000, &[4.0]),
            block("a", 0, &[5.0, 6.0]),
        ];
        store.append_rate_blocks(&written, 0).expect("append");
        drop(store);
        let store = open(dir.path());
        let read = store
            .rate_blocks(None, 0, u64::MAX >> 1, None, 10)
            .expect("read");
        let expected = [written[2].clone(), written[1].clone(), written[0].clone()];
        assert!(same(&read, &expected), "{read:?}");
    }

    #[test]
    fn pages_follow_the_cursor_without_gaps_or_repeats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        let written: Vec<RateBlock> = (0..7)
            .flat_map(|i| ["x", "y"].map(|vm| block(vm, i * 60_000, &[i as f32])))
            .collect();
        store.append_rate_blocks(&written, 0).expect("append");
        let mut cursor = None;
        let mut all = Vec::new();
        loop {
            let page = store
                .rate_blocks(None, 0, i64::MAX as u64, cursor.as_ref(), 3)
                .expect("page");
            let Some(last) = page.last() else { break };
            cursor = Some(RateCursor {
                start_ms: last.start_ms,
                vm: last.vm.to_string(),
            });
            all.extend(page);
        }
        assert!(same(&all, &written), "{all:?}");
    }

    #[test]
    fn a_vm_and_a_time_window_select_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        let written = [
            block("a", 0, &[1.0]),
            block("b", 0, &[2.0]),
            block("a", 60_000, &[3.0]),
        ];
        store.append_rate_blocks(&written, 0).expect("append");
        let only_a = store
            .rate_blocks(Some("a"), 0, 1 << 40, None, 10)
            .expect("a");
        assert!(same(&only_a, &[written[0].clone(), written[2].clone()]));
        let window = store
            .rate_blocks(None, 1, 120_000, None, 10)
            .expect("window");
        assert!(same(&window, &[written[2].clone()]));
    }

    #[test]
    fn blocks_older_than_the_cut_are_deleted_with_the_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        store
            .append_rate_blocks(&[block("a", 0, &[1.0]), block("a", 60_000, &[2.0])], 0)
            .expect("append");
        store
            .append_rate_blocks(&[block("a", 120_000, &[3.0])], 60_000)
            .expect("append with cut");
        let left = store.rate_blocks(None, 0, 1 << 40, None, 10).expect("read");
        let starts: Vec<u64> = left.iter().map(|b| b.start_ms).collect();
        assert_eq!(starts, [60_000, 120_000]);
    }

    #[test]
    fn a_block_written_again_keeps_the_steps_known_in_either() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        store
            .append_rate_blocks(&[block("a", 0, &[1.0, 2.0, f32::NAN])], 0)
            .expect("first run");
        store
            .append_rate_blocks(&[block("a", 0, &[f32::NAN, 5.0, 6.0])], 0)
            .expect("after a restart");
        let read = store.rate_blocks(None, 0, 1 << 40, None, 10).expect("read");
        assert_eq!(read[0].rates, [1.0, 5.0, 6.0]);
    }

    #[test]
    fn rates_that_are_not_whole_floats_are_a_corrupt_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        store
            .append_rate_blocks(&[block("a", 0, &[1.0])], 0)
            .expect("append");
        store
            .conn
            .execute("UPDATE traffic_rates SET rates = X'010203'", [])
            .expect("corrupt");
        let err = store
            .rate_blocks(None, 0, 1 << 40, None, 10)
            .expect_err("corrupt");
        assert!(err.to_string().contains("a at 0"), "{err}");
    }
}

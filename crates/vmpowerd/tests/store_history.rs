//! The decision history on real SQLite files: round trip, the bound kept
//! by single and batched appends, filters by VM, time and count, newest
//! first, persistence across a reopen, corrupt rows reported.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::json;
use vmpower_api::answers::DecisionInputs;
use vmpower_cpufreq::{CpuId, Khz};
use vmpower_engine::VmId;
use vmpowerd::store::{DB_FILE_NAME, HistoryEntry, Store, StoreError, StoreOptions};

fn open(dir: &Path, history_limit: u64) -> Store {
    let options = StoreOptions {
        history_limit,
        ..StoreOptions::default()
    };
    Store::open_in_dir(dir, options).unwrap()
}

fn entry(at_ms: u64, vm: Option<&str>, pcpu: u32) -> HistoryEntry {
    HistoryEntry {
        at_ms,
        vm: vm.map(VmId::new),
        pcpu: CpuId(pcpu),
        old: Some(Khz(1_200_000)),
        new: Khz(2_400_000),
        reason: format!("TRAFFIC: rate above max at {at_ms}"),
        inputs: DecisionInputs::Other(json!({"rate_pps": at_ms * 10, "mac": "52:54:00:12:34:56"})),
    }
}

fn times(entries: &[HistoryEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.at_ms).collect()
}

#[test]
fn entries_round_trip_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 100);
    let mut daemon_own = entry(30, None, 0);
    daemon_own.old = None;
    daemon_own.inputs = DecisionInputs::Unmeasured;
    let written = [
        entry(10, Some("vm-a"), 1),
        entry(20, Some("vm-b"), 2),
        daemon_own,
    ];
    for e in &written {
        store.append_history(e).unwrap();
    }
    let read = store.history(None, None, 10).unwrap();
    let mut expected = written.to_vec();
    expected.reverse();
    assert_eq!(read, expected);
}

#[test]
fn single_appends_keep_at_most_the_limit_dropping_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 5);
    for t in 0..12 {
        store.append_history(&entry(t, Some("vm-a"), 0)).unwrap();
        assert!(store.history_len().unwrap() <= 5, "after {t}");
    }
    assert_eq!(store.history_len().unwrap(), 5);
    assert_eq!(
        times(&store.history(None, None, 100).unwrap()),
        [11, 10, 9, 8, 7]
    );
}

#[test]
fn a_batch_larger_than_the_limit_keeps_its_newest() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 4);
    store.append_history(&entry(1, Some("vm-a"), 0)).unwrap();
    let batch: Vec<_> = (100..110).map(|t| entry(t, Some("vm-b"), 1)).collect();
    store.append_history_batch(&batch).unwrap();
    assert_eq!(store.history_len().unwrap(), 4);
    assert_eq!(
        times(&store.history(None, None, 100).unwrap()),
        [109, 108, 107, 106]
    );
    store.append_history_batch(&[]).unwrap();
    assert_eq!(store.history_len().unwrap(), 4, "an empty batch is a no-op");
}

#[test]
fn a_limit_of_zero_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0);
    store.append_history(&entry(1, Some("vm-a"), 0)).unwrap();
    assert_eq!(store.history_len().unwrap(), 0);
}

#[test]
fn filters_by_vm_since_and_limit_alone_and_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 1000);
    let batch: Vec<_> = (0..30)
        .map(|t| {
            let vm = match t % 3 {
                0 => Some("vm-a"),
                1 => Some("vm-b"),
                _ => None,
            };
            entry(t * 100, vm, 0)
        })
        .collect();
    store.append_history_batch(&batch).unwrap();
    let a = VmId::new("vm-a");

    let only_a = store.history(Some(&a), None, 100).unwrap();
    assert_eq!(only_a.len(), 10);
    assert!(only_a.iter().all(|e| e.vm.as_ref() == Some(&a)));
    assert_eq!(only_a[0].at_ms, 2700, "newest first");

    let since = store.history(None, Some(2500), 100).unwrap();
    assert_eq!(times(&since), [2900, 2800, 2700, 2600, 2500], "inclusive");

    assert_eq!(
        times(&store.history(None, None, 3).unwrap()),
        [2900, 2800, 2700]
    );
    assert!(store.history(None, None, 0).unwrap().is_empty());

    let both = store.history(Some(&a), Some(1500), 2).unwrap();
    assert_eq!(times(&both), [2700, 2400]);
    let none = store.history(Some(&VmId::new("vm-zz")), None, 100).unwrap();
    assert!(none.is_empty());
}

#[test]
fn newest_first_is_by_time_even_when_appended_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 100);
    for t in [50, 10, 30, 30] {
        store.append_history(&entry(t, Some("vm-a"), 0)).unwrap();
    }
    assert_eq!(
        times(&store.history(None, None, 10).unwrap()),
        [50, 30, 30, 10]
    );
}

#[test]
fn history_and_its_bound_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), 3);
        let batch: Vec<_> = (0..5).map(|t| entry(t, Some("vm-a"), 0)).collect();
        store.append_history_batch(&batch).unwrap();
    }
    let mut store = open(dir.path(), 3);
    assert_eq!(times(&store.history(None, None, 10).unwrap()), [4, 3, 2]);
    store.append_history(&entry(5, Some("vm-a"), 0)).unwrap();
    assert_eq!(times(&store.history(None, None, 10).unwrap()), [5, 4, 3]);
}

#[test]
fn corrupt_inputs_are_an_error_naming_the_vm() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), 10);
        store.append_history(&entry(1, Some("vm-h"), 0)).unwrap();
    }
    rusqlite::Connection::open(dir.path().join(DB_FILE_NAME))
        .unwrap()
        .execute("UPDATE history SET inputs = '{oops'", [])
        .unwrap();
    let store = open(dir.path(), 10);
    let err = store.history(None, None, 10).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CorruptJson {
                column: "inputs",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("VM vm-h"), "{err}");
}

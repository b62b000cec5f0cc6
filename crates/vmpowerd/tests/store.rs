//! The state database on real SQLite files in temp dirs: round trips of
//! policies, settings, the vCPU→pCPU map and the takeover record;
//! replacement and removal; persistence across a reopen and across a
//! kill -9 of the writing process; migration of an empty file; refusal of a
//! newer schema; corrupt rows reported with their VM, never a panic.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use vmpower_cpufreq::takeover::{CpuOriginal, RECORD_VERSION, TakeoverRecord};
use vmpower_cpufreq::{CpuId, Khz};
use vmpower_engine::{ChannelId, VmId, VmSettings};
use vmpower_proto::{
    HourSchedule, HourSet, Layout, MacAddr, MacList, Policy, PolicyKind, TrafficThresholds,
    VcpuList, WorkloadLevel,
};
use vmpowerd::store::{
    DB_FILE_NAME, PolicySource, SCHEMA_VERSION, Store, StoreError, StoreOptions, StoredPolicy,
};

fn open(dir: &Path) -> Store {
    Store::open_in_dir(dir, StoreOptions::default()).unwrap()
}

fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(DB_FILE_NAME)).unwrap()
}

fn time_policy() -> Policy {
    Policy {
        hours: HourSchedule {
            busy: HourSet::from_hours([8, 9, 10]).unwrap(),
            // Hour 0 explicitly: a set, not a zero-filled array.
            quiet: HourSet::from_hours([0, 1, 2]).unwrap(),
            traffic: HourSet::from_hours([12]).unwrap(),
        },
        workload: WorkloadLevel::default(),
        ..Policy::new(PolicyKind::Time, VcpuList::from_slice(&[0, 1, 2]).unwrap())
    }
}

fn traffic_policy() -> Policy {
    Policy {
        macs: MacList::from_slice(&[MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56])]).unwrap(),
        traffic: TrafficThresholds {
            min_pps: 10,
            avg_pps: 1000,
            max_pps: 100_000,
        },
        workload: WorkloadLevel::default(),
        turbo_boost: true,
        ..Policy::new(PolicyKind::Traffic, VcpuList::from_slice(&[3]).unwrap())
    }
}

fn guest_source(vm: &str, index: u32) -> PolicySource {
    PolicySource::GuestChannel(ChannelId {
        vm: VmId::new(vm),
        index,
    })
}

fn with_extensions(mut p: StoredPolicy) -> StoredPolicy {
    p.extensions
        .insert("time_zone".to_owned(), json!("Europe/Paris"));
    p.extensions.insert("other_hours".to_owned(), json!("min"));
    p.extensions.insert(
        "hysteresis".to_owned(),
        json!({"band_percent": 10, "dwell_ms": 500}),
    );
    p
}

fn takeover_record() -> TakeoverRecord {
    let mut cpus = BTreeMap::new();
    cpus.insert(
        CpuId(2),
        CpuOriginal {
            governor: "schedutil".to_owned(),
            min: Khz(800_000),
            max: Khz(3_600_000),
            setspeed: None,
            epp: Some("balance_performance".to_owned()),
        },
    );
    TakeoverRecord {
        version: RECORD_VERSION,
        cpus,
        turbo: None,
        uncore: BTreeMap::new(),
    }
}

#[test]
fn policies_round_trip_in_vm_order_with_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let b = with_extensions(StoredPolicy::new(
        time_policy(),
        guest_source("vm-b", 1),
        1_700_000_000,
    ));
    let a = StoredPolicy::new(traffic_policy(), PolicySource::Fifo(3), 1_700_000_100);
    let c = StoredPolicy::new(
        time_policy(),
        PolicySource::PolicyDir("c.toml".to_owned()),
        5,
    );
    store.put_policy(&VmId::new("vm-b"), &b).unwrap();
    store.put_policy(&VmId::new("vm-a"), &a).unwrap();
    store.put_policy(&VmId::new("vm-c"), &c).unwrap();

    let all = store.policies().unwrap();
    let names: Vec<&str> = all.iter().map(|(vm, _)| vm.as_str()).collect();
    assert_eq!(names, ["vm-a", "vm-b", "vm-c"]);
    assert_eq!(all[0].1, a);
    assert_eq!(all[1].1, b);
    assert_eq!(all[2].1, c);
    assert_eq!(store.policy(&VmId::new("vm-b")).unwrap(), Some(b));
    assert_eq!(store.policy(&VmId::new("vm-z")).unwrap(), None);
}

#[test]
fn a_policy_replaces_the_vms_earlier_one_and_removal_withdraws_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let vm = VmId::new("vm-a");
    let first = StoredPolicy::new(time_policy(), guest_source("vm-a", 0), 100);
    let second = StoredPolicy::new(traffic_policy(), PolicySource::Operator, 200);
    store.put_policy(&vm, &first).unwrap();
    store.put_policy(&vm, &second).unwrap();
    assert_eq!(store.policies().unwrap(), [(vm.clone(), second.clone())]);

    assert!(store.remove_policy(&vm).unwrap());
    assert!(!store.remove_policy(&vm).unwrap(), "already gone");
    assert_eq!(store.policy(&vm).unwrap(), None);
    assert!(store.policies().unwrap().is_empty());
}

#[test]
fn settings_and_the_pcpu_map_round_trip_replace_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let (a, b) = (VmId::new("vm-a"), VmId::new("vm-b"));
    let granted = VmSettings {
        layout: Layout::default(),
        queries_allowed: true,
        physical_allowed: true,
        multi_pcpu_allowed: false,
        ..VmSettings::default()
    };
    store.put_settings(&b, &VmSettings::default()).unwrap();
    store.put_settings(&a, &VmSettings::default()).unwrap();
    store.put_settings(&a, &granted).unwrap();
    assert_eq!(
        store.settings().unwrap(),
        [(a.clone(), granted), (b.clone(), VmSettings::default())]
    );
    assert!(store.remove_settings(&b).unwrap());
    assert!(!store.remove_settings(&b).unwrap());
    assert_eq!(store.settings().unwrap(), [(a.clone(), granted)]);

    store.put_pcpu(&b, 0, CpuId(7)).unwrap();
    store.put_pcpu(&a, 1, CpuId(3)).unwrap();
    store.put_pcpu(&a, 0, CpuId(2)).unwrap();
    store.put_pcpu(&a, 1, CpuId(5)).unwrap();
    assert_eq!(
        store.pcpus().unwrap(),
        [
            (a.clone(), 0, CpuId(2)),
            (a.clone(), 1, CpuId(5)),
            (b.clone(), 0, CpuId(7))
        ]
    );
    assert!(store.remove_pcpu(&a, 0).unwrap());
    assert!(!store.remove_pcpu(&a, 0).unwrap());
    assert_eq!(store.remove_pcpus(&b).unwrap(), 1);
    assert_eq!(store.pcpus().unwrap(), [(a, 1, CpuId(5))]);
}

#[test]
fn the_takeover_record_round_trips_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    assert_eq!(store.load_takeover().unwrap(), None);
    let mut record = takeover_record();
    store.save_takeover(&record).unwrap();
    assert_eq!(store.load_takeover().unwrap(), Some(record.clone()));
    record.cpus.remove(&CpuId(2));
    record.cpus.insert(
        CpuId(0),
        CpuOriginal {
            governor: "userspace".to_owned(),
            min: Khz(1),
            max: Khz(2),
            setspeed: Some(Khz(2)),
            epp: None,
        },
    );
    store.save_takeover(&record).unwrap();
    assert_eq!(store.load_takeover().unwrap(), Some(record));
    store.clear_takeover().unwrap();
    assert_eq!(store.load_takeover().unwrap(), None);
}

#[test]
fn everything_is_back_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let vm = VmId::new("vm-a");
    let policy = with_extensions(StoredPolicy::new(
        time_policy(),
        guest_source("vm-a", 2),
        42,
    ));
    let settings = VmSettings {
        queries_allowed: true,
        ..VmSettings::default()
    };
    {
        let mut store = open(dir.path());
        store.put_policy(&vm, &policy).unwrap();
        store.put_settings(&vm, &settings).unwrap();
        store.put_pcpu(&vm, 0, CpuId(4)).unwrap();
        store.save_takeover(&takeover_record()).unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.policies().unwrap(), [(vm.clone(), policy)]);
    assert_eq!(store.settings().unwrap(), [(vm.clone(), settings)]);
    assert_eq!(store.pcpus().unwrap(), [(vm, 0, CpuId(4))]);
    assert_eq!(store.load_takeover().unwrap(), Some(takeover_record()));
}

const CHILD_ENV: &str = "VMPOWER_STORE_KILL9_DIR";
/// What the child prints once its writes returned. libtest has already
/// printed `test kill9_child ... ` on that line: match its end.
const STORED: &str = "stored";
/// How long the child may take to store: a guard against a hang, not a
/// measurement.
const CHILD_GUARD: Duration = Duration::from_secs(120);

/// Not a test on its own: the child process of
/// [`an_accepted_policy_survives_kill_9`], selected by `CHILD_ENV`. It
/// stores, says so, and waits to be killed with its connection open.
#[test]
#[ignore = "child process of an_accepted_policy_survives_kill_9"]
fn kill9_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut store = open(Path::new(&dir));
    let policy = StoredPolicy::new(traffic_policy(), guest_source("vm-k", 0), 77);
    store.put_policy(&VmId::new("vm-k"), &policy).unwrap();
    store.save_takeover(&takeover_record()).unwrap();
    println!("{STORED}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[test]
fn an_accepted_policy_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill9_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Read on a thread so that a child that never says "stored" fails the
    // test after a generous guard instead of hanging it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stored = BufReader::new(stdout)
            .lines()
            .any(|l| l.is_ok_and(|l| l.trim_end().ends_with(STORED)));
        let _ = tx.send(stored);
    });
    if rx.recv_timeout(CHILD_GUARD) != Ok(true) {
        let _ = child.kill();
        panic!("child did not store: {:?}", child.wait());
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed, not exited: {status:?}");
    let wal = dir.path().join(format!("{DB_FILE_NAME}-wal"));
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the commit is still in the WAL: no clean close happened"
    );

    let store = open(dir.path());
    let expected = StoredPolicy::new(traffic_policy(), guest_source("vm-k", 0), 77);
    assert_eq!(store.policies().unwrap(), [(VmId::new("vm-k"), expected)]);
    assert_eq!(store.load_takeover().unwrap(), Some(takeover_record()));
}

#[test]
fn an_empty_file_is_migrated_to_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    std::fs::File::create(&path).unwrap();
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), i64::from(SCHEMA_VERSION));
    assert_eq!(SCHEMA_VERSION, 2);
    store
        .put_policy(
            &VmId::new("vm-a"),
            &StoredPolicy::new(time_policy(), PolicySource::Operator, 1),
        )
        .unwrap();
    assert_eq!(store.policies().unwrap().len(), 1);
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    raw(dir.path())
        .execute("UPDATE schema_version SET version = 3", [])
        .unwrap();
    let err = Store::open_in_dir(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("schema version 3"), "{text}");
    assert!(text.contains(DB_FILE_NAME), "{text}");
    let version: i64 = raw(dir.path())
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}

#[test]
fn corrupt_policy_rows_are_errors_naming_the_vm() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        for vm in ["vm-a", "vm-b", "vm-c", "vm-d"] {
            let p = StoredPolicy::new(time_policy(), PolicySource::Operator, 1);
            store.put_policy(&VmId::new(vm), &p).unwrap();
        }
    }
    let conn = raw(dir.path());
    for sql in [
        "UPDATE policies SET policy = '{\"kind\":' WHERE vm = 'vm-b'",
        "UPDATE policies SET source = 'carrier pigeon' WHERE vm = 'vm-c'",
        "UPDATE policies SET format = 9 WHERE vm = 'vm-d'",
    ] {
        conn.execute(sql, []).unwrap();
    }
    let store = open(dir.path());
    assert!(store.policy(&VmId::new("vm-a")).unwrap().is_some());
    let err = store.policy(&VmId::new("vm-b")).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CorruptJson {
                column: "policy",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("VM vm-b"), "{err}");
    let err = store.policy(&VmId::new("vm-c")).unwrap_err();
    assert!(err.to_string().contains("VM vm-c"), "{err}");
    assert!(err.to_string().contains("carrier pigeon"), "{err}");
    let err = store.policy(&VmId::new("vm-d")).unwrap_err();
    assert!(err.to_string().contains("format 9"), "{err}");
    let err = store.policies().unwrap_err();
    assert!(err.to_string().contains("VM vm-b"), "first bad row: {err}");
}

#[test]
fn corrupt_settings_and_takeover_rows_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        store
            .put_settings(&VmId::new("vm-s"), &VmSettings::default())
            .unwrap();
        store.save_takeover(&takeover_record()).unwrap();
    }
    let conn = raw(dir.path());
    conn.execute("UPDATE vm_settings SET settings = '[1,2]'", [])
        .unwrap();
    conn.execute("UPDATE takeover SET record = 'not json'", [])
        .unwrap();
    let store = open(dir.path());
    let err = store.settings().unwrap_err();
    assert!(err.to_string().contains("VM vm-s"), "{err}");
    let err = store.load_takeover().unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CorruptJson {
                table: "takeover",
                ..
            }
        ),
        "{err:?}"
    );
}

//! The schema of the state database and its forward migrations.
//!
//! ## Invariants
//! - The table `schema_version` holds one row: the version the tables are
//!   at. A file without it is version 0 (new or empty).
//! - Migrations only go forward, one version at a time, all of them in
//!   one transaction with the version update: a crash mid-migration leaves
//!   the file at its old version, never half-migrated.
//! - A file at a version above [`SCHEMA_VERSION`] is refused and left
//!   untouched: an older daemon must not guess at a newer layout.
//!
//! ## Behavior
//! Adding version N+1: append its SQL to [`MIGRATIONS`] and bump
//! [`SCHEMA_VERSION`]; never edit an earlier entry (files in the field are
//! already at it). JSON columns carry their own format version (a `format`
//! column, or the takeover record's `version` field) so that a value's
//! encoding can evolve without a table migration.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{StoreError, sql_err};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 2;

/// `MIGRATIONS[i]` brings a file from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2];

/// Version 1: policies, settings, the vCPU→pCPU map, the takeover record
/// and the history. STRICT tables: SQLite refuses a value of the wrong
/// type instead of storing it.
const V1: &str = "
CREATE TABLE policies (
    vm          TEXT PRIMARY KEY NOT NULL,
    format      INTEGER NOT NULL,      -- POLICY_FORMAT of the `policy` JSON
    policy      TEXT NOT NULL,         -- vmpower_proto::Policy as JSON
    source      TEXT NOT NULL,         -- PolicySource as text
    accepted_at INTEGER NOT NULL,      -- unix seconds
    extensions  TEXT NOT NULL          -- JSON object
) STRICT;

CREATE TABLE vm_settings (
    vm       TEXT PRIMARY KEY NOT NULL,
    format   INTEGER NOT NULL,         -- SETTINGS_FORMAT of the JSON
    settings TEXT NOT NULL             -- vmpower_engine::VmSettings as JSON
) STRICT;

CREATE TABLE vcpu_pcpu (
    vm   TEXT NOT NULL,
    vcpu INTEGER NOT NULL CHECK (vcpu >= 0),
    pcpu INTEGER NOT NULL CHECK (pcpu >= 0),
    PRIMARY KEY (vm, vcpu)
) STRICT;

CREATE TABLE takeover (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    record TEXT NOT NULL               -- TakeoverRecord as JSON
) STRICT;

CREATE TABLE history (
    id      INTEGER PRIMARY KEY,       -- rowid: grows, only the oldest are deleted
    at_ms   INTEGER NOT NULL,          -- unix milliseconds
    vm      TEXT,
    pcpu    INTEGER NOT NULL,
    old_khz INTEGER,
    new_khz INTEGER NOT NULL,
    reason  TEXT NOT NULL,
    inputs  TEXT NOT NULL              -- JSON
) STRICT;
CREATE INDEX history_by_time ON history (at_ms);
CREATE INDEX history_by_vm_time ON history (vm, at_ms);
";

/// Version 2: the record of the packet rates the traffic sampler measured
/// (`traffic::record`): one row per VM and block of steps, the rates as
/// little-endian f32 (NaN: not measured).
const V2: &str = "
CREATE TABLE traffic_rates (
    vm       TEXT NOT NULL,
    start_ms INTEGER NOT NULL,         -- unix milliseconds of the first step
    step_ms  INTEGER NOT NULL CHECK (step_ms > 0),
    rates    BLOB NOT NULL,            -- f32 LE packets/s per step
    PRIMARY KEY (vm, start_ms)
) STRICT;
CREATE INDEX traffic_rates_by_time ON traffic_rates (start_ms);
";

/// Reads the version recorded in the file: 0 when there is none.
pub(super) fn read_version(conn: &Connection) -> rusqlite::Result<i64> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    Ok(conn
        .query_row("SELECT version FROM schema_version WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

/// Brings the file to [`SCHEMA_VERSION`]; returns the version it was at.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<i64, StoreError> {
    let op = "migrate schema";
    let err = |e| sql_err(path, op, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let found = read_version(&tx).map_err(err)?;
    if found > i64::from(SCHEMA_VERSION) {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let start = usize::try_from(found).map_err(|_| StoreError::CorruptRow {
        path: path.to_owned(),
        table: "schema_version",
        row: "row 1".to_owned(),
        what: format!("negative version {found}"),
    })?;
    if start == MIGRATIONS.len() {
        return Ok(found);
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            id      INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        ) STRICT;",
    )
    .map_err(err)?;
    for sql in &MIGRATIONS[start..] {
        tx.execute_batch(sql).map_err(err)?;
    }
    tx.execute(
        "INSERT INTO schema_version (id, version) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        [SCHEMA_VERSION],
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn migrating_a_new_file_creates_every_table_at_the_latest_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let mut conn = Connection::open(&path).expect("open");
        assert_eq!(read_version(&conn).expect("version"), 0);
        assert_eq!(migrate(&mut conn, &path).expect("migrate"), 0);
        assert_eq!(
            read_version(&conn).expect("version"),
            i64::from(SCHEMA_VERSION)
        );
        assert_eq!(
            tables(&conn),
            [
                "history",
                "policies",
                "schema_version",
                "takeover",
                "traffic_rates",
                "vcpu_pcpu",
                "vm_settings"
            ]
        );
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let mut conn = Connection::open(&path).expect("open");
        migrate(&mut conn, &path).expect("first");
        assert_eq!(
            migrate(&mut conn, &path).expect("second"),
            i64::from(SCHEMA_VERSION)
        );
    }

    #[test]
    fn a_newer_version_is_refused_and_left_as_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let mut conn = Connection::open(&path).expect("open");
        migrate(&mut conn, &path).expect("migrate");
        conn.execute("UPDATE schema_version SET version = 7", [])
            .expect("bump");
        let err = migrate(&mut conn, &path).expect_err("newer");
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 7, .. }),
            "{err:?}"
        );
        assert_eq!(read_version(&conn).expect("version"), 7);
    }

    #[test]
    fn a_negative_version_is_a_corrupt_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let mut conn = Connection::open(&path).expect("open");
        migrate(&mut conn, &path).expect("migrate");
        conn.execute("UPDATE schema_version SET version = -1", [])
            .expect("set");
        let err = migrate(&mut conn, &path).expect_err("negative");
        assert!(matches!(err, StoreError::CorruptRow { .. }), "{err:?}");
    }

    #[test]
    fn a_version_1_file_gains_the_rate_record_and_keeps_its_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let mut conn = Connection::open(&path).expect("open");
        // A file as a version-1 daemon left it.
        conn.execute_batch(V1).expect("v1 tables");
        conn.execute_batch(
            "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL) STRICT;
             INSERT INTO schema_version VALUES (1, 1);
             INSERT INTO history (at_ms, vm, pcpu, new_khz, reason, inputs) VALUES (5, 'vm-a', 2, 1000, 'r', '{}');",
        )
        .expect("v1 rows");
        assert_eq!(migrate(&mut conn, &path).expect("migrate"), 1);
        assert_eq!(read_version(&conn).expect("version"), 2);
        assert!(tables(&conn).contains(&"traffic_rates".to_owned()));
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
            .expect("count");
        assert_eq!(kept, 1);
    }
}

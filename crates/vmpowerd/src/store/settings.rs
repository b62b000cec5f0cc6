//! The operator's per-VM settings (layout, queries, grants) and the
//! operator's vCPU→pCPU map.
//!
//! ## Invariants
//! - One settings row per VM, one pCPU per (VM, vCPU): a put replaces.
//! - Every write is fsynced before it returns, like a policy: the operator
//!   was told it took effect.
//!
//! ## Behavior
//! [`VmSettings`] is stored as its serde JSON, tagged with
//! [`SETTINGS_FORMAT`]; a row with another format or bad JSON is an error
//! naming the VM and the row. Settings and map entries are independent:
//! removing a VM's settings keeps its map entries (see
//! [`Store::remove_pcpus`]).

use rusqlite::params;
use vmpower_cpufreq::CpuId;
use vmpower_engine::{Vcpu, VmId, VmSettings};

use super::{Store, StoreError, Synchronous};

/// The encoding of the `settings` column this build writes and reads.
pub const SETTINGS_FORMAT: i64 = 1;

const SETTINGS: &str = "vm_settings";
const PCPUS: &str = "vcpu_pcpu";

impl Store {
    /// Stores `settings` as `vm`'s, replacing earlier ones, durably.
    pub fn put_settings(&mut self, vm: &VmId, settings: &VmSettings) -> Result<(), StoreError> {
        let json = self.encode("VM settings", settings)?;
        self.write(Synchronous::Full, "put VM settings", |tx| {
            tx.execute(
                "INSERT INTO vm_settings (vm, format, settings) VALUES (?1, ?2, ?3)
                 ON CONFLICT (vm) DO UPDATE SET format = excluded.format,
                    settings = excluded.settings",
                params![vm.as_str(), SETTINGS_FORMAT, json],
            )
        })?;
        Ok(())
    }

    /// Forgets `vm`'s settings, durably; whether there were any.
    pub fn remove_settings(&mut self, vm: &VmId) -> Result<bool, StoreError> {
        let n = self.write(Synchronous::Full, "remove VM settings", |tx| {
            tx.execute("DELETE FROM vm_settings WHERE vm = ?1", [vm.as_str()])
        })?;
        Ok(n > 0)
    }

    /// Every VM's settings, ordered by VM name.
    pub fn settings(&self) -> Result<Vec<(VmId, VmSettings)>, StoreError> {
        let rows = self.read("read VM settings", |conn| {
            conn.prepare_cached("SELECT rowid, vm, format, settings FROM vm_settings ORDER BY vm")?
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(rowid, vm, format, json)| {
                let row = format!("row {rowid} (VM {vm})");
                if format != SETTINGS_FORMAT {
                    return Err(self.corrupt(
                        SETTINGS,
                        &row,
                        format!(
                            "settings format {format} unknown (this build reads {SETTINGS_FORMAT})"
                        ),
                    ));
                }
                let settings = self.decode(SETTINGS, &row, "settings", &json)?;
                Ok((VmId::new(&vm), settings))
            })
            .collect()
    }

    /// Maps `vm`'s vCPU `vcpu` to host CPU `pcpu`, replacing an earlier
    /// entry, durably.
    pub fn put_pcpu(&mut self, vm: &VmId, vcpu: Vcpu, pcpu: CpuId) -> Result<(), StoreError> {
        self.write(Synchronous::Full, "put vCPU→pCPU entry", |tx| {
            tx.execute(
                "INSERT INTO vcpu_pcpu (vm, vcpu, pcpu) VALUES (?1, ?2, ?3)
                 ON CONFLICT (vm, vcpu) DO UPDATE SET pcpu = excluded.pcpu",
                params![vm.as_str(), vcpu, pcpu.0],
            )
        })?;
        Ok(())
    }

    /// Removes the entry of `vm`'s vCPU `vcpu`, durably; whether there was one.
    pub fn remove_pcpu(&mut self, vm: &VmId, vcpu: Vcpu) -> Result<bool, StoreError> {
        let n = self.write(Synchronous::Full, "remove vCPU→pCPU entry", |tx| {
            tx.execute(
                "DELETE FROM vcpu_pcpu WHERE vm = ?1 AND vcpu = ?2",
                params![vm.as_str(), vcpu],
            )
        })?;
        Ok(n > 0)
    }

    /// Removes every entry of `vm`, durably; how many there were.
    pub fn remove_pcpus(&mut self, vm: &VmId) -> Result<usize, StoreError> {
        self.write(Synchronous::Full, "remove vCPU→pCPU entries", |tx| {
            tx.execute("DELETE FROM vcpu_pcpu WHERE vm = ?1", [vm.as_str()])
        })
    }

    /// Every map entry as (VM, vCPU, pCPU), ordered by VM then vCPU.
    pub fn pcpus(&self) -> Result<Vec<(VmId, Vcpu, CpuId)>, StoreError> {
        let rows = self.read("read vCPU→pCPU map", |conn| {
            conn.prepare_cached("SELECT vm, vcpu, pcpu FROM vcpu_pcpu ORDER BY vm, vcpu")?
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(vm, vcpu, pcpu)| {
                let bad = || {
                    self.corrupt(
                        PCPUS,
                        &format!("row (VM {vm}, vCPU {vcpu})"),
                        format!("vCPU {vcpu} or pCPU {pcpu} is not a CPU number"),
                    )
                };
                let vcpu = Vcpu::try_from(vcpu).map_err(|_| bad())?;
                let pcpu = u32::try_from(pcpu).map_err(|_| bad())?;
                Ok((VmId::new(&vm), vcpu, CpuId(pcpu)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[test]
    fn pcpu_numbers_beyond_u32_are_a_corrupt_row_not_a_wrap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open_in_dir(dir.path(), StoreOptions::default()).expect("open");
        let vm = VmId::new("vm-a");
        store.put_pcpu(&vm, 0, CpuId(3)).expect("put");
        store
            .conn
            .execute("UPDATE vcpu_pcpu SET pcpu = 4294967296", [])
            .expect("raw update");
        let err = store.pcpus().expect_err("out of range");
        assert!(
            matches!(&err, StoreError::CorruptRow { table: PCPUS, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("vm-a"), "{err}");
    }
}

//! What the façade needs of each CPU — driver, frequency table, frequency
//! domain, current frequency — taken from [`crate::discovery`].
//!
//! ## Behavior
//! - Only online CPUs with cpufreq are listed.
//! - The table is `scaling_available_frequencies` where the driver offers
//!   it ([`FreqTable::from_available`]: turbo by acpi-cpufreq's
//!   `f[0] - 1000 == f[1]`), else synthesized ([`FreqTable::synthesize`])
//!   from `cpuinfo_min_freq`, `cpuinfo_max_freq` and the base frequency
//!   discovery found (`base_frequency`, CPPC `nominal_freq`): turbo is then
//!   `cpuinfo_max_freq` at index 0 when it is above the base.
//! - The domain is `related_cpus`.
//! - A CPU starts with its per-core turbo flag on when its table has turbo
//!   and the global switch does not forbid it (librte_power starts with it
//!   on whenever the table has turbo; with the global switch off the kernel
//!   would refuse the turbo entry anyway).

use crate::discovery::{DiscoveryError, HostCpus, discover};
use crate::levels::{FreqTable, LevelError};
use crate::sysfs::SysfsIo;
use crate::types::{CpuId, Driver, Khz};

/// Why the managed CPUs could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Discovery failed (names the file).
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// A CPU's frequencies do not make a table.
    #[error("{cpu}: no valid frequency table")]
    Table {
        /// The CPU.
        cpu: CpuId,
        /// Why.
        #[source]
        source: LevelError,
    },
}

/// One CPU the façade manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedCpu {
    /// The CPU.
    pub cpu: CpuId,
    /// Its driver.
    pub driver: Driver,
    /// Its frequency table.
    pub table: FreqTable,
    /// Every CPU of its frequency domain, itself included.
    pub domain: Vec<CpuId>,
    /// Its current frequency, placing its initial level (nearest entry).
    pub current: Option<Khz>,
    /// The initial per-core turbo flag: the table has turbo and the global
    /// switch (if any) has it on.
    pub turbo_enabled: bool,
}

/// The managed CPUs of a discovered host.
pub fn managed_cpus(host: &HostCpus) -> Result<Vec<ManagedCpu>, InventoryError> {
    let mut out = Vec::new();
    for info in host.with_cpufreq() {
        let Some(freq) = &info.cpufreq else { continue };
        let table = match &freq.table {
            Some(list) => FreqTable::from_available(list),
            None => FreqTable::synthesize(freq.cpuinfo_min, freq.cpuinfo_max, freq.base),
        }
        .map_err(|source| InventoryError::Table {
            cpu: info.id,
            source,
        })?;
        let mut domain: Vec<CpuId> = freq.related_cpus.iter().copied().collect();
        if !domain.contains(&info.id) {
            domain.push(info.id);
            domain.sort_unstable();
        }
        out.push(ManagedCpu {
            cpu: info.id,
            turbo_enabled: table.turbo_available() && host.turbo_enabled().unwrap_or(true),
            table,
            driver: freq.driver.clone(),
            domain,
            current: Some(freq.state.cur),
        });
    }
    Ok(out)
}

/// Discovers the host under `io` and lists its managed CPUs.
pub fn inventory(io: &dyn SysfsIo) -> Result<(HostCpus, Vec<ManagedCpu>), InventoryError> {
    let host = discover(io)?;
    let cpus = managed_cpus(&host)?;
    Ok((host, cpus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeSysfs;

    #[test]
    fn tables_domains_and_current_come_from_discovery() {
        let fake = FakeSysfs::builder(4)
            .driver(Driver::IntelPstate)
            .domain_size(2)
            .offline(&[3])
            .build()
            .unwrap();
        let (_, cpus) = inventory(&fake).unwrap();
        assert_eq!(cpus.iter().map(|c| c.cpu.0).collect::<Vec<_>>(), [0, 1, 2]);
        let c2 = &cpus[2];
        assert_eq!(
            c2.domain,
            [CpuId(2), CpuId(3)],
            "offline sibling still in the domain"
        );
        assert!(c2.table.turbo_available());
        assert_eq!(c2.table.get(0), Some(Khz(3_500_000)));
        assert_eq!(c2.table.get(1), Some(Khz(2_300_000)));
        assert_eq!(c2.current, Some(Khz(800_000)));
        assert!(c2.turbo_enabled);
    }

    #[test]
    fn global_turbo_off_starts_cores_with_turbo_off() {
        let fake = FakeSysfs::builder(1).turbo_enabled(false).build().unwrap();
        let (_, cpus) = inventory(&fake).unwrap();
        assert!(cpus[0].table.turbo_available());
        assert!(!cpus[0].turbo_enabled);
    }

    #[test]
    fn acpi_table_is_read_not_synthesized() {
        let table = vec![Khz(2_000_000), Khz(1_500_000), Khz(1_000_000)];
        let fake = FakeSysfs::builder(1).table(table).build().unwrap();
        let (_, cpus) = inventory(&fake).unwrap();
        let freqs: Vec<u32> = cpus[0].table.freqs().iter().map(|k| k.0).collect();
        assert_eq!(freqs, [2_001_000, 2_000_000, 1_500_000, 1_000_000]);
        assert!(cpus[0].table.turbo_available());
    }
}

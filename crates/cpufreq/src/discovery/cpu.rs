//! One CPU as discovery sees it: topology, cpufreq description (driver,
//! table, limits, turbo, domain, EPP) and the dynamic state a backend reads
//! back after each write ([`read_state`]).
//!
//! ## Behavior
//! - `scaling_setspeed` reading `<unsupported>` (any governor but
//!   `userspace`) is `None`, never an error.
//! - The table is sorted highest first, whatever order the driver used.
//! - The base (highest non-turbo) frequency comes from `base_frequency`
//!   (intel_pstate), else `acpi_cppc/nominal_freq` (MHz; amd-pstate, cppc),
//!   else from acpi-cpufreq's table (the entry after the turbo pseudo-entry).
//! - Turbo is available on acpi-cpufreq when `f[0] - 1000 == f[1]` or
//!   `cpufreq/boost` exists; on intel_pstate when `cpuinfo_max_freq` is above
//!   the base or `turbo_pct` is non-zero (newer kernels lower
//!   `cpuinfo_max_freq` while `no_turbo` is set); on amd-pstate and cppc
//!   when `cpufreq/boost` exists or the max is above the base.

use std::collections::BTreeSet;
use std::fs;

use serde::{Deserialize, Serialize};

use super::globals::GlobalSwitches;
use super::{paths, read};
use crate::sysfs::{SysfsError, SysfsIo};
use crate::types::{CpuId, Driver, Khz};

/// Where a CPU sits; ids are `None` when absent or `-1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// `physical_package_id`.
    pub package: Option<u32>,
    /// `die_id`.
    pub die: Option<u32>,
    /// `core_id` (unique within a package only).
    pub core: Option<u32>,
    /// `thread_siblings_list`: the online threads of this core, itself included.
    pub thread_siblings: BTreeSet<CpuId>,
}

/// What changes at run time: what a backend reads back after a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreqState {
    /// `scaling_governor`.
    pub governor: String,
    /// `scaling_min_freq`.
    pub scaling_min: Khz,
    /// `scaling_max_freq`.
    pub scaling_max: Khz,
    /// `scaling_cur_freq`.
    pub cur: Khz,
    /// `scaling_setspeed`; `None` when it reads `<unsupported>` or is absent.
    pub setspeed: Option<Khz>,
}

/// Energy/performance preference (HWP, amd-pstate-epp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epp {
    /// `energy_performance_preference`.
    pub current: String,
    /// `energy_performance_available_preferences` (empty if absent).
    pub available: Vec<String>,
}

/// A CPU's cpufreq description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFreqInfo {
    /// `scaling_driver`; unknown drivers are [`Driver::Other`].
    pub driver: Driver,
    /// The policy directory name (`policy0`), shared by the domain.
    pub policy: String,
    /// `related_cpus`: every CPU of the frequency domain, online or not.
    pub related_cpus: BTreeSet<CpuId>,
    /// `affected_cpus`: the online CPUs of the domain.
    pub affected_cpus: BTreeSet<CpuId>,
    /// `scaling_available_governors`.
    pub available_governors: Vec<String>,
    /// `scaling_available_frequencies`, highest first (acpi-cpufreq: the
    /// turbo pseudo-entry first); `None` when the driver has none.
    pub table: Option<Vec<Khz>>,
    /// `cpuinfo_min_freq`.
    pub cpuinfo_min: Khz,
    /// `cpuinfo_max_freq` (includes turbo on intel_pstate).
    pub cpuinfo_max: Khz,
    /// The highest non-turbo frequency, when known (see module doc).
    pub base: Option<Khz>,
    /// Whether the hardware has turbo (see module doc); whether it is
    /// enabled is [`GlobalSwitches::turbo_enabled`].
    pub turbo_available: bool,
    /// EPP, where the driver has it.
    pub epp: Option<Epp>,
    /// Governor, bounds and current frequency at discovery time.
    pub state: FreqState,
}

/// One CPU of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// The CPU.
    pub id: CpuId,
    /// Whether it is online.
    pub online: bool,
    /// Its topology; `None` when offline (the kernel removes the directory).
    pub topology: Option<Topology>,
    /// Its cpufreq description; `None` when offline or without cpufreq.
    pub cpufreq: Option<CpuFreqInfo>,
}

impl CpuInfo {
    /// Whether the CPU is online and has cpufreq.
    pub fn has_cpufreq(&self) -> bool {
        self.cpufreq.is_some()
    }
}

/// Reads a CPU's dynamic state (governor, bounds, current frequency,
/// setspeed), e.g. to read back after a write or notice another tool.
pub fn read_state(io: &dyn SysfsIo, cpu: CpuId) -> Result<FreqState, SysfsError> {
    let file = |name: &str| paths::cpufreq_file(cpu, name);
    let setspeed_path = file("scaling_setspeed");
    let setspeed = match read::text_opt(io, &setspeed_path)? {
        None => None,
        Some(s) if s == "<unsupported>" => None,
        Some(s) => Some(read::parse_khz(io, &setspeed_path, &s)?),
    };
    Ok(FreqState {
        governor: read::text(io, &file("scaling_governor"))?,
        scaling_min: read::khz(io, &file("scaling_min_freq"))?,
        scaling_max: read::khz(io, &file("scaling_max_freq"))?,
        cur: read::khz(io, &file("scaling_cur_freq"))?,
        setspeed,
    })
}

/// Reads a CPU's topology, `None` when it has no `topology` directory.
pub fn read_topology(io: &dyn SysfsIo, cpu: CpuId) -> Result<Option<Topology>, SysfsError> {
    if !io.exists(&paths::cpu_dir(cpu).join("topology")) {
        return Ok(None);
    }
    let file = |name: &str| paths::topology_file(cpu, name);
    Ok(Some(Topology {
        package: read::id_opt(io, &file("physical_package_id"))?,
        die: read::id_opt(io, &file("die_id"))?,
        core: read::id_opt(io, &file("core_id"))?,
        thread_siblings: read::cpu_list_or_empty(io, &file("thread_siblings_list"))?,
    }))
}

/// The policy name: the target of the `cpuN/cpufreq` link, else (older
/// kernels with a real directory) `policyM` for the first related CPU.
fn policy_name(io: &dyn SysfsIo, cpu: CpuId, related: &BTreeSet<CpuId>) -> String {
    fs::read_link(io.root().join(paths::cpu_dir(cpu)).join("cpufreq"))
        .ok()
        .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("policy{}", related.first().unwrap_or(&cpu).0))
}

/// Reads a CPU's cpufreq description, `None` when it has no `cpufreq`.
pub fn read_cpufreq(
    io: &dyn SysfsIo,
    cpu: CpuId,
    globals: &GlobalSwitches,
) -> Result<Option<CpuFreqInfo>, SysfsError> {
    if !io.exists(&paths::cpu_dir(cpu).join("cpufreq")) {
        return Ok(None);
    }
    let file = |name: &str| paths::cpufreq_file(cpu, name);
    let driver = Driver::from_sysfs(&read::text(io, &file("scaling_driver"))?);
    let related_cpus = read::cpu_words(io, &file("related_cpus"))?;
    let affected_cpus = read::cpu_words(io, &file("affected_cpus"))?;
    let table = read::table_opt(io, &file("scaling_available_frequencies"))?;
    let cpuinfo_min = read::khz(io, &file("cpuinfo_min_freq"))?;
    let cpuinfo_max = read::khz(io, &file("cpuinfo_max_freq"))?;
    let pseudo_turbo = table
        .as_ref()
        .is_some_and(|t| t.len() >= 2 && t[0].0.checked_sub(1000) == Some(t[1].0));
    let cppc_nominal = read::number_opt(io, &paths::cppc_file(cpu, "nominal_freq"))?
        .and_then(|mhz| mhz.checked_mul(1000))
        .map(Khz);
    let table_base = table
        .as_ref()
        .and_then(|t| t.get(usize::from(pseudo_turbo)).copied());
    let base = read::khz_opt(io, &file("base_frequency"))?
        .or(cppc_nominal)
        .or(table_base);
    let above_base = base.is_some_and(|b| cpuinfo_max > b);
    let turbo_available = match driver {
        Driver::AcpiCpufreq => pseudo_turbo || globals.boost.is_some(),
        Driver::IntelPstate | Driver::IntelCpufreq => {
            let turbo_pct = globals.intel_pstate.as_ref().and_then(|p| p.turbo_pct);
            above_base || turbo_pct.is_some_and(|pct| pct > 0)
        }
        Driver::AmdPstate | Driver::AmdPstateEpp | Driver::CppcCpufreq => {
            globals.boost.is_some() || above_base
        }
        Driver::Other(_) => globals.boost.is_some(),
    };
    let epp = match read::text_opt(io, &file("energy_performance_preference"))? {
        None => None,
        Some(current) => {
            let available = file("energy_performance_available_preferences");
            let available = match read::words(io, &available) {
                Err(SysfsError::NotFound { .. }) => Vec::new(),
                other => other?,
            };
            Some(Epp { current, available })
        }
    };
    Ok(Some(CpuFreqInfo {
        policy: policy_name(io, cpu, &related_cpus),
        driver,
        related_cpus,
        affected_cpus,
        available_governors: read::words(io, &file("scaling_available_governors"))?,
        table,
        cpuinfo_min,
        cpuinfo_max,
        base,
        turbo_available,
        epp,
        state: read_state(io, cpu)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeSysfs;
    use crate::sysfs::Sysfs;

    #[test]
    fn acpi_turbo_is_seen_from_the_table_without_a_boost_file() {
        let fake = FakeSysfs::builder(1).build().unwrap();
        std::fs::remove_file(fake.path().join(paths::boost())).unwrap();
        let freq = read_cpufreq(&fake, CpuId(0), &GlobalSwitches::default())
            .unwrap()
            .unwrap();
        assert!(freq.turbo_available);
        assert_eq!(freq.base, Some(Khz(2_300_000)));
    }

    #[test]
    fn a_real_cpufreq_directory_gets_a_policy_name_from_related_cpus() {
        let dir = tempfile::tempdir().unwrap();
        let cpufreq = dir.path().join(paths::cpu_dir(CpuId(1))).join("cpufreq");
        std::fs::create_dir_all(&cpufreq).unwrap();
        for (f, v) in [
            ("scaling_driver", "acpi-cpufreq"),
            ("related_cpus", "0 1"),
            ("affected_cpus", "0 1"),
            ("cpuinfo_min_freq", "800000"),
            ("cpuinfo_max_freq", "2000000"),
            ("scaling_available_governors", "userspace performance"),
            ("scaling_governor", "userspace"),
            ("scaling_min_freq", "800000"),
            ("scaling_max_freq", "2000000"),
            ("scaling_cur_freq", "1200000"),
            ("scaling_setspeed", "1200000"),
        ] {
            std::fs::write(cpufreq.join(f), format!("{v}\n")).unwrap();
        }
        let io = Sysfs::new(dir.path());
        let freq = read_cpufreq(&io, CpuId(1), &GlobalSwitches::default())
            .unwrap()
            .unwrap();
        assert_eq!(freq.policy, "policy0");
        assert_eq!(freq.state.setspeed, Some(Khz(1_200_000)));
        assert!(!freq.turbo_available);
        assert_eq!(freq.base, None);
        assert_eq!(
            read_cpufreq(&io, CpuId(0), &GlobalSwitches::default()).unwrap(),
            None
        );
    }
}

//! The builder of fake sysfs trees: what host to pretend to be, and the
//! validation of that description before anything is written.
//!
//! ## Behavior
//! - Defaults describe a small, plausible host: 4 CPUs, acpi-cpufreq,
//!   800 MHz to 2.3 GHz in 100 MHz steps (3.5 GHz turbo for the P-state
//!   drivers), turbo available and enabled, one CPU per frequency domain, one
//!   package, one die, no SMT, every CPU online, no uncore directory.
//! - The initial governor defaults to what a real host boots with:
//!   `powersave` for intel_pstate active and amd-pstate-epp, `schedutil`
//!   otherwise.
//! - [`FakeSysfsBuilder::build`] refuses inconsistent descriptions (a
//!   governor the driver does not offer, CPUs that do not divide into the
//!   topology, domains that overlap) rather than writing a tree no kernel
//!   would show.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::tree::{Spec, Topo};
use super::{FakeError, FakeSysfs};
use crate::types::{Driver, Khz};

/// Governors a generic (`target`-style) driver offers, in the kernel's order.
pub const GENERIC_GOVERNORS: &[&str] = &[
    "conservative",
    "ondemand",
    "userspace",
    "powersave",
    "performance",
    "schedutil",
];

/// Governors intel_pstate active and amd-pstate-epp offer.
pub const SETPOLICY_GOVERNORS: &[&str] = &["performance", "powersave"];

/// Whether the driver is a `setpolicy` driver (intel_pstate active,
/// amd-pstate-epp): only `performance`/`powersave`, pinned by min/max.
pub fn is_setpolicy(driver: &Driver) -> bool {
    matches!(driver, Driver::IntelPstate | Driver::AmdPstateEpp)
}

/// Describes a fake host; [`build`](Self::build) writes the tree.
#[derive(Debug, Clone)]
pub struct FakeSysfsBuilder {
    cpus: u32,
    driver: Option<Driver>,
    min: Khz,
    base: Khz,
    turbo_max: Khz,
    table: Option<Vec<Khz>>,
    turbo_available: bool,
    turbo_enabled: bool,
    governor: Option<String>,
    domain_size: u32,
    domains: Option<Vec<Vec<u32>>>,
    offline: BTreeSet<u32>,
    packages: u32,
    dies_per_package: u32,
    threads_per_core: u32,
    uncore: Option<(Khz, Khz)>,
    dir: Option<PathBuf>,
}

impl FakeSysfsBuilder {
    /// A host of `cpus` CPUs with the defaults above.
    pub fn new(cpus: u32) -> Self {
        FakeSysfsBuilder {
            cpus,
            driver: Some(Driver::AcpiCpufreq),
            min: Khz(800_000),
            base: Khz(2_300_000),
            turbo_max: Khz(3_500_000),
            table: None,
            turbo_available: true,
            turbo_enabled: true,
            governor: None,
            domain_size: 1,
            domains: None,
            offline: BTreeSet::new(),
            packages: 1,
            dies_per_package: 1,
            threads_per_core: 1,
            uncore: None,
            dir: None,
        }
    }

    /// The scaling driver (`Driver::Other` gives generic files, no table).
    pub fn driver(mut self, driver: Driver) -> Self {
        self.driver = Some(driver);
        self
    }

    /// No cpufreq at all (no `cpufreq/` directories), like a VM or a host
    /// whose firmware hides P-states.
    pub fn no_cpufreq(mut self) -> Self {
        self.driver = None;
        self
    }

    /// Hardware minimum, highest non-turbo (base) and highest turbo
    /// frequency. acpi-cpufreq derives its table from `min` and `base` in
    /// 100 MHz steps unless [`table`](Self::table) is given; its turbo is
    /// the `base + 1000` pseudo-entry, so `turbo_max` is unused there.
    pub fn freqs(mut self, min: Khz, base: Khz, turbo_max: Khz) -> Self {
        self.min = min;
        self.base = base;
        self.turbo_max = turbo_max;
        self
    }

    /// acpi-cpufreq's real frequency table, highest first, without the
    /// turbo pseudo-entry (added when turbo is available). Sets min and base.
    pub fn table(mut self, table: Vec<Khz>) -> Self {
        if let (Some(first), Some(last)) = (table.first(), table.last()) {
            self.base = *first;
            self.min = *last;
        }
        self.table = Some(table);
        self
    }

    /// Whether the hardware has turbo at all.
    pub fn turbo(mut self, available: bool) -> Self {
        self.turbo_available = available;
        self
    }

    /// Whether turbo starts enabled (`boost` 1 / `no_turbo` 0).
    pub fn turbo_enabled(mut self, enabled: bool) -> Self {
        self.turbo_enabled = enabled;
        self
    }

    /// The initial governor of every policy.
    pub fn governor(mut self, governor: &str) -> Self {
        self.governor = Some(governor.to_owned());
        self
    }

    /// Group consecutive CPUs into frequency domains of `size` CPUs
    /// (`policy0` = CPUs 0..size, ...). The last domain may be smaller.
    pub fn domain_size(mut self, size: u32) -> Self {
        self.domain_size = size;
        self
    }

    /// Explicit frequency domains; every CPU must be in exactly one.
    pub fn domains(mut self, domains: Vec<Vec<u32>>) -> Self {
        self.domains = Some(domains);
        self
    }

    /// CPUs that start offline (cpu0 cannot be offline: it has no `online`).
    pub fn offline(mut self, cpus: &[u32]) -> Self {
        self.offline.extend(cpus.iter().copied());
        self
    }

    /// Number of packages (sockets).
    pub fn packages(mut self, packages: u32) -> Self {
        self.packages = packages;
        self
    }

    /// Number of dies in each package.
    pub fn dies_per_package(mut self, dies: u32) -> Self {
        self.dies_per_package = dies;
        self
    }

    /// Hardware threads per core (2 for SMT). CPUs are numbered like
    /// Linux on x86: first threads of every core, then the second threads.
    pub fn threads_per_core(mut self, threads: u32) -> Self {
        self.threads_per_core = threads;
        self
    }

    /// Adds `intel_uncore_frequency/package_PP_die_DD` directories with
    /// these initial bounds (current frequency starts at `max`).
    pub fn uncore(mut self, min: Khz, max: Khz) -> Self {
        self.uncore = Some((min, max));
        self
    }

    /// Build in this existing directory instead of a fresh temporary one
    /// (the directory stands for `/sys`; it is not removed afterwards).
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Validates the description and writes the tree.
    pub fn build(self) -> Result<FakeSysfs, FakeError> {
        let spec = self.spec()?;
        FakeSysfs::create(spec, self.dir)
    }

    fn spec(&self) -> Result<Spec, FakeError> {
        let invalid = |why: String| Err(FakeError::Invalid(why));
        if self.cpus == 0 {
            return invalid("a host needs at least one CPU".into());
        }
        if self.min > self.base || (self.turbo_available && self.base > self.turbo_max) {
            return invalid(format!(
                "frequencies must satisfy min {} <= base {} <= turbo max {}",
                self.min, self.base, self.turbo_max
            ));
        }
        if let Some(&bad) = self.offline.iter().find(|&&c| c == 0 || c >= self.cpus) {
            return invalid(format!("cpu{bad} cannot be offline (cpu0 or out of range)"));
        }
        let topology = self.topology()?;
        let domains = self.domain_list()?;
        let table = self.full_table()?;
        let governor = match &self.driver {
            None => String::new(),
            Some(driver) => {
                let default = if is_setpolicy(driver) {
                    "powersave"
                } else {
                    "schedutil"
                };
                let governor = self.governor.clone().unwrap_or_else(|| default.to_owned());
                if !available_governors(driver).contains(&governor.as_str()) {
                    return invalid(format!("{driver} does not offer governor {governor}"));
                }
                governor
            }
        };
        let cpuinfo_max = match (&self.driver, &table) {
            (_, Some(t)) => t.first().copied().unwrap_or(self.base),
            _ if self.turbo_available => self.turbo_max,
            _ => self.base,
        };
        Ok(Spec {
            driver: self.driver.clone(),
            cpus: self.cpus,
            domains,
            topology,
            offline: self.offline.clone(),
            table,
            cpuinfo_min: self.min,
            cpuinfo_max,
            non_turbo_max: self.base,
            turbo_available: self.turbo_available,
            turbo_enabled: self.turbo_available && self.turbo_enabled,
            governor,
            packages: self.packages,
            dies_per_package: self.dies_per_package,
            uncore: self.uncore,
        })
    }

    fn topology(&self) -> Result<Vec<Topo>, FakeError> {
        let (n, t, p, d) = (
            self.cpus,
            self.threads_per_core,
            self.packages,
            self.dies_per_package,
        );
        if t == 0 || p == 0 || d == 0 || n % t != 0 || (n / t) % p != 0 || (n / t / p) % d != 0 {
            return Err(FakeError::Invalid(format!(
                "{n} CPUs do not divide into {p} packages x {d} dies x cores x {t} threads"
            )));
        }
        let cores_total = n / t;
        let cores_per_package = cores_total / p;
        let cores_per_die = cores_per_package / d;
        Ok((0..n)
            .map(|cpu| {
                let core_global = cpu % cores_total;
                let core_id = core_global % cores_per_package;
                Topo {
                    package: core_global / cores_per_package,
                    die: core_id / cores_per_die,
                    core_id,
                    siblings: (0..t).map(|k| core_global + k * cores_total).collect(),
                }
            })
            .collect())
    }

    fn domain_list(&self) -> Result<Vec<Vec<u32>>, FakeError> {
        let domains = match &self.domains {
            Some(d) => d.clone(),
            None if self.domain_size == 0 => {
                return Err(FakeError::Invalid("domain size 0".into()));
            }
            None => (0..self.cpus)
                .step_by(usize::try_from(self.domain_size).unwrap_or(usize::MAX))
                .map(|first| {
                    (first..self.cpus.min(first.saturating_add(self.domain_size))).collect()
                })
                .collect(),
        };
        let mut seen = BTreeSet::new();
        for cpu in domains.iter().flatten() {
            if *cpu >= self.cpus || !seen.insert(*cpu) {
                return Err(FakeError::Invalid(format!(
                    "cpu{cpu} is out of range or in two domains"
                )));
            }
        }
        if seen.len() != usize::try_from(self.cpus).unwrap_or(usize::MAX)
            || domains.iter().any(Vec::is_empty)
        {
            return Err(FakeError::Invalid(
                "domains must cover every CPU, none empty".into(),
            ));
        }
        Ok(domains
            .into_iter()
            .map(|mut d| {
                d.sort_unstable();
                d
            })
            .collect())
    }

    /// acpi-cpufreq's table as the kernel shows it (with the turbo
    /// pseudo-entry); `None` for drivers without a table.
    fn full_table(&self) -> Result<Option<Vec<Khz>>, FakeError> {
        if self.driver != Some(Driver::AcpiCpufreq) {
            return Ok(None);
        }
        let mut table = match &self.table {
            Some(t) => t.clone(),
            None => {
                let mut t = Vec::new();
                let mut f = self.base.0;
                while f >= self.min.0 {
                    t.push(Khz(f));
                    f = f.saturating_sub(100_000);
                    if f == 0 {
                        break;
                    }
                }
                t
            }
        };
        if table.is_empty() || table.windows(2).any(|w| w[0] <= w[1]) {
            return Err(FakeError::Invalid(
                "the table must be non-empty and strictly decreasing".into(),
            ));
        }
        if self.turbo_available {
            table.insert(0, Khz(table[0].0 + 1000));
        }
        Ok(Some(table))
    }
}

/// The governors `driver` offers in `scaling_available_governors`.
pub fn available_governors(driver: &Driver) -> &'static [&'static str] {
    if is_setpolicy(driver) {
        SETPOLICY_GOVERNORS
    } else {
        GENERIC_GOVERNORS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_numbers_first_threads_then_second_threads() {
        let spec = FakeSysfsBuilder::new(8)
            .packages(2)
            .threads_per_core(2)
            .spec()
            .unwrap();
        let t5 = &spec.topology[5];
        assert_eq!((t5.package, t5.core_id, t5.die), (0, 1, 0));
        assert_eq!(t5.siblings, vec![1, 5]);
        let t6 = &spec.topology[6];
        assert_eq!((t6.package, t6.core_id), (1, 0));
    }

    #[test]
    fn domain_size_groups_consecutive_cpus_and_last_may_be_short() {
        let spec = FakeSysfsBuilder::new(5).domain_size(2).spec().unwrap();
        assert_eq!(spec.domains, vec![vec![0, 1], vec![2, 3], vec![4]]);
        assert!(FakeSysfsBuilder::new(2).domain_size(0).spec().is_err());
    }

    #[test]
    fn acpi_table_is_synthesized_with_turbo_pseudo_entry() {
        let spec = FakeSysfsBuilder::new(1)
            .freqs(Khz(800_000), Khz(1_000_000), Khz(1_200_000))
            .spec()
            .unwrap();
        let table: Vec<u32> = spec.table.unwrap().iter().map(|f| f.0).collect();
        assert_eq!(table, vec![1_001_000, 1_000_000, 900_000, 800_000]);
        assert_eq!(spec.cpuinfo_max, Khz(1_001_000));
        let spec = FakeSysfsBuilder::new(1)
            .driver(Driver::IntelPstate)
            .spec()
            .unwrap();
        assert!(spec.table.is_none());
        assert_eq!(spec.cpuinfo_max, Khz(3_500_000));
        assert_eq!(spec.governor, "powersave");
    }

    #[test]
    fn inconsistent_frequencies_are_refused() {
        let err = FakeSysfsBuilder::new(1)
            .freqs(Khz(2_000_000), Khz(1_000_000), Khz(3_000_000))
            .spec()
            .unwrap_err();
        assert!(err.to_string().contains("min"), "{err}");
    }
}

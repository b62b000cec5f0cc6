//! Writing the fake tree: every directory, file and symlink the kernel
//! shows under `devices/system/cpu` for the described host.
//!
//! ## Behavior
//! - Every value file ends with a newline; lists the kernel prints with a
//!   trailing space (`scaling_available_frequencies`, the generic
//!   `scaling_available_governors`) keep it.
//! - `cpuN/cpufreq` is a relative symlink to `../cpufreq/policyM`, so a write
//!   through any CPU of a domain is seen by all of them.
//! - Offline CPUs have no `cpufreq` link and no `topology` directory;
//!   `affected_cpus` lists only the online CPUs of a policy.
//!
//! This module only lays files out; the rules of writes live in `kernel`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::builder::{available_governors, is_setpolicy};
use crate::cpulist::{format_cpu_list, format_cpu_words};
use crate::discovery::paths;
use crate::sysfs::SysfsError;
use crate::types::{CpuId, Driver, Khz};

/// The validated description of the fake host, kept for the kernel rules.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub driver: Option<Driver>,
    pub cpus: u32,
    /// Frequency domains, each sorted; the policy is named after the first.
    pub domains: Vec<Vec<u32>>,
    /// Topology of each CPU, indexed by CPU number.
    pub topology: Vec<Topo>,
    pub offline: BTreeSet<u32>,
    /// acpi-cpufreq's table as shown (turbo pseudo-entry first).
    pub table: Option<Vec<Khz>>,
    pub cpuinfo_min: Khz,
    pub cpuinfo_max: Khz,
    /// The highest frequency reachable with turbo off.
    pub non_turbo_max: Khz,
    pub turbo_available: bool,
    pub turbo_enabled: bool,
    pub governor: String,
    pub packages: u32,
    pub dies_per_package: u32,
    pub uncore: Option<(Khz, Khz)>,
}

/// Where one CPU sits.
#[derive(Debug, Clone)]
pub(crate) struct Topo {
    pub package: u32,
    pub die: u32,
    pub core_id: u32,
    /// Every hardware thread of the core, this one included.
    pub siblings: Vec<u32>,
}

impl Spec {
    /// The domain holding `cpu`.
    pub fn domain_of(&self, cpu: u32) -> Option<&[u32]> {
        self.domains
            .iter()
            .find(|d| d.contains(&cpu))
            .map(Vec::as_slice)
    }

    /// The policy directory name of a domain (`policyM`, M its first CPU).
    pub fn policy_name(domain: &[u32]) -> String {
        format!("policy{}", domain.first().copied().unwrap_or(0))
    }
}

/// Writes `value` and a newline to `path`, creating parent directories.
pub(crate) fn put(path: &Path, value: &str) -> Result<(), SysfsError> {
    let io_err = |source| SysfsError::Io {
        path: path.to_owned(),
        op: format!("create {value:?}"),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err)?;
    }
    fs::write(path, format!("{value}\n")).map_err(io_err)
}

fn ids(cpus: impl IntoIterator<Item = u32>) -> Vec<CpuId> {
    cpus.into_iter().map(CpuId).collect()
}

/// Writes the whole tree under `root` (the directory standing for `/sys`).
pub(crate) fn write_tree(root: &Path, spec: &Spec) -> Result<(), SysfsError> {
    let online: BTreeSet<u32> = (0..spec.cpus)
        .filter(|c| !spec.offline.contains(c))
        .collect();
    fs::create_dir_all(root.join(paths::cpu_root("cpufreq"))).map_err(|source| SysfsError::Io {
        path: root.join(paths::cpu_root("cpufreq")),
        op: "create directory".into(),
        source,
    })?;
    let all = format_cpu_list(&ids(0..spec.cpus));
    put(&root.join(paths::cpu_root("possible")), &all)?;
    put(&root.join(paths::cpu_root("present")), &all)?;
    put(&root.join(paths::cpu_root("kernel_max")), "8191")?;
    for cpu in 0..spec.cpus {
        if cpu != 0 {
            let state = if online.contains(&cpu) { "1" } else { "0" };
            put(&root.join(paths::cpu_online(CpuId(cpu))), state)?;
        } else {
            fs::create_dir_all(root.join(paths::cpu_dir(CpuId(0)))).map_err(|source| {
                SysfsError::Io {
                    path: root.join(paths::cpu_dir(CpuId(0))),
                    op: "create directory".into(),
                    source,
                }
            })?;
        }
        if matches!(
            spec.driver,
            Some(Driver::CppcCpufreq | Driver::AmdPstate | Driver::AmdPstateEpp)
        ) {
            write_cppc(root, spec, cpu)?;
        }
    }
    if let Some(driver) = &spec.driver {
        for domain in &spec.domains {
            write_policy(root, spec, driver, domain)?;
        }
        write_globals(root, spec, driver)?;
    }
    if let Some((min, max)) = spec.uncore {
        write_uncore(root, spec, min, max)?;
    }
    refresh_online(root, spec, &online)
}

/// Rewrites everything that depends on which CPUs are online: the global
/// lists, `cpuN/cpufreq` links, `topology` directories and `affected_cpus`.
pub(crate) fn refresh_online(
    root: &Path,
    spec: &Spec,
    online: &BTreeSet<u32>,
) -> Result<(), SysfsError> {
    put(
        &root.join(paths::cpu_root("online")),
        &format_cpu_list(&ids(online.iter().copied())),
    )?;
    let offline = (0..spec.cpus).filter(|c| !online.contains(c));
    put(
        &root.join(paths::cpu_root("offline")),
        &format_cpu_list(&ids(offline)),
    )?;
    for cpu in 0..spec.cpus {
        let is_online = online.contains(&cpu);
        let topo_dir = root.join(paths::cpu_dir(CpuId(cpu))).join("topology");
        remove(&topo_dir, fs::remove_dir_all(&topo_dir))?;
        if is_online {
            write_topology(root, spec, cpu, online)?;
        }
        let Some(domain) = spec.domain_of(cpu).filter(|_| spec.driver.is_some()) else {
            continue;
        };
        let link = root.join(paths::cpu_dir(CpuId(cpu))).join("cpufreq");
        remove(&link, fs::remove_file(&link))?;
        if is_online {
            let target = Path::new("..")
                .join("cpufreq")
                .join(Spec::policy_name(domain));
            std::os::unix::fs::symlink(&target, &link).map_err(|source| SysfsError::Io {
                path: link.clone(),
                op: "symlink".into(),
                source,
            })?;
        }
    }
    if spec.driver.is_some() {
        for domain in &spec.domains {
            let dir = root.join(paths::policy_dir(&Spec::policy_name(domain)));
            let affected = domain.iter().copied().filter(|c| online.contains(c));
            put(
                &dir.join("affected_cpus"),
                &format_cpu_words(&ids(affected)),
            )?;
        }
    }
    Ok(())
}

/// Turns "not found" into success (removing something already absent).
fn remove(path: &Path, result: std::io::Result<()>) -> Result<(), SysfsError> {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SysfsError::Io {
            path: path.to_owned(),
            op: "remove".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn write_topology(
    root: &Path,
    spec: &Spec,
    cpu: u32,
    online: &BTreeSet<u32>,
) -> Result<(), SysfsError> {
    let Some(topo) = spec
        .topology
        .get(usize::try_from(cpu).unwrap_or(usize::MAX))
    else {
        return Ok(());
    };
    let file = |name: &str| root.join(paths::topology_file(CpuId(cpu), name));
    let siblings = ids(topo.siblings.iter().copied().filter(|c| online.contains(c)));
    let same = |f: &dyn Fn(&Topo) -> bool| {
        ids((0..spec.cpus).filter(|c| {
            online.contains(c)
                && spec
                    .topology
                    .get(usize::try_from(*c).unwrap_or(usize::MAX))
                    .is_some_and(f)
        }))
    };
    let package = same(&|t| t.package == topo.package);
    let die = same(&|t| t.package == topo.package && t.die == topo.die);
    put(&file("core_id"), &topo.core_id.to_string())?;
    put(&file("physical_package_id"), &topo.package.to_string())?;
    put(&file("die_id"), &topo.die.to_string())?;
    put(&file("thread_siblings_list"), &format_cpu_list(&siblings))?;
    put(&file("core_cpus_list"), &format_cpu_list(&siblings))?;
    put(&file("core_siblings_list"), &format_cpu_list(&package))?;
    put(&file("package_cpus_list"), &format_cpu_list(&package))?;
    put(&file("die_cpus_list"), &format_cpu_list(&die))
}

/// CPPC performance levels, with perf = frequency / 10 MHz.
fn write_cppc(root: &Path, spec: &Spec, cpu: u32) -> Result<(), SysfsError> {
    let file = |name: &str| root.join(paths::cppc_file(CpuId(cpu), name));
    let perf = |f: Khz| (f.0 / 10_000).to_string();
    let lowest_nonlinear =
        Khz(spec.cpuinfo_min.0 + (spec.non_turbo_max.0 - spec.cpuinfo_min.0) / 4);
    put(&file("highest_perf"), &perf(spec.cpuinfo_max))?;
    put(&file("nominal_perf"), &perf(spec.non_turbo_max))?;
    put(&file("lowest_nonlinear_perf"), &perf(lowest_nonlinear))?;
    put(&file("lowest_perf"), &perf(spec.cpuinfo_min))?;
    put(
        &file("nominal_freq"),
        &(spec.non_turbo_max.0 / 1000).to_string(),
    )?;
    put(
        &file("lowest_freq"),
        &(spec.cpuinfo_min.0 / 1000).to_string(),
    )
}

fn write_policy(
    root: &Path,
    spec: &Spec,
    driver: &Driver,
    domain: &[u32],
) -> Result<(), SysfsError> {
    let dir = root.join(paths::policy_dir(&Spec::policy_name(domain)));
    let file = |name: &str| dir.join(name);
    let khz = |f: Khz| f.0.to_string();
    put(&file("scaling_driver"), driver.sysfs_name())?;
    put(&file("scaling_governor"), &spec.governor)?;
    let governors = available_governors(driver).join(" ");
    let governors = if is_setpolicy(driver) {
        governors
    } else {
        format!("{governors} ")
    };
    put(&file("scaling_available_governors"), &governors)?;
    put(&file("cpuinfo_min_freq"), &khz(spec.cpuinfo_min))?;
    put(&file("cpuinfo_max_freq"), &khz(spec.cpuinfo_max))?;
    put(&file("cpuinfo_transition_latency"), "10000")?;
    put(&file("scaling_min_freq"), &khz(spec.cpuinfo_min))?;
    put(&file("scaling_max_freq"), &khz(spec.cpuinfo_max))?;
    put(&file("scaling_cur_freq"), &khz(spec.cpuinfo_min))?;
    let setspeed = if spec.governor == "userspace" {
        khz(spec.cpuinfo_min)
    } else {
        "<unsupported>".into()
    };
    put(&file("scaling_setspeed"), &setspeed)?;
    put(
        &file("related_cpus"),
        &format_cpu_words(&ids(domain.iter().copied())),
    )?;
    if let Some(table) = &spec.table {
        let list: String = table.iter().map(|f| format!("{} ", f.0)).collect();
        put(&file("scaling_available_frequencies"), &list)?;
    }
    if matches!(driver, Driver::IntelPstate | Driver::IntelCpufreq) {
        put(&file("base_frequency"), &khz(spec.non_turbo_max))?;
    }
    if matches!(driver, Driver::AmdPstate | Driver::AmdPstateEpp) {
        put(&file("amd_pstate_max_freq"), &khz(spec.cpuinfo_max))?;
        put(
            &file("amd_pstate_lowest_nonlinear_freq"),
            &khz(spec.cpuinfo_min),
        )?;
        put(&file("amd_pstate_highest_perf"), "255")?;
    }
    if is_setpolicy(driver) {
        let epp = if spec.governor == "performance" {
            "performance"
        } else {
            "balance_performance"
        };
        put(&file("energy_performance_preference"), epp)?;
        put(
            &file("energy_performance_available_preferences"),
            "default performance balance_performance balance_power power ",
        )?;
    }
    Ok(())
}

fn write_globals(root: &Path, spec: &Spec, driver: &Driver) -> Result<(), SysfsError> {
    let flag = |on: bool| if on { "1" } else { "0" };
    match driver {
        Driver::IntelPstate | Driver::IntelCpufreq => {
            let status = if *driver == Driver::IntelPstate {
                "active"
            } else {
                "passive"
            };
            put(&root.join(paths::intel_pstate("status")), status)?;
            put(
                &root.join(paths::intel_pstate("no_turbo")),
                flag(!spec.turbo_enabled),
            )?;
            put(&root.join(paths::intel_pstate("max_perf_pct")), "100")?;
            let min_pct =
                u64::from(spec.cpuinfo_min.0) * 100 / u64::from(spec.cpuinfo_max.0.max(1));
            put(
                &root.join(paths::intel_pstate("min_perf_pct")),
                &min_pct.to_string(),
            )?;
            let turbo_pct = if spec.turbo_available { "20" } else { "0" };
            put(&root.join(paths::intel_pstate("turbo_pct")), turbo_pct)?;
        }
        Driver::AmdPstate | Driver::AmdPstateEpp => {
            let status = if *driver == Driver::AmdPstateEpp {
                "active"
            } else {
                "passive"
            };
            put(&root.join(paths::amd_pstate("status")), status)?;
        }
        _ => {}
    }
    let has_boost_file = matches!(
        driver,
        Driver::AcpiCpufreq | Driver::AmdPstate | Driver::AmdPstateEpp | Driver::CppcCpufreq
    );
    if has_boost_file && spec.turbo_available {
        put(&root.join(paths::boost()), flag(spec.turbo_enabled))?;
    }
    Ok(())
}

fn write_uncore(root: &Path, spec: &Spec, min: Khz, max: Khz) -> Result<(), SysfsError> {
    for package in 0..spec.packages {
        for die in 0..spec.dies_per_package {
            let file = |name: &str| root.join(paths::uncore_file(package, die, name));
            put(&file("initial_min_freq_khz"), &min.0.to_string())?;
            put(&file("initial_max_freq_khz"), &max.0.to_string())?;
            put(&file("min_freq_khz"), &min.0.to_string())?;
            put(&file("max_freq_khz"), &max.0.to_string())?;
            put(&file("current_freq_khz"), &max.0.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::discovery::paths;
    use crate::fake::FakeSysfs;
    use crate::types::{CpuId, Driver};

    fn raw(fake: &FakeSysfs, file: &str) -> String {
        std::fs::read_to_string(fake.path().join(paths::cpufreq_file(CpuId(0), file))).unwrap()
    }

    #[test]
    fn lists_keep_the_kernels_trailing_space() {
        let fake = FakeSysfs::builder(1).build().unwrap();
        assert!(raw(&fake, "scaling_available_frequencies").ends_with("800000 \n"));
        assert!(raw(&fake, "scaling_available_governors").ends_with("schedutil \n"));
        let intel = FakeSysfs::builder(1)
            .driver(Driver::IntelPstate)
            .build()
            .unwrap();
        assert_eq!(
            raw(&intel, "scaling_available_governors"),
            "performance powersave\n"
        );
    }
}

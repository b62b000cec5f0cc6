//! Relative paths of the sysfs files this crate reads and writes, in one
//! place, so that the discovery, the backends and the fake tree agree.
//!
//! Every path is relative to the root that stands for `/sys`. Nothing here
//! touches the file system.

use std::path::PathBuf;

use crate::types::CpuId;

/// `devices/system/cpu`: the directory every other path is under.
pub const CPU_DIR: &str = "devices/system/cpu";

/// `devices/system/cpu/<name>` (e.g. `online`, `cpufreq/boost`,
/// `intel_pstate/no_turbo`).
pub fn cpu_root(name: &str) -> PathBuf {
    PathBuf::from(CPU_DIR).join(name)
}

/// `devices/system/cpu/cpuN`.
pub fn cpu_dir(cpu: CpuId) -> PathBuf {
    PathBuf::from(CPU_DIR).join(format!("cpu{}", cpu.0))
}

/// `devices/system/cpu/cpuN/cpufreq/<file>` (through the kernel's symlink to
/// the policy directory).
pub fn cpufreq_file(cpu: CpuId, file: &str) -> PathBuf {
    cpu_dir(cpu).join("cpufreq").join(file)
}

/// `devices/system/cpu/cpuN/topology/<file>`.
pub fn topology_file(cpu: CpuId, file: &str) -> PathBuf {
    cpu_dir(cpu).join("topology").join(file)
}

/// `devices/system/cpu/cpuN/acpi_cppc/<file>`.
pub fn cppc_file(cpu: CpuId, file: &str) -> PathBuf {
    cpu_dir(cpu).join("acpi_cppc").join(file)
}

/// `devices/system/cpu/cpuN/online`.
pub fn cpu_online(cpu: CpuId) -> PathBuf {
    cpu_dir(cpu).join("online")
}

/// `devices/system/cpu/cpufreq/<policy>` (e.g. `policy0`).
pub fn policy_dir(policy: &str) -> PathBuf {
    PathBuf::from(CPU_DIR).join("cpufreq").join(policy)
}

/// `devices/system/cpu/cpufreq/boost`: acpi-cpufreq, amd-pstate and cppc
/// global turbo switch.
pub fn boost() -> PathBuf {
    cpu_root("cpufreq/boost")
}

/// `devices/system/cpu/intel_pstate/<file>` (`status`, `no_turbo`,
/// `max_perf_pct`, `min_perf_pct`).
pub fn intel_pstate(file: &str) -> PathBuf {
    cpu_root("intel_pstate").join(file)
}

/// `devices/system/cpu/amd_pstate/<file>` (`status`).
pub fn amd_pstate(file: &str) -> PathBuf {
    cpu_root("amd_pstate").join(file)
}

/// `devices/system/cpu/intel_uncore_frequency`.
pub fn uncore_root() -> PathBuf {
    cpu_root("intel_uncore_frequency")
}

/// The name of an uncore domain directory, `package_PP_die_DD`.
pub fn uncore_domain_name(package: u32, die: u32) -> String {
    format!("package_{package:02}_die_{die:02}")
}

/// `devices/system/cpu/intel_uncore_frequency/package_PP_die_DD/<file>`.
pub fn uncore_file(package: u32, die: u32, file: &str) -> PathBuf {
    uncore_root()
        .join(uncore_domain_name(package, die))
        .join(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_and_laid_out_like_sysfs() {
        assert_eq!(
            cpufreq_file(CpuId(3), "scaling_governor"),
            PathBuf::from("devices/system/cpu/cpu3/cpufreq/scaling_governor")
        );
        assert_eq!(
            uncore_file(1, 0, "min_freq_khz"),
            PathBuf::from(
                "devices/system/cpu/intel_uncore_frequency/package_01_die_00/min_freq_khz"
            )
        );
        assert_eq!(
            policy_dir("policy4"),
            PathBuf::from("devices/system/cpu/cpufreq/policy4")
        );
        assert!(boost().is_relative());
    }
}

//! A CPU's number, the frequency unit and the cpufreq driver: small value
//! types every vmpower crate shares. No I/O here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A CPU as the kernel numbers it (`cpuN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CpuId(pub u32);

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpu{}", self.0)
    }
}

/// A frequency in kHz, the unit of every cpufreq file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Khz(pub u32);

impl fmt::Display for Khz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} kHz", self.0)
    }
}

/// The cpufreq scaling driver of a CPU (`scaling_driver`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Driver {
    /// `acpi-cpufreq`: a frequency table, turbo as max+1000 kHz.
    AcpiCpufreq,
    /// `intel_pstate` in active mode: only `performance`/`powersave`.
    IntelPstate,
    /// `intel_cpufreq`: intel_pstate in passive mode, generic governors.
    IntelCpufreq,
    /// `amd-pstate` in passive (or guided) mode, generic governors.
    AmdPstate,
    /// `amd-pstate-epp`: active mode, only `performance`/`powersave`.
    AmdPstateEpp,
    /// `cppc_cpufreq` (arm64 servers, some AMD).
    CppcCpufreq,
    /// Any other driver, by its name; not driven.
    Other(String),
}

impl Driver {
    /// Whether DPDK's backend for this driver moves a core to max when it
    /// enables turbo ("max may have changed": acpi-cpufreq, amd-pstate,
    /// cppc) rather than only setting the flag (intel_pstate, in either
    /// mode). Guests expect librte_power's behaviour of their host's driver.
    pub fn enable_turbo_moves_to_max(&self) -> bool {
        !matches!(self, Driver::IntelPstate | Driver::IntelCpufreq)
    }

    /// The driver named by a `scaling_driver` file's content.
    pub fn from_sysfs(name: &str) -> Self {
        match name.trim() {
            "acpi-cpufreq" => Driver::AcpiCpufreq,
            "intel_pstate" => Driver::IntelPstate,
            "intel_cpufreq" => Driver::IntelCpufreq,
            "amd-pstate" => Driver::AmdPstate,
            "amd-pstate-epp" => Driver::AmdPstateEpp,
            "cppc_cpufreq" => Driver::CppcCpufreq,
            other => Driver::Other(other.to_owned()),
        }
    }

    /// The name the kernel uses in `scaling_driver`.
    pub fn sysfs_name(&self) -> &str {
        match self {
            Driver::AcpiCpufreq => "acpi-cpufreq",
            Driver::IntelPstate => "intel_pstate",
            Driver::IntelCpufreq => "intel_cpufreq",
            Driver::AmdPstate => "amd-pstate",
            Driver::AmdPstateEpp => "amd-pstate-epp",
            Driver::CppcCpufreq => "cppc_cpufreq",
            Driver::Other(name) => name,
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sysfs_name())
    }
}

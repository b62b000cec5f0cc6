//! The host-wide switches: `cpufreq/boost`, `intel_pstate/*` and
//! `amd_pstate/status`. Read only; turning them is the turbo module's job.

use serde::{Deserialize, Serialize};

use super::{paths, read};
use crate::sysfs::{SysfsError, SysfsIo};

/// intel_pstate's global files (present with intel_pstate and intel_cpufreq,
/// and with `status` `off` under another driver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntelPstateSwitches {
    /// `status`: `active`, `passive` or `off`.
    pub status: Option<String>,
    /// `no_turbo`: true when turbo is disabled for every core.
    pub no_turbo: Option<bool>,
    /// `max_perf_pct`.
    pub max_perf_pct: Option<u32>,
    /// `min_perf_pct`.
    pub min_perf_pct: Option<u32>,
    /// `turbo_pct`: share of the performance range that is turbo (0: none).
    pub turbo_pct: Option<u32>,
}

/// The global switches found on the host; `None` where a file is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalSwitches {
    /// `cpufreq/boost` (acpi-cpufreq, amd-pstate, cppc): turbo on/off.
    pub boost: Option<bool>,
    /// `intel_pstate/`, when the directory exists.
    pub intel_pstate: Option<IntelPstateSwitches>,
    /// `amd_pstate/status`: `active`, `passive` or `guided`.
    pub amd_pstate_status: Option<String>,
}

impl GlobalSwitches {
    /// Whether turbo is enabled host-wide: `!no_turbo` where intel_pstate
    /// has it, else `boost`; `None` when neither switch exists.
    pub fn turbo_enabled(&self) -> Option<bool> {
        self.intel_pstate
            .as_ref()
            .and_then(|p| p.no_turbo)
            .map(|no_turbo| !no_turbo)
            .or(self.boost)
    }
}

/// Reads the global switches.
pub fn read_globals(io: &dyn SysfsIo) -> Result<GlobalSwitches, SysfsError> {
    let intel_pstate = if io.exists(&paths::cpu_root("intel_pstate")) {
        Some(IntelPstateSwitches {
            status: read::text_opt(io, &paths::intel_pstate("status"))?,
            no_turbo: read::flag_opt(io, &paths::intel_pstate("no_turbo"))?,
            max_perf_pct: read::number_opt(io, &paths::intel_pstate("max_perf_pct"))?,
            min_perf_pct: read::number_opt(io, &paths::intel_pstate("min_perf_pct"))?,
            turbo_pct: read::number_opt(io, &paths::intel_pstate("turbo_pct"))?,
        })
    } else {
        None
    };
    Ok(GlobalSwitches {
        boost: read::flag_opt(io, &paths::boost())?,
        intel_pstate,
        amd_pstate_status: read::text_opt(io, &paths::amd_pstate("status"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_turbo_takes_precedence_over_boost() {
        let mut g = GlobalSwitches {
            boost: Some(true),
            ..GlobalSwitches::default()
        };
        assert_eq!(g.turbo_enabled(), Some(true));
        g.intel_pstate = Some(IntelPstateSwitches {
            status: Some("active".into()),
            no_turbo: Some(true),
            max_perf_pct: None,
            min_perf_pct: None,
            turbo_pct: None,
        });
        assert_eq!(g.turbo_enabled(), Some(false));
        assert_eq!(GlobalSwitches::default().turbo_enabled(), None);
    }
}

//! The kernel's side of a write: the checks that make it fail with
//! `EINVAL`/`EACCES`/`EBUSY`, and the side effects that follow success.
//!
//! The tree on disk is the only state, apart from the frequency each
//! `userspace` policy was last asked for (the kernel keeps it too and goes
//! back to it when limits widen). Reading the files back therefore shows
//! exactly what an out-of-process reader sees.
//!
//! ## Behavior
//! - `scaling_governor`: only a governor listed in
//!   `scaling_available_governors`; switching to `userspace` makes
//!   `scaling_setspeed` show the current frequency, switching away makes it
//!   `<unsupported>`.
//! - `scaling_setspeed`: only under `userspace`, only within
//!   `[scaling_min_freq, scaling_max_freq]` and, on acpi-cpufreq, only a
//!   table entry. (Stricter than the kernel, which would clamp or round: a
//!   backend asking for a frequency it should not is a bug worth seeing.)
//! - `scaling_min_freq` above `scaling_max_freq`, `scaling_max_freq` below
//!   `scaling_min_freq`, any frequency outside
//!   `[cpuinfo_min_freq, cpuinfo_max_freq]`, non-numbers: refused. Bounds
//!   need not be table entries (the kernel resolves them, as here).
//! - `scaling_cur_freq` then settles: `performance` runs at the max,
//!   `powersave` (generic drivers) at the min, `userspace` at its target
//!   clamped into the bounds, anything else (including the `setpolicy`
//!   drivers' `powersave`) stays where it was, clamped into the bounds. With
//!   turbo off it is capped at the highest non-turbo frequency; on
//!   acpi-cpufreq it is always a table entry.
//! - `cpufreq/boost`, `intel_pstate/no_turbo`: only `0`/`1`; `no_turbo` 0
//!   on a part without turbo fails with `EPERM` as on the kernel.
//! - `energy_performance_preference`: a listed preference, `default` or a
//!   number; anything but `performance` under the `performance` governor
//!   fails with `EBUSY`.
//! - Uncore `min_freq_khz`/`max_freq_khz`: within the initial bounds and
//!   ordered; `current_freq_khz` is clamped into them.
//! - `cpuN/online`: `0`/`1`; the tree then changes as on hotplug.
//! - Files without a store method (everything else) fail with `EACCES`.
//!
//! ## Limitations
//! - Switching `intel_pstate/status` or `amd_pstate/status` (which rebuilds
//!   every policy on the kernel) is refused unless the value is unchanged.
//! - `no_turbo` does not lower `cpuinfo_max_freq` as newer kernels do; it
//!   only caps the current frequency.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::builder::is_setpolicy;
use super::tree::{self, Spec, put};
use crate::discovery::paths;
use crate::sysfs::{SysfsError, read_file};
use crate::types::{CpuId, Driver, Khz};

/// `EBUSY`, what intel_pstate returns for an EPP change under `performance`.
const EBUSY: i32 = 16;

/// One write's view of the fake kernel.
pub(crate) struct Kernel<'a> {
    /// The directory standing for `/sys`.
    pub root: &'a Path,
    /// The host description.
    pub spec: &'a Spec,
    /// The `userspace` target of each policy, by canonical directory.
    pub targets: &'a mut HashMap<PathBuf, Khz>,
}

fn read_khz(path: &Path) -> Result<Khz, SysfsError> {
    let content = read_file(path)?;
    content
        .trim()
        .parse::<u32>()
        .map(Khz)
        .map_err(|_| SysfsError::Parse {
            path: path.to_owned(),
            content,
            expected: "a frequency in kHz",
        })
}

/// N of a `cpuN` directory name.
fn cpu_number(dir_name: &str) -> Option<u32> {
    dir_name.strip_prefix("cpu")?.parse().ok()
}

fn key(dir: &Path) -> PathBuf {
    fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned())
}

impl Kernel<'_> {
    /// Applies a write of `value` to `rel` as the kernel would.
    pub fn write(&mut self, rel: &Path, value: &str) -> Result<(), SysfsError> {
        let path = self.root.join(rel);
        if !path.is_file() {
            return Err(SysfsError::NotFound { path });
        }
        let refused = SysfsError::Refused {
            path: path.clone(),
            value: value.to_owned(),
        };
        let v = value.trim();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let dir_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let number = v.parse::<u32>().ok();
        match name {
            "scaling_governor" => self.governor(&path, &dir, v, refused),
            "scaling_setspeed" => self.setspeed(&dir, number, refused),
            "scaling_min_freq" | "scaling_max_freq" => self.bound(&path, &dir, number, refused),
            "boost" | "no_turbo" => self.turbo_switch(&path, v, refused),
            "status" if matches!(dir_name, "intel_pstate" | "amd_pstate") => {
                if read_file(&path)?.trim() == v {
                    Ok(())
                } else {
                    Err(refused)
                }
            }
            "max_perf_pct" | "min_perf_pct" if dir_name == "intel_pstate" => match number {
                Some(pct) if pct <= 100 => put(&path, v),
                _ => Err(refused),
            },
            "energy_performance_preference" => self.epp(&path, &dir, v, refused),
            "online" if cpu_number(dir_name).is_some() => match (cpu_number(dir_name), v) {
                (Some(cpu), "0" | "1") => self.set_online(cpu, v == "1"),
                _ => Err(refused),
            },
            "min_freq_khz" | "max_freq_khz" => self.uncore(&path, &dir, name, number, refused),
            _ => Err(SysfsError::PermissionDenied {
                path,
                value: value.to_owned(),
            }),
        }
    }

    fn governor(
        &mut self,
        path: &Path,
        dir: &Path,
        v: &str,
        refused: SysfsError,
    ) -> Result<(), SysfsError> {
        let available = read_file(&dir.join("scaling_available_governors"))?;
        if v.is_empty() || !available.split_whitespace().any(|g| g == v) {
            return Err(refused);
        }
        let old = read_file(path)?;
        put(path, v)?;
        if v == "userspace" && old.trim() != "userspace" {
            let cur = read_khz(&dir.join("scaling_cur_freq"))?;
            self.targets.insert(key(dir), cur);
        } else if v != "userspace" {
            self.targets.remove(&key(dir));
        }
        let epp = dir.join("energy_performance_preference");
        if epp.is_file() {
            if v == "performance" {
                put(&epp, "performance")?;
            } else if read_file(&epp)?.trim() == "performance" {
                put(&epp, "balance_performance")?;
            }
        }
        self.settle(dir)
    }

    fn in_hw_limits(dir: &Path, f: u32) -> Result<bool, SysfsError> {
        let lo = read_khz(&dir.join("cpuinfo_min_freq"))?;
        let hi = read_khz(&dir.join("cpuinfo_max_freq"))?;
        Ok(lo.0 <= f && f <= hi.0)
    }

    fn setspeed(
        &mut self,
        dir: &Path,
        number: Option<u32>,
        refused: SysfsError,
    ) -> Result<(), SysfsError> {
        let governor = read_file(&dir.join("scaling_governor"))?;
        let Some(f) = number.filter(|_| governor.trim() == "userspace") else {
            return Err(refused);
        };
        let min = read_khz(&dir.join("scaling_min_freq"))?;
        let max = read_khz(&dir.join("scaling_max_freq"))?;
        let in_table = self.spec.table.as_ref().is_none_or(|t| t.contains(&Khz(f)));
        if !Self::in_hw_limits(dir, f)? || f < min.0 || f > max.0 || !in_table {
            return Err(refused);
        }
        self.targets.insert(key(dir), Khz(f));
        self.settle(dir)
    }

    fn bound(
        &mut self,
        path: &Path,
        dir: &Path,
        number: Option<u32>,
        refused: SysfsError,
    ) -> Result<(), SysfsError> {
        let Some(f) = number else { return Err(refused) };
        if !Self::in_hw_limits(dir, f)? {
            return Err(refused);
        }
        let is_min = path.ends_with("scaling_min_freq");
        let other = read_khz(&dir.join(if is_min {
            "scaling_max_freq"
        } else {
            "scaling_min_freq"
        }))?;
        if (is_min && f > other.0) || (!is_min && f < other.0) {
            return Err(refused);
        }
        put(path, &f.to_string())?;
        self.settle(dir)
    }

    fn turbo_switch(
        &mut self,
        path: &Path,
        v: &str,
        refused: SysfsError,
    ) -> Result<(), SysfsError> {
        if !matches!(v, "0" | "1") {
            return Err(refused);
        }
        if path.ends_with("no_turbo") && v == "0" && !self.spec.turbo_available {
            return Err(SysfsError::PermissionDenied {
                path: path.to_owned(),
                value: v.to_owned(),
            });
        }
        put(path, v)?;
        self.settle_all()
    }

    fn epp(
        &mut self,
        path: &Path,
        dir: &Path,
        v: &str,
        refused: SysfsError,
    ) -> Result<(), SysfsError> {
        let available = read_file(&dir.join("energy_performance_available_preferences"))?;
        let known = v == "default"
            || v.parse::<u8>().is_ok()
            || available.split_whitespace().any(|p| p == v);
        if !known {
            return Err(refused);
        }
        if read_file(&dir.join("scaling_governor"))?.trim() == "performance" && v != "performance" {
            return Err(SysfsError::Io {
                path: path.to_owned(),
                op: format!("write {v:?}"),
                source: io::Error::from_raw_os_error(EBUSY),
            });
        }
        put(
            path,
            if v == "default" {
                "balance_performance"
            } else {
                v
            },
        )
    }

    fn uncore(
        &mut self,
        path: &Path,
        dir: &Path,
        name: &str,
        number: Option<u32>,
        refused: SysfsError,
    ) -> Result<(), SysfsError> {
        let Some(f) = number else { return Err(refused) };
        let lo = read_khz(&dir.join("initial_min_freq_khz"))?;
        let hi = read_khz(&dir.join("initial_max_freq_khz"))?;
        let is_min = name == "min_freq_khz";
        let other = read_khz(&dir.join(if is_min {
            "max_freq_khz"
        } else {
            "min_freq_khz"
        }))?;
        if f < lo.0 || f > hi.0 || (is_min && f > other.0) || (!is_min && f < other.0) {
            return Err(refused);
        }
        put(path, &f.to_string())?;
        let (min, max) = if is_min { (f, other.0) } else { (other.0, f) };
        let current = dir.join("current_freq_khz");
        let cur = read_khz(&current)?.0.max(min).min(max);
        put(&current, &cur.to_string())
    }

    /// Takes `cpu` offline or online, changing the tree as hotplug does.
    pub fn set_online(&mut self, cpu: u32, online: bool) -> Result<(), SysfsError> {
        let file = self.root.join(paths::cpu_online(CpuId(cpu)));
        if cpu == 0 || cpu >= self.spec.cpus {
            return Err(SysfsError::NotFound { path: file });
        }
        put(&file, if online { "1" } else { "0" })?;
        let mut set = BTreeSet::from([0]);
        for c in 1..self.spec.cpus {
            if read_file(&self.root.join(paths::cpu_online(CpuId(c))))?.trim() == "1" {
                set.insert(c);
            }
        }
        tree::refresh_online(self.root, self.spec, &set)
    }

    fn turbo_enabled(&self) -> bool {
        if !self.spec.turbo_available {
            return false;
        }
        match self.spec.driver {
            Some(Driver::IntelPstate | Driver::IntelCpufreq) => {
                read_file(&self.root.join(paths::intel_pstate("no_turbo")))
                    .map_or(true, |v| v.trim() == "0")
            }
            _ => read_file(&self.root.join(paths::boost())).map_or(true, |v| v.trim() != "0"),
        }
    }

    /// Recomputes `scaling_cur_freq` and `scaling_setspeed` of every policy.
    pub fn settle_all(&mut self) -> Result<(), SysfsError> {
        if self.spec.driver.is_none() {
            return Ok(());
        }
        for domain in &self.spec.domains {
            let dir = self
                .root
                .join(paths::policy_dir(&Spec::policy_name(domain)));
            self.settle(&dir)?;
        }
        Ok(())
    }

    /// Recomputes `scaling_cur_freq` and `scaling_setspeed` of one policy
    /// from its governor, bounds, `userspace` target and the turbo switch.
    pub fn settle(&mut self, dir: &Path) -> Result<(), SysfsError> {
        let governor = read_file(&dir.join("scaling_governor"))?;
        let governor = governor.trim();
        let min = read_khz(&dir.join("scaling_min_freq"))?;
        let max = read_khz(&dir.join("scaling_max_freq"))?.max(min);
        let cur = read_khz(&dir.join("scaling_cur_freq"))?;
        let setpolicy = self.spec.driver.as_ref().is_some_and(is_setpolicy);
        let target = match governor {
            "performance" => max,
            "powersave" if !setpolicy => min,
            "userspace" => self.targets.get(&key(dir)).copied().unwrap_or(cur),
            _ => cur,
        };
        let mut new = target.max(min).min(max);
        if !self.turbo_enabled() {
            new = new.min(self.spec.non_turbo_max);
        }
        if let Some(table) = &self.spec.table {
            new = table
                .iter()
                .copied()
                .find(|f| *f <= new)
                .or_else(|| table.last().copied())
                .unwrap_or(new);
        }
        put(&dir.join("scaling_cur_freq"), &new.0.to_string())?;
        let setspeed = if governor == "userspace" {
            new.0.to_string()
        } else {
            "<unsupported>".to_owned()
        };
        put(&dir.join("scaling_setspeed"), &setspeed)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::discovery::paths;
    use crate::fake::FakeSysfs;
    use crate::sysfs::SysfsIo;
    use crate::types::CpuId;

    fn cf(file: &str) -> PathBuf {
        paths::cpufreq_file(CpuId(0), file)
    }

    #[test]
    fn current_frequency_snaps_to_a_table_entry() {
        let fake = FakeSysfs::builder(1)
            .governor("performance")
            .build()
            .unwrap();
        fake.write(&cf("scaling_max_freq"), "1550000").unwrap();
        assert_eq!(fake.read(&cf("scaling_cur_freq")).unwrap(), "1500000");
    }

    #[test]
    fn userspace_target_returns_when_limits_widen() {
        let fake = FakeSysfs::builder(1).governor("userspace").build().unwrap();
        assert_eq!(fake.read(&cf("scaling_setspeed")).unwrap(), "800000");
        fake.write(&cf("scaling_setspeed"), "2000000").unwrap();
        fake.write(&cf("scaling_max_freq"), "1500000").unwrap();
        assert_eq!(fake.read(&cf("scaling_cur_freq")).unwrap(), "1500000");
        fake.write(&cf("scaling_max_freq"), "2301000").unwrap();
        assert_eq!(fake.read(&cf("scaling_cur_freq")).unwrap(), "2000000");
    }

    #[test]
    fn status_switches_are_refused_unless_unchanged() {
        let fake = FakeSysfs::builder(1)
            .driver(crate::types::Driver::IntelPstate)
            .build()
            .unwrap();
        let status = paths::intel_pstate("status");
        fake.write(&status, "active\n").unwrap();
        assert!(fake.write(&status, "passive").is_err());
        let pct = paths::intel_pstate("max_perf_pct");
        fake.write(&pct, "80").unwrap();
        assert!(fake.write(&pct, "101").is_err());
    }
}

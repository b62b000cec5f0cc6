//! What each pCPU is doing, read from the fake sysfs tree as an operator
//! would read `/sys`, and the sampled accounting behind the summary: time
//! at each level and the energy estimate.
//!
//! ## Power model
//! Dynamic power P = C·V²·f with the voltage V taken proportional to f
//! over the table, so P ∝ f³; energy is the sum of (f / f_max)³ × dt over
//! the samples. Assumptions: static (leakage) and uncore power are ignored
//! (so the real saving is smaller than the estimate); CPUs under a host
//! governor (not taken over by the daemon) are counted at max, so no saving
//! is claimed for them; acpi-cpufreq's turbo entry (base + 1 MHz) is taken
//! at its nominal value.
//!
//! Nothing here writes to the tree.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use vmpower_cpufreq::SysfsIo;

/// A pCPU's level as the demo reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Governed by the host's own governor (not taken over).
    Host,
    /// The lowest frequency of the table.
    Min,
    /// Between min and max.
    Mid,
    /// The highest frequency of the table.
    Max,
}

impl Level {
    /// Every level, in the summary's order.
    pub const ALL: [Level; 4] = [Level::Min, Level::Mid, Level::Max, Level::Host];

    /// Its name on screen and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Level::Host => "host",
            Level::Min => "min",
            Level::Mid => "mid",
            Level::Max => "max",
        }
    }
}

/// One pCPU at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The CPU number.
    pub cpu: u32,
    /// Its `scaling_governor`.
    pub governor: String,
    /// Its `scaling_setspeed` under `userspace`, else `None`.
    pub khz: Option<u32>,
    /// The level that frequency stands for.
    pub level: Level,
}

/// A CPU's frequency range, read once from its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Lowest entry of `scaling_available_frequencies`.
    pub min_khz: u32,
    /// Highest entry (the turbo pseudo-entry when there is one).
    pub max_khz: u32,
}

impl Range {
    /// The level `khz` stands for.
    pub fn level(self, khz: Option<u32>) -> Level {
        match khz {
            None => Level::Host,
            Some(k) if k <= self.min_khz => Level::Min,
            Some(k) if k >= self.max_khz => Level::Max,
            Some(_) => Level::Mid,
        }
    }
}

/// Reads the pCPUs of the simulated host.
#[derive(Debug)]
pub struct Sampler {
    ranges: BTreeMap<u32, Range>,
}

fn file(cpu: u32, name: &str) -> PathBuf {
    PathBuf::from(format!("devices/system/cpu/cpu{cpu}/cpufreq/{name}"))
}

impl Sampler {
    /// Reads the frequency tables of CPUs `0..cpus`.
    pub fn new(io: &dyn SysfsIo, cpus: u32) -> anyhow::Result<Self> {
        let mut ranges = BTreeMap::new();
        for cpu in 0..cpus {
            let text = io.read(&file(cpu, "scaling_available_frequencies"))?;
            let freqs: Vec<u32> = text
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            let (Some(&min_khz), Some(&max_khz)) = (freqs.iter().min(), freqs.iter().max()) else {
                anyhow::bail!("cpu{cpu} has an empty frequency table");
            };
            ranges.insert(cpu, Range { min_khz, max_khz });
        }
        Ok(Sampler { ranges })
    }

    /// The range of each CPU.
    pub fn ranges(&self) -> &BTreeMap<u32, Range> {
        &self.ranges
    }

    /// Reads every CPU now (a CPU whose files cannot be read is skipped).
    pub fn read(&self, io: &dyn SysfsIo) -> Vec<Reading> {
        self.ranges
            .iter()
            .filter_map(|(&cpu, range)| {
                let governor = io.read(&file(cpu, "scaling_governor")).ok()?;
                let governor = governor.trim().to_owned();
                let khz = if governor == "userspace" {
                    io.read(&file(cpu, "scaling_setspeed"))
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                } else {
                    None
                };
                Some(Reading {
                    cpu,
                    governor,
                    khz,
                    level: range.level(khz),
                })
            })
            .collect()
    }
}

/// Time at each level and relative energy of one pCPU.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Time spent at each level.
    pub at: BTreeMap<Level, Duration>,
    /// Σ (f / f_max)³ × dt, in seconds.
    pub energy: f64,
    /// Σ dt, in seconds (the energy at max over the same time).
    pub seconds: f64,
}

impl Tally {
    /// The share of the sampled time spent at `level` (0 to 1).
    pub fn share(&self, level: Level) -> f64 {
        let at = self.at.get(&level).copied().unwrap_or_default();
        if self.seconds > 0.0 {
            at.as_secs_f64() / self.seconds
        } else {
            0.0
        }
    }
}

/// The sampled history of every pCPU.
#[derive(Debug, Clone, Default)]
pub struct Accounting {
    /// Per CPU.
    pub cpus: BTreeMap<u32, Tally>,
}

/// `x` rounded to a whole number, clamped to `0..=u64::MAX` (NaN is 0).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn whole(x: f64) -> u64 {
    // `as` saturates float → integer casts and maps NaN to 0: exactly the
    // clamp wanted here.
    x.round() as u64
}

/// Relative dynamic power of `khz` against `max_khz` (P ∝ f³).
pub fn relative_power(khz: u32, max_khz: u32) -> f64 {
    let r = f64::from(khz) / f64::from(max_khz.max(1));
    r * r * r
}

impl Accounting {
    /// Counts `readings` as holding for `dt`.
    pub fn add(&mut self, readings: &[Reading], ranges: &BTreeMap<u32, Range>, dt: Duration) {
        for r in readings {
            let Some(range) = ranges.get(&r.cpu) else {
                continue;
            };
            let tally = self.cpus.entry(r.cpu).or_default();
            *tally.at.entry(r.level).or_default() += dt;
            let khz = r.khz.unwrap_or(range.max_khz);
            tally.energy += relative_power(khz, range.max_khz) * dt.as_secs_f64();
            tally.seconds += dt.as_secs_f64();
        }
    }

    /// The estimated saving against every CPU at max, 0 to 1.
    pub fn saving(&self) -> f64 {
        let (energy, seconds) = self
            .cpus
            .values()
            .fold((0.0, 0.0), |(e, s), t| (e + t.energy, s + t.seconds));
        if seconds > 0.0 {
            1.0 - energy / seconds
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmpower_cpufreq::fake::FakeSysfs;
    use vmpower_cpufreq::{Driver, SysfsIo};

    const RANGE: Range = Range {
        min_khz: 800_000,
        max_khz: 2_301_000,
    };

    #[test]
    fn levels_from_the_table() {
        assert_eq!(RANGE.level(None), Level::Host);
        assert_eq!(RANGE.level(Some(800_000)), Level::Min);
        assert_eq!(RANGE.level(Some(1_600_000)), Level::Mid);
        assert_eq!(RANGE.level(Some(2_301_000)), Level::Max);
    }

    #[test]
    fn energy_is_cubic_and_host_cpus_count_at_max() {
        let ranges = BTreeMap::from([(0, RANGE), (1, RANGE)]);
        let at = |cpu, khz: Option<u32>| Reading {
            cpu,
            governor: "userspace".into(),
            khz,
            level: RANGE.level(khz),
        };
        let mut acc = Accounting::default();
        acc.add(
            &[at(0, Some(1_150_500)), at(1, None)],
            &ranges,
            Duration::from_secs(2),
        );
        // cpu0 at half of max: 1/8 of its power; cpu1 at max.
        assert!((acc.saving() - (1.0 - (0.125 + 1.0) / 2.0)).abs() < 1e-9);
        assert!((acc.cpus[&0].share(Level::Mid) - 1.0).abs() < 1e-9);
        assert_eq!(acc.cpus[&1].share(Level::Min), 0.0);
    }

    #[test]
    fn reads_a_fake_host() {
        let fake = FakeSysfs::builder(2)
            .driver(Driver::AcpiCpufreq)
            .build()
            .unwrap();
        let sampler = Sampler::new(&fake, 2).unwrap();
        let r = sampler.read(&fake);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].level, Level::Host, "{r:?}");
        let gov = std::path::Path::new("devices/system/cpu/cpu1/cpufreq/scaling_governor");
        fake.write(gov, "userspace").unwrap();
        let set = std::path::Path::new("devices/system/cpu/cpu1/cpufreq/scaling_setspeed");
        fake.write(set, "800000").unwrap();
        let r = sampler.read(&fake);
        assert_eq!((r[1].khz, r[1].level), (Some(800_000), Level::Min));
    }
}

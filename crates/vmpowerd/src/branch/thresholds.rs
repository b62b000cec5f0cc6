//! Per-core BRANCH_RATIO thresholds as the operator writes them:
//! `CPULIST:THRESHOLD`, e.g. `2-4:0.01` or `1,3,8-9:0.005`, as DPDK's
//! `--core-branch-ratio`.
//!
//! ## Behavior
//! - The CPU list is the kernel's syntax (`0-3,5`); the threshold is a
//!   ratio of misses to branches, a finite number in `0..=1`.
//! - Several entries may be given; a pCPU named by two entries is an
//!   error (which one was meant cannot be guessed).
//! - A pCPU named by no entry uses the policy's threshold if it has one,
//!   else the engine's default (DPDK's 0.01).
//!
//! Errors name the element by its position and text, so a bad entry in a
//! long list is easy to find.

use std::collections::BTreeMap;

use vmpower_cpufreq::CpuId;
use vmpower_cpufreq::cpulist::{CpuListError, format_cpu_list, parse_cpu_list};

/// Why a per-core threshold entry was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// No `:` between the CPU list and the threshold.
    #[error("{text:?}: expected CPULIST:THRESHOLD, e.g. 2-4:0.01")]
    Shape {
        /// The entry.
        text: String,
    },
    /// The CPU list does not parse.
    #[error("{text:?}: {source}")]
    Cpus {
        /// The entry.
        text: String,
        /// Why.
        #[source]
        source: CpuListError,
    },
    /// The threshold is not a number in `0..=1`.
    #[error("{text:?}: threshold {value:?} is not a ratio between 0 and 1")]
    Threshold {
        /// The entry.
        text: String,
        /// The threshold part.
        value: String,
    },
    /// A pCPU is named by two entries.
    #[error("{text:?}: CPU {cpu} already has a threshold from {earlier:?}")]
    Overlap {
        /// The later entry.
        text: String,
        /// The pCPU named twice.
        cpu: u32,
        /// The earlier entry.
        earlier: String,
    },
}

/// One parsed entry: its pCPUs and their threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreThreshold {
    /// The pCPUs (never empty).
    pub cpus: Vec<CpuId>,
    /// Misses / branches above which the cores go to max.
    pub threshold: f64,
}

impl std::fmt::Display for CoreThreshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", format_cpu_list(&self.cpus), self.threshold)
    }
}

impl std::str::FromStr for CoreThreshold {
    type Err = ThresholdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = || ThresholdError::Shape {
            text: text.to_owned(),
        };
        let (cpus, value) = text.trim().rsplit_once(':').ok_or_else(shape)?;
        if cpus.trim().is_empty() {
            return Err(shape());
        }
        let cpus = parse_cpu_list(cpus).map_err(|source| ThresholdError::Cpus {
            text: text.to_owned(),
            source,
        })?;
        let threshold = value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite() && (0.0..=1.0).contains(t))
            .ok_or_else(|| ThresholdError::Threshold {
                text: text.to_owned(),
                value: value.to_owned(),
            })?;
        Ok(CoreThreshold {
            cpus: cpus.into_iter().collect(),
            threshold,
        })
    }
}

/// Parses every entry into one pCPU → threshold map. The error carries
/// the index of the bad entry.
pub fn parse_thresholds<S: AsRef<str>>(
    entries: &[S],
) -> Result<BTreeMap<CpuId, f64>, (usize, ThresholdError)> {
    let mut map = BTreeMap::new();
    let mut from: BTreeMap<CpuId, usize> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let text = entry.as_ref();
        let parsed: CoreThreshold = text.parse().map_err(|e| (i, e))?;
        for cpu in parsed.cpus {
            if let Some(&earlier) = from.get(&cpu) {
                let earlier = entries.get(earlier).map_or("", AsRef::as_ref).to_owned();
                return Err((
                    i,
                    ThresholdError::Overlap {
                        text: text.to_owned(),
                        cpu: cpu.0,
                        earlier,
                    },
                ));
            }
            from.insert(cpu, i);
            map.insert(cpu, parsed.threshold);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_round_trip() {
        let t: CoreThreshold = "2-4:0.01".parse().unwrap();
        assert_eq!(t.cpus, vec![CpuId(2), CpuId(3), CpuId(4)]);
        assert!((t.threshold - 0.01).abs() < f64::EPSILON);
        assert_eq!(t.to_string(), "2-4:0.01");
        let t: CoreThreshold = " 1,3,8-9 : 0.5 ".parse().unwrap();
        assert_eq!(t.to_string(), "1,3,8-9:0.5");
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let shape = |s: &str| {
            matches!(
                s.parse::<CoreThreshold>(),
                Err(ThresholdError::Shape { .. })
            )
        };
        assert!(shape("2-4"));
        assert!(shape(":0.1"));
        assert!(matches!(
            "4-2:0.1".parse::<CoreThreshold>(),
            Err(ThresholdError::Cpus { .. })
        ));
        for bad in ["1:x", "1:-0.1", "1:1.5", "1:NaN", "1:inf", "1:"] {
            let err = bad.parse::<CoreThreshold>().unwrap_err();
            assert!(
                matches!(err, ThresholdError::Threshold { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn a_map_from_several_entries_refuses_overlaps() {
        let map = parse_thresholds(&["0-1:0.02", "3:0.5"]).unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&CpuId(3)), Some(&0.5));
        assert_eq!(map.get(&CpuId(2)), None);
        let (at, err) = parse_thresholds(&["0-3:0.02", "5:0.1", "3:0.5"]).unwrap_err();
        assert_eq!(at, 2);
        assert_eq!(
            err,
            ThresholdError::Overlap {
                text: "3:0.5".to_owned(),
                cpu: 3,
                earlier: "0-3:0.02".to_owned(),
            }
        );
        assert!(parse_thresholds::<&str>(&[]).unwrap().is_empty());
    }
}

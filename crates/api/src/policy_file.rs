//! The policy file operators write (`vmpowerctl policy create FILE`, or a
//! file dropped in the daemon's policy directory): TOML or JSON, explicit
//! hour *sets*, and what DPDK's binary layout cannot carry (time zone,
//! level of other hours, hysteresis, branch threshold).
//!
//! ```toml
//! vm = "vm1"
//! kind = "TIME"                 # TRAFFIC | TIME | WORKLOAD | BRANCH_RATIO
//! cores = [0, 1]                # vCPUs (core_type = "physical" for host CPUs)
//! time_zone = "Europe/Paris"    # default: the host's
//! other_hours = "medium"        # unchanged | min | medium | max (default: the daemon's time_other_hours, unchanged)
//! [hours]
//! busy = [17, 18, 19, 20, 21, 22, 23]
//! quiet = [2, 3, 4, 5, 6]
//! traffic = [8]
//! ```
//!
//! ## Behavior
//! An operator's file is checked more strictly than a guest's policy
//! (which keeps DPDK's leniency): at least one core, MACs for TRAFFIC,
//! `avg_pps` not above `max_pps`, and no hour in two of the hour sets.
//! Every such mistake is a [`PolicyFileError::Invalid`] naming the key and
//! the value.

use serde::{Deserialize, Serialize};
use vmpower_proto::{
    CoreType, HourSchedule, MacAddr, MacList, Policy, PolicyKind, TrafficThresholds, VcpuList,
    WorkloadLevel,
};

/// Hysteresis of a TRAFFIC policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HysteresisFile {
    /// Fraction of a threshold the rate must fall below it by (0..1).
    pub band: f64,
    /// How long it must stay below, in ms.
    pub dwell_ms: u64,
}

/// A policy as an operator writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The VM (as its channel sockets are named).
    pub vm: String,
    /// Which policy.
    pub kind: PolicyKind,
    /// The cores it governs.
    pub cores: Vec<u8>,
    /// vCPUs (default) or host CPUs.
    #[serde(default)]
    pub core_type: CoreType,
    /// MACs whose traffic drives a TRAFFIC policy.
    #[serde(default)]
    pub macs: Vec<MacAddr>,
    /// TRAFFIC thresholds (packets/s).
    #[serde(default)]
    pub traffic: TrafficThresholds,
    /// TIME hours.
    #[serde(default)]
    pub hours: HourSchedule,
    /// WORKLOAD level.
    #[serde(default)]
    pub workload: WorkloadLevel,
    /// DPDK's t_boost_status.
    #[serde(default)]
    pub turbo_boost: bool,
    /// IANA time zone of the hours (default: the host's).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Level of hours in no set: "min", "medium" (default) or "max".
    #[serde(default)]
    pub other_hours: Option<String>,
    /// TRAFFIC hysteresis (default: band 0.05, dwell 500 ms).
    #[serde(default)]
    pub hysteresis: Option<HysteresisFile>,
    /// BRANCH_RATIO threshold (default 0.01).
    #[serde(default)]
    pub branch_threshold: Option<f64>,
    /// TRAFFIC thresholds learned from the guest's drops instead of given
    /// (`traffic` then stays out); default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adaptive: bool,
}

/// Why a policy file is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFileError {
    /// Not valid TOML/JSON of this shape (the parser's message names the
    /// key, line and column).
    #[error("{0}")]
    Parse(String),
    /// A value the protocol cannot hold.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// The two spellings of a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFormat {
    /// TOML (`*.toml`).
    Toml,
    /// JSON (`*.json`).
    Json,
}

impl PolicyFormat {
    /// The format a file name's extension says (`.toml`, `.json`).
    pub fn of_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "toml" => Some(PolicyFormat::Toml),
            "json" => Some(PolicyFormat::Json),
            _ => None,
        }
    }
}

impl PolicyFile {
    /// Parses a file's text: JSON when it starts with `{`, else TOML.
    pub fn parse(text: &str) -> Result<Self, PolicyFileError> {
        let format = if text.trim_start().starts_with('{') {
            PolicyFormat::Json
        } else {
            PolicyFormat::Toml
        };
        Self::parse_as(text, format)
    }

    /// Parses the text of the file at `path` in the format its extension
    /// says (`.toml`, `.json`), or as [`PolicyFile::parse`] guesses.
    pub fn parse_named(path: &std::path::Path, text: &str) -> Result<Self, PolicyFileError> {
        match PolicyFormat::of_path(path) {
            Some(format) => Self::parse_as(text, format),
            None => Self::parse(text),
        }
    }

    /// Parses a file's text in the given format (a `.json` file's error is
    /// JSON's, whatever its text looks like). A parse error names the line,
    /// the column and the key, without quoting the (possibly long) line.
    pub fn parse_as(text: &str, format: PolicyFormat) -> Result<Self, PolicyFileError> {
        let file: PolicyFile = match format {
            PolicyFormat::Json => serde_json::from_str(text).map_err(|e| {
                let at = crate::located::offset_of(text, e.line(), e.column());
                let message = crate::located::without_position(&e.to_string());
                PolicyFileError::Parse(crate::located::describe("JSON", text, at, &message))
            })?,
            PolicyFormat::Toml => toml::from_str(text).map_err(|e| {
                let at = e.span().map_or(0, |s| s.start);
                let message = e.message().trim_end().to_owned();
                PolicyFileError::Parse(crate::located::describe("TOML", text, at, &message))
            })?,
        };
        file.policy()?;
        Ok(file)
    }

    /// The protocol's policy.
    pub fn policy(&self) -> Result<Policy, PolicyFileError> {
        self.check_consistency()?;
        let cores = VcpuList::from_slice(&self.cores).map_err(|e| PolicyFileError::Invalid {
            key: "cores",
            reason: e.to_string(),
        })?;
        let macs = MacList::from_slice(&self.macs).map_err(|e| PolicyFileError::Invalid {
            key: "macs",
            reason: e.to_string(),
        })?;
        if let Some(level) = &self.other_hours
            && !matches!(level.as_str(), "unchanged" | "min" | "medium" | "max")
        {
            {
                return Err(PolicyFileError::Invalid {
                    key: "other_hours",
                    reason: format!("{level:?} is not unchanged, min, medium or max"),
                });
            }
        }
        if let Some(h) = &self.hysteresis
            && !(0.0..1.0).contains(&h.band)
        {
            {
                return Err(PolicyFileError::Invalid {
                    key: "hysteresis.band",
                    reason: format!("{} is not in 0..1", h.band),
                });
            }
        }
        if self.adaptive && self.kind != PolicyKind::Traffic {
            return Err(PolicyFileError::Invalid {
                key: "adaptive",
                reason: format!(
                    "only a TRAFFIC policy learns thresholds, not {:?}",
                    self.kind
                ),
            });
        }
        if self.adaptive && (self.traffic.avg_pps != 0 || self.traffic.max_pps != 0) {
            return Err(PolicyFileError::Invalid {
                key: "traffic",
                reason: "an adaptive policy learns its thresholds: leave avg_pps and max_pps out"
                    .to_owned(),
            });
        }
        if let Some(t) = self.branch_threshold
            && !(t > 0.0 && t < 1.0)
        {
            {
                return Err(PolicyFileError::Invalid {
                    key: "branch_threshold",
                    reason: format!("{t} is not in (0, 1)"),
                });
            }
        }
        Ok(Policy {
            kind: self.kind,
            cores,
            core_type: self.core_type,
            macs,
            traffic: self.traffic,
            hours: self.hours,
            workload: self.workload,
            turbo_boost: self.turbo_boost,
        })
    }

    /// Mistakes the protocol could carry but no operator means: no core, a
    /// TRAFFIC policy without MACs, `avg_pps` above `max_pps`, an hour in
    /// two sets. Guests' policies are not checked here (DPDK compatibility).
    fn check_consistency(&self) -> Result<(), PolicyFileError> {
        if self.cores.is_empty() {
            return Err(PolicyFileError::Invalid {
                key: "cores",
                reason: "[] names no core: give at least one".into(),
            });
        }
        if self.kind == PolicyKind::Traffic && self.macs.is_empty() {
            return Err(PolicyFileError::Invalid {
                key: "macs",
                reason: "a TRAFFIC policy needs at least one MAC, none given".into(),
            });
        }
        let t = self.traffic;
        if t.avg_pps > t.max_pps {
            return Err(PolicyFileError::Invalid {
                key: "traffic.avg_pps",
                reason: format!(
                    "{} is above traffic.max_pps {} (avg_pps must not exceed max_pps)",
                    t.avg_pps, t.max_pps
                ),
            });
        }
        let h = self.hours;
        let sets = [("busy", h.busy), ("quiet", h.quiet), ("traffic", h.traffic)];
        for (i, (a, set_a)) in sets.iter().enumerate() {
            for (b, set_b) in &sets[i + 1..] {
                if let Some(hour) = set_a.iter().find(|hour| set_b.contains(*hour)) {
                    return Err(PolicyFileError::Invalid {
                        key: "hours",
                        reason: format!("hour {hour} is in both {a} and {b}"),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_give_the_same_policy() {
        let toml = r#"
            vm = "vm1"
            kind = "TRAFFIC"
            cores = [0, 1]
            macs = ["02:00:00:00:00:01"]
            [traffic]
            avg_pps = 1800000
            max_pps = 2000000
            [hysteresis]
            band = 0.1
            dwell_ms = 200
        "#;
        let json = r#"{"vm": "vm1", "kind": "TRAFFIC", "cores": [0, 1],
            "macs": ["02:00:00:00:00:01"], "traffic": {"avg_pps": 1800000, "max_pps": 2000000},
            "hysteresis": {"band": 0.1, "dwell_ms": 200}}"#;
        let a = PolicyFile::parse(toml).unwrap();
        let b = PolicyFile::parse(json).unwrap();
        assert_eq!(a, b);
        let p = a.policy().unwrap();
        assert_eq!(p.kind, PolicyKind::Traffic);
        assert_eq!(p.traffic.max_pps, 2_000_000);
        assert_eq!(p.macs.len(), 1);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "vm = \"a\"\nkind = \"TIME\"\ncores = [0]\n[hours]\nbusy = [24]",
                "24",
            ),
            ("vm = \"a\"\nkind = \"NAP\"\ncores = [0]", "NAP"),
            (
                "vm = \"a\"\nkind = \"TIME\"\ncores = [0,1,2,3,4,5,6,7,8]",
                "cores",
            ),
            (
                "vm = \"a\"\nkind = \"TIME\"\ncores = [0]\nother_hours = \"low\"",
                "other_hours",
            ),
            (
                "vm = \"a\"\nkind = \"TIME\"\ncores = [0]\nbusy = [1]",
                "busy",
            ),
            (
                "vm = \"a\"\nkind = \"TRAFFIC\"\ncores = [0]\nmacs = [\"zz\"]",
                "zz",
            ),
        ];
        for (text, needle) in cases {
            let err = PolicyFile::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn parse_errors_name_line_column_and_key_without_quoting_the_line() {
        let cores: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        let cores = cores.join(",");
        let toml = format!("vm = \"a\"\nkind = \"TIME\"\ncores = [{cores}]\n");
        let json = format!("{{\"vm\": \"a\", \"kind\": \"TIME\", \"cores\": [{cores}]}}");
        for (text, format) in [(toml, "TOML"), (json, "JSON")] {
            let err = PolicyFile::parse(&text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{format} parse error at line ")),
                "{err}"
            );
            assert!(err.contains("key `cores`") && err.contains("256"), "{err}");
            assert!(err.len() < 200, "{err}");
        }
    }

    #[test]
    fn a_json_file_gets_a_json_error() {
        let err = PolicyFile::parse_named(std::path::Path::new("p/vm1.json"), "vm = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("JSON parse error at line 1, column 1"),
            "{err}"
        );
        let err = PolicyFile::parse_named(std::path::Path::new("vm1.toml"), "{\"vm\": 1}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("TOML parse error"), "{err}");
    }

    #[test]
    fn inconsistent_files_are_refused_naming_the_field_and_value() {
        let cases = [
            (
                "vm = \"a\"\nkind = \"TIME\"\ncores = []",
                &["cores", "[]"][..],
            ),
            (
                "vm = \"a\"\nkind = \"TRAFFIC\"\ncores = [0]",
                &["macs", "TRAFFIC"][..],
            ),
            (
                "vm = \"a\"\nkind = \"TRAFFIC\"\ncores = [0]\nmacs = [\"02:00:00:00:00:01\"]\n\
                 [traffic]\navg_pps = 100\nmax_pps = 20",
                &["traffic.avg_pps", "100", "max_pps", "20"][..],
            ),
            (
                "vm = \"a\"\nkind = \"TIME\"\ncores = [0]\n[hours]\nbusy = [1, 3]\nquiet = [3, 4]",
                &["hours", "hour 3", "busy", "quiet"][..],
            ),
            (
                "vm = \"a\"\nkind = \"TIME\"\ncores = [0]\n[hours]\nquiet = [5]\ntraffic = [5]",
                &["hour 5", "quiet", "traffic"][..],
            ),
        ];
        for (text, needles) in cases {
            let err = PolicyFile::parse(text).unwrap_err();
            assert!(
                matches!(err, PolicyFileError::Invalid { .. }),
                "{text}: {err:?}"
            );
            let err = err.to_string();
            for needle in needles {
                assert!(err.contains(needle), "{text}: {err} lacks {needle}");
            }
        }
    }

    #[test]
    fn consistent_edges_are_accepted() {
        // avg == max, disjoint hour sets, a TIME policy without MACs.
        let text = "vm = \"a\"\nkind = \"TIME\"\ncores = [0]\n[traffic]\navg_pps = 5\nmax_pps = 5\n\
                    [hours]\nbusy = [1]\nquiet = [2]\ntraffic = [3]";
        let p = PolicyFile::parse(text).unwrap().policy().unwrap();
        assert_eq!(
            p.hours.busy.len() + p.hours.quiet.len() + p.hours.traffic.len(),
            3
        );
    }
}

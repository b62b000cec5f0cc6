//! `send-policy`: the policy from DPDK guest_cli's options, from a TOML or
//! JSON file, or DPDK's example profile when no option is given. Every list
//! is validated (errors point at the bad element) before anything is sent.
//!
//! ## Policy files
//! Keys are the long option names (`policy`, `vcpu-list`, `busy-hours`,
//! `quiet-hours`, `traffic-hours`, `mac-list`, `avg-packet-thresh`,
//! `max-packet-thresh`, `min-packet-thresh`, `workload`, `turbo-boost`,
//! `core-type`); lists are either a string as on the command line
//! (`"1,3,5-7"`) or an array (`[1, 3, 5]`, `["52:54:00:12:34:56"]`).
//! Unknown keys are refused. `.json` files are JSON, anything else TOML.
//!
//! With options (or a file), what is not given is empty or zero, the policy
//! kind defaults to TIME, and `vcpu-list` is required.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Deserialize;
use vmpower_guest::profile::{dpdk_example_policy, first_interface_mac};
use vmpower_guest::spec::{
    SpecError, hours_from_items, mac_list_from_items, parse_hours, parse_mac_list, parse_vcpu_list,
    vcpu_list_from_items,
};
use vmpower_proto::{
    CoreType, HourSchedule, HourSet, MacList, Policy, PolicyKind, TrafficThresholds, VcpuList,
    WorkloadLevel,
};

/// The options of `send-policy` (DPDK guest_cli's, plus what it sets but
/// does not expose).
#[derive(Debug, Default, Args)]
pub struct PolicyArgs {
    /// The policy: TRAFFIC, TIME, WORKLOAD or BRANCH_RATIO.
    #[arg(long, value_enum, ignore_case = true)]
    pub policy: Option<KindArg>,
    /// vCPUs the policy governs, e.g. 1,3,5-7 (0-7, at most 8).
    #[arg(long)]
    pub vcpu_list: Option<String>,
    /// Hours at max, e.g. 17-23.
    #[arg(long)]
    pub busy_hours: Option<String>,
    /// Hours at min, e.g. 2-6.
    #[arg(long)]
    pub quiet_hours: Option<String>,
    /// Hours that follow the traffic thresholds, e.g. 8,10.
    #[arg(long)]
    pub traffic_hours: Option<String>,
    /// MACs whose traffic is counted, comma-separated (at most 10).
    #[arg(long)]
    pub mac_list: Option<String>,
    /// Packets/s at or above which the vCPUs run at medium.
    #[arg(long)]
    pub avg_packet_thresh: Option<u32>,
    /// Packets/s at or above which the vCPUs run at max.
    #[arg(long)]
    pub max_packet_thresh: Option<u32>,
    /// Packets/s minimum threshold (carried; unused by DPDK's host).
    #[arg(long)]
    pub min_packet_thresh: Option<u32>,
    /// Workload level of a WORKLOAD policy: HIGH, MEDIUM or LOW.
    #[arg(long, value_enum, ignore_case = true)]
    pub workload: Option<WorkloadArg>,
    /// Ask for turbo boost (t_boost_status).
    #[arg(long)]
    pub turbo_boost: bool,
    /// The vCPU list names host CPUs (only if the host allows this VM).
    #[arg(long)]
    pub physical_cores: bool,
    /// Read the policy from a TOML or JSON file instead of options.
    #[arg(long, value_name = "POLICY.toml|json", conflicts_with_all = [
        "policy", "vcpu_list", "busy_hours", "quiet_hours", "traffic_hours", "mac_list",
        "avg_packet_thresh", "max_packet_thresh", "min_packet_thresh", "workload",
        "turbo_boost", "physical_cores",
    ])]
    pub file: Option<PathBuf>,
}

/// Policy kinds as written on the command line and in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KindArg {
    /// Follow the packet rate of the MACs.
    Traffic,
    /// Follow busy/quiet/traffic hours.
    Time,
    /// A declared workload level.
    Workload,
    /// Follow the branch-miss ratio (current layout only).
    BranchRatio,
}

/// Workload levels as written on the command line and in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadArg {
    /// Max.
    High,
    /// Medium.
    Medium,
    /// Min.
    Low,
}

/// Why no policy could be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyInputError {
    /// A list is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// No vCPUs given.
    #[error("{0}: a policy needs at least one vCPU")]
    NoVcpus(String),
    /// The file could not be read.
    #[error("cannot read the policy file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid policy document.
    #[error("policy file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and key).
        message: String,
    },
}

/// Where the policy came from, for the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// DPDK guest_cli's example profile (no options given).
    DpdkExample,
    /// The command-line options.
    Options,
    /// A policy file.
    File,
}

/// Builds the policy `send-policy` sends.
pub fn build(args: &PolicyArgs, sys_root: &Path) -> Result<(Policy, Source), PolicyInputError> {
    if let Some(path) = &args.file {
        return Ok((from_file(path)?, Source::File));
    }
    if is_empty(args) {
        let mac = first_interface_mac(sys_root).map(|(_, mac)| mac);
        return Ok((dpdk_example_policy(mac), Source::DpdkExample));
    }
    let list =
        |opt: &Option<String>, name: &str, parse: fn(&str, &str) -> Result<HourSet, SpecError>| {
            opt.as_deref()
                .map_or(Ok(HourSet::EMPTY), |t| parse(name, t))
        };
    let cores = match &args.vcpu_list {
        Some(t) => parse_vcpu_list("--vcpu-list", t)?,
        None => VcpuList::default(),
    };
    let macs = match &args.mac_list {
        Some(t) => parse_mac_list("--mac-list", t)?,
        None => MacList::default(),
    };
    let policy = Policy {
        kind: kind(args.policy),
        cores,
        core_type: core_type(args.physical_cores),
        macs,
        traffic: TrafficThresholds {
            min_pps: args.min_packet_thresh.unwrap_or(0),
            avg_pps: args.avg_packet_thresh.unwrap_or(0),
            max_pps: args.max_packet_thresh.unwrap_or(0),
        },
        hours: HourSchedule {
            busy: list(&args.busy_hours, "--busy-hours", parse_hours)?,
            quiet: list(&args.quiet_hours, "--quiet-hours", parse_hours)?,
            traffic: list(&args.traffic_hours, "--traffic-hours", parse_hours)?,
        },
        workload: workload(args.workload),
        turbo_boost: args.turbo_boost,
    };
    if policy.cores.is_empty() {
        return Err(PolicyInputError::NoVcpus("--vcpu-list".to_owned()));
    }
    Ok((policy, Source::Options))
}

fn is_empty(a: &PolicyArgs) -> bool {
    a.policy.is_none()
        && a.vcpu_list.is_none()
        && a.busy_hours.is_none()
        && a.quiet_hours.is_none()
        && a.traffic_hours.is_none()
        && a.mac_list.is_none()
        && a.avg_packet_thresh.is_none()
        && a.max_packet_thresh.is_none()
        && a.min_packet_thresh.is_none()
        && a.workload.is_none()
        && !a.turbo_boost
        && !a.physical_cores
}

fn kind(arg: Option<KindArg>) -> PolicyKind {
    match arg {
        Some(KindArg::Traffic) => PolicyKind::Traffic,
        Some(KindArg::Time) | None => PolicyKind::Time,
        Some(KindArg::Workload) => PolicyKind::Workload,
        Some(KindArg::BranchRatio) => PolicyKind::BranchRatio,
    }
}

fn workload(arg: Option<WorkloadArg>) -> WorkloadLevel {
    match arg {
        Some(WorkloadArg::High) | None => WorkloadLevel::High,
        Some(WorkloadArg::Medium) => WorkloadLevel::Medium,
        Some(WorkloadArg::Low) => WorkloadLevel::Low,
    }
}

fn core_type(physical: bool) -> CoreType {
    if physical {
        CoreType::Physical
    } else {
        CoreType::Virtual
    }
}

/// A list in a file: a string as on the command line, or an array.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NumberList {
    Text(String),
    Items(Vec<i64>),
}

/// A MAC list in a file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MacItems {
    Text(String),
    Items(Vec<String>),
}

/// The policy file document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PolicyFile {
    policy: Option<KindArg>,
    vcpu_list: Option<NumberList>,
    busy_hours: Option<NumberList>,
    quiet_hours: Option<NumberList>,
    traffic_hours: Option<NumberList>,
    mac_list: Option<MacItems>,
    avg_packet_thresh: Option<u32>,
    max_packet_thresh: Option<u32>,
    min_packet_thresh: Option<u32>,
    workload: Option<WorkloadArg>,
    #[serde(default)]
    turbo_boost: bool,
    #[serde(default)]
    core_type: CoreType,
}

/// Reads and validates a policy file.
pub fn from_file(path: &Path) -> Result<Policy, PolicyInputError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyInputError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse_error = |message: String| PolicyInputError::Parse {
        path: path.to_owned(),
        message,
    };
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let doc: PolicyFile = if is_json {
        serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?
    } else {
        toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?
    };
    let label = |key: &str| format!("{}: {key}", path.display());
    let hours = |v: &Option<NumberList>, key: &str| -> Result<HourSet, SpecError> {
        match v {
            None => Ok(HourSet::EMPTY),
            Some(NumberList::Text(t)) => parse_hours(&label(key), t),
            Some(NumberList::Items(i)) => hours_from_items(&label(key), i),
        }
    };
    let cores = match &doc.vcpu_list {
        None => VcpuList::default(),
        Some(NumberList::Text(t)) => parse_vcpu_list(&label("vcpu-list"), t)?,
        Some(NumberList::Items(i)) => vcpu_list_from_items(&label("vcpu-list"), i)?,
    };
    let macs = match &doc.mac_list {
        None => MacList::default(),
        Some(MacItems::Text(t)) => parse_mac_list(&label("mac-list"), t)?,
        Some(MacItems::Items(i)) => mac_list_from_items(&label("mac-list"), i)?,
    };
    if cores.is_empty() {
        return Err(PolicyInputError::NoVcpus(label("vcpu-list")));
    }
    Ok(Policy {
        kind: kind(doc.policy),
        cores,
        core_type: doc.core_type,
        macs,
        traffic: TrafficThresholds {
            min_pps: doc.min_packet_thresh.unwrap_or(0),
            avg_pps: doc.avg_packet_thresh.unwrap_or(0),
            max_pps: doc.max_packet_thresh.unwrap_or(0),
        },
        hours: HourSchedule {
            busy: hours(&doc.busy_hours, "busy-hours")?,
            quiet: hours(&doc.quiet_hours, "quiet-hours")?,
            traffic: hours(&doc.traffic_hours, "traffic-hours")?,
        },
        workload: workload(doc.workload),
        turbo_boost: doc.turbo_boost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn toml_and_json_files_give_the_same_policy() {
        let dir = tempfile::tempdir().unwrap();
        let t = write(
            dir.path(),
            "p.toml",
            "policy = \"TRAFFIC\"\nvcpu-list = \"1,3-4\"\nbusy-hours = [17, 18]\n\
             mac-list = [\"52:54:00:00:00:01\"]\nmax-packet-thresh = 2000000\nworkload = \"LOW\"\n",
        );
        let j = write(
            dir.path(),
            "p.json",
            r#"{"policy": "TRAFFIC", "vcpu-list": [1, 3, 4], "busy-hours": "17-18",
                "mac-list": "52:54:00:00:00:01", "max-packet-thresh": 2000000, "workload": "LOW"}"#,
        );
        let a = from_file(&t).unwrap();
        let b = from_file(&j).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.kind, PolicyKind::Traffic);
        assert_eq!(a.cores.as_slice(), [1, 3, 4]);
        assert_eq!(a.traffic.max_pps, 2_000_000);
        assert_eq!(a.workload, WorkloadLevel::Low);
    }

    #[test]
    fn file_errors_name_the_file_key_and_element() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad.toml", "vcpu-list = [0, 9]\n");
        let e = from_file(&p).unwrap_err().to_string();
        assert!(e.contains("bad.toml: vcpu-list: element 2"), "{e}");
        assert!(e.contains("vCPU 9"), "{e}");
        let p = write(dir.path(), "typo.toml", "vcpus = [0]\n");
        let e = from_file(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
        let p = write(dir.path(), "empty.json", "{}");
        assert!(matches!(from_file(&p), Err(PolicyInputError::NoVcpus(_))));
    }

    #[test]
    fn no_options_means_the_dpdk_example() {
        let dir = tempfile::tempdir().unwrap();
        let (p, source) = build(&PolicyArgs::default(), dir.path()).unwrap();
        assert_eq!(source, Source::DpdkExample);
        assert_eq!(p, dpdk_example_policy(None));
    }

    #[test]
    fn options_build_a_policy_and_bad_elements_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let args = PolicyArgs {
            policy: Some(KindArg::Workload),
            vcpu_list: Some("0,2".into()),
            workload: Some(WorkloadArg::Medium),
            ..PolicyArgs::default()
        };
        let (p, source) = build(&args, dir.path()).unwrap();
        assert_eq!(source, Source::Options);
        assert_eq!(p.kind, PolicyKind::Workload);
        assert_eq!(p.workload, WorkloadLevel::Medium);
        let args = PolicyArgs {
            quiet_hours: Some("2,24".into()),
            vcpu_list: Some("0".into()),
            ..PolicyArgs::default()
        };
        let e = build(&args, dir.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            "--quiet-hours: element 2 (\"24\"): hour 24 is outside 0-23"
        );
        let args = PolicyArgs {
            busy_hours: Some("3".into()),
            ..PolicyArgs::default()
        };
        assert!(matches!(
            build(&args, dir.path()),
            Err(PolicyInputError::NoVcpus(_))
        ));
    }
}

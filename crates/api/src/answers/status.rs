//! The answer to `status`: the daemon's health (channels up and down,
//! policies and why they wait, the last errors, the counters).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::top::ChannelState;

/// The answer to [`crate::CtlRequest::Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's version.
    pub version: String,
    /// The commit it was built from.
    pub commit: String,
    /// The directory of channel sockets.
    pub channel_dir: PathBuf,
    /// The channel sockets served, sorted.
    pub channels_served: Vec<PathBuf>,
    /// Guest channels the daemon is connected to.
    pub channels_up: usize,
    /// Guest channels listed but not connected.
    pub channels_down: usize,
    /// Where the metrics are served (`host:port`), when they are.
    pub metrics_address: Option<String>,
    /// VMs known.
    pub vms: usize,
    /// Host CPUs with frequency control.
    pub pcpus: usize,
    /// Those the daemon holds now.
    pub pcpus_managed: Vec<u32>,
    /// Each VM's policy in brief.
    pub policies: Vec<PolicyBrief>,
    /// The counters.
    pub stats: Counters,
}

/// A VM's policy in brief (in `status` and in `top`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyBrief {
    /// The VM.
    pub vm: String,
    /// Its kind, as the metrics label it (`traffic`, `time`, `workload`,
    /// `branch_ratio`).
    pub kind: String,
    /// Deciding or waiting.
    pub state: PolicyStateName,
    /// What it waits for, when it waits.
    pub waiting_for: Option<String>,
    /// The last packet rate measured.
    pub rate_pps: Option<f64>,
}

/// Whether a policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyStateName {
    /// Deciding its cores' levels.
    Active,
    /// Accepted, waiting for an input (`waiting_for` says which).
    Waiting,
}

impl std::fmt::Display for PolicyStateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyStateName::Active => "active",
            PolicyStateName::Waiting => "waiting",
        })
    }
}

/// What the daemon counted since it started (`stats` in `status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests by `vm/kind/result`.
    pub requests: BTreeMap<String, u64>,
    /// Rejections by reason label.
    pub rejections: BTreeMap<String, u64>,
    /// sysfs writes done.
    pub sysfs_writes: u64,
    /// Frequency changes or releases that failed.
    pub sysfs_failures: u64,
    /// Packets whose vm_name was another VM's.
    pub name_mismatches: u64,
    /// Replies dropped because the guest does not read them.
    pub replies_dropped: u64,
    /// Log lines guests caused past their budget.
    pub log_lines_suppressed: u64,
    /// Bytes of partial records dropped at disconnect.
    pub partial_bytes_dropped: u64,
    /// Channel connections made (first connects and reconnects).
    pub connects: u64,
    /// Policy inputs handed to the engine, by input.
    pub policy_evaluations: BTreeMap<String, u64>,
    /// Each guest channel's state, by `vm.index`.
    pub channels: BTreeMap<String, ChannelState>,
    /// The last rejections and failures, newest first.
    pub last_errors: Vec<RecentError>,
    /// Files of the policy directory refused now, with why.
    pub policy_files_refused: Vec<RefusedFile>,
    /// Another writer's changes to the files of pCPUs the daemon held.
    pub foreign_writes: Vec<ForeignWrites>,
}

/// What kind of error a [`RecentError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecentErrorKind {
    /// A guest's request was refused or ignored.
    Rejection,
    /// A sysfs write (frequency change or release) failed.
    Sysfs,
}

impl std::fmt::Display for RecentErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecentErrorKind::Rejection => "rejection",
            RecentErrorKind::Sysfs => "sysfs",
        })
    }
}

/// One of the last errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentError {
    /// Unix time in milliseconds of the latest occurrence.
    pub at_ms: u64,
    /// The VM concerned, if any.
    pub vm: Option<String>,
    /// Rejection or sysfs failure.
    pub kind: RecentErrorKind,
    /// The stable label (a rejection reason, or `write`/`release`).
    pub label: String,
    /// The message of the latest occurrence.
    pub detail: String,
    /// How many times in a row it happened.
    pub count: u64,
}

/// A policy-directory file refused, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedFile {
    /// The file.
    pub file: PathBuf,
    /// Why (parse errors run over several lines).
    pub error: String,
}

/// What another writer did to one pCPU's domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignWrites {
    /// The pCPU (its domain's leader).
    pub pcpu: u32,
    /// Foreign writes noticed.
    pub count: u64,
    /// Unix time in ms of the last one.
    pub last_at_ms: u64,
    /// What was found (file, expected and found values).
    pub detail: String,
    /// What the daemon did: `retaken`, `yielded`, or `retake_failed`.
    pub handled: String,
    /// Given up to the other writer now.
    pub yielded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::pin;

    fn sample() -> Status {
        Status {
            version: "0.1.0".into(),
            commit: "abc1234".into(),
            channel_dir: "/run/vmpower/channels".into(),
            channels_served: vec!["/run/vmpower/channels/vm1.0".into()],
            channels_up: 1,
            channels_down: 0,
            metrics_address: None,
            vms: 2,
            pcpus: 4,
            pcpus_managed: vec![2],
            policies: vec![PolicyBrief {
                vm: "vm2".into(),
                kind: "traffic".into(),
                state: PolicyStateName::Waiting,
                waiting_for: Some("MAC 02:00:5e:00:99:07: no counter".into()),
                rate_pps: None,
            }],
            stats: Counters {
                requests: BTreeMap::from([("vm1/power/ok".into(), 3)]),
                rejections: BTreeMap::from([("rate_limited".into(), 1)]),
                sysfs_writes: 5,
                sysfs_failures: 1,
                connects: 1,
                policy_evaluations: BTreeMap::from([("traffic".into(), 7)]),
                channels: BTreeMap::from([(
                    "vm1.0".into(),
                    ChannelState {
                        up: true,
                        connects: 1,
                        since_ms: 1_700_000_000_000,
                        throttled: 0,
                    },
                )]),
                last_errors: vec![RecentError {
                    at_ms: 1_700_000_000_500,
                    vm: None,
                    kind: RecentErrorKind::Sysfs,
                    label: "write".into(),
                    detail: "pCPU 1: denied".into(),
                    count: 2,
                }],
                policy_files_refused: vec![RefusedFile {
                    file: "/p/bad.toml".into(),
                    error: "bad kind".into(),
                }],
                foreign_writes: vec![ForeignWrites {
                    pcpu: 3,
                    count: 1,
                    last_at_ms: 9,
                    detail: "cpu3: scaling_setspeed".into(),
                    handled: "yielded".into(),
                    yielded: true,
                }],
                ..Counters::default()
            },
        }
    }

    #[test]
    fn status_keeps_its_wire_form() {
        pin(
            &sample(),
            concat!(
                r#"{"channel_dir":"/run/vmpower/channels","channels_down":0,"#,
                r#""channels_served":["/run/vmpower/channels/vm1.0"],"channels_up":1,"#,
                r#""commit":"abc1234","metrics_address":null,"pcpus":4,"pcpus_managed":[2],"#,
                r#""policies":[{"kind":"traffic","rate_pps":null,"state":"waiting","vm":"vm2","#,
                r#""waiting_for":"MAC 02:00:5e:00:99:07: no counter"}],"#,
                r#""stats":{"channels":{"vm1.0":{"connects":1,"since_ms":1700000000000,"throttled":0,"up":true}},"#,
                r#""connects":1,"foreign_writes":[{"count":1,"detail":"cpu3: scaling_setspeed","#,
                r#""handled":"yielded","last_at_ms":9,"pcpu":3,"yielded":true}],"#,
                r#""last_errors":[{"at_ms":1700000000500,"count":2,"detail":"pCPU 1: denied","#,
                r#""kind":"sysfs","label":"write","vm":null}],"log_lines_suppressed":0,"#,
                r#""name_mismatches":0,"partial_bytes_dropped":0,"#,
                r#""policy_evaluations":{"traffic":7},"#,
                r#""policy_files_refused":[{"error":"bad kind","file":"/p/bad.toml"}],"#,
                r#""rejections":{"rate_limited":1},"replies_dropped":0,"#,
                r#""requests":{"vm1/power/ok":3},"sysfs_failures":1,"sysfs_writes":5},"#,
                r#""version":"0.1.0","vms":2}"#
            ),
        );
    }

    #[test]
    fn an_active_policy_has_a_rate_and_no_reason() {
        let brief = PolicyBrief {
            vm: "vm1".into(),
            kind: "workload".into(),
            state: PolicyStateName::Active,
            waiting_for: None,
            rate_pps: Some(1_500_000.0),
        };
        pin(
            &brief,
            r#"{"kind":"workload","rate_pps":1500000.0,"state":"active","vm":"vm1","waiting_for":null}"#,
        );
    }
}

//! Counters of what the daemon did, for `vmpowerctl status` and the
//! metrics endpoint. Updated under the core's lock.
//!
//! ## Behavior
//! - The request path is allocation-free once a (VM, kind, result) key
//!   exists: keys are `&'static str` labels and the VM's `Arc` name.
//! - Rejections and sysfs failures are also kept in a small ring of the
//!   last ones ([`RecentErrors`]) with their time and message.
//! - Channel states are kept per channel: up while the daemon holds a
//!   connection to its socket, with the number of connections made. A
//!   channel is listed from the daemon's first attempt to connect, so one
//!   whose socket never accepted (bound but not listening, or refusing)
//!   shows as down with 0 connects.
//!
//! ## Limitations
//! Counters live in memory: a restart starts them at zero (as Prometheus
//! counters expect).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use vmpower_api::answers;
use vmpower_engine::{ChannelId, Decision, FreqChange, Note, Reply, VmId};
use vmpower_proto::stream::Frame;
use vmpower_proto::{RequestBody, Verdict};

use crate::recent::{ErrorKind, RecentErrors};

/// A guest channel's connection state, as `status` shows it.
pub use vmpower_api::answers::ChannelState;
/// A VM's last frequency decision, as `top` shows it.
pub use vmpower_api::answers::LastDecision;

/// Daemon-wide counters (`status` shows them as [`answers::Counters`]).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Requests by VM, kind and result (shown as `vm/kind/result`).
    pub requests: HashMap<(VmId, &'static str, &'static str), u64>,
    /// Rejections by reason label.
    pub rejections: BTreeMap<&'static str, u64>,
    /// sysfs writes done.
    pub sysfs_writes: u64,
    /// Frequency changes or releases that failed.
    pub sysfs_failures: u64,
    /// Packets whose vm_name was another VM's.
    pub name_mismatches: u64,
    /// Replies dropped because the guest does not read them.
    pub replies_dropped: u64,
    /// Log lines a guest caused past its budget ([`crate::ratelog`]).
    pub log_lines_suppressed: u64,
    /// Bytes of partial records dropped at disconnect.
    pub partial_bytes_dropped: u64,
    /// Channel connections made (first connects and reconnects).
    pub connects: u64,
    /// Policy inputs handed to the engine, by input (`traffic`, `time`,
    /// `branch_ratio`).
    pub policy_evaluations: BTreeMap<&'static str, u64>,
    /// Each guest channel's state (shown by `vm.index`).
    pub channels: BTreeMap<ChannelId, ChannelState>,
    /// The last rejections and failures, newest first.
    pub last_errors: RecentErrors,
    /// Files of the policy directory refused now, with why; a file leaves
    /// the list when it is applied or removed.
    pub policy_files_refused: BTreeMap<PathBuf, String>,
    /// Another writer's changes to the files of pCPUs the daemon held,
    /// per pCPU (its domain's leader).
    pub foreign_writes: BTreeMap<u32, crate::foreign::ForeignWrites>,
    /// Each VM's last frequency decision (for `vmpowerctl top`).
    pub last_decisions: HashMap<VmId, LastDecision>,
    /// Packets received by the MACs of each VM's traffic-driven policy,
    /// counted at each sample (the metric `rate()` reads).
    pub vm_packets: BTreeMap<VmId, u64>,
    /// Packets the same MACs' sources dropped because the guest did not
    /// keep up, counted at each sample.
    pub vm_drops: BTreeMap<VmId, u64>,
}

/// The request kinds, as labelled in [`Stats::requests`].
pub const REQUEST_KINDS: &[&str] = &[
    "malformed",
    "connect",
    "power",
    "policy",
    "policy_remove",
    "query",
    "busyness",
];

/// The request results, as labelled in [`Stats::requests`].
pub const REQUEST_RESULTS: &[&str] = &["ok", "nack", "ignored"];

impl Stats {
    /// The counters as `status` shows them: requests by `vm/kind/result`,
    /// channels by `vm.index`, the last errors newest first, the refused
    /// files and the other writers in order.
    pub fn counters(&self) -> answers::Counters {
        let labelled = |m: &BTreeMap<&'static str, u64>| -> BTreeMap<String, u64> {
            m.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
        };
        answers::Counters {
            requests: self
                .requests
                .iter()
                .map(|((vm, kind, result), n)| (format!("{vm}/{kind}/{result}"), *n))
                .collect(),
            rejections: labelled(&self.rejections),
            sysfs_writes: self.sysfs_writes,
            sysfs_failures: self.sysfs_failures,
            name_mismatches: self.name_mismatches,
            replies_dropped: self.replies_dropped,
            log_lines_suppressed: self.log_lines_suppressed,
            partial_bytes_dropped: self.partial_bytes_dropped,
            connects: self.connects,
            policy_evaluations: labelled(&self.policy_evaluations),
            channels: self
                .channels
                .iter()
                .map(|(c, st)| (c.to_string(), *st))
                .collect(),
            last_errors: self.last_errors.answer(),
            policy_files_refused: self
                .policy_files_refused
                .iter()
                .map(|(file, error)| answers::RefusedFile {
                    file: file.clone(),
                    error: error.clone(),
                })
                .collect(),
            foreign_writes: self
                .foreign_writes
                .values()
                .map(|f| answers::ForeignWrites {
                    pcpu: f.pcpu,
                    count: f.count,
                    last_at_ms: f.last_at_ms,
                    detail: f.detail.clone(),
                    handled: f.handled.to_owned(),
                    yielded: f.yielded,
                })
                .collect(),
        }
    }

    /// Counts one request and its outcome.
    pub fn count_request(&mut self, vm: &VmId, frame: &Frame<'_>, decision: &Decision) {
        let kind = match &frame.request {
            Err(_) => "malformed",
            Ok(r) => match r.body {
                RequestBody::Connect { .. } => "connect",
                RequestBody::Power { .. } => "power",
                RequestBody::SetPolicy(_) => "policy",
                RequestBody::RemovePolicy => "policy_remove",
                RequestBody::Query { .. } => "query",
                RequestBody::Hello { .. } => "hello",
                RequestBody::Busyness(_) => "busyness",
            },
        };
        let refused = decision
            .notes
            .iter()
            .any(|n| matches!(n, Note::Rejected(_)));
        let result = match decision.reply {
            Reply::Verdict(Verdict::Nack) => "nack",
            // Refused without a reply (DPDK's contract answers no refused
            // query, a disabled channel and a flood get none).
            _ if refused => "ignored",
            _ => "ok",
        };
        // Counted by key, named only when shown: no allocation per request
        // once a VM's keys exist.
        match self.requests.get_mut(&(vm.clone(), kind, result)) {
            Some(n) => *n += 1,
            None => {
                self.requests.insert((vm.clone(), kind, result), 1);
            }
        }
        for note in &decision.notes {
            if let Note::Rejected(r) = note {
                *self.rejections.entry(r.label()).or_default() += 1;
                self.last_errors.push(
                    unix_millis(),
                    Some(vm),
                    ErrorKind::Rejection,
                    r.label(),
                    format_args!("{r}"),
                );
            }
        }
    }

    /// Counts a failed sysfs operation (`what`: `write` or `release`),
    /// for `vm` when the change was for one.
    pub fn sysfs_failed(
        &mut self,
        vm: Option<&VmId>,
        what: &'static str,
        detail: fmt::Arguments<'_>,
    ) {
        self.sysfs_failures += 1;
        self.last_errors
            .push(unix_millis(), vm, ErrorKind::Sysfs, what, detail);
    }

    /// A policy-directory file was refused for `error` (kept until the
    /// file is applied or removed).
    pub fn policy_file_refused(&mut self, file: &Path, error: String) {
        self.policy_files_refused.insert(file.to_owned(), error);
    }

    /// A policy-directory file was applied or removed: no longer refused.
    pub fn policy_file_settled(&mut self, file: &Path) {
        self.policy_files_refused.remove(file);
    }

    /// Counts `n` policy inputs of kind `input` handed to the engine.
    pub fn policy_evaluated(&mut self, input: &'static str, n: usize) {
        if n == 0 {
            return;
        }
        *self.policy_evaluations.entry(input).or_default() += n as u64;
    }

    /// The daemon is about to try `channel`'s socket: lists it (down, no
    /// connects) if it is not listed yet.
    pub fn channel_known(&mut self, channel: &ChannelId) {
        if !self.channels.contains_key(channel) {
            let state = ChannelState {
                since_ms: unix_millis(),
                ..ChannelState::default()
            };
            self.channels.insert(channel.clone(), state);
        }
    }

    /// Whether the daemon is connected to `channel`'s socket.
    pub fn channel_is_up(&self, channel: &ChannelId) -> bool {
        self.channels.get(channel).is_some_and(|c| c.up)
    }

    /// The daemon connected to `channel`'s socket.
    pub fn channel_up(&mut self, channel: &ChannelId) {
        self.connects += 1;
        let now = unix_millis();
        let state = self.channels.entry(channel.clone()).or_default();
        state.up = true;
        state.connects += 1;
        state.since_ms = now;
    }

    /// `channel` spent its rate limit: it is not read until its next
    /// token.
    pub fn channel_throttled(&mut self, channel: &ChannelId) {
        if let Some(state) = self.channels.get_mut(channel) {
            state.throttled += 1;
        }
    }

    /// Adds `n` dropped packets to `vm`'s drop counter (its policy's
    /// MACs' sources: what the guest did not keep up with).
    pub fn vm_drops_counted(&mut self, vm: &VmId, n: u64) {
        match self.vm_drops.get_mut(vm) {
            Some(total) => *total += n,
            None => {
                self.vm_drops.insert(vm.clone(), n);
            }
        }
    }

    /// Adds `n` packets to `vm`'s traffic counter (its policy's MACs).
    pub fn vm_packets_counted(&mut self, vm: &VmId, n: u64) {
        match self.vm_packets.get_mut(vm) {
            Some(total) => *total += n,
            None => {
                self.vm_packets.insert(vm.clone(), n);
            }
        }
    }

    /// Requests counted for `vm`, whatever their kind and result.
    pub fn vm_requests(&self, vm: &VmId) -> u64 {
        self.requests
            .iter()
            .filter(|((v, _, _), _)| v == vm)
            .map(|(_, n)| n)
            .sum()
    }

    /// The connection to `channel`'s socket ended.
    pub fn channel_down(&mut self, channel: &ChannelId) {
        let now = unix_millis();
        if let Some(state) = self.channels.get_mut(channel) {
            state.up = false;
            state.since_ms = now;
        }
    }

    /// Forgets the channels and decisions of a VM that is gone.
    pub fn forget_vm(&mut self, vm: &VmId) {
        self.channels.retain(|c, _| &c.vm != vm);
        self.last_decisions.remove(vm);
        self.vm_packets.remove(vm);
        self.vm_drops.remove(vm);
    }

    /// Records a frequency change decided for `vm` (the operator's and
    /// those of no VM are not kept).
    pub fn decided(&mut self, vm: Option<&str>, change: &FreqChange, reason: &str) {
        let Some(vm) = vm else { return };
        let decision = LastDecision {
            at_ms: unix_millis(),
            pcpu: change.cpu.0,
            old_khz: change.from.0,
            new_khz: change.to.0,
            reason: reason.to_owned(),
        };
        self.last_decisions.insert(VmId::new(vm), decision);
    }
}

fn unix_millis() -> u64 {
    jiff::Timestamp::now()
        .as_millisecond()
        .try_into()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(vm: &str, index: u32) -> ChannelId {
        ChannelId {
            vm: VmId::new(vm),
            index,
        }
    }

    #[test]
    fn channels_go_up_and_down_and_count_reconnects() {
        let mut s = Stats::default();
        let c = channel("vm1", 0);
        s.channel_up(&c);
        assert!(s.channels[&c].up);
        assert_eq!(s.channels[&c].reconnects(), 0);
        s.channel_down(&c);
        assert!(!s.channels[&c].up);
        s.channel_up(&c);
        assert_eq!(s.channels[&c].reconnects(), 1);
        assert_eq!(s.connects, 2);
        // A channel never connected is not invented by a close.
        s.channel_down(&channel("vm2", 0));
        assert_eq!(s.channels.len(), 1);
        assert_eq!(s.counters().channels["vm1.0"].connects, 2);
        s.forget_vm(&VmId::new("vm1"));
        assert!(s.channels.is_empty());
    }

    #[test]
    fn a_channel_tried_but_never_connected_is_listed_down() {
        let mut s = Stats::default();
        let c = channel("vm1", 0);
        s.channel_known(&c);
        assert_eq!(
            s.channels[&c],
            ChannelState {
                since_ms: s.channels[&c].since_ms,
                ..ChannelState::default()
            }
        );
        assert_eq!(s.connects, 0);
        let shown = s.counters().channels["vm1.0"];
        assert!(!shown.up);
        assert_eq!(shown.connects, 0);
        // Known again after a connection: its state and count stay.
        s.channel_up(&c);
        s.channel_known(&c);
        assert!(s.channels[&c].up);
        assert_eq!(s.channels[&c].connects, 1);
    }

    #[test]
    fn sysfs_failures_are_counted_and_kept() {
        let mut s = Stats::default();
        s.sysfs_failed(None, "write", format_args!("pCPU {}: denied", 3));
        assert_eq!(s.sysfs_failures, 1);
        let e = s.last_errors.newest_first().next().unwrap();
        assert_eq!((e.label, e.detail.as_str()), ("write", "pCPU 3: denied"));
        assert_eq!(e.kind, ErrorKind::Sysfs);
        let vm = VmId::new("vm1");
        s.sysfs_failed(Some(&vm), "release", format_args!("pCPU 2: gone"));
        let shown = s.counters().last_errors;
        assert_eq!(shown[0].vm.as_deref(), Some("vm1"));
        assert_eq!(shown[1].vm, None);
    }

    #[test]
    fn refused_policy_files_are_listed_until_settled() {
        let mut s = Stats::default();
        s.policy_file_refused(Path::new("/p/b.toml"), "bad kind".into());
        s.policy_file_refused(Path::new("/p/a.toml"), "old".into());
        s.policy_file_refused(Path::new("/p/a.toml"), "new".into());
        let refused = |file: &str, error: &str| answers::RefusedFile {
            file: file.into(),
            error: error.into(),
        };
        assert_eq!(
            s.counters().policy_files_refused,
            [
                refused("/p/a.toml", "new"),
                refused("/p/b.toml", "bad kind")
            ]
        );
        s.policy_file_settled(Path::new("/p/a.toml"));
        s.policy_file_settled(Path::new("/p/never.toml"));
        assert_eq!(s.policy_files_refused.len(), 1);
    }

    #[test]
    fn counters_name_requests_channels_and_list_other_writers_by_pcpu() {
        let mut s = Stats::default();
        let vm = VmId::new("vm1");
        s.requests.insert((vm.clone(), "power", "ok"), 4);
        s.requests.insert((vm, "query", "nack"), 1);
        s.channel_up(&channel("vm1", 2));
        for pcpu in [5, 1] {
            let writes = crate::foreign::ForeignWrites {
                pcpu,
                handled: "retaken",
                ..Default::default()
            };
            s.foreign_writes.insert(pcpu, writes);
        }
        let shown = s.counters();
        assert_eq!(
            shown.requests,
            BTreeMap::from([
                ("vm1/power/ok".to_owned(), 4),
                ("vm1/query/nack".to_owned(), 1)
            ])
        );
        assert!(shown.channels["vm1.2"].up);
        let pcpus: Vec<u32> = shown.foreign_writes.iter().map(|f| f.pcpu).collect();
        assert_eq!(pcpus, [1, 5]);
        assert_eq!(shown.foreign_writes[0].handled, "retaken");
    }

    #[test]
    fn evaluations_add_up_by_input() {
        let mut s = Stats::default();
        s.policy_evaluated("traffic", 3);
        s.policy_evaluated("traffic", 2);
        s.policy_evaluated("time", 1);
        assert_eq!(s.policy_evaluations["traffic"], 5);
        assert_eq!(s.policy_evaluations["time"], 1);
    }
}

//! Counters of what the daemon did, for `vmpowerctl status` (and the
//! metrics endpoint later). Updated under the core's lock.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use vmpower_engine::{Decision, Note, Reply, VmId};
use vmpower_proto::stream::Frame;
use vmpower_proto::{RequestBody, Verdict};

/// Daemon-wide counters.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// Requests by VM, kind and result, as `vm/kind/result`.
    #[serde(serialize_with = "requests_by_name")]
    pub requests: HashMap<(VmId, &'static str, &'static str), u64>,
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
    /// Bytes of partial records dropped at disconnect.
    pub partial_bytes_dropped: u64,
    /// Channel connections made (first connects and reconnects).
    pub connects: u64,
}

impl Stats {
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
            },
        };
        let result = match decision.reply {
            Reply::Verdict(Verdict::Nack) => "nack",
            Reply::None
                if !decision
                    .notes
                    .iter()
                    .any(|n| matches!(n, Note::Connected(_))) =>
            {
                "ignored"
            }
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
                *self.rejections.entry(r.label().to_owned()).or_default() += 1;
            }
        }
    }
}

fn requests_by_name<S: serde::Serializer>(
    requests: &HashMap<(VmId, &'static str, &'static str), u64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let named: BTreeMap<String, u64> = requests
        .iter()
        .map(|((vm, kind, result), n)| (format!("{vm}/{kind}/{result}"), *n))
        .collect();
    named.serialize(s)
}

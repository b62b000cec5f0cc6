//! The one list of the metric families vmpowerd exports: name, type,
//! labels and help. The collector takes its help texts from here, and
//! the tests check the endpoint, `docs/metrics.md` and the Grafana
//! dashboard against it, so a metric cannot be added without being
//! documented and exercised.
//!
//! Names are the family names of OpenMetrics: a counter's samples carry
//! the `_total` suffix, an info's the `_info` suffix
//! ([`Family::sample_name`]).

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic count since the daemon started.
    Counter,
    /// A value that goes up and down, read at scrape time.
    Gauge,
    /// A constant 1 whose labels carry the information.
    Info,
}

impl Kind {
    /// The type as the exposition formats spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Info => "info",
        }
    }
}

/// One metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The family name (without `_total` / `_info`).
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its labels, in the order they are written.
    pub labels: &'static [&'static str],
    /// What it means (the `# HELP` text).
    pub help: &'static str,
}

impl Family {
    /// The name its samples carry.
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            Kind::Info => format!("{}_info", self.name),
            Kind::Gauge => self.name.to_owned(),
        }
    }
}

/// Build information.
pub const BUILD: Family = Family {
    name: "vmpower_build",
    kind: Kind::Info,
    labels: &["version", "commit"],
    help: "vmpowerd's version and the git commit it was built from",
};
/// When the daemon started: a change means it restarted.
pub const START_TIME: Family = Family {
    name: "vmpower_start_time_seconds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Unix time vmpowerd started, in seconds (a change means a restart: a crash, the systemd watchdog, an operator)",
};
/// Current frequency per pCPU.
pub const PCPU_FREQUENCY: Family = Family {
    name: "vmpower_pcpu_frequency_hertz",
    kind: Kind::Gauge,
    labels: &["pcpu"],
    help: "Frequency vmpower last set or read for the pCPU, in Hz",
};
/// Current level per pCPU.
pub const PCPU_LEVEL: Family = Family {
    name: "vmpower_pcpu_level",
    kind: Kind::Gauge,
    labels: &["pcpu"],
    help: "Index of the pCPU's frequency in its table (0 = highest, as DPDK's frequency list)",
};
/// Whether vmpower drives the pCPU.
pub const PCPU_MANAGED: Family = Family {
    name: "vmpower_pcpu_managed",
    kind: Kind::Gauge,
    labels: &["pcpu"],
    help: "1 while vmpower has taken the pCPU over (its governor and bounds are recorded for restore)",
};
/// Requests by VM, kind and result.
pub const REQUESTS: Family = Family {
    name: "vmpower_requests",
    kind: Kind::Counter,
    labels: &["vm", "kind", "result"],
    help: "Guest records handled, by VM, kind and result (ok, nack, ignored)",
};
/// Rejections by reason.
pub const REJECTIONS: Family = Family {
    name: "vmpower_rejections",
    kind: Kind::Counter,
    labels: &["reason"],
    help: "Guest requests refused or ignored, by reason",
};
/// Policy state per VM.
pub const POLICY_STATE: Family = Family {
    name: "vmpower_policy_state",
    kind: Kind::Gauge,
    labels: &["vm", "kind", "state"],
    help: "1 for the state (active, waiting) the VM's policy is in, 0 for the other",
};
/// Why a waiting policy waits.
pub const POLICY_WAITING: Family = Family {
    name: "vmpower_policy_waiting",
    kind: Kind::Info,
    labels: &["vm", "kind", "reason"],
    help: "Present while the VM's policy waits for an input, with the reason",
};
/// Policy evaluations by input.
pub const POLICY_EVALUATIONS: Family = Family {
    name: "vmpower_policy_evaluations",
    kind: Kind::Counter,
    labels: &["input"],
    help: "Policy inputs handed to the engine: per traffic-driven policy per sampling tick, per clock check with TIME policies, per pCPU branch sample",
};
/// sysfs writes.
pub const SYSFS_WRITES: Family = Family {
    name: "vmpower_sysfs_writes",
    kind: Kind::Counter,
    labels: &[],
    help: "Frequency changes written to sysfs",
};
/// sysfs failures.
pub const SYSFS_FAILURES: Family = Family {
    name: "vmpower_sysfs_failures",
    kind: Kind::Counter,
    labels: &[],
    help: "Frequency changes or releases whose sysfs write failed",
};
/// Another writer's changes to held pCPUs.
pub const FOREIGN_WRITES: Family = Family {
    name: "vmpower_foreign_writes",
    kind: Kind::Counter,
    labels: &["pcpu"],
    help: "Changes another tool made to the cpufreq files of a pCPU vmpower held (its domain's leader), taken back or yielded as foreign_writer says",
};
/// pCPUs given up to another writer.
pub const PCPU_YIELDED: Family = Family {
    name: "vmpower_pcpu_yielded",
    kind: Kind::Gauge,
    labels: &["pcpu"],
    help: "1 while the pCPU's domain is given up to another writer of its cpufreq files (foreign_writer = yield), 0 otherwise",
};
/// Channel states.
pub const CHANNEL_UP: Family = Family {
    name: "vmpower_channel_up",
    kind: Kind::Gauge,
    labels: &["vm", "channel"],
    help: "1 while the daemon holds a connection to the channel's socket, 0 when it does not",
};
/// Channel reconnects.
pub const CHANNEL_RECONNECTS: Family = Family {
    name: "vmpower_channel_reconnects",
    kind: Kind::Counter,
    labels: &["vm", "channel"],
    help: "Connections to the channel's socket after the first (QEMU restarts, VM reboots)",
};
/// Channel rate-limit pauses.
pub const CHANNEL_THROTTLED: Family = Family {
    name: "vmpower_channel_throttled",
    kind: Kind::Counter,
    labels: &["vm", "channel"],
    help: "Times the channel spent its rate limit and was not read until its next token (its requests wait in the guest)",
};
/// Per-VM traffic rate.
pub const VM_TRAFFIC_RATE: Family = Family {
    name: "vmpower_vm_traffic_packets_per_second",
    kind: Kind::Gauge,
    labels: &["vm"],
    help: "Received packet rate of the MACs of the VM's traffic-driven policy, last measured",
};
/// Per-VM traffic, counted.
pub const VM_TRAFFIC_PACKETS: Family = Family {
    name: "vmpower_vm_traffic_packets",
    kind: Kind::Counter,
    labels: &["vm"],
    help: "Packets received by the MACs of the VM's traffic-driven policy, counted at each sample (use rate())",
};
/// Packets dropped by the sources of a VM's traffic-driven policy.
pub const VM_TRAFFIC_DROPS: Family = Family {
    name: "vmpower_vm_traffic_drops",
    kind: Kind::Counter,
    labels: &["vm"],
    help: "Packets dropped because the guest did not keep up, by the sources of the MACs of the VM's traffic-driven policy, counted at each sample (use rate())",
};
/// Name mismatches.
pub const NAME_MISMATCHES: Family = Family {
    name: "vmpower_name_mismatches",
    kind: Kind::Counter,
    labels: &[],
    help: "Records whose vm_name named another VM (the channel's VM was used)",
};
/// Replies dropped.
pub const REPLIES_DROPPED: Family = Family {
    name: "vmpower_replies_dropped",
    kind: Kind::Counter,
    labels: &[],
    help: "Replies dropped because the guest does not read its channel",
};
/// Guest-triggered log lines suppressed.
pub const LOG_LINES_SUPPRESSED: Family = Family {
    name: "vmpower_log_lines_suppressed",
    kind: Kind::Counter,
    labels: &[],
    help: "Log lines a guest caused that its per-VM log budget suppressed (the history and counters still have them)",
};
/// Partial records dropped.
pub const PARTIAL_BYTES_DROPPED: Family = Family {
    name: "vmpower_partial_bytes_dropped",
    kind: Kind::Counter,
    labels: &[],
    help: "Bytes of incomplete records dropped when a channel closed",
};
/// Busyness reports accepted.
pub const BUSYNESS_REPORTS: Family = Family {
    name: "vmpower_busyness_reports",
    kind: Kind::Counter,
    labels: &["vm"],
    help: "Busyness reports (native contract v2) accepted from the VM's guest; refused ones are in vmpower_rejections",
};
/// Busyness silences.
pub const BUSYNESS_STALE: Family = Family {
    name: "vmpower_busyness_stale",
    kind: Kind::Counter,
    labels: &["vm"],
    help: "Times the VM's busyness reports stopped for longer than the staleness bound and its reported vCPUs were put at max",
};

/// Every family, in the order the endpoint writes them.
pub const FAMILIES: &[Family] = &[
    BUILD,
    START_TIME,
    PCPU_FREQUENCY,
    PCPU_LEVEL,
    PCPU_MANAGED,
    REQUESTS,
    REJECTIONS,
    POLICY_STATE,
    POLICY_WAITING,
    POLICY_EVALUATIONS,
    SYSFS_WRITES,
    SYSFS_FAILURES,
    FOREIGN_WRITES,
    PCPU_YIELDED,
    CHANNEL_UP,
    CHANNEL_RECONNECTS,
    CHANNEL_THROTTLED,
    VM_TRAFFIC_RATE,
    VM_TRAFFIC_PACKETS,
    VM_TRAFFIC_DROPS,
    NAME_MISMATCHES,
    REPLIES_DROPPED,
    LOG_LINES_SUPPRESSED,
    PARTIAL_BYTES_DROPPED,
    BUSYNESS_REPORTS,
    BUSYNESS_STALE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prefixed_and_valid() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FAMILIES {
            assert!(seen.insert(f.name), "{} twice", f.name);
            assert!(f.name.starts_with("vmpower_"), "{}", f.name);
            assert!(
                f.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                f.name
            );
            // The suffixes are the encoder's to add.
            assert!(!f.name.ends_with("_total") && !f.name.ends_with("_info"));
            assert!(!f.help.is_empty() && !f.help.contains('\n'));
        }
    }

    #[test]
    fn sample_names_carry_the_type_suffix() {
        assert_eq!(REQUESTS.sample_name(), "vmpower_requests_total");
        assert_eq!(BUILD.sample_name(), "vmpower_build_info");
        assert_eq!(PCPU_LEVEL.sample_name(), "vmpower_pcpu_level");
    }
}

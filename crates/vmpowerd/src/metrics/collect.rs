//! The collector: at each scrape, copies what the metrics show out of the
//! core (one short lock), then writes every family of
//! [`super::families::FAMILIES`] from the copy, lock released.
//!
//! Nothing here runs on the request path: counters are the core's
//! [`crate::stats::Stats`], states (frequencies, channels, policies,
//! rates) are read from the engine and cpufreq as they are at the scrape.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use vmpower_engine::{ChannelId, PolicyState, VmId};
use vmpower_proto::PolicyKind;

use super::families::{self as fam, Family, Kind};
use crate::SharedCore;
use crate::core::Core;
use crate::stats::ChannelState;

/// The build's version and commit, as the build info shows them.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit vmpowerd was built from (`unknown` outside a checkout).
pub const COMMIT: &str = match option_env!("VMPOWER_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// Reads the daemon's state at each scrape.
#[derive(Debug)]
pub struct CoreCollector {
    core: SharedCore,
    /// Unix time, in seconds, when the collector was made (at start).
    started: f64,
}

impl CoreCollector {
    /// A collector over the daemon's core; its start time is now.
    pub fn new(core: SharedCore) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        CoreCollector { core, started }
    }
}

impl Collector for CoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut snapshot = Snapshot::take(&crate::lock(&self.core));
        snapshot.start_time_seconds = self.started;
        snapshot.encode(&mut encoder)
    }
}

/// One pCPU's row.
#[derive(Debug, Clone)]
struct Pcpu {
    cpu: String,
    hz: Option<u64>,
    level: Option<usize>,
    managed: bool,
    yielded: bool,
}

/// One VM's policy.
#[derive(Debug, Clone)]
struct PolicyRow {
    vm: VmId,
    kind: &'static str,
    waiting: Option<String>,
    rate_pps: Option<f64>,
}

/// What one scrape shows, copied out of the core.
#[derive(Debug, Clone)]
struct Snapshot {
    start_time_seconds: f64,
    pcpus: Vec<Pcpu>,
    requests: Vec<((VmId, &'static str, &'static str), u64)>,
    rejections: Vec<(&'static str, u64)>,
    policies: Vec<PolicyRow>,
    evaluations: Vec<(&'static str, u64)>,
    channels: Vec<(ChannelId, ChannelState)>,
    sysfs_writes: u64,
    sysfs_failures: u64,
    foreign_writes: Vec<(String, u64)>,
    name_mismatches: u64,
    replies_dropped: u64,
    log_lines_suppressed: u64,
    partial_bytes_dropped: u64,
    vm_packets: Vec<(VmId, u64)>,
    /// Per reporting VM: busyness reports accepted, silences.
    busyness: Vec<(VmId, u64, u64)>,
    vm_drops: Vec<(VmId, u64)>,
}

/// The label of a policy kind.
pub fn kind_label(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Traffic => "traffic",
        PolicyKind::Time => "time",
        PolicyKind::Workload => "workload",
        PolicyKind::BranchRatio => "branch_ratio",
    }
}

impl Snapshot {
    fn take(core: &Core) -> Snapshot {
        let pcpus = core
            .engine
            .pcpus()
            .into_iter()
            .map(|cpu| {
                let khz = core.engine.known_khz(cpu);
                let level = match (khz, core.cpufreq.table(cpu)) {
                    (Some(k), Ok(table)) => Some(table.nearest_index(k)),
                    _ => None,
                };
                Pcpu {
                    cpu: cpu.0.to_string(),
                    hz: khz.map(|k| u64::from(k.0) * 1000),
                    level,
                    managed: core.engine.is_managed(cpu),
                    yielded: core.engine.is_yielded(cpu),
                }
            })
            .collect();
        let policies = core
            .engine
            .vm_ids()
            .into_iter()
            .filter_map(|vm| {
                let st = core.engine.policy_status(&vm)?;
                Some(PolicyRow {
                    kind: kind_label(st.spec.policy.kind),
                    waiting: match st.state {
                        PolicyState::Active => None,
                        PolicyState::Waiting(why) => Some(why),
                    },
                    rate_pps: st.rate_pps,
                    vm,
                })
            })
            .collect();
        let now = core.now();
        let busyness = core
            .engine
            .vm_ids()
            .into_iter()
            .filter_map(|vm| {
                let st = core.engine.busyness_status(&vm, now)?;
                Some((vm, st.counters.accepted, st.counters.stale_events))
            })
            .collect();
        let stats = &core.stats;
        let mut requests: Vec<_> = stats
            .requests
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        requests.sort_by(|a, b| a.0.cmp(&b.0));
        Snapshot {
            start_time_seconds: 0.0,
            pcpus,
            requests,
            rejections: stats.rejections.iter().map(|(k, n)| (*k, *n)).collect(),
            policies,
            evaluations: stats
                .policy_evaluations
                .iter()
                .map(|(k, n)| (*k, *n))
                .collect(),
            channels: stats
                .channels
                .iter()
                .map(|(c, s)| (c.clone(), *s))
                .collect(),
            sysfs_writes: stats.sysfs_writes,
            sysfs_failures: stats.sysfs_failures,
            foreign_writes: stats
                .foreign_writes
                .values()
                .map(|f| (f.pcpu.to_string(), f.count))
                .collect(),
            name_mismatches: stats.name_mismatches,
            replies_dropped: stats.replies_dropped,
            log_lines_suppressed: stats.log_lines_suppressed,
            partial_bytes_dropped: stats.partial_bytes_dropped,
            vm_packets: stats
                .vm_packets
                .iter()
                .map(|(vm, n)| (vm.clone(), *n))
                .collect(),
            busyness,
            vm_drops: stats
                .vm_drops
                .iter()
                .map(|(vm, n)| (vm.clone(), *n))
                .collect(),
        }
    }

    fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        family(enc, &fam::BUILD)?.encode_info(&[("version", VERSION), ("commit", COMMIT)])?;
        family(enc, &fam::START_TIME)?.encode_gauge(&self.start_time_seconds)?;
        self.encode_pcpus(enc)?;
        let mut m = family(enc, &fam::REQUESTS)?;
        for ((vm, kind, result), n) in &self.requests {
            let labels = [("vm", vm.as_str()), ("kind", kind), ("result", result)];
            counter(m.encode_family(&labels)?, *n)?;
        }
        let mut m = family(enc, &fam::REJECTIONS)?;
        for (reason, n) in &self.rejections {
            counter(m.encode_family(&[("reason", *reason)])?, *n)?;
        }
        self.encode_policies(enc)?;
        let mut m = family(enc, &fam::POLICY_EVALUATIONS)?;
        for (input, n) in &self.evaluations {
            counter(m.encode_family(&[("input", *input)])?, *n)?;
        }
        counter(family(enc, &fam::SYSFS_WRITES)?, self.sysfs_writes)?;
        counter(family(enc, &fam::SYSFS_FAILURES)?, self.sysfs_failures)?;
        let mut m = family(enc, &fam::FOREIGN_WRITES)?;
        for (pcpu, n) in &self.foreign_writes {
            counter(m.encode_family(&[("pcpu", pcpu.as_str())])?, *n)?;
        }
        let mut m = family(enc, &fam::PCPU_YIELDED)?;
        for p in &self.pcpus {
            m.encode_family(&[("pcpu", p.cpu.as_str())])?
                .encode_gauge(&u32::from(p.yielded))?;
        }
        self.encode_channels(enc)?;
        let mut m = family(enc, &fam::VM_TRAFFIC_RATE)?;
        for p in &self.policies {
            if let Some(rate) = p.rate_pps {
                m.encode_family(&[("vm", p.vm.as_str())])?
                    .encode_gauge(&rate)?;
            }
        }
        let mut m = family(enc, &fam::VM_TRAFFIC_PACKETS)?;
        for (vm, n) in &self.vm_packets {
            counter(m.encode_family(&[("vm", vm.as_str())])?, *n)?;
        }
        let mut m = family(enc, &fam::VM_TRAFFIC_DROPS)?;
        for (vm, n) in &self.vm_drops {
            counter(m.encode_family(&[("vm", vm.as_str())])?, *n)?;
        }
        counter(family(enc, &fam::NAME_MISMATCHES)?, self.name_mismatches)?;
        counter(family(enc, &fam::REPLIES_DROPPED)?, self.replies_dropped)?;
        counter(
            family(enc, &fam::LOG_LINES_SUPPRESSED)?,
            self.log_lines_suppressed,
        )?;
        counter(
            family(enc, &fam::PARTIAL_BYTES_DROPPED)?,
            self.partial_bytes_dropped,
        )?;
        let mut m = family(enc, &fam::BUSYNESS_REPORTS)?;
        for (vm, reports, _) in &self.busyness {
            counter(m.encode_family(&[("vm", vm.as_str())])?, *reports)?;
        }
        let mut m = family(enc, &fam::BUSYNESS_STALE)?;
        for (vm, _, stale) in &self.busyness {
            counter(m.encode_family(&[("vm", vm.as_str())])?, *stale)?;
        }
        Ok(())
    }

    fn encode_pcpus(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut m = family(enc, &fam::PCPU_FREQUENCY)?;
        for p in &self.pcpus {
            if let Some(hz) = p.hz {
                m.encode_family(&[("pcpu", p.cpu.as_str())])?
                    .encode_gauge(&hz)?;
            }
        }
        let mut m = family(enc, &fam::PCPU_LEVEL)?;
        for p in &self.pcpus {
            if let Some(level) = p.level {
                m.encode_family(&[("pcpu", p.cpu.as_str())])?
                    .encode_gauge(&level)?;
            }
        }
        let mut m = family(enc, &fam::PCPU_MANAGED)?;
        for p in &self.pcpus {
            m.encode_family(&[("pcpu", p.cpu.as_str())])?
                .encode_gauge(&u32::from(p.managed))?;
        }
        Ok(())
    }

    fn encode_policies(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut m = family(enc, &fam::POLICY_STATE)?;
        for p in &self.policies {
            for state in ["active", "waiting"] {
                let on = (state == "waiting") == p.waiting.is_some();
                let labels = [("vm", p.vm.as_str()), ("kind", p.kind), ("state", state)];
                m.encode_family(&labels)?.encode_gauge(&u32::from(on))?;
            }
        }
        let mut m = family(enc, &fam::POLICY_WAITING)?;
        for p in &self.policies {
            if let Some(why) = &p.waiting {
                let labels = [
                    ("vm", p.vm.as_str()),
                    ("kind", p.kind),
                    ("reason", why.as_str()),
                ];
                m.encode_info(&labels)?;
            }
        }
        Ok(())
    }

    fn encode_channels(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut m = family(enc, &fam::CHANNEL_UP)?;
        for (c, s) in &self.channels {
            let index = c.index.to_string();
            let labels = [("vm", c.vm.as_str()), ("channel", index.as_str())];
            m.encode_family(&labels)?.encode_gauge(&u32::from(s.up))?;
        }
        let mut m = family(enc, &fam::CHANNEL_RECONNECTS)?;
        for (c, s) in &self.channels {
            let index = c.index.to_string();
            let labels = [("vm", c.vm.as_str()), ("channel", index.as_str())];
            counter(m.encode_family(&labels)?, s.reconnects())?;
        }
        let mut m = family(enc, &fam::CHANNEL_THROTTLED)?;
        for (c, s) in &self.channels {
            let index = c.index.to_string();
            let labels = [("vm", c.vm.as_str()), ("channel", index.as_str())];
            counter(m.encode_family(&labels)?, s.throttled)?;
        }
        Ok(())
    }
}

/// Starts a family: its `# HELP` and `# TYPE` lines.
pub(crate) fn family<'a>(
    enc: &'a mut DescriptorEncoder,
    f: &'a Family,
) -> Result<MetricEncoder<'a>, fmt::Error> {
    let t = match f.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Info => MetricType::Info,
    };
    enc.encode_descriptor(f.name, f.help, None, t)
}

fn counter(mut m: MetricEncoder<'_>, n: u64) -> Result<(), fmt::Error> {
    m.encode_counter::<NoLabelSet, _, u64>(&n, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::parse::parse;

    /// A collector over a fixed snapshot.
    #[derive(Debug)]
    struct Fixed(Snapshot);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
            self.0.encode(&mut encoder)
        }
    }

    fn render(snapshot: Snapshot) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Fixed(snapshot)));
        crate::metrics::render(&registry, true).unwrap()
    }

    fn snapshot() -> Snapshot {
        let vm = VmId::new("vm \"1\"");
        Snapshot {
            start_time_seconds: 1_765_000_000.5,
            pcpus: vec![
                Pcpu {
                    cpu: "2".into(),
                    hz: Some(2_301_000_000),
                    level: Some(0),
                    managed: true,
                    yielded: false,
                },
                Pcpu {
                    cpu: "3".into(),
                    hz: None,
                    level: None,
                    managed: false,
                    yielded: true,
                },
            ],
            requests: vec![((vm.clone(), "power", "ok"), 7)],
            rejections: vec![("rate_limited", 2)],
            policies: vec![PolicyRow {
                vm: vm.clone(),
                kind: "traffic",
                waiting: Some("MAC 02:00:00:00:00:01: not found,\nyet \\ \"quoted\"".into()),
                rate_pps: Some(1.5e6),
            }],
            evaluations: vec![("traffic", 40)],
            channels: vec![(
                ChannelId { vm, index: 3 },
                ChannelState {
                    up: false,
                    connects: 3,
                    since_ms: 1,
                    throttled: 4,
                },
            )],
            sysfs_writes: 5,
            sysfs_failures: 1,
            foreign_writes: vec![("3".into(), 2)],
            name_mismatches: 0,
            replies_dropped: 0,
            log_lines_suppressed: 0,
            partial_bytes_dropped: 0,
            vm_packets: vec![(VmId::new("vm \"1\""), 1234)],
            busyness: vec![(VmId::new("vm2"), 40, 1)],
            vm_drops: vec![(VmId::new("vm \"1\""), 56)],
        }
    }

    #[test]
    fn every_family_is_written_once_with_its_help_and_type() {
        let text = render(snapshot());
        let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let names: Vec<&str> = m.families.keys().map(String::as_str).collect();
        let mut listed: Vec<&str> = fam::FAMILIES.iter().map(|f| f.name).collect();
        listed.sort_unstable();
        assert_eq!(names, listed);
        for f in fam::FAMILIES {
            assert_eq!(m.families[f.name].kind, f.kind.as_str(), "{}", f.name);
            assert_eq!(m.families[f.name].help.as_deref(), Some(f.help));
        }
    }

    #[test]
    fn values_and_awkward_labels_survive_the_round_trip() {
        let m = parse(&render(snapshot())).unwrap();
        let vm = "vm \"1\"";
        let why = "MAC 02:00:00:00:00:01: not found,\nyet \\ \"quoted\"";
        assert_eq!(
            m.value(
                "vmpower_policy_waiting_info",
                &[("vm", vm), ("reason", why)]
            ),
            Some(1.0)
        );
        let state = |s| m.value("vmpower_policy_state", &[("vm", vm), ("state", s)]);
        assert_eq!((state("waiting"), state("active")), (Some(1.0), Some(0.0)));
        assert_eq!(
            m.value("vmpower_requests_total", &[("vm", vm), ("kind", "power")]),
            Some(7.0)
        );
        assert_eq!(
            m.value("vmpower_pcpu_frequency_hertz", &[("pcpu", "2")]),
            Some(2.301e9)
        );
        // No frequency known: no sample rather than a made-up 0.
        assert_eq!(
            m.value("vmpower_pcpu_frequency_hertz", &[("pcpu", "3")]),
            None
        );
        assert_eq!(m.value("vmpower_pcpu_managed", &[("pcpu", "3")]), Some(0.0));
        assert_eq!(m.value("vmpower_pcpu_yielded", &[("pcpu", "3")]), Some(1.0));
        assert_eq!(m.value("vmpower_pcpu_yielded", &[("pcpu", "2")]), Some(0.0));
        assert_eq!(
            m.value("vmpower_foreign_writes_total", &[("pcpu", "3")]),
            Some(2.0)
        );
        let channel = [("vm", vm), ("channel", "3")];
        assert_eq!(m.value("vmpower_channel_up", &channel), Some(0.0));
        assert_eq!(
            m.value("vmpower_channel_reconnects_total", &channel),
            Some(2.0)
        );
        assert_eq!(
            m.value("vmpower_channel_throttled_total", &channel),
            Some(4.0)
        );
        assert_eq!(
            m.value("vmpower_vm_traffic_packets_per_second", &[("vm", vm)]),
            Some(1.5e6)
        );
        assert_eq!(
            m.value("vmpower_vm_traffic_packets_total", &[("vm", vm)]),
            Some(1234.0)
        );
        assert_eq!(
            m.value("vmpower_vm_traffic_drops_total", &[("vm", vm)]),
            Some(56.0)
        );
        assert_eq!(
            m.value("vmpower_build_info", &[("version", VERSION)]),
            Some(1.0)
        );
        assert_eq!(
            m.value("vmpower_start_time_seconds", &[]),
            Some(1_765_000_000.5)
        );
    }

    #[test]
    fn the_prometheus_text_form_has_the_same_samples() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Fixed(snapshot())));
        let text = crate::metrics::render(&registry, false).unwrap();
        assert!(!text.contains("# EOF"));
        assert!(text.contains("vmpower_sysfs_writes_total 5\n"), "{text}");
        assert!(text.contains("# TYPE vmpower_build_info gauge"), "{text}");
    }
}

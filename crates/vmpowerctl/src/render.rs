//! Human-readable rendering of the daemon's answers, read as the typed
//! answers of `vmpower-api` (`--json` prints them as they came).

use std::fmt::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use vmpower_api::answers::{
    ChannelsAdded, ChannelsReconnected, Counters, CpuFreq, CpuFreqSet, History, PolicyDescription,
    PolicyList, Status, VfInfo, VmInfo, VmList, VmSettings,
};

use crate::cli::{Command, PolicyCommand};

/// The text to print for `command`'s answer; an error when the answer is
/// not of the type the command is answered with.
pub fn render(command: &Command, value: Value) -> Result<String, serde_json::Error> {
    Ok(match command {
        Command::Status => status(&read(value)?),
        Command::Top(args) => crate::top::frame(&read(value)?, None, args.interval),
        Command::ListVms => vm_table(&read::<VmList>(value)?),
        Command::ShowVm { .. } => show_vm(&read(value)?),
        Command::ShowCpuFreq(_) => cpu_table(
            read::<Vec<CpuFreq>>(value)?
                .iter()
                .map(|c| (c.cpu, c.khz, Some(c.managed), Some(c.operator))),
        ),
        Command::SetCpuFreq { .. } => cpu_table(
            read::<Vec<CpuFreqSet>>(value)?
                .iter()
                .map(|c| (c.cpu, c.khz, None, None)),
        ),
        Command::Policy(PolicyCommand::List) => {
            let list: PolicyList = read(value)?;
            if list.is_empty() {
                "no policies\n".to_owned()
            } else {
                list.iter().map(policy).collect::<Vec<_>>().join("\n")
            }
        }
        Command::Policy(PolicyCommand::Show { .. } | PolicyCommand::Create { .. }) => {
            policy(&read(value)?)
        }
        Command::History { .. } => history(&read(value)?),
        Command::ShowVfs { pf } => vf_table(pf, &read::<Vec<VfInfo>>(value)?),
        Command::AddChannels { .. } => {
            let added: ChannelsAdded = read(value)?;
            channel_paths(&[
                (&added.connected, "connecting"),
                (&added.already_connected, "already connected, left alone"),
            ])
        }
        Command::ReconnectChannels { .. } => {
            let done: ChannelsReconnected = read(value)?;
            channel_paths(&[(&done.reconnected, "reconnecting")])
        }
        _ => "ok\n".to_owned(),
    })
}

/// The answer as the type its request is answered with.
fn read<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(value)
}

/// `add-channels` / `reconnect-channels`: one line per channel and what
/// was done with it.
fn channel_paths(groups: &[(&Vec<std::path::PathBuf>, &str)]) -> String {
    let mut out = String::new();
    for (paths, what) in groups {
        for path in *paths {
            out.push_str(&format!("{}: {what}\n", path.display()));
        }
    }
    if out.is_empty() {
        out.push_str("no channel\n");
    }
    out
}

/// An optional value as text, `-` when absent.
fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A value as its JSON text, strings without their quotes (an enum's name
/// on the wire, a list as `[1,2]`).
fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) | Err(_) => "-".to_owned(),
        Ok(other) => other.to_string(),
    }
}

/// The pCPUs another tool wrote behind the daemon's back: one line each,
/// with what the daemon did and what it found last.
fn foreign_writers(out: &mut String, stats: &Counters) {
    out.push_str("\nOTHER WRITERS OF CPUFREQ FILES\n");
    let _ = writeln!(
        out,
        "{:<5} {:>6} {:<14} {:<24} FOUND",
        "PCPU", "COUNT", "HANDLED", "LAST"
    );
    none_if_empty(out, stats.foreign_writes.is_empty());
    for f in &stats.foreign_writes {
        let handled = if f.yielded {
            "yielded (now)"
        } else {
            f.handled.as_str()
        };
        let _ = writeln!(
            out,
            "{:<5} {:>6} {:<14} {:<24} {}",
            f.pcpu,
            f.count,
            handled,
            time(f.last_at_ms),
            f.detail
        );
    }
}

/// `status`: a summary line, then channels, policies, the last errors,
/// the refused policy-directory files and the counters, each as a table.
fn status(v: &Status) -> String {
    let metrics = v
        .metrics_address
        .as_ref()
        .map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics"));
    let mut out = format!(
        "vmpowerd {} (commit {})\nVMs {}  pCPUs {} (managed: {})  channels {} up, {} down  metrics {metrics}\n",
        v.version,
        v.commit,
        v.vms,
        v.pcpus,
        cpu_list(&v.pcpus_managed),
        v.channels_up,
        v.channels_down,
    );
    let _ = writeln!(out, "channel dir {}", v.channel_dir.display());
    let stats = &v.stats;
    out.push_str("\nCHANNELS\n");
    let _ = writeln!(
        out,
        "{:<24} {:<5} {:<24} {:>8}",
        "CHANNEL", "STATE", "SINCE", "CONNECTS"
    );
    none_if_empty(&mut out, stats.channels.is_empty());
    for (name, ch) in &stats.channels {
        let state = if ch.up { "up" } else { "down" };
        let _ = writeln!(
            out,
            "{:<24} {:<5} {:<24} {:>8}",
            name,
            state,
            time(ch.since_ms),
            ch.connects
        );
    }
    out.push_str("\nPOLICIES\n");
    let _ = writeln!(
        out,
        "{:<16} {:<13} {:<8} WAITING FOR",
        "VM", "KIND", "STATE"
    );
    none_if_empty(&mut out, v.policies.is_empty());
    for p in &v.policies {
        let _ = writeln!(
            out,
            "{:<16} {:<13} {:<8} {}",
            p.vm,
            p.kind,
            p.state.to_string(),
            opt(p.waiting_for.as_deref())
        );
    }
    out.push_str("\nLAST ERRORS (newest first)\n");
    let _ = writeln!(
        out,
        "{:<24} {:<12} {:<9} {:<20} {:>5} DETAIL",
        "TIME", "VM", "KIND", "REASON", "COUNT"
    );
    none_if_empty(&mut out, stats.last_errors.is_empty());
    for e in &stats.last_errors {
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<9} {:<20} {:>5} {}",
            time(e.at_ms),
            opt(e.vm.as_deref()),
            e.kind.to_string(),
            e.label,
            e.count,
            e.detail
        );
    }
    foreign_writers(&mut out, stats);
    out.push_str("\nPOLICY FILES REFUSED\n");
    none_if_empty(&mut out, stats.policy_files_refused.is_empty());
    for f in &stats.policy_files_refused {
        let _ = writeln!(out, "{}", f.file.display());
        // Parse errors run over several lines (a TOML excerpt): indented.
        for line in f.error.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push_str("\nCOUNTERS\n");
    counters(&mut out, stats);
    out
}

/// The counters of `status`, by name (a map's entries under its name);
/// the lists shown above as tables are left out.
fn counters(out: &mut String, stats: &Counters) {
    enum Counter<'a> {
        One(u64),
        Many(&'a std::collections::BTreeMap<String, u64>),
    }
    use Counter::{Many, One};
    for (key, value) in [
        ("connects", One(stats.connects)),
        ("log_lines_suppressed", One(stats.log_lines_suppressed)),
        ("name_mismatches", One(stats.name_mismatches)),
        ("partial_bytes_dropped", One(stats.partial_bytes_dropped)),
        ("policy_evaluations", Many(&stats.policy_evaluations)),
        ("rejections", Many(&stats.rejections)),
        ("replies_dropped", One(stats.replies_dropped)),
        ("requests", Many(&stats.requests)),
        ("sysfs_failures", One(stats.sysfs_failures)),
        ("sysfs_writes", One(stats.sysfs_writes)),
    ] {
        match value {
            Many(map) => {
                for (k, n) in map {
                    let _ = writeln!(out, "{key:<22} {k:<40} {n}");
                }
            }
            One(n) => {
                let _ = writeln!(out, "{key:<22} {:<40} {n}", "");
            }
        }
    }
}

/// `(none)` under a table that has no rows.
fn none_if_empty(out: &mut String, empty: bool) {
    if empty {
        out.push_str("(none)\n");
    }
}

/// A unix-millisecond time as RFC 3339 (seconds).
fn time(ms: u64) -> String {
    i64::try_from(ms / 1000)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| "-".to_owned(), |t| t.to_string())
}

/// `[1, 2, 5]` as `1,2,5` (`none` when empty).
fn cpu_list(cpus: &[u32]) -> String {
    if cpus.is_empty() {
        "none".to_owned()
    } else {
        cpus.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn vm_table(vms: &[VmInfo]) -> String {
    let mut out = format!(
        "{:<20} {:>5} {:>8} {:>7} {:>12}\n",
        "VM", "VCPUS", "CHANNELS", "QUERIES", "LAYOUT"
    );
    for vm in vms {
        let _ = writeln!(
            out,
            "{:<20} {:>5} {:>8} {:>7} {:>12}",
            vm.name,
            vm.vcpus.len(),
            vm.channels.len(),
            vm.settings.queries_allowed,
            wire(&vm.settings.layout),
        );
    }
    out
}

/// A VM's settings by name, in the order `show-vm` lists them.
fn settings(s: &VmSettings) -> [(&'static str, String); 5] {
    [
        ("layout", wire(&s.layout)),
        ("multi_pcpu_allowed", s.multi_pcpu_allowed.to_string()),
        ("physical_allowed", s.physical_allowed.to_string()),
        ("queries_allowed", s.queries_allowed.to_string()),
        (
            "requests_override_policy",
            s.requests_override_policy.to_string(),
        ),
    ]
}

fn show_vm(v: &VmInfo) -> String {
    let mut out = format!("VM {}\n", v.name);
    for (k, s) in settings(&v.settings) {
        let _ = writeln!(out, "  {k:<20} {s}");
    }
    out.push_str("  vCPU -> pCPU\n");
    for vcpu in &v.vcpus {
        let _ = writeln!(out, "  {:>4} -> {}", vcpu.vcpu, wire(&vcpu.pcpus));
    }
    out.push_str("  channels\n");
    for ch in &v.channels {
        let _ = writeln!(
            out,
            "  {:>4} {} served={} enabled={}",
            ch.index,
            ch.path.display(),
            ch.served,
            ch.enabled,
        );
    }
    out
}

/// Rows of CPU, kHz, managed and operator (the last two unknown after
/// `set-cpu-freq`).
fn cpu_table(rows: impl Iterator<Item = (u32, Option<u32>, Option<bool>, Option<bool>)>) -> String {
    let mut out = format!(
        "{:>4} {:>10} {:>8} {:>8}\n",
        "CPU", "KHZ", "MANAGED", "OPERATOR"
    );
    for (cpu, khz, managed, operator) in rows {
        let _ = writeln!(
            out,
            "{:>4} {:>10} {:>8} {:>8}",
            cpu,
            opt(khz),
            opt(managed),
            opt(operator),
        );
    }
    out
}

fn policy(v: &PolicyDescription) -> String {
    let mut out = format!("VM {}: {} policy, {}", v.vm, wire(&v.policy.kind), v.state);
    if let Some(why) = &v.waiting_for {
        let _ = write!(out, " ({why})");
    }
    out.push('\n');
    let source = v
        .source
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), ToString::to_string);
    let _ = writeln!(out, "  source  {source}");
    let _ = writeln!(out, "  cores   {}", wire(&v.cores));
    for l in &v.levels {
        let _ = writeln!(out, "  {:<7} {}", l.core, l.level);
    }
    if let Some(rate) = v.rate_pps {
        let _ = writeln!(out, "  rate    {} pps", wire(&rate));
    }
    if let Some(hour) = v.hour {
        let _ = writeln!(out, "  hour    {hour}");
    }
    for m in &v.macs {
        let _ = writeln!(out, "  mac     {} ({})", m.mac, opt(m.source.as_deref()));
    }
    out
}

fn history(entries: &History) -> String {
    let mut out = format!(
        "{:<24} {:<12} {:>4} {:>9} {:>9} REASON\n",
        "TIME", "VM", "PCPU", "OLD_KHZ", "NEW_KHZ"
    );
    for e in entries {
        let at = i64::try_from(e.at_ms)
            .ok()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:>4} {:>9} {:>9} {}",
            at,
            opt(e.vm.as_deref()),
            e.pcpu,
            opt(e.old_khz),
            e.new_khz,
            e.reason,
        );
    }
    out
}

fn vf_table(pf: &str, vfs: &[VfInfo]) -> String {
    if vfs.is_empty() {
        return format!("{pf} has no SR-IOV VFs\n");
    }
    let mut out = format!(
        "{:>3} {:<17} {:>12} {:>12}\n",
        "VF", "MAC", "RX_PACKETS", "TX_PACKETS"
    );
    for vf in vfs {
        let _ = writeln!(
            out,
            "{:>3} {:<17} {:>12} {:>12}",
            vf.vf,
            vf.mac,
            opt(vf.rx_packets),
            opt(vf.tx_packets),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use vmpower_api::answers::{ForeignWrites, PolicyStateName, RefusedFile};

    use super::*;

    /// A WORKLOAD policy on vCPU 0 of vm4, active, from `source`.
    fn workload(source: Option<vmpower_api::PolicyOrigin>) -> PolicyDescription {
        serde_json::from_value(json!({
            "vm": "vm4", "state": "active", "waiting_for": null,
            "policy": {"kind": "WORKLOAD", "cores": [0], "core_type": "virtual", "macs": [],
                       "traffic": {"avg_pps": 0, "max_pps": 0, "min_pps": 0},
                       "hours": {"busy": [], "quiet": [], "traffic": []},
                       "workload": "HIGH", "turbo_boost": false},
            "extensions": {"time_zone": null, "other_hours": null, "hysteresis": null,
                           "branch_threshold": null},
            "cores": ["vcpu0"], "levels": [], "rate_pps": null, "hour": null, "macs": [],
            "source": source,
        }))
        .unwrap()
    }

    /// A status with nothing in it but `stats`.
    fn status_of(stats: Counters) -> Status {
        Status {
            version: "0.1.0".into(),
            commit: "abc".into(),
            channel_dir: "/c".into(),
            channels_served: vec![],
            channels_up: 0,
            channels_down: 0,
            metrics_address: None,
            vms: 0,
            pcpus: 0,
            pcpus_managed: vec![],
            policies: vec![],
            stats,
        }
    }

    #[test]
    fn a_policy_names_its_source() {
        let shown = policy(&workload(Some(vmpower_api::PolicyOrigin::PolicyFile {
            path: "/etc/vmpower/policies.d/vm4.toml".into(),
        })));
        assert!(
            shown.contains("  source  policy file /etc/vmpower/policies.d/vm4.toml\n"),
            "{shown}"
        );
        let unknown = policy(&workload(None));
        assert!(unknown.contains("  source  unknown\n"), "{unknown}");
    }

    #[test]
    fn a_policy_shows_its_state_levels_inputs_and_macs() {
        let mut p = workload(Some(vmpower_api::PolicyOrigin::Operator));
        p.state = PolicyStateName::Waiting;
        p.waiting_for = Some("no counter for MAC 02:00:00:00:00:01".into());
        p.levels = vec![vmpower_api::answers::CoreLevel {
            core: "vcpu0".into(),
            level: "Index(2)".into(),
        }];
        p.rate_pps = Some(1_500_000.0);
        p.hour = Some(7);
        p.macs = vec![
            vmpower_api::answers::PolicyMac {
                mac: "02:00:00:00:00:01".into(),
                source: None,
            },
            vmpower_api::answers::PolicyMac {
                mac: "02:00:00:00:00:02".into(),
                source: Some("VF 3 of eth0".into()),
            },
        ];
        assert_eq!(
            policy(&p),
            "VM vm4: WORKLOAD policy, waiting (no counter for MAC 02:00:00:00:00:01)\n\
             \x20 source  operator (vmpowerctl)\n\
             \x20 cores   [\"vcpu0\"]\n\
             \x20 vcpu0   Index(2)\n\
             \x20 rate    1500000.0 pps\n\
             \x20 hour    7\n\
             \x20 mac     02:00:00:00:00:01 (-)\n\
             \x20 mac     02:00:00:00:00:02 (VF 3 of eth0)\n"
        );
    }

    #[test]
    fn status_lists_refused_policy_files_apart_from_the_counters() {
        let shown = status(&status_of(Counters {
            sysfs_writes: 3,
            policy_files_refused: vec![RefusedFile {
                file: "/p/bad.toml".into(),
                error: "TOML parse error at line 3\n  |\nunclosed array".into(),
            }],
            ..Counters::default()
        }));
        let section = shown
            .split("POLICY FILES REFUSED\n")
            .nth(1)
            .and_then(|rest| rest.split("\nCOUNTERS\n").next())
            .unwrap();
        assert_eq!(
            section,
            "/p/bad.toml\n  TOML parse error at line 3\n    |\n  unclosed array\n"
        );
        let counters = shown.split("\nCOUNTERS\n").nth(1).unwrap();
        assert!(!counters.contains("policy_files_refused"), "{counters}");
        let none = status(&status_of(Counters::default()));
        assert!(none.contains("POLICY FILES REFUSED\n(none)\n"), "{none}");
    }

    #[test]
    fn status_counters_are_listed_by_name_maps_entry_by_entry() {
        let shown = status(&status_of(Counters {
            requests: [("vm1/power/ok".to_owned(), 4)].into(),
            rejections: [("rate_limited".to_owned(), 2)].into(),
            sysfs_writes: 3,
            connects: 1,
            ..Counters::default()
        }));
        let counters = shown.split("\nCOUNTERS\n").nth(1).unwrap();
        let pad = " ".repeat(40);
        assert_eq!(
            counters,
            format!(
                "connects               {pad} 1\n\
                 log_lines_suppressed   {pad} 0\n\
                 name_mismatches        {pad} 0\n\
                 partial_bytes_dropped  {pad} 0\n\
                 rejections             {:<40} 2\n\
                 replies_dropped        {pad} 0\n\
                 requests               {:<40} 4\n\
                 sysfs_failures         {pad} 0\n\
                 sysfs_writes           {pad} 3\n",
                "rate_limited", "vm1/power/ok"
            )
        );
    }

    #[test]
    fn status_shows_other_writers_with_what_was_done() {
        let writer = |pcpu, count, handled: &str, yielded, detail: &str| ForeignWrites {
            pcpu,
            count,
            last_at_ms: 0,
            detail: detail.into(),
            handled: handled.into(),
            yielded,
        };
        let shown = status(&status_of(Counters {
            foreign_writes: vec![
                writer(
                    1,
                    2,
                    "retaken",
                    false,
                    "cpu1: scaling_governor holds \"performance\"",
                ),
                writer(3, 1, "yielded", true, "cpu3: scaling_setspeed"),
            ],
            ..Counters::default()
        }));
        let section = shown
            .split("OTHER WRITERS OF CPUFREQ FILES\n")
            .nth(1)
            .and_then(|rest| rest.split("\nPOLICY FILES REFUSED\n").next())
            .unwrap();
        let lines: Vec<&str> = section.lines().collect();
        assert_eq!(lines.len(), 3, "{section}");
        assert!(lines[1].starts_with("1          2 retaken"), "{section}");
        assert!(lines[1].ends_with("holds \"performance\""), "{section}");
        assert!(
            lines[2].starts_with("3          1 yielded (now)"),
            "{section}"
        );
        let counters = shown.split("\nCOUNTERS\n").nth(1).unwrap();
        assert!(!counters.contains("foreign_writes"), "{counters}");
        let none = status(&status_of(Counters::default()));
        assert!(
            none.contains("OTHER WRITERS OF CPUFREQ FILES\n") && none.contains("FOUND\n(none)\n"),
            "{none}"
        );
    }

    #[test]
    fn vfs_in_a_table_and_none_said_plainly() {
        assert_eq!(vf_table("eth0", &[]), "eth0 has no SR-IOV VFs\n");
        let vfs: Vec<VfInfo> = serde_json::from_value(json!([
            {"vf": 0, "mac": "02:00:00:00:00:01", "rx_packets": 5, "tx_packets": 7},
            {"vf": 1, "mac": "00:00:00:00:00:00", "rx_packets": null, "tx_packets": null},
        ]))
        .unwrap();
        assert_eq!(
            vf_table("eth0", &vfs),
            " VF MAC                 RX_PACKETS   TX_PACKETS\n  \
             0 02:00:00:00:00:01            5            7\n  \
             1 00:00:00:00:00:00            -            -\n"
        );
    }

    #[test]
    fn an_answer_of_another_type_is_an_error_not_a_blank_table() {
        let err = render(&Command::Status, json!({"added": "vm1"})).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
        // Commands answered with a plain acknowledgement do not read it.
        let ok = render(
            &Command::AddVm { vm: "vm1".into() },
            json!({"added": "vm1"}),
        );
        assert_eq!(ok.unwrap(), "ok\n");
    }
}

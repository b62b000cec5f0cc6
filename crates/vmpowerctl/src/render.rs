//! Human-readable rendering of the daemon's answers (`--json` prints them
//! as they are).

use std::fmt::Write;

use serde_json::Value;

use crate::cli::{Command, PolicyCommand};

/// The text to print for `command`'s answer.
pub fn render(command: &Command, value: &Value) -> String {
    match command {
        Command::Status => status(value),
        Command::Top(args) => crate::top::frame(value, None, args.interval),
        Command::ListVms => vm_table(value),
        Command::ShowVm { .. } => show_vm(value),
        Command::ShowCpuFreq(_) | Command::SetCpuFreq { .. } => cpu_table(value),
        Command::Policy(PolicyCommand::List) => match value.as_array() {
            Some(list) if !list.is_empty() => {
                list.iter().map(policy).collect::<Vec<_>>().join("\n")
            }
            _ => "no policies\n".to_owned(),
        },
        Command::Policy(PolicyCommand::Show { .. } | PolicyCommand::Create { .. }) => policy(value),
        Command::History { .. } => history(value),
        Command::ShowVfs { pf } => vf_table(pf, value),
        Command::AddChannels { .. } | Command::ReconnectChannels { .. } => channel_paths(value),
        _ => "ok\n".to_owned(),
    }
}

/// `add-channels` / `reconnect-channels`: one line per channel and what
/// was done with it.
fn channel_paths(v: &Value) -> String {
    let mut out = String::new();
    for (key, what) in [
        ("connected", "connecting"),
        ("already_connected", "already connected, left alone"),
        ("reconnected", "reconnecting"),
    ] {
        for path in v[key].as_array().into_iter().flatten() {
            out.push_str(&format!("{}: {what}\n", text(path)));
        }
    }
    if out.is_empty() {
        out.push_str("no channel\n");
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// The pCPUs another tool wrote behind the daemon's back: one line each,
/// with what the daemon did and what it found last.
fn foreign_writers(out: &mut String, list: &Value) {
    out.push_str("\nOTHER WRITERS OF CPUFREQ FILES\n");
    let _ = writeln!(
        out,
        "{:<5} {:>6} {:<14} {:<24} FOUND",
        "PCPU", "COUNT", "HANDLED", "LAST"
    );
    none_if_empty(out, list);
    for f in list.as_array().into_iter().flatten() {
        let handled = if f["yielded"].as_bool() == Some(true) {
            "yielded (now)".to_owned()
        } else {
            text(&f["handled"])
        };
        let _ = writeln!(
            out,
            "{:<5} {:>6} {:<14} {:<24} {}",
            text(&f["pcpu"]),
            text(&f["count"]),
            handled,
            time(&f["last_at_ms"]),
            text(&f["detail"])
        );
    }
}

/// `status`: a summary line, then channels, policies, the last errors,
/// the refused policy-directory files and the counters, each as a table.
fn status(v: &Value) -> String {
    let metrics = v["metrics_address"]
        .as_str()
        .map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics"));
    let mut out = format!(
        "vmpowerd {} (commit {})\nVMs {}  pCPUs {} (managed: {})  channels {} up, {} down  metrics {metrics}\n",
        text(&v["version"]),
        text(&v["commit"]),
        text(&v["vms"]),
        text(&v["pcpus"]),
        cpu_list(&v["pcpus_managed"]),
        text(&v["channels_up"]),
        text(&v["channels_down"]),
    );
    let _ = writeln!(out, "channel dir {}", text(&v["channel_dir"]));
    let stats = &v["stats"];
    out.push_str("\nCHANNELS\n");
    let _ = writeln!(
        out,
        "{:<24} {:<5} {:<24} {:>8}",
        "CHANNEL", "STATE", "SINCE", "CONNECTS"
    );
    none_if_empty(&mut out, &stats["channels"]);
    for (name, ch) in stats["channels"].as_object().into_iter().flatten() {
        let state = if ch["up"].as_bool() == Some(true) {
            "up"
        } else {
            "down"
        };
        let _ = writeln!(
            out,
            "{:<24} {:<5} {:<24} {:>8}",
            name,
            state,
            time(&ch["since_ms"]),
            text(&ch["connects"])
        );
    }
    out.push_str("\nPOLICIES\n");
    let _ = writeln!(
        out,
        "{:<16} {:<13} {:<8} WAITING FOR",
        "VM", "KIND", "STATE"
    );
    none_if_empty(&mut out, &v["policies"]);
    for p in v["policies"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<16} {:<13} {:<8} {}",
            text(&p["vm"]),
            text(&p["kind"]),
            text(&p["state"]),
            text(&p["waiting_for"])
        );
    }
    out.push_str("\nLAST ERRORS (newest first)\n");
    let _ = writeln!(
        out,
        "{:<24} {:<12} {:<9} {:<20} {:>5} DETAIL",
        "TIME", "VM", "KIND", "REASON", "COUNT"
    );
    none_if_empty(&mut out, &stats["last_errors"]);
    for e in stats["last_errors"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<9} {:<20} {:>5} {}",
            time(&e["at_ms"]),
            text(&e["vm"]),
            text(&e["kind"]),
            text(&e["label"]),
            text(&e["count"]),
            text(&e["detail"])
        );
    }
    foreign_writers(&mut out, &stats["foreign_writes"]);
    out.push_str("\nPOLICY FILES REFUSED\n");
    none_if_empty(&mut out, &stats["policy_files_refused"]);
    for f in stats["policy_files_refused"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "{}", text(&f["file"]));
        // Parse errors run over several lines (a TOML excerpt): indented.
        for line in text(&f["error"]).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push_str("\nCOUNTERS\n");
    for (key, value) in stats.as_object().into_iter().flatten() {
        match (key.as_str(), value) {
            ("channels" | "last_errors" | "policy_files_refused" | "foreign_writes", _) => {}
            (_, Value::Object(map)) => {
                for (k, n) in map {
                    let _ = writeln!(out, "{key:<22} {k:<40} {n}");
                }
            }
            (_, other) => {
                let _ = writeln!(out, "{key:<22} {:<40} {other}", "");
            }
        }
    }
    out
}

/// `(none)` under a table whose rows would be `v`'s, when it has none.
fn none_if_empty(out: &mut String, v: &Value) {
    let empty = match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => true,
    };
    if empty {
        out.push_str("(none)\n");
    }
}

/// A unix-millisecond time as RFC 3339 (seconds).
fn time(v: &Value) -> String {
    v.as_i64()
        .and_then(|ms| jiff::Timestamp::from_second(ms / 1000).ok())
        .map_or_else(|| "-".to_owned(), |t| t.to_string())
}

/// `[1, 2, 5]` as `1,2,5` (`none` when empty).
fn cpu_list(v: &Value) -> String {
    let cpus: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    if cpus.is_empty() {
        "none".to_owned()
    } else {
        cpus.join(",")
    }
}

fn vm_table(v: &Value) -> String {
    let mut out = format!(
        "{:<20} {:>5} {:>8} {:>7} {:>12}\n",
        "VM", "VCPUS", "CHANNELS", "QUERIES", "LAYOUT"
    );
    for vm in v.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<20} {:>5} {:>8} {:>7} {:>12}",
            text(&vm["name"]),
            vm["vcpus"].as_array().map_or(0, Vec::len),
            vm["channels"].as_array().map_or(0, Vec::len),
            text(&vm["settings"]["queries_allowed"]),
            text(&vm["settings"]["layout"]),
        );
    }
    out
}

fn show_vm(v: &Value) -> String {
    let mut out = format!("VM {}\n", text(&v["name"]));
    if let Some(settings) = v["settings"].as_object() {
        for (k, s) in settings {
            let _ = writeln!(out, "  {k:<20} {}", text(s));
        }
    }
    out.push_str("  vCPU -> pCPU\n");
    for vcpu in v["vcpus"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:>4} -> {}",
            text(&vcpu["vcpu"]),
            text(&vcpu["pcpus"])
        );
    }
    out.push_str("  channels\n");
    for ch in v["channels"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:>4} {} served={} enabled={}",
            text(&ch["index"]),
            text(&ch["path"]),
            text(&ch["served"]),
            text(&ch["enabled"]),
        );
    }
    out
}

fn cpu_table(v: &Value) -> String {
    let mut out = format!(
        "{:>4} {:>10} {:>8} {:>8}\n",
        "CPU", "KHZ", "MANAGED", "OPERATOR"
    );
    for row in v.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:>4} {:>10} {:>8} {:>8}",
            text(&row["cpu"]),
            text(&row["khz"]),
            text(&row["managed"]),
            text(&row["operator"]),
        );
    }
    out
}

fn policy(v: &Value) -> String {
    let mut out = format!(
        "VM {}: {} policy, {}",
        text(&v["vm"]),
        text(&v["policy"]["kind"]),
        text(&v["state"])
    );
    if let Some(why) = v["waiting_for"].as_str() {
        let _ = write!(out, " ({why})");
    }
    out.push('\n');
    let source = serde_json::from_value::<vmpower_api::PolicyOrigin>(v["source"].clone())
        .map_or_else(|_| "unknown".to_owned(), |o| o.to_string());
    let _ = writeln!(out, "  source  {source}");
    let _ = writeln!(out, "  cores   {}", text(&v["cores"]));
    for l in v["levels"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {:<7} {}", text(&l["core"]), text(&l["level"]));
    }
    if !v["rate_pps"].is_null() {
        let _ = writeln!(out, "  rate    {} pps", text(&v["rate_pps"]));
    }
    if !v["hour"].is_null() {
        let _ = writeln!(out, "  hour    {}", text(&v["hour"]));
    }
    for m in v["macs"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  mac     {} ({})",
            text(&m["mac"]),
            text(&m["source"])
        );
    }
    out
}

fn history(v: &Value) -> String {
    let mut out = format!(
        "{:<24} {:<12} {:>4} {:>9} {:>9} REASON\n",
        "TIME", "VM", "PCPU", "OLD_KHZ", "NEW_KHZ"
    );
    for e in v.as_array().into_iter().flatten() {
        let at = e["at_ms"]
            .as_i64()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:>4} {:>9} {:>9} {}",
            at,
            text(&e["vm"]),
            text(&e["pcpu"]),
            text(&e["old_khz"]),
            text(&e["new_khz"]),
            text(&e["reason"]),
        );
    }
    out
}

fn vf_table(pf: &str, v: &Value) -> String {
    if v.as_array().is_none_or(Vec::is_empty) {
        return format!("{pf} has no SR-IOV VFs\n");
    }
    let mut out = format!(
        "{:>3} {:<17} {:>12} {:>12}\n",
        "VF", "MAC", "RX_PACKETS", "TX_PACKETS"
    );
    for vf in v.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:>3} {:<17} {:>12} {:>12}",
            text(&vf["vf"]),
            text(&vf["mac"]),
            text(&vf["rx_packets"]),
            text(&vf["tx_packets"]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_policy_names_its_source() {
        let shown = policy(&json!({
            "vm": "vm4", "policy": {"kind": "WORKLOAD"}, "state": "active",
            "cores": ["vcpu0"], "levels": [],
            "source": {"kind": "policy-file", "path": "/etc/vmpower/policies.d/vm4.toml"},
        }));
        assert!(
            shown.contains("  source  policy file /etc/vmpower/policies.d/vm4.toml\n"),
            "{shown}"
        );
        let unknown = policy(&json!({"vm": "vm4", "policy": {"kind": "WORKLOAD"}}));
        assert!(unknown.contains("  source  unknown\n"), "{unknown}");
    }

    #[test]
    fn status_lists_refused_policy_files_apart_from_the_counters() {
        let shown = status(&json!({
            "stats": {
                "sysfs_writes": 3,
                "policy_files_refused": [
                    {"file": "/p/bad.toml", "error": "TOML parse error at line 3\n  |\nunclosed array"},
                ],
            },
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
        let none = status(&json!({"stats": {"policy_files_refused": []}}));
        assert!(none.contains("POLICY FILES REFUSED\n(none)\n"), "{none}");
    }

    #[test]
    fn status_shows_other_writers_with_what_was_done() {
        let shown = status(&json!({
            "stats": {
                "foreign_writes": [
                    {"pcpu": 1, "count": 2, "last_at_ms": 0, "handled": "retaken", "yielded": false,
                     "detail": "cpu1: scaling_governor holds \"performance\""},
                    {"pcpu": 3, "count": 1, "last_at_ms": 0, "handled": "yielded", "yielded": true,
                     "detail": "cpu3: scaling_setspeed"},
                ],
            },
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
        let none = status(&json!({"stats": {"foreign_writes": []}}));
        assert!(
            none.contains("OTHER WRITERS OF CPUFREQ FILES\n") && none.contains("FOUND\n(none)\n"),
            "{none}"
        );
    }

    #[test]
    fn vfs_in_a_table_and_none_said_plainly() {
        assert_eq!(vf_table("eth0", &json!([])), "eth0 has no SR-IOV VFs\n");
        let one = vf_table(
            "eth0",
            &json!([{"vf": 0, "mac": "02:00:00:00:00:01", "rx_packets": 5, "tx_packets": 7}]),
        );
        assert!(one.starts_with(" VF MAC"), "{one}");
        assert!(one.contains("02:00:00:00:00:01"), "{one}");
    }
}

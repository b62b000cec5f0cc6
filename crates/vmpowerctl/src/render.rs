//! Human-readable rendering of the daemon's answers (`--json` prints them
//! as they are).

use std::fmt::Write;

use serde_json::Value;

use crate::cli::{Command, PolicyCommand};

/// The text to print for `command`'s answer.
pub fn render(command: &Command, value: &Value) -> String {
    match command {
        Command::Status => status(value),
        Command::ListVms => vm_table(value),
        Command::ShowVm { .. } => show_vm(value),
        Command::ShowCpuFreq(_) | Command::SetCpuFreq { .. } => cpu_table(value),
        Command::Policy(PolicyCommand::List) => value
            .as_array()
            .into_iter()
            .flatten()
            .map(policy)
            .collect::<Vec<_>>()
            .join("\n"),
        Command::Policy(PolicyCommand::Show { .. } | PolicyCommand::Create { .. }) => policy(value),
        Command::History { .. } => history(value),
        Command::ShowVfs { .. } => vf_table(value),
        _ => "ok\n".to_owned(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn status(v: &Value) -> String {
    let mut out = String::new();
    for key in ["version", "channel_dir", "vms", "pcpus", "pcpus_managed"] {
        let _ = writeln!(out, "{key:<16} {}", text(&v[key]));
    }
    let served = v["channels_served"].as_array().map_or(0, Vec::len);
    let _ = writeln!(out, "{:<16} {served}", "channels");
    if let Some(stats) = v["stats"].as_object() {
        for (key, value) in stats {
            match value {
                Value::Object(map) => {
                    for (k, n) in map {
                        let _ = writeln!(out, "{key:<16} {k} {n}");
                    }
                }
                other => {
                    let _ = writeln!(out, "{key:<16} {other}");
                }
            }
        }
    }
    out
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

fn vf_table(v: &Value) -> String {
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

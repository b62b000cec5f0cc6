//! `vmpowerctl top`: a live table of each pCPU's frequency and level and
//! each VM's channels, request rate, traffic rate, policy and last
//! decision, refreshed every `--interval` seconds.
//!
//! ## Behavior
//! - One connection to the control socket, one `Top` request per frame.
//! - On a terminal each frame is redrawn in place with plain ANSI (cursor
//!   home, clear screen); otherwise (a pipe, a test) frames follow each
//!   other, separated by a blank line. With `--json` each frame is one
//!   JSON line.
//! - Ends after `--iterations` frames, on Ctrl-C (the default SIGINT
//!   action: nothing to restore, no alternate screen is used), when
//!   stdout closes, or when the daemon goes away (exit 1).
//! - Request rates are the difference between two frames, so the first
//!   frame shows none.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use vmpower_api::{Client, CtlRequest, CtlResponse};

use crate::cli::{Cli, TopArgs};

/// Clears the screen and puts the cursor at the top left.
const REDRAW: &str = "\x1b[H\x1b[2J";

/// Runs the live view until it ends (see the module doc).
pub fn run(cli: &Cli, args: &TopArgs) -> ExitCode {
    let mut client = match Client::connect(&cli.control_socket) {
        Ok(c) => c,
        Err(e) => return crate::unreachable_daemon(cli.json, e),
    };
    let tty = std::io::stdout().is_terminal();
    let interval = Duration::from_secs_f64(args.interval);
    let mut previous: Option<Value> = None;
    let mut frames = 0u64;
    loop {
        let value = match client.call(&CtlRequest::Top) {
            Ok(CtlResponse::Ok(v)) => v,
            Ok(CtlResponse::Error(e)) => {
                return crate::fail(cli.json, serde_json::json!(e.kind), &e.message, 4);
            }
            Err(e) => return crate::unreachable_daemon(cli.json, e),
        };
        let text = if cli.json {
            format!("{value}\n")
        } else {
            let lead = match (tty, frames) {
                (true, _) => REDRAW,
                (false, 0) => "",
                (false, _) => "\n",
            };
            format!("{lead}{}", frame(&value, previous.as_ref(), args.interval))
        };
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // stdout closed (`| head`): nothing left to show.
            return ExitCode::SUCCESS;
        }
        drop(out);
        frames += 1;
        if args.iterations.is_some_and(|max| frames >= max) {
            return ExitCode::SUCCESS;
        }
        previous = Some(value);
        std::thread::sleep(interval);
    }
}

/// One frame as text; `previous` gives the request rates.
pub fn frame(v: &Value, previous: Option<&Value>, interval_s: f64) -> String {
    let now_ms = v["at_ms"].as_i64().unwrap_or(0);
    let when = jiff::Timestamp::from_millisecond(now_ms)
        .map_or_else(|_| "-".to_owned(), |t| t.strftime("%H:%M:%S").to_string());
    let t = &v["totals"];
    let mut out = format!(
        "vmpower top  {when} UTC  every {interval_s}s  (Ctrl-C to quit)\n\
         requests {}  rejections {}  sysfs writes {}  sysfs failures {}\n\n",
        num(&t["requests"]),
        num(&t["rejections"]),
        num(&t["sysfs_writes"]),
        num(&t["sysfs_failures"]),
    );
    let _ = writeln!(out, "{:>5} {:>10} {:>7}  STATE", "PCPU", "FREQ", "LEVEL");
    for p in v["pcpus"].as_array().into_iter().flatten() {
        let level = match (p["level"].as_u64(), p["levels"].as_u64()) {
            (Some(l), Some(n)) => format!("{l}/{}", n.saturating_sub(1)),
            _ => "-".to_owned(),
        };
        let state = match (p["operator"].as_bool(), p["managed"].as_bool()) {
            (Some(true), _) => "operator",
            (_, Some(true)) => "managed",
            _ => "-",
        };
        let _ = writeln!(
            out,
            "{:>5} {:>10} {:>7}  {state}",
            num(&p["cpu"]),
            p["khz"].as_u64().map_or_else(|| "-".to_owned(), ghz),
            level
        );
    }
    let _ = writeln!(
        out,
        "\n{:<16} {:>8} {:>7} {:>11}  {:<24} LAST DECISION",
        "VM", "CHANNELS", "REQ/S", "TRAFFIC", "POLICY"
    );
    let dt_s = previous
        .and_then(|p| p["at_ms"].as_i64())
        .map(|before| (now_ms - before) as f64 / 1000.0)
        .filter(|dt| *dt > 0.0);
    for vm in v["vms"].as_array().into_iter().flatten() {
        let name = vm["vm"].as_str().unwrap_or("?");
        let rate = match (dt_s, previous.and_then(|p| requests_of(p, name))) {
            (Some(dt), Some(before)) => {
                let now = vm["requests"].as_u64().unwrap_or(0);
                format!("{:.1}", now.saturating_sub(before) as f64 / dt)
            }
            _ => "-".to_owned(),
        };
        let policy = &vm["policy"];
        let (traffic, policy) = if policy.is_null() {
            ("-".to_owned(), "none".to_owned())
        } else {
            let mut text = format!("{} {}", text(&policy["kind"]), text(&policy["state"]));
            if let Some(why) = policy["waiting_for"].as_str() {
                let _ = write!(text, ": {why}");
            }
            let traffic = policy["rate_pps"]
                .as_f64()
                .map_or_else(|| "-".to_owned(), pps);
            (traffic, text)
        };
        let _ = writeln!(
            out,
            "{:<16} {:>8} {:>7} {:>11}  {:<24} {}",
            name,
            format!("{}/{}", num(&vm["channels_up"]), num(&vm["channels"])),
            rate,
            traffic,
            cut(&policy, 40),
            decision(&vm["last_decision"], now_ms),
        );
    }
    out
}

/// The request count of `vm` in a frame.
fn requests_of(frame: &Value, vm: &str) -> Option<u64> {
    frame["vms"]
        .as_array()?
        .iter()
        .find(|v| v["vm"].as_str() == Some(vm))?["requests"]
        .as_u64()
}

fn decision(d: &Value, now_ms: i64) -> String {
    if d.is_null() {
        return "-".to_owned();
    }
    let age = d["at_ms"].as_i64().map_or_else(String::new, |at| {
        format!(", {}s ago", (now_ms - at).max(0) / 1000)
    });
    let khz = |k: &Value| k.as_u64().map_or_else(|| "-".to_owned(), ghz);
    format!(
        "pCPU {} {} -> {}{age}: {}",
        num(&d["pcpu"]),
        khz(&d["old_khz"]),
        khz(&d["new_khz"]),
        cut(&text(&d["reason"]), 60)
    )
}

fn num(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| "-".to_owned(), str::to_owned)
}

/// At most `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// kHz as GHz with two decimals.
fn ghz(khz: u64) -> String {
    format!("{:.2} GHz", khz as f64 / 1e6)
}

/// A packet rate with a unit.
fn pps(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} Mpps", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} kpps", rate / 1e3)
    } else {
        format!("{rate:.0} pps")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(at_ms: i64, requests: u64) -> Value {
        json!({
            "at_ms": at_ms,
            "totals": { "requests": requests, "rejections": 1, "sysfs_writes": 2, "sysfs_failures": 0 },
            "pcpus": [
                { "cpu": 1, "khz": 2_301_000, "level": 0, "levels": 5, "managed": true, "operator": false },
                { "cpu": 3, "khz": null, "level": null, "levels": 5, "managed": false, "operator": false },
            ],
            "vms": [{
                "vm": "vm1", "channels_up": 1, "channels": 2, "requests": requests,
                "policy": { "kind": "traffic", "state": "waiting", "waiting_for": "MAC 02:00:00:00:00:01: not found", "rate_pps": 1_500_000.0 },
                "last_decision": { "at_ms": at_ms - 3000, "pcpu": 1, "old_khz": 800_000, "new_khz": 2_301_000, "reason": "request ScaleMax; decided by want of vm1" },
            }],
        })
    }

    #[test]
    fn a_frame_shows_cpus_vms_and_rates() {
        let first = sample(10_000, 10);
        let second = sample(12_000, 30);
        let f = frame(&second, Some(&first), 2.0);
        assert!(f.contains("requests 30  rejections 1"), "{f}");
        let cpu1 = f
            .lines()
            .find(|l| l.trim_start().starts_with("1 "))
            .unwrap();
        assert!(cpu1.contains("2.30 GHz") && cpu1.contains("0/4") && cpu1.contains("managed"));
        let vm = f.lines().find(|l| l.starts_with("vm1")).unwrap();
        assert!(vm.contains("1/2"), "{vm}");
        assert!(vm.contains("10.0"), "20 requests in 2 s: {vm}");
        assert!(vm.contains("1.50 Mpps"), "{vm}");
        assert!(vm.contains("traffic waiting: MAC"), "{vm}");
        assert!(
            vm.contains("pCPU 1 0.80 GHz -> 2.30 GHz, 3s ago: request ScaleMax"),
            "{vm}"
        );
        // The first frame has no rate yet.
        let f = frame(&first, None, 2.0);
        let vm = f.lines().find(|l| l.starts_with("vm1")).unwrap();
        assert!(!vm.contains("10.0"), "{vm}");
    }

    #[test]
    fn units_and_cuts() {
        assert_eq!(pps(999.0), "999 pps");
        assert_eq!(pps(12_345.0), "12.3 kpps");
        assert_eq!(ghz(800_000), "0.80 GHz");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}

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

use vmpower_api::answers::{LastDecision, TopFrame};
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
    let mut previous: Option<TopFrame> = None;
    let mut frames = 0u64;
    loop {
        // --json: the frame as the daemon sent it; else read as a frame.
        let answer = if cli.json {
            client
                .call(&CtlRequest::Top)
                .map(|r| r.map(|v| format!("{v}\n")))
        } else {
            client.top().map(|r| {
                r.map(|now| {
                    let lead = match (tty, frames) {
                        (true, _) => REDRAW,
                        (false, 0) => "",
                        (false, _) => "\n",
                    };
                    let text = format!("{lead}{}", frame(&now, previous.as_ref(), args.interval));
                    previous = Some(now);
                    text
                })
            })
        };
        let text = match answer {
            Ok(CtlResponse::Ok(text)) => text,
            Ok(CtlResponse::Error(e)) => {
                return crate::fail(cli.json, serde_json::json!(e.kind), &e.message, 4);
            }
            Err(e) => return crate::unreachable_daemon(cli.json, e),
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
        std::thread::sleep(interval);
    }
}

/// One frame as text; `previous` gives the request rates.
pub fn frame(v: &TopFrame, previous: Option<&TopFrame>, interval_s: f64) -> String {
    let now_ms = v.at_ms;
    let when = jiff::Timestamp::from_millisecond(now_ms)
        .map_or_else(|_| "-".to_owned(), |t| t.strftime("%H:%M:%S").to_string());
    let t = &v.totals;
    let mut out = format!(
        "vmpower top  {when} UTC  every {interval_s}s  (Ctrl-C to quit)\n\
         requests {}  rejections {}  sysfs writes {}  sysfs failures {}\n\n",
        t.requests, t.rejections, t.sysfs_writes, t.sysfs_failures,
    );
    let _ = writeln!(out, "{:>5} {:>10} {:>7}  STATE", "PCPU", "FREQ", "LEVEL");
    for p in &v.pcpus {
        let level = match (p.level, p.levels) {
            (Some(l), Some(n)) => format!("{l}/{}", n.saturating_sub(1)),
            _ => "-".to_owned(),
        };
        let state = if p.operator {
            "operator"
        } else if p.managed {
            "managed"
        } else {
            "-"
        };
        let _ = writeln!(
            out,
            "{:>5} {:>10} {:>7}  {state}",
            p.cpu,
            p.khz.map_or_else(|| "-".to_owned(), ghz),
            level
        );
    }
    let _ = writeln!(
        out,
        "\n{:<16} {:>8} {:>7} {:>11}  {:<24} LAST DECISION",
        "VM", "CHANNELS", "REQ/S", "TRAFFIC", "POLICY"
    );
    let dt_s = previous
        .map(|p| (now_ms - p.at_ms) as f64 / 1000.0)
        .filter(|dt| *dt > 0.0);
    for vm in &v.vms {
        let rate = match (dt_s, previous.and_then(|p| requests_of(p, &vm.vm))) {
            (Some(dt), Some(before)) => {
                format!("{:.1}", vm.requests.saturating_sub(before) as f64 / dt)
            }
            _ => "-".to_owned(),
        };
        let (traffic, policy) = match &vm.policy {
            None => ("-".to_owned(), "none".to_owned()),
            Some(policy) => {
                let mut text = format!("{} {}", policy.kind, policy.state);
                if let Some(why) = &policy.waiting_for {
                    let _ = write!(text, ": {why}");
                }
                let traffic = policy.rate_pps.map_or_else(|| "-".to_owned(), pps);
                (traffic, text)
            }
        };
        let _ = writeln!(
            out,
            "{:<16} {:>8} {:>7} {:>11}  {:<24} {}",
            vm.vm,
            format!("{}/{}", vm.channels_up, vm.channels),
            rate,
            traffic,
            cut(&policy, 40),
            decision(vm.last_decision.as_ref(), now_ms),
        );
    }
    out
}

/// The request count of `vm` in a frame.
fn requests_of(frame: &TopFrame, vm: &str) -> Option<u64> {
    frame.vms.iter().find(|v| v.vm == vm).map(|v| v.requests)
}

fn decision(d: Option<&LastDecision>, now_ms: i64) -> String {
    let Some(d) = d else {
        return "-".to_owned();
    };
    let age = i64::try_from(d.at_ms).map_or_else(
        |_| String::new(),
        |at| format!(", {}s ago", (now_ms - at).max(0) / 1000),
    );
    format!(
        "pCPU {} {} -> {}{age}: {}",
        d.pcpu,
        ghz(d.old_khz),
        ghz(d.new_khz),
        cut(&d.reason, 60)
    )
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
fn ghz(khz: u32) -> String {
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

    /// A frame as the daemon sends it.
    fn sample(at_ms: i64, requests: u64) -> TopFrame {
        serde_json::from_value(json!({
            "at_ms": at_ms,
            "totals": { "requests": requests, "rejections": 1, "sysfs_writes": 2, "sysfs_failures": 0 },
            "pcpus": [
                { "cpu": 1, "khz": 2_301_000, "level": 0, "levels": 5, "managed": true, "operator": false },
                { "cpu": 3, "khz": null, "level": null, "levels": 5, "managed": false, "operator": false },
            ],
            "vms": [{
                "vm": "vm1", "channels_up": 1, "channels": 2, "requests": requests,
                "policy": { "vm": "vm1", "kind": "traffic", "state": "waiting", "waiting_for": "MAC 02:00:00:00:00:01: not found", "rate_pps": 1_500_000.0 },
                "last_decision": { "at_ms": at_ms - 3000, "pcpu": 1, "old_khz": 800_000, "new_khz": 2_301_000, "reason": "request ScaleMax; decided by want of vm1" },
            }],
        }))
        .unwrap()
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

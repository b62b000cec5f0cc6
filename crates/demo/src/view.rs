//! The live view: each pCPU's frequency and level (from the fake sysfs
//! files), each VM's rate, policy state and last decision with its reason
//! (from the daemon's control API), and what each guest did last.
//!
//! ## Behavior
//! - On a terminal, the frame is redrawn in place with plain ANSI escapes
//!   (home, erase line, erase below; cursor hidden while running). No TUI
//!   framework: a handful of escapes do, and a pipe gets plain lines.
//! - Elsewhere (a pipe, CI, `--short`), one plain line per second.
//!
//! It only reads: the control API calls are `policy show` and `history`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use vmpower_api::CtlRequest;

use crate::guests::GuestStatus;
use crate::host::ctl;
use crate::sample::{Level, Range, Reading};
use crate::scenario::{Role, VmPlan};

/// What the daemon says about one VM.
#[derive(Debug, Clone, Default)]
pub struct VmState {
    /// `active`, `waiting: why`, or `no policy`.
    pub policy: String,
    /// The packet rate the daemon measured, for TRAFFIC policies.
    pub rate_pps: Option<u64>,
    /// Where the daemon reads the policy's MAC (e.g. `netdev vmpd-1-0 rx`).
    pub source: Option<String>,
    /// The last decision on its pCPUs, with its reason.
    pub last_decision: Option<String>,
}

/// Asks the daemon about each VM (blocking).
pub fn query(socket: &Path, vms: &[VmPlan]) -> Vec<VmState> {
    vms.iter()
        .map(|vm| {
            let mut state = VmState::default();
            match ctl(
                socket,
                &CtlRequest::PolicyShow {
                    vm: vm.name.clone(),
                },
            ) {
                Ok(v) => {
                    let s = v["state"].as_str().unwrap_or("?");
                    state.policy = match v["waiting_for"].as_str() {
                        Some(why) => format!("{s}: {why}"),
                        None => s.to_owned(),
                    };
                    state.rate_pps = v["rate_pps"].as_f64().map(crate::sample::whole);
                    state.source = v["macs"][0]["source"].as_str().map(str::to_owned);
                }
                Err(_) => state.policy = "no policy (direct requests)".to_owned(),
            }
            let history = CtlRequest::History {
                vm: Some(vm.name.clone()),
                since: None,
                limit: Some(1),
            };
            if let Ok(v) = ctl(socket, &history) {
                state.last_decision = v.get(0).map(describe_decision);
            }
            state
        })
        .collect()
}

fn describe_decision(d: &serde_json::Value) -> String {
    let mhz = |v: &serde_json::Value| {
        v.as_u64()
            .map_or("-".to_owned(), |k| (k / 1000).to_string())
    };
    let reason = match &d["reason"] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!(
        "cpu{} {}→{} MHz ({reason})",
        d["pcpu"],
        mhz(&d["old_khz"]),
        mhz(&d["new_khz"])
    )
}

/// Everything one frame shows.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Seconds since the start, and the run's length.
    pub elapsed: Duration,
    /// The run's length.
    pub duration: Duration,
    /// The traffic line (`traffic: real packets …` or `… synthetic …`).
    pub traffic: &'a str,
    /// pCPU readings.
    pub cpus: &'a [Reading],
    /// pCPU ranges.
    pub ranges: &'a std::collections::BTreeMap<u32, Range>,
    /// The VMs, their daemon state, their guest status and fed rate.
    pub vms: Vec<(&'a VmPlan, VmState, GuestStatus, u64)>,
}

fn bar(khz: Option<u32>, range: Option<&Range>, width: usize) -> String {
    let (Some(k), Some(r)) = (khz, range) else {
        return " ".repeat(width);
    };
    let cells = crate::sample::whole(f64::from(k) / f64::from(r.max_khz.max(1)) * width as f64);
    let filled = usize::try_from(cells).unwrap_or(width).min(width);
    format!("{}{}", "█".repeat(filled), "·".repeat(width - filled))
}

fn level_colour(level: Level) -> &'static str {
    match level {
        Level::Min => "\x1b[32m",
        Level::Mid => "\x1b[33m",
        Level::Max => "\x1b[31m",
        Level::Host => "\x1b[2m",
    }
}

/// The whole frame, for a terminal.
pub fn render(frame: &Frame<'_>) -> String {
    let mut out = String::from("\x1b[H");
    let mut line = |s: String| {
        out.push_str(&s);
        out.push_str("\x1b[K\n");
    };
    line(format!(
        "\x1b[1mvmpower demo\x1b[0m — simulated host, real daemon, simulated guests  {:5.1} s / {:.0} s  (Ctrl-C ends)",
        frame.elapsed.as_secs_f64(),
        frame.duration.as_secs_f64()
    ));
    line(frame.traffic.to_owned());
    line("TIME: one simulated day over the demo; the daemon reads the real clock, so the guest re-sends its policy each simulated hour with its hours rotated (decisions name the real hour)".into());
    line(String::new());
    line("\x1b[1mpCPU  governor    MHz   level  frequency\x1b[0m".into());
    for r in frame.cpus {
        let mhz = r
            .khz
            .map_or("    -".to_owned(), |k| format!("{:5}", k / 1000));
        line(format!(
            "cpu{:<2} {:<10} {mhz}   {}{:<5}\x1b[0m  {}",
            r.cpu,
            r.governor,
            level_colour(r.level),
            r.level.name(),
            bar(r.khz, frame.ranges.get(&r.cpu), 24)
        ));
    }
    line(String::new());
    line("\x1b[1mVM              role     pCPUs   rate (fed / measured)      policy\x1b[0m".into());
    for (plan, state, guest, fed) in &frame.vms {
        let rates = if plan.role == Role::Traffic {
            let measured = state.rate_pps.map_or("-".to_owned(), rate);
            format!("{:>10} / {:>10}", rate(*fed), measured)
        } else {
            "-".to_owned()
        };
        line(format!(
            "{:<15} {:<8} {:<7} {rates:<26} {}",
            plan.name,
            plan.role.name(),
            cpulist(&plan.pcpus),
            state.policy
        ));
        if let Some(source) = state
            .source
            .as_deref()
            .filter(|_| plan.role == Role::Traffic)
        {
            line(format!("    counter: {source}"));
        }
        line(format!(
            "    last decision: {}",
            state.last_decision.as_deref().unwrap_or("none yet")
        ));
        line(format!(
            "    guest: {}  (accepted {}, refused {}, errors {})",
            guest.last, guest.acks, guest.nacks, guest.errors
        ));
    }
    out.push_str("\x1b[J");
    out
}

/// One line for a pipe or CI log.
pub fn plain_line(frame: &Frame<'_>) -> String {
    let mut out = format!("[{:5.1} s]", frame.elapsed.as_secs_f64());
    for r in frame.cpus.iter().filter(|r| r.level != Level::Host) {
        let _ = write!(out, " cpu{}={}", r.cpu, r.khz.map_or(0, |k| k / 1000));
    }
    for (plan, state, _, fed) in &frame.vms {
        let _ = write!(out, " | {} {}", plan.name, state.policy);
        if plan.role == Role::Traffic {
            let _ = write!(out, " fed {}", rate(*fed));
            if let Some(r) = state.rate_pps {
                let _ = write!(out, " measured {}", rate(r));
            }
        }
    }
    out
}

/// A packet rate with a unit that keeps three or four digits.
pub fn rate(pps: u64) -> String {
    // Rates are far below 2^53: the conversions are exact.
    match pps {
        0..1_000 => format!("{pps} pps"),
        1_000..1_000_000 => format!("{:.1} kpps", pps as f64 / 1e3),
        _ => format!("{:.2} Mpps", pps as f64 / 1e6),
    }
}

/// `1-2` style list.
pub fn cpulist(cpus: &[u32]) -> String {
    match (cpus.first(), cpus.last()) {
        (Some(a), Some(b))
            if cpus.len() > 1 && b - a + 1 == u32::try_from(cpus.len()).unwrap_or(0) =>
        {
            format!("{a}-{b}")
        }
        _ => cpus
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_read_well() {
        let d = serde_json::json!({"pcpu": 3, "old_khz": 800000, "new_khz": 2301000, "reason": "policy traffic"});
        assert_eq!(describe_decision(&d), "cpu3 800→2301 MHz (policy traffic)");
        let d =
            serde_json::json!({"pcpu": 1, "old_khz": null, "new_khz": 800000, "reason": {"k": 1}});
        assert_eq!(describe_decision(&d), "cpu1 -→800 MHz ({\"k\":1})");
    }

    #[test]
    fn rates_keep_their_digits() {
        assert_eq!(rate(500), "500 pps");
        assert_eq!(rate(12_000), "12.0 kpps");
        assert_eq!(rate(7_940), "7.9 kpps");
        assert_eq!(rate(1_200_000), "1.20 Mpps");
    }

    #[test]
    fn lists_and_bars() {
        assert_eq!(cpulist(&[1, 2]), "1-2");
        assert_eq!(cpulist(&[5]), "5");
        assert_eq!(cpulist(&[1, 3]), "1,3");
        let r = Range {
            min_khz: 800_000,
            max_khz: 2_000_000,
        };
        assert_eq!(bar(Some(1_000_000), Some(&r), 4), "██··");
        assert_eq!(bar(None, Some(&r), 3), "   ");
    }
}

//! The summary printed at the end of the demo.
//!
//! Its lines are stable so that CI can check them (see
//! `tests/demo.rs`): `traffic: real packets on veth NAMES (...)` or
//! `traffic: synthetic counters, no packets sent (...)`, `decisions taken: N`, one
//! `guest NAME (ROLE): ...` line per VM (traffic VMs add `fed N packets`
//! and the peak rate the daemon measured, with its counter's source), one
//! `cpuN  min S s ...` line per pCPU, `network: removed NAMES ...` (real
//! traffic only), `restore check: passed|FAILED ...` and
//! `temp dir: PATH (removed)`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::feed::TrafficMode;
use crate::guests::GuestStatus;
use crate::host::RestoreCheck;
use crate::sample::{Accounting, Level};
use crate::scenario::{Role, VmPlan};
use crate::view::rate;

/// What one guest did, and what the daemon measured for it.
#[derive(Debug, Clone)]
pub struct GuestReport {
    /// Its VM.
    pub plan: VmPlan,
    /// Its final status.
    pub status: GuestStatus,
    /// Packets fed to its MAC (traffic VMs).
    pub sent: u64,
    /// The highest rate the daemon measured for its policy.
    pub peak_pps: Option<u64>,
    /// Where the daemon read its MAC's counter.
    pub source: Option<String>,
}

/// Everything the summary reports.
#[derive(Debug)]
pub struct Summary {
    /// How long the demo ran.
    pub ran: Duration,
    /// The signal that ended it before the set time.
    pub interrupted: Option<&'static str>,
    /// CPUs of the simulated host.
    pub cpus: u32,
    /// Real packets or synthetic counters.
    pub traffic: TrafficMode,
    /// Entries in the daemon's history.
    pub decisions: usize,
    /// Sampling period of the accounting.
    pub sample_every: Duration,
    /// Time at each level and energy, per pCPU.
    pub accounting: Accounting,
    /// Each guest's report.
    pub guests: Vec<GuestReport>,
    /// Real traffic: the pairs removed, or what was left.
    pub network: Option<Result<Vec<String>, String>>,
    /// The restore check.
    pub restore: RestoreCheck,
    /// The temporary directory, and whether it is gone.
    pub temp_dir: (PathBuf, Result<(), String>),
}

/// The power model, stated with its assumptions.
pub const POWER_MODEL: &str = "dynamic power P = C·V²·f with V proportional to f, so P ∝ f³; \
static and uncore power ignored (the real saving is smaller); CPUs left to the host governor \
counted at max; turbo counted at its nominal table frequency";

impl Summary {
    /// The summary text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "== vmpower demo summary ==");
        let _ = writeln!(
            o,
            "ran {:.1} s{} on a simulated host: {} CPUs of acpi-cpufreq with turbo (fake sysfs), the real vmpowerd in-process",
            self.ran.as_secs_f64(),
            self.interrupted
                .map_or(String::new(), |s| format!(" (ended by {s})")),
            self.cpus
        );
        let _ = writeln!(o, "traffic: {}", self.traffic.describe());
        let _ = writeln!(
            o,
            "decisions taken: {} (entries in the daemon's history)",
            self.decisions
        );
        for r in &self.guests {
            let (plan, g) = (&r.plan, &r.status);
            let _ = write!(
                o,
                "guest {} ({}): accepted {}, refused {}, errors {}",
                plan.name,
                plan.role.name(),
                g.acks,
                g.nacks,
                g.errors
            );
            if plan.role == Role::Traffic {
                let _ = write!(
                    o,
                    "; fed {} packets, the daemon measured up to {} ({})",
                    r.sent,
                    r.peak_pps.map_or("nothing".to_owned(), rate),
                    r.source.as_deref().unwrap_or("no counter found")
                );
            }
            if let Some(e) = &g.last_error {
                let _ = write!(o, " (last: {e})");
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(
            o,
            "time at each level per pCPU (sampled every {} ms):",
            self.sample_every.as_millis()
        );
        for (cpu, tally) in &self.accounting.cpus {
            let _ = write!(o, "  cpu{cpu:<3}");
            for level in Level::ALL {
                let at = tally.at.get(&level).copied().unwrap_or_default();
                let _ = write!(
                    o,
                    " {} {:5.2} s ({:3.0}%)",
                    level.name(),
                    at.as_secs_f64(),
                    tally.share(level) * 100.0
                );
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(
            o,
            "estimated energy saved against every CPU at max: {:.1}%",
            self.accounting.saving() * 100.0
        );
        let _ = writeln!(o, "  power model: {POWER_MODEL}");
        match &self.network {
            Some(Ok(names)) => {
                let _ = writeln!(
                    o,
                    "network: removed {} (namespaces and veth pairs; none left with the run's prefix)",
                    names.join(", ")
                );
            }
            Some(Err(e)) => {
                let _ = writeln!(o, "network: NOT removed: {e}");
            }
            None => {}
        }
        if self.restore.passed() {
            let _ = writeln!(
                o,
                "restore check: passed (takeover record empty; every CPU's governor, min and max back as found: {})",
                self.restore.governors.join(", ")
            );
        } else {
            let _ = write!(
                o,
                "restore check: FAILED (takeover record {})",
                if self.restore.takeover_empty {
                    "empty"
                } else {
                    "NOT empty"
                }
            );
            for (file, was, now) in &self.restore.differences {
                let _ = write!(o, "; {} was {was}, now {now}", file.display());
            }
            let _ = writeln!(o);
        }
        let (path, removed) = &self.temp_dir;
        match removed {
            Ok(()) => {
                let _ = writeln!(o, "temp dir: {} (removed)", path.display());
            }
            Err(e) => {
                let _ = writeln!(o, "temp dir: {} (NOT removed: {e})", path.display());
            }
        }
        o
    }

    /// Whether the demo did what it shows and cleaned up.
    pub fn ok(&self) -> bool {
        self.restore.passed()
            && self.temp_dir.1.is_ok()
            && self.network.as_ref().is_none_or(Result::is_ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Range, Reading};
    use std::collections::BTreeMap;

    #[test]
    fn stable_lines() {
        let ranges = BTreeMap::from([(
            1,
            Range {
                min_khz: 800_000,
                max_khz: 2_301_000,
            },
        )]);
        let mut accounting = Accounting::default();
        let r = Reading {
            cpu: 1,
            governor: "userspace".into(),
            khz: Some(800_000),
            level: Level::Min,
        };
        accounting.add(&[r], &ranges, Duration::from_millis(500));
        let traffic_vm = crate::scenario::plan(1, 4).unwrap().remove(0);
        let mut s = Summary {
            ran: Duration::from_secs(6),
            interrupted: Some("Ctrl-C"),
            cpus: 8,
            traffic: TrafficMode::Veth {
                names: vec!["vmpd-12-0".into()],
            },
            decisions: 12,
            sample_every: Duration::from_millis(250),
            accounting,
            guests: vec![GuestReport {
                plan: traffic_vm,
                status: GuestStatus {
                    acks: 1,
                    ..GuestStatus::default()
                },
                sent: 30_000,
                peak_pps: Some(11_900),
                source: Some("netdev vmpd-12-0 rx".into()),
            }],
            network: Some(Ok(vec!["vmpd-12-0".into()])),
            restore: RestoreCheck {
                takeover_empty: true,
                differences: Vec::new(),
                governors: vec!["ondemand".into()],
            },
            temp_dir: (PathBuf::from("/tmp/x"), Ok(())),
        };
        let text = s.render();
        assert!(text.contains("decisions taken: 12 "), "{text}");
        assert!(text.contains("ran 6.0 s (ended by Ctrl-C)"), "{text}");
        assert!(text.contains("  cpu1   min  0.50 s (100%)"), "{text}");
        assert!(text.contains("restore check: passed"), "{text}");
        assert!(text.contains("temp dir: /tmp/x (removed)"), "{text}");
        assert!(
            text.contains("traffic: real packets on veth vmpd-12-0 "),
            "{text}"
        );
        assert!(
            text.contains(
                "guest vm0-traffic (traffic): accepted 1, refused 0, errors 0; fed 30000 packets, the daemon measured up to 11.9 kpps (netdev vmpd-12-0 rx)"
            ),
            "{text}"
        );
        assert!(text.contains("network: removed vmpd-12-0 "), "{text}");
        assert!(s.ok());
        s.network = Some(Err("still present after removal: netns vmpd-12-0".into()));
        assert!(!s.ok(), "a pair left behind fails the run");
        assert!(s.render().contains("network: NOT removed: still present"));
        s.network = None;
        s.traffic = TrafficMode::Synthetic {
            why: "--traffic synthetic".into(),
        };
        let text = s.render();
        assert!(
            text.contains("traffic: synthetic counters, no packets sent (--traffic synthetic)"),
            "{text}"
        );
        assert!(!text.contains("network:"), "{text}");
        assert!(s.ok());
    }
}

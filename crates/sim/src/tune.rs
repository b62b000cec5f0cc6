//! Tuning a VM's TRAFFIC policy on its own trace: the thresholds and
//! hysteresis of least energy that drop no packet on the training part,
//! then checked on the held-out rest.
//!
//! ## Search
//! A grid, every point run through the real engine on the training part:
//! `avg_pps` at 0, 20, 40, 50–90 % (steps of 10 %, then 5 %) and 100 % of
//! what the VM's cores serve at min, `max_pps` at the same fractions of
//! what they serve at medium (`avg_pps ≤ max_pps`; 0 means "always at
//! least that level"), hysteresis band {0, 5, 10, 20} % and dwell {0, 0.5, 2} s.
//! Among the points that drop no more than static max does on the same
//! part (zero, unless the trace offers more than the cores can serve at
//! max) the least energy wins (ties: the grid order). When none does, the
//! fewest drops win, and the result says so.
//!
//! ## Limitations
//! Zero drops on the training part is no promise for the future: the
//! held-out figures say how it generalises on this trace. One VM at a
//! time (the policy file is per VM).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use vmpower_engine::policy::traffic::Hysteresis;
use vmpower_proto::TrafficThresholds;

use crate::controller::Controller;
use crate::controller::engine::{EnginePolicies, VmPolicy};
use crate::host::SimHost;
use crate::run::{RunOptions, simulate};
use crate::trace::Trace;

/// One candidate's outcome on the training part.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Candidate {
    /// Thresholds, packets/s.
    pub avg_pps: u32,
    /// Thresholds, packets/s.
    pub max_pps: u32,
    /// Hysteresis band.
    pub band: f64,
    /// Hysteresis dwell, ms.
    pub dwell_ms: u64,
    /// Energy on the training part, J.
    pub energy_j: f64,
    /// Packets dropped on the training part.
    pub dropped: f64,
}

impl Candidate {
    /// The thresholds.
    pub fn thresholds(&self) -> TrafficThresholds {
        TrafficThresholds {
            min_pps: 0,
            avg_pps: self.avg_pps,
            max_pps: self.max_pps,
        }
    }

    /// The hysteresis.
    pub fn hysteresis(&self) -> Hysteresis {
        Hysteresis {
            band: self.band,
            dwell: Duration::from_millis(self.dwell_ms),
        }
    }
}

/// The grid's fractions of capacity.
const FRACTIONS: [f64; 12] = [
    0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0,
];
const BANDS: [f64; 4] = [0.0, 0.05, 0.1, 0.2];
const DWELLS_MS: [u64; 3] = [0, 500, 2000];

/// The best candidate on `train` (one VM), how many were tried, and
/// what static max drops on the same part (the unavoidable drops).
pub fn search(
    host: &SimHost,
    train: &Trace,
    interval: Duration,
) -> anyhow::Result<(Candidate, usize, f64)> {
    anyhow::ensure!(train.vms.len() == 1, "tuning takes one VM's trace");
    let cap = |i: usize| host.vm_capacity(i);
    let mut baseline: Vec<Box<dyn Controller>> =
        vec![Box::new(crate::controller::static_max::StaticMax)];
    let unavoidable = simulate(
        host,
        &mut train.source(),
        None,
        &mut baseline,
        RunOptions::default(),
    )?
    .results[0]
        .dropped;
    let ok = |dropped: f64| dropped <= unavoidable + 0.5;
    let mut best: Option<Candidate> = None;
    let mut tried = 0;
    for fa in FRACTIONS {
        for fm in FRACTIONS {
            let (avg, max) = (
                to_pps(fa * cap(host.min())),
                to_pps(fm * cap(host.medium())),
            );
            if avg > max {
                continue;
            }
            for band in BANDS {
                for dwell_ms in DWELLS_MS {
                    let mut c = Candidate {
                        avg_pps: avg,
                        max_pps: max,
                        band,
                        dwell_ms,
                        energy_j: 0.0,
                        dropped: 0.0,
                    };
                    let policy = VmPolicy::Traffic(c.thresholds(), Some(c.hysteresis()));
                    let mut list: Vec<Box<dyn Controller>> = vec![Box::new(EnginePolicies::new(
                        "candidate",
                        vec![policy],
                        interval,
                    ))];
                    let r = simulate(
                        host,
                        &mut train.source(),
                        None,
                        &mut list,
                        RunOptions::default(),
                    )?;
                    c.energy_j = r.results[0].energy_j;
                    c.dropped = r.results[0].dropped;
                    tried += 1;
                    let better = match &best {
                        None => true,
                        Some(b) if ok(c.dropped) != ok(b.dropped) => ok(c.dropped),
                        Some(b) if !ok(c.dropped) && c.dropped != b.dropped => {
                            c.dropped < b.dropped
                        }
                        Some(b) => c.energy_j < b.energy_j - 1e-9,
                    };
                    if better {
                        best = Some(c);
                    }
                }
            }
        }
    }
    let best = best.ok_or_else(|| anyhow::anyhow!("no candidate"))?;
    Ok((best, tried, unavoidable))
}

fn to_pps(x: f64) -> u32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let v = x.clamp(0.0, f64::from(u32::MAX)) as u32;
    v
}

/// The tuned policy as an operator's policy file (`vmpowerctl policy
/// create FILE`, or a file in the policy directory).
pub fn operator_policy_file(vm: &str, vcpus: usize, c: &Candidate, note: &str) -> String {
    let mut out = String::new();
    for line in note.lines() {
        let _ = writeln!(out, "# {line}");
    }
    let cores: Vec<String> = (0..vcpus.min(8)).map(|v| v.to_string()).collect();
    let _ = writeln!(out, "vm = \"{vm}\"");
    let _ = writeln!(out, "kind = \"TRAFFIC\"");
    let _ = writeln!(out, "cores = [{}]", cores.join(", "));
    let _ = writeln!(
        out,
        "# the VM's MACs (the simulator does not know them): replace"
    );
    let _ = writeln!(out, "macs = [\"02:00:00:00:00:00\"]");
    let _ = writeln!(out, "[traffic]");
    let _ = writeln!(out, "avg_pps = {}", c.avg_pps);
    let _ = writeln!(out, "max_pps = {}", c.max_pps);
    let _ = writeln!(out, "[hysteresis]");
    let _ = writeln!(out, "band = {}", c.band);
    let _ = writeln!(out, "dwell_ms = {}", c.dwell_ms);
    out
}

/// The tuned thresholds as a guest's policy file (`vmpower-guest
/// send-policy --file`); DPDK's layout carries no hysteresis, so a guest's
/// policy gets the host's default (5 %, 500 ms).
pub fn guest_policy_file(vcpus: usize, c: &Candidate) -> String {
    let last = vcpus.clamp(1, 8) - 1;
    format!(
        "# for vmpower-guest send-policy --file; the hysteresis is the host's default\n\
         policy = \"TRAFFIC\"\nvcpu-list = \"0-{last}\"\nmac-list = [\"02:00:00:00:00:00\"]\n\
         avg-packet-thresh = {}\nmax-packet-thresh = {}\n",
        c.avg_pps, c.max_pps
    )
}

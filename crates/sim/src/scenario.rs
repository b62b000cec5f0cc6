//! The standard comparison: which controllers run, with which settings.
//!
//! ## How each controller is set up
//! - **static max**: nothing to set.
//! - **DPDK TRAFFIC** and **vmpower TRAFFIC** get the same thresholds per
//!   VM: by default the rule of thumb an operator would use with this
//!   packet model, `avg_pps` = 90 % of what the VM's cores serve at min and
//!   `max_pps` = 90 % of what they serve at medium (so each level has 10 %
//!   headroom below the threshold that leaves it); or the thresholds given.
//! - **vmpower TRAFFIC (tuned)**: thresholds and hysteresis from
//!   [`crate::tune`] when given.
//! - **TIME**: hours set from the trace itself, with hindsight (an
//!   operator who knows their day): an hour whose peak is within min's
//!   threshold is quiet, one whose peak exceeds medium's is busy, the
//!   others run at medium. Hours the trace does not reach are busy.
//! - **WORKLOAD**: the lowest declared level whose threshold covers the
//!   VM's peak over the whole trace (hindsight again).
//! - **vmpower busyness**: the engine's busyness controller at its
//!   defaults (band 75–85 %, 100 ms cooldown), each guest reporting every
//!   10 ms ([`crate::controller::busyness`]); and the same with the band
//!   at 90–96 % ([`HIGH_BAND`]).
//! - **Kubernetes-style**: the Kubernetes Power Manager's DPDK scaling
//!   parameters ([`crate::controller::kubernetes`]).
//! - **oracle**: when the trace is in memory.

use std::time::Duration;

use vmpower_engine::policy::traffic::Hysteresis;
use vmpower_proto::{HourSchedule, HourSet, TrafficThresholds, WorkloadLevel};

use vmpower_engine::BusyConfig;

use crate::controller::Controller;
use crate::controller::busyness::{BusynessEngine, DEFAULT_REPORT_INTERVAL};
use crate::controller::dpdk::DpdkTraffic;
use crate::controller::engine::{EnginePolicies, VmPolicy};
use crate::controller::kubernetes::{KpmParams, Kubernetes};
use crate::controller::oracle::Oracle;
use crate::controller::static_max::StaticMax;
use crate::host::SimHost;
use crate::trace::Trace;

/// The busyness controller with a higher band (90–96 %, the same
/// cooldown): what an operator trading headroom for energy would set.
pub const HIGH_BAND: BusyConfig = BusyConfig {
    low: 0.90,
    high: 0.96,
    ..BusyConfig::DEFAULT
};

/// Headroom of the rule-of-thumb thresholds.
pub const HEADROOM: f64 = 0.9;

/// The rule-of-thumb thresholds for a VM of `host`.
pub fn default_thresholds(host: &SimHost) -> TrafficThresholds {
    let pps = |i: usize| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let v = (HEADROOM * host.vm_capacity(i)).min(f64::from(u32::MAX)) as u32;
        v
    };
    TrafficThresholds {
        min_pps: 0,
        avg_pps: pps(host.min()),
        max_pps: pps(host.medium()),
    }
}

/// What to compare.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Thresholds for both TRAFFIC controllers (default: the rule of thumb).
    pub thresholds: Option<TrafficThresholds>,
    /// Tuned thresholds and hysteresis, for a "vmpower TRAFFIC (tuned)" line.
    pub tuned: Option<(TrafficThresholds, Hysteresis)>,
    /// The daemon's traffic sampling interval (default 100 ms).
    pub interval: Option<Duration>,
    /// Leave the oracle out.
    pub no_oracle: bool,
}

/// The controllers of the standard comparison for `trace` on `host`.
pub fn controllers(
    host: &SimHost,
    trace: &Trace,
    wall_start: jiff::Timestamp,
    cmp: &Comparison,
) -> Vec<Box<dyn Controller>> {
    let n = host.vms.len();
    let t = cmp.thresholds.unwrap_or_else(|| default_thresholds(host));
    let interval = cmp
        .interval
        .unwrap_or(crate::controller::engine::DEFAULT_INTERVAL);
    let mut list: Vec<Box<dyn Controller>> = vec![
        Box::new(StaticMax),
        Box::new(DpdkTraffic::new(vec![t; n])),
        Box::new(EnginePolicies::new(
            "vmpower TRAFFIC",
            vec![VmPolicy::Traffic(t, None); n],
            interval,
        )),
    ];
    if let Some((tuned, h)) = cmp.tuned {
        list.push(Box::new(EnginePolicies::new(
            "vmpower TRAFFIC tuned",
            vec![VmPolicy::Traffic(tuned, Some(h)); n],
            interval,
        )));
    }
    list.push(Box::new(EnginePolicies::drop_aware(
        "vmpower TRAFFIC drop-aware",
        vec![VmPolicy::Traffic(t, None); n],
        interval,
    )));
    list.push(Box::new(EnginePolicies::drop_aware(
        "vmpower TRAFFIC adaptive",
        vec![VmPolicy::TrafficAdaptive(None); n],
        interval,
    )));
    list.push(Box::new(EnginePolicies::new(
        "vmpower TIME",
        trace
            .rates
            .iter()
            .map(|s| VmPolicy::Time(time_hours(s, trace.step, wall_start, &t)))
            .collect(),
        interval,
    )));
    list.push(Box::new(EnginePolicies::new(
        "vmpower WORKLOAD",
        trace
            .rates
            .iter()
            .map(|s| VmPolicy::Workload(workload_level(s, &t)))
            .collect(),
        interval,
    )));
    list.push(Box::new(BusynessEngine::new(
        BusyConfig::default(),
        DEFAULT_REPORT_INTERVAL,
    )));
    list.push(Box::new(
        BusynessEngine::new(HIGH_BAND, DEFAULT_REPORT_INTERVAL).named("vmpower busyness 90-96 %"),
    ));
    list.push(Box::new(Kubernetes::new(KpmParams::default())));
    if !cmp.no_oracle {
        list.push(Box::new(Oracle::default()));
    }
    list
}

/// TIME hours for one VM's series (see the module docs).
pub fn time_hours(
    series: &[f64],
    step: Duration,
    wall_start: jiff::Timestamp,
    t: &TrafficThresholds,
) -> HourSchedule {
    let mut peak = [None::<f64>; 24];
    let start_s = wall_start.as_second();
    let step_s = step.as_secs_f64();
    for (k, r) in series.iter().enumerate() {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let s = start_s + (k as f64 * step_s) as i64;
        let hour = usize::try_from(s.rem_euclid(86_400) / 3600).unwrap_or(0);
        let p = peak[hour].get_or_insert(0.0);
        *p = p.max(*r);
    }
    let mut busy = HourSet::EMPTY;
    let mut quiet = HourSet::EMPTY;
    for (h, p) in (0u8..).zip(peak) {
        let set = match p {
            Some(p) if p < f64::from(t.avg_pps) => &mut quiet,
            Some(p) if p < f64::from(t.max_pps) => continue,
            _ => &mut busy,
        };
        set.insert(h).expect("hours are 0..=23");
    }
    HourSchedule {
        busy,
        quiet,
        traffic: HourSet::EMPTY,
    }
}

/// The WORKLOAD level for one VM's series (see the module docs).
pub fn workload_level(series: &[f64], t: &TrafficThresholds) -> WorkloadLevel {
    let peak = series.iter().fold(0.0f64, |m, r| m.max(*r));
    if peak < f64::from(t.avg_pps) {
        WorkloadLevel::Low
    } else if peak < f64::from(t.max_pps) {
        WorkloadLevel::Medium
    } else {
        WorkloadLevel::High
    }
}

//! The demo's script, as pure functions of elapsed time: which VM plays
//! which role on which pCPUs, the packet rate (synthetic or real), the
//! simulated hour and the direct requests.
//!
//! ## Behavior
//! - VMs take roles in turn (traffic, time, direct, traffic, ...), each on
//!   an equal share of the pCPUs from cpu1 up; cpu0 and any leftover stay
//!   with the host, as on a real hypervisor.
//! - The packet rate ([`RatePlan`]) runs in cycles of four equal phases:
//!   quiet, rising, peak, falling, so it crosses both thresholds of the
//!   TRAFFIC policy in both directions each cycle.
//! - The simulated clock runs one whole day over the demo.
//!
//! Nothing here does I/O or reads a clock: the caller passes the elapsed
//! time, so the script is unit-tested exactly.

use std::time::Duration;

use vmpower_proto::{HourSchedule, HourSet, ModelError, ScalingUnit, TrafficThresholds};

/// What a simulated guest does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends a TRAFFIC policy; its traffic rises and falls.
    Traffic,
    /// Sends a TIME policy on an accelerated clock.
    Time,
    /// Sends direct requests (up/down/min/max).
    Direct,
}

impl Role {
    /// A short name for the screen.
    pub fn name(self) -> &'static str {
        match self {
            Role::Traffic => "traffic",
            Role::Time => "time",
            Role::Direct => "direct",
        }
    }
}

/// One simulated VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPlan {
    /// Its name (and its channel socket's name, `<name>.0`).
    pub name: String,
    /// What its guest does.
    pub role: Role,
    /// vCPU i runs on `pcpus[i]`.
    pub pcpus: Vec<u32>,
}

/// Why the VMs do not fit the host.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Fewer pCPUs (cpu0 kept for the host) than VMs.
    #[error("--vms {vms} needs at least {} CPUs (cpu0 stays with the host), --cpus is {cpus}", vms + 1)]
    TooFewCpus {
        /// VMs asked for.
        vms: u32,
        /// CPUs asked for.
        cpus: u32,
    },
    /// No VM at all.
    #[error("--vms must be at least 1")]
    NoVm,
}

/// Assigns roles and pCPUs.
pub fn plan(vms: u32, cpus: u32) -> Result<Vec<VmPlan>, PlanError> {
    if vms == 0 {
        return Err(PlanError::NoVm);
    }
    let usable = cpus.saturating_sub(1);
    if usable < vms {
        return Err(PlanError::TooFewCpus { vms, cpus });
    }
    let per_vm = usable / vms;
    let roles = [Role::Traffic, Role::Time, Role::Direct];
    Ok((0..vms)
        .map(|i| {
            let role = roles[usize::try_from(i % 3).expect("i % 3 < 3")];
            let first = 1 + i * per_vm;
            VmPlan {
                name: format!("vm{i}-{}", role.name()),
                role,
                pcpus: (first..first + per_vm).collect(),
            }
        })
        .collect())
}

/// The traffic script of one mode: a quiet rate, a peak rate, and the
/// TRAFFIC policy's thresholds between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePlan {
    /// The rate in the quiet phase, in packets per second.
    pub quiet_pps: u64,
    /// The rate at the peak, in packets per second.
    pub peak_pps: u64,
    /// The policy's thresholds (medium at `avg_pps`, max at `max_pps`).
    pub thresholds: TrafficThresholds,
}

impl RatePlan {
    /// Synthetic counters: a busy DPDK guest's rates (50 kpps to 1.2 Mpps),
    /// which cost nothing to count.
    pub const SYNTHETIC: RatePlan = RatePlan {
        quiet_pps: 50_000,
        peak_pps: 1_200_000,
        thresholds: TrafficThresholds {
            min_pps: 0,
            avg_pps: 400_000,
            max_pps: 800_000,
        },
    };

    /// Real packets on a veth pair: the same shape a hundred times slower
    /// (500 pps to 12 kpps), so one sender thread keeps the pace on a
    /// small, busy machine.
    pub const VETH: RatePlan = RatePlan {
        quiet_pps: 500,
        peak_pps: 12_000,
        thresholds: TrafficThresholds {
            min_pps: 0,
            avg_pps: 4_000,
            max_pps: 8_000,
        },
    };

    /// The packet rate `at` into a cycle of `period`: four equal phases,
    /// quiet, rising, peak, falling.
    pub fn pps(&self, at: Duration, period: Duration) -> u64 {
        let period_ms = period.as_millis().max(4);
        let quarter = period_ms / 4;
        let t = at.as_millis() % period_ms;
        let span = u128::from(self.peak_pps.saturating_sub(self.quiet_pps));
        let ramp = |into: u128| -> u64 {
            let add = span * into.min(quarter) / quarter;
            self.quiet_pps + u64::try_from(add).expect("at most peak - quiet")
        };
        match t / quarter {
            0 => self.quiet_pps,
            1 => ramp(t - quarter),
            2 => self.quiet_pps.max(self.peak_pps),
            _ => self.quiet_pps.max(self.peak_pps) - (ramp(t - 3 * quarter) - self.quiet_pps),
        }
    }
}

/// Simulated hours: busy 9–17, quiet 0–6 and 22–23, the rest "other"
/// (medium).
pub fn simulated_day() -> Result<HourSchedule, ModelError> {
    Ok(HourSchedule {
        busy: HourSet::from_hours(9..=17)?,
        quiet: HourSet::from_hours((0..=6).chain(22..=23))?,
        traffic: HourSet::EMPTY,
    })
}

/// The simulated hour `at` into the demo, when one hour lasts `hour`.
pub fn simulated_hour(at: Duration, hour: Duration) -> u8 {
    let n = at.as_millis() / hour.as_millis().max(1);
    u8::try_from(n % 24).expect("n % 24 < 24")
}

/// Rotates `day` so that the host's real local hour `real` is classified
/// as `simulated` is in `day`: the daemon reads the real clock, so the
/// guest moves its hours instead of the clock.
pub fn rotate(day: &HourSchedule, simulated: u8, real: u8) -> Result<HourSchedule, ModelError> {
    let shift = |set: HourSet| {
        HourSet::from_hours(
            set.iter()
                .map(|h| (h + 24 - simulated % 24 + real % 24) % 24),
        )
    };
    Ok(HourSchedule {
        busy: shift(day.busy)?,
        quiet: shift(day.quiet)?,
        traffic: shift(day.traffic)?,
    })
}

/// The direct requests, in order, repeated.
pub const DIRECT_SEQUENCE: [ScalingUnit; 8] = [
    ScalingUnit::ScaleMax,
    ScalingUnit::ScaleDown,
    ScalingUnit::ScaleDown,
    ScalingUnit::ScaleMin,
    ScalingUnit::ScaleUp,
    ScalingUnit::ScaleUp,
    ScalingUnit::ScaleMax,
    ScalingUnit::ScaleMin,
];

/// The `n`th direct request.
pub fn direct_request(n: u64) -> ScalingUnit {
    let len = DIRECT_SEQUENCE.len() as u64;
    DIRECT_SEQUENCE[usize::try_from(n % len).expect("n % len < len")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_rotate_and_cpu0_stays_with_the_host() {
        let p = plan(3, 8).unwrap();
        assert_eq!(
            p.iter().map(|v| v.role).collect::<Vec<_>>(),
            [Role::Traffic, Role::Time, Role::Direct]
        );
        assert_eq!(p[0].pcpus, [1, 2]);
        assert_eq!(p[2].pcpus, [5, 6]);
        assert_eq!(p[1].name, "vm1-time");
        assert_eq!(plan(4, 8).unwrap()[3].role, Role::Traffic);
        assert!(matches!(plan(3, 3), Err(PlanError::TooFewCpus { .. })));
        assert!(matches!(plan(0, 8), Err(PlanError::NoVm)));
    }

    #[test]
    fn traffic_crosses_both_thresholds_each_way() {
        let period = Duration::from_secs(4);
        for plan in [RatePlan::SYNTHETIC, RatePlan::VETH] {
            let at = |ms| plan.pps(Duration::from_millis(ms), period);
            assert_eq!(at(0), plan.quiet_pps);
            assert_eq!(at(2500), plan.peak_pps);
            assert!(at(1500) > at(1200), "rising");
            assert!(at(3500) < at(3200), "falling");
            assert!(at(500) < u64::from(plan.thresholds.avg_pps));
            // Below avg with a margin wider than the 5 % hysteresis band,
            // above max likewise.
            assert!(plan.quiet_pps * 2 < u64::from(plan.thresholds.avg_pps));
            assert!(plan.peak_pps * 4 > u64::from(plan.thresholds.max_pps) * 5);
            assert!(at(2500) >= u64::from(plan.thresholds.max_pps));
            assert_eq!(at(4000), plan.quiet_pps, "next cycle");
        }
        assert_eq!(
            RatePlan::VETH.pps(Duration::from_millis(1500), period) * 100,
            RatePlan::SYNTHETIC.pps(Duration::from_millis(1500), period),
            "the veth plan is the synthetic one scaled down"
        );
    }

    #[test]
    fn a_flat_or_inverted_plan_never_underflows() {
        let flat = RatePlan {
            quiet_pps: 10,
            peak_pps: 5,
            ..RatePlan::VETH
        };
        for ms in (0..4000).step_by(100) {
            assert_eq!(
                flat.pps(Duration::from_millis(ms), Duration::from_secs(4)),
                10
            );
        }
    }

    #[test]
    fn rotation_makes_the_real_hour_the_simulated_one() {
        let day = simulated_day().unwrap();
        for real in 0..24 {
            for sim in 0..24 {
                let r = rotate(&day, sim, real).unwrap();
                assert_eq!(r.busy.contains(real), day.busy.contains(sim));
                assert_eq!(r.quiet.contains(real), day.quiet.contains(sim));
            }
        }
        assert_eq!(
            simulated_hour(Duration::from_millis(2600), Duration::from_secs(1)),
            2
        );
        assert_eq!(
            simulated_hour(Duration::from_secs(25), Duration::from_secs(1)),
            1
        );
    }

    #[test]
    fn direct_requests_cycle() {
        assert_eq!(direct_request(0), ScalingUnit::ScaleMax);
        assert_eq!(direct_request(3), ScalingUnit::ScaleMin);
        assert_eq!(direct_request(8), ScalingUnit::ScaleMax);
    }
}

//! A busyness controller with the parameters of the Kubernetes Power
//! Manager's DPDK dynamic scaling (intel/kubernetes-power-manager, as its
//! OpenShift fork documents it in `docs/dpdk-dynamic-scaling.md`): the
//! per-CPU usage from DPDK's `/eal/lcore/usage` over a ~10 ms window,
//! evaluated every `samplePeriod` (20 ms); within `targetUsage ±
//! allowedUsageDifference` (80 ± 5 %) the target holds; otherwise
//! `next = current × (1 + (usage / target − 1) × scalePercentage)` with
//! `scalePercentage` 100 %, held when it moves less than
//! `allowedFrequencyDifference` (10 MHz), clamped to the table; after a
//! change, `cooldownPeriod` (60 ms) before that CPU is evaluated again.
//! The frequency set is the lowest table entry at or above the target,
//! as cpufreq's userspace governor rounds (`CPUFREQ_RELATION_L`).
//!
//! It decides on the host with no guest in the loop (the host reads the
//! container's telemetry directly), so it is not the engine: a model of
//! that controller, for comparison.

use std::time::Duration;

use super::{Controller, Observation, Setup};

/// The Kubernetes Power Manager's DPDK scaling parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KpmParams {
    /// `samplePeriod`.
    pub sample: Duration,
    /// `cooldownPeriod`.
    pub cooldown: Duration,
    /// `targetUsage`, a fraction.
    pub target: f64,
    /// `allowedUsageDifference`, a fraction.
    pub deadband: f64,
    /// `scalePercentage`, a fraction.
    pub gain: f64,
    /// `allowedFrequencyDifference`, kHz.
    pub min_step_khz: f64,
}

impl Default for KpmParams {
    fn default() -> Self {
        KpmParams {
            sample: Duration::from_millis(20),
            cooldown: Duration::from_millis(60),
            target: 0.80,
            deadband: 0.05,
            gain: 1.0,
            min_step_khz: 10_000.0,
        }
    }
}

/// The Kubernetes-style controller.
#[derive(Debug, Clone)]
pub struct Kubernetes {
    params: KpmParams,
    khz: Vec<u32>,
    /// Per VM: the target frequency (kHz) and when it may next be
    /// evaluated.
    target: Vec<f64>,
    next_eval: Vec<Duration>,
}

impl Kubernetes {
    /// A controller with these parameters.
    pub fn new(params: KpmParams) -> Self {
        Kubernetes {
            params,
            khz: Vec::new(),
            target: Vec::new(),
            next_eval: Vec::new(),
        }
    }
}

/// The lowest table index's frequency at or above `khz` (the table is
/// highest first): as the userspace governor rounds.
pub fn relation_l(table: &[u32], khz: f64) -> usize {
    table
        .iter()
        .rposition(|f| f64::from(*f) >= khz)
        .unwrap_or(0)
}

impl Controller for Kubernetes {
    fn name(&self) -> String {
        "Kubernetes-style".to_owned()
    }

    fn start(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        self.khz = setup.host.model.khz();
        let n = setup.host.vms.len();
        self.target = vec![f64::from(self.khz[0]); n];
        self.next_eval = vec![Duration::ZERO; n];
        Ok(())
    }

    fn decide(&mut self, obs: &Observation<'_>, wanted: &mut [usize]) {
        if obs.step == 0 {
            return;
        }
        let p = self.params;
        let max = f64::from(self.khz[0]);
        let min = f64::from(*self.khz.last().expect("a table is non-empty"));
        for (vm, w) in wanted.iter_mut().enumerate() {
            if obs.now < self.next_eval[vm] {
                continue;
            }
            self.next_eval[vm] = obs.now + p.sample;
            let usage = obs.busy[vm];
            if (usage - p.target).abs() <= p.deadband {
                continue;
            }
            // The frequency the usage was measured at.
            let current = f64::from(self.khz[*w]);
            let next = (current * (1.0 + (usage / p.target - 1.0) * p.gain)).clamp(min, max);
            if (next - self.target[vm]).abs() < p.min_step_khz {
                continue;
            }
            self.target[vm] = next;
            let index = relation_l(&self.khz, next);
            if index != *w {
                *w = index;
                self.next_eval[vm] = obs.now + p.cooldown.max(p.sample);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::SimHost;
    use crate::packet::PacketParams;
    use crate::power::CpuModel;

    #[test]
    fn rounds_up_as_the_userspace_governor() {
        let t = [2_100_000, 2_000_000, 1_900_000];
        assert_eq!(relation_l(&t, 1_950_000.0), 1);
        assert_eq!(relation_l(&t, 2_000_000.0), 1);
        assert_eq!(relation_l(&t, 1_000_000.0), 2);
        assert_eq!(relation_l(&t, 3_000_000.0), 0);
    }

    #[test]
    fn samples_every_20_ms_and_cools_down_60_ms_after_a_change() {
        let host = SimHost::new(
            CpuModel::load("xeon-gold-6230").unwrap(),
            PacketParams::default(),
            vec!["vm0".to_owned()],
            1,
        );
        let mut c = Kubernetes::new(KpmParams::default());
        let step = Duration::from_millis(10);
        let setup = Setup {
            host: &host,
            step,
            steps: 20,
            start_wall: jiff::Timestamp::UNIX_EPOCH,
            future: None,
        };
        c.start(&setup).unwrap();
        let mut wanted = vec![0];
        let mut changes = Vec::new();
        for k in 1..20u32 {
            let obs = Observation {
                step: k as usize,
                now: step * k,
                wall: jiff::Timestamp::UNIX_EPOCH,
                counters: &[0],
                queued: &[0.0],
                // Always 40 %: below the band whatever the frequency.
                busy: &[0.4],
                dropped: &[0],
            };
            let before = wanted[0];
            c.decide(&obs, &mut wanted);
            if wanted[0] != before {
                changes.push(k * 10);
            }
        }
        // A change at 10 ms, then none before 70 ms, and so on.
        assert_eq!(changes[0], 10);
        assert!(changes.windows(2).all(|w| w[1] - w[0] >= 60), "{changes:?}");
        // Halving from 2.1 GHz: 1.05 GHz → the lowest entry at or above.
        assert_eq!(
            host.model.khz()[wanted[0]],
            *host.model.khz().last().unwrap()
        );
    }
}

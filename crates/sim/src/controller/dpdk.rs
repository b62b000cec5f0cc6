//! DPDK's TRAFFIC policy exactly as DPDK's host applies it
//! (`examples/vm_power_manager/channel_monitor.c`, `apply_traffic_profile`
//! and `get_pkt_diff`): the packet rate since the last evaluation, then
//! `>= max_max_packet_thresh` → max, `>= avg_max_packet_thresh` → medium
//! (`power_manager_scale_core_med`: index `num_freqs / 2`), else min. No
//! hysteresis, no dwell.
//!
//! DPDK evaluates policies on every pass of its monitor loop, which waits
//! in `epoll_wait` with a 1 ms timeout: here at every step of the trace,
//! the finest the trace resolves (a rate over 1 ms of a fluid trace equals
//! the step's rate).

use std::time::Duration;

use vmpower_proto::TrafficThresholds;

use super::{Controller, Observation, Setup, counter_rate};

/// DPDK's TRAFFIC thresholds, per VM.
#[derive(Debug, Clone)]
pub struct DpdkTraffic {
    thresholds: Vec<TrafficThresholds>,
    medium: usize,
    min: usize,
    last: Option<(Duration, Vec<u64>)>,
}

impl DpdkTraffic {
    /// One threshold set per VM.
    pub fn new(thresholds: Vec<TrafficThresholds>) -> Self {
        DpdkTraffic {
            thresholds,
            medium: 0,
            min: 0,
            last: None,
        }
    }
}

/// DPDK's rule: the level index for a rate.
pub fn dpdk_index(t: &TrafficThresholds, rate_pps: f64, medium: usize, min: usize) -> usize {
    if rate_pps >= f64::from(t.max_pps) {
        0
    } else if rate_pps >= f64::from(t.avg_pps) {
        medium
    } else {
        min
    }
}

impl Controller for DpdkTraffic {
    fn name(&self) -> String {
        "DPDK TRAFFIC".to_owned()
    }

    fn start(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.thresholds.len() == setup.host.vms.len(),
            "DPDK TRAFFIC: {} threshold sets for {} VMs",
            self.thresholds.len(),
            setup.host.vms.len()
        );
        self.medium = setup.host.medium();
        self.min = setup.host.min();
        self.last = None;
        Ok(())
    }

    fn decide(&mut self, obs: &Observation<'_>, wanted: &mut [usize]) {
        if let Some((at, prev)) = &self.last {
            let elapsed = obs.now.saturating_sub(*at);
            for (vm, w) in wanted.iter_mut().enumerate() {
                let rate = counter_rate(prev[vm], obs.counters[vm], elapsed);
                *w = dpdk_index(&self.thresholds[vm], rate, self.medium, self.min);
            }
        }
        match &mut self.last {
            Some((at, prev)) => {
                *at = obs.now;
                prev.copy_from_slice(obs.counters);
            }
            None => self.last = Some((obs.now, obs.counters.to_vec())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmpower_cpufreq::levels::Level;
    use vmpower_engine::policy::traffic::raw_level;

    #[test]
    fn same_rule_as_the_engine_without_hysteresis() {
        let t = TrafficThresholds {
            min_pps: 0,
            avg_pps: 1_800_000,
            max_pps: 2_000_000,
        };
        for rate in [0.0, 1_799_999.0, 1_800_000.0, 1_999_999.0, 2_000_000.0, 9e9] {
            let want = match raw_level(&t, rate) {
                Level::Max => 0,
                Level::Medium => 6,
                _ => 11,
            };
            assert_eq!(dpdk_index(&t, rate, 6, 11), want, "{rate}");
        }
    }
}

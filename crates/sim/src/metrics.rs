//! What a run measures, per controller: energy, drops, latency
//! percentiles, time under-provisioned, transitions, and the frequency
//! over time of one VM for the plots.

use serde::Serialize;

/// A latency histogram: log-spaced buckets from 10 ns to 100 s, 50 per
/// decade (≈ 4.7 % wide), each weighted by packets.
#[derive(Debug, Clone)]
pub struct LatencyHist {
    counts: Vec<f64>,
    total: f64,
}

const LOW_S: f64 = 1e-8;
const PER_DECADE: f64 = 50.0;
const DECADES: usize = 10;

impl Default for LatencyHist {
    fn default() -> Self {
        LatencyHist {
            counts: vec![0.0; DECADES * 50 + 1],
            total: 0.0,
        }
    }
}

impl LatencyHist {
    /// Adds `weight` packets that waited `delay_s`.
    pub fn add(&mut self, delay_s: f64, weight: f64) {
        if weight <= 0.0 || !delay_s.is_finite() {
            return;
        }
        let pos = ((delay_s.max(LOW_S) / LOW_S).log10() * PER_DECADE).floor();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = (pos.max(0.0) as usize).min(self.counts.len() - 1);
        self.counts[i] += weight;
        self.total += weight;
    }

    /// The delay (upper edge of its bucket) at quantile `q`, seconds.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let target = q.clamp(0.0, 1.0) * self.total;
        let mut seen = 0.0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target && *c > 0.0 {
                #[allow(clippy::cast_precision_loss)]
                return LOW_S * 10f64.powf((i + 1) as f64 / PER_DECADE);
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let top = self.counts.len() as f64;
        LOW_S * 10f64.powf(top / PER_DECADE)
    }
}

/// One controller's results on one trace.
#[derive(Debug, Clone, Serialize)]
pub struct ControllerResult {
    /// The controller.
    pub controller: String,
    /// Core energy plus the cores' share of uncore power, joules.
    pub energy_j: f64,
    /// Core energy alone, joules.
    pub core_energy_j: f64,
    /// `energy_j` as a percentage of static max's.
    pub energy_pct_of_static_max: f64,
    /// `energy_j` divided by the oracle's (when the oracle ran).
    pub energy_ratio_to_oracle: Option<f64>,
    /// Packets offered.
    pub offered: f64,
    /// Packets dropped.
    pub dropped: f64,
    /// Latency percentiles, µs.
    pub latency_p50_us: f64,
    /// p99, µs.
    pub latency_p99_us: f64,
    /// p99.9, µs.
    pub latency_p999_us: f64,
    /// VM-seconds during which the offered rate exceeded what the cores
    /// could serve.
    pub under_provisioned_s: f64,
    /// Frequency changes (per VM; all its vCPUs move together).
    pub transitions: u64,
    /// (seconds, MHz) of the plotted VM, downsampled.
    #[serde(skip)]
    pub freq_series: Vec<(f64, f64)>,
}

/// Accumulates a controller's run.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Core joules.
    pub core_j: f64,
    /// Uncore-share joules.
    pub uncore_j: f64,
    /// Packets offered.
    pub offered: f64,
    /// Packets dropped.
    pub dropped: f64,
    /// Latencies.
    pub latency: LatencyHist,
    /// VM-seconds under-provisioned.
    pub under_s: f64,
    /// Frequency changes.
    pub transitions: u64,
    /// The plotted VM's frequency.
    pub series: Vec<(f64, f64)>,
}

impl Tally {
    /// The result, relative to `static_max_j` (static max's `energy_j`).
    pub fn finish(self, controller: String, static_max_j: f64) -> ControllerResult {
        let energy = self.core_j + self.uncore_j;
        ControllerResult {
            controller,
            energy_j: energy,
            core_energy_j: self.core_j,
            energy_pct_of_static_max: if static_max_j > 0.0 {
                100.0 * energy / static_max_j
            } else {
                0.0
            },
            energy_ratio_to_oracle: None,
            offered: self.offered,
            dropped: self.dropped,
            latency_p50_us: self.latency.quantile(0.5) * 1e6,
            latency_p99_us: self.latency.quantile(0.99) * 1e6,
            latency_p999_us: self.latency.quantile(0.999) * 1e6,
            under_provisioned_s: self.under_s,
            transitions: self.transitions,
            freq_series: self.series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_a_bucket() {
        let mut h = LatencyHist::default();
        h.add(1e-6, 98.0);
        h.add(1e-3, 2.0);
        let p50 = h.quantile(0.5);
        assert!((1e-6..1.05e-6).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((1e-3..1.05e-3).contains(&p99), "{p99}");
        assert_eq!(LatencyHist::default().quantile(0.5), 0.0);
    }
}

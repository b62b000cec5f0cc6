//! What a run measures, per controller: energy, drops, latency
//! percentiles, time under-provisioned, transitions, and the frequency
//! over time of one VM for the plots.

use serde::Serialize;

/// A latency histogram: log-spaced buckets, 16 per octave (≈ 4.4 % wide),
/// from 2^-30 s (≈ 1 ns) to 2^10 s, each weighted by packets. The bucket
/// comes from the float's exponent and top mantissa bits: no logarithm
/// on the per-step path.
#[derive(Debug, Clone)]
pub struct LatencyHist {
    counts: Vec<f64>,
    total: f64,
}

const SUB_BITS: u32 = 4;
const LOW_EXP: i64 = -30;
const OCTAVES: i64 = 40;

impl Default for LatencyHist {
    fn default() -> Self {
        LatencyHist {
            counts: vec![0.0; usize::try_from(OCTAVES << SUB_BITS).expect("small")],
            total: 0.0,
        }
    }
}

/// The bucket of a positive finite `x`.
fn bucket(x: f64) -> i64 {
    let bits = x.to_bits();
    let exp = i64::try_from((bits >> 52) & 0x7ff).expect("11 bits") - 1023;
    let sub = i64::try_from((bits >> (52 - SUB_BITS)) & ((1 << SUB_BITS) - 1)).expect("4 bits");
    ((exp - LOW_EXP) << SUB_BITS) + sub
}

/// The upper edge of bucket `i`, seconds.
fn upper_edge(i: usize) -> f64 {
    let i = i64::try_from(i).unwrap_or(i64::MAX);
    let exp = (i >> SUB_BITS) + LOW_EXP;
    let sub = i & ((1 << SUB_BITS) - 1);
    #[allow(clippy::cast_precision_loss)]
    let mantissa = 1.0 + (sub + 1) as f64 / f64::from(1u32 << SUB_BITS);
    mantissa * 2f64.powi(i32::try_from(exp).unwrap_or(0))
}

impl LatencyHist {
    /// Adds `weight` packets that waited `delay_s`.
    pub fn add(&mut self, delay_s: f64, weight: f64) {
        if weight <= 0.0 || !delay_s.is_finite() || delay_s <= 0.0 {
            return;
        }
        let last = self.counts.len() - 1;
        let i = usize::try_from(bucket(delay_s).max(0)).map_or(last, |i| i.min(last));
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
                return upper_edge(i);
            }
        }
        upper_edge(self.counts.len() - 1)
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

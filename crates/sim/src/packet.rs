//! The packet model of one poll-mode vCPU: how many packets a core at a
//! given frequency serves, what waits in its RX ring, what is dropped, and
//! how long packets wait.
//!
//! ## Behavior
//! - **Service rate.** A packet costs `cycles_per_packet` cycles, which
//!   scale with the core's frequency, plus `memory_ns_per_packet` of time
//!   that does not (memory stalls): `μ(f) = 1 / (c / f + m)` packets/s.
//! - **RX ring.** `ring_descriptors` descriptors; the core reads them in
//!   bursts of up to `burst` (DPDK's `rte_eth_rx_burst`). Arrivals beyond
//!   what the core serves wait in the ring; what does not fit is dropped
//!   (the NIC's `rx_missed`).
//! - **Transition latency.** A frequency change requested at `t` takes
//!   effect at `t + transition_latency`; the old frequency holds meanwhile.
//!   A second request before the first took effect replaces it (modern
//!   cores accept a new request during a transition).
//! - **Time.** The model advances in steps of the trace's resolution (at
//!   least 10 ms) as a fluid: arrivals spread evenly over a step. A ring of
//!   1,024 descriptors holds well under a millisecond of packets at the
//!   rates in question, so a step either serves everything (the ring stays
//!   near empty) or overflows.
//!
//! ## Latency
//! Each step's packets get one delay, weighted by their number: the time
//! to drain the ring ahead of them (mean occupancy / μ), their own service
//! time (1 / μ), the wait of randomly arriving packets behind each other
//! (M/D/1: ρ / (2μ(1 − ρ)), capped at a full ring's drain time), and the
//! wait for the rest of their burst. Percentiles are over these per-step
//! delays.
//!
//! ## Limitations
//! No within-step burstiness beyond the M/D/1 term, no TX side, no cache
//! effects of frequency, no interrupt or idle path (a poll-mode core never
//! sleeps). The RX counter a controller reads counts every offered packet
//! (as a VF's or tap's counter does, before the guest's ring).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The parameters of the packet model (defaults and their sources in
/// `docs/energy.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PacketParams {
    /// Cycles of work per packet that scale with frequency.
    pub cycles_per_packet: f64,
    /// Nanoseconds per packet that do not scale (memory-bound part).
    pub memory_ns_per_packet: f64,
    /// RX ring size in descriptors.
    pub ring_descriptors: u32,
    /// Packets read per `rx_burst` at most.
    pub burst: u32,
    /// Time from a frequency request to the new frequency.
    #[serde(with = "micros")]
    pub transition_latency: Duration,
}

impl Default for PacketParams {
    fn default() -> Self {
        PacketParams {
            cycles_per_packet: 200.0,
            memory_ns_per_packet: 20.0,
            ring_descriptors: 1024,
            burst: 32,
            transition_latency: Duration::from_micros(50),
        }
    }
}

mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

impl PacketParams {
    /// Packets per second a core at `khz` serves flat out.
    pub fn service_pps(&self, khz: u32) -> f64 {
        let hz = f64::from(khz) * 1e3;
        1.0 / (self.cycles_per_packet / hz + self.memory_ns_per_packet * 1e-9)
    }
}

/// What one step of one vCPU produced.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepOutcome {
    /// Packets accepted into the ring (served now or later).
    pub accepted: f64,
    /// Packets dropped because the ring was full.
    pub dropped: f64,
    /// The delay of this step's packets, in seconds.
    pub delay_s: f64,
    /// Whether the offered rate exceeded what the core could serve.
    pub under_provisioned: bool,
}

/// The packets a core serves in a step of `dt` that runs at `before_pps`
/// for `switch_at` and at `after_pps` for the rest.
pub fn step_capacity(before_pps: f64, after_pps: f64, switch_at: Duration, dt: Duration) -> f64 {
    let head = switch_at.min(dt).as_secs_f64();
    let tail = dt.as_secs_f64() - head;
    before_pps * head + after_pps * tail
}

/// One vCPU's RX ring as a fluid queue.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RxRing {
    /// Packets waiting at the start of the next step.
    pub queued: f64,
}

impl RxRing {
    /// Advances one step of `dt`: `offered` packets arrive evenly and the
    /// core can serve `capacity` packets, ending at `end_pps`.
    pub fn step(
        &mut self,
        p: &PacketParams,
        offered: f64,
        capacity: f64,
        end_pps: f64,
        dt: Duration,
    ) -> StepOutcome {
        let ring = f64::from(p.ring_descriptors);
        let start = self.queued;
        let backlog = start + offered - capacity;
        let dropped = (backlog - ring).max(0.0);
        let end = backlog.clamp(0.0, ring);
        self.queued = end;
        let secs = dt.as_secs_f64();
        let mu = if secs > 0.0 {
            (capacity / secs).max(f64::MIN_POSITIVE)
        } else {
            end_pps.max(f64::MIN_POSITIVE)
        };
        let rho = if secs > 0.0 { offered / secs / mu } else { 0.0 };
        let drain_full = ring / mu;
        let random_wait = if rho < 1.0 {
            (rho / (2.0 * mu * (1.0 - rho))).min(drain_full)
        } else {
            drain_full
        };
        let burst_fill = (rho * f64::from(p.burst)).clamp(1.0, f64::from(p.burst));
        let burst_wait = (burst_fill - 1.0) / (2.0 * mu);
        let ring_wait = (start + end) / 2.0 / mu;
        StepOutcome {
            accepted: offered - dropped,
            dropped,
            delay_s: ring_wait + 1.0 / mu + random_wait + burst_wait,
            under_provisioned: offered > capacity + 1e-9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_millis(10);

    #[test]
    fn service_rate_scales_only_in_its_cycles() {
        let p = PacketParams {
            cycles_per_packet: 100.0,
            memory_ns_per_packet: 0.0,
            ..PacketParams::default()
        };
        assert!((p.service_pps(1_000_000) - 10e6).abs() < 1.0);
        assert!((p.service_pps(2_000_000) - 20e6).abs() < 1.0);
        let mem = PacketParams {
            memory_ns_per_packet: 50.0,
            ..p
        };
        // 100 ns + 50 ns at 1 GHz; 50 + 50 at 2 GHz: not twice as fast.
        let ratio = mem.service_pps(2_000_000) / mem.service_pps(1_000_000);
        assert!((ratio - 1.5).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn ring_absorbs_then_drops() {
        let p = PacketParams::default();
        let mut ring = RxRing::default();
        // 600 more than served: fits in 1024.
        let o = ring.step(&p, 10_600.0, 10_000.0, 1e6, STEP);
        assert_eq!(o.dropped, 0.0);
        assert_eq!(ring.queued, 600.0);
        assert!(o.under_provisioned);
        // 600 + 1000 more: 1024 kept, 576 dropped.
        let o = ring.step(&p, 11_000.0, 10_000.0, 1e6, STEP);
        assert!((o.dropped - 576.0).abs() < 1e-9);
        assert_eq!(ring.queued, 1024.0);
        // Spare capacity drains it.
        let o = ring.step(&p, 5_000.0, 10_000.0, 1e6, STEP);
        assert_eq!(o.dropped, 0.0);
        assert_eq!(ring.queued, 0.0);
        assert!(!o.under_provisioned);
    }

    #[test]
    fn delay_grows_with_load() {
        let p = PacketParams::default();
        let low = RxRing::default().step(&p, 1_000.0, 100_000.0, 1e7, STEP);
        let high = RxRing::default().step(&p, 95_000.0, 100_000.0, 1e7, STEP);
        assert!(high.delay_s > low.delay_s);
        // Service time alone at 10 Mpps is 100 ns.
        assert!(low.delay_s >= 1e-7);
    }

    #[test]
    fn transition_holds_the_old_rate() {
        let c = step_capacity(1e6, 2e6, Duration::from_millis(5), STEP);
        assert!((c - (5_000.0 + 10_000.0)).abs() < 1e-6);
        assert!((step_capacity(1e6, 2e6, Duration::ZERO, STEP) - 20_000.0).abs() < 1e-6);
        assert!((step_capacity(1e6, 2e6, Duration::from_secs(1), STEP) - 10_000.0).abs() < 1e-6);
    }
}

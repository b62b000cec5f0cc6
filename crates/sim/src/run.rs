//! The simulation loop: one pass over the trace, every controller in
//! lockstep on the same offered rates.
//!
//! ## Each step, for each controller and VM
//! 1. The controller sees the time and the RX counters as they stand at
//!    the step's start, and says which index it wants.
//! 2. A new wish becomes a pending transition that lands after the
//!    transition latency (a wish back to the index in force cancels it).
//! 3. The step's capacity and energy follow the index in force, switching
//!    where a pending transition lands inside the step.
//! 4. The ring takes the step's arrivals; drops, delay and
//!    under-provisioning are tallied; the counters advance; each vCPU's
//!    busyness (packets served over what it could serve in the step) is
//!    what the controllers see next.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::controller::{Controller, Observation, Setup};
use crate::host::SimHost;
use crate::metrics::{ControllerResult, Tally};
use crate::packet::{RxRing, step_capacity};
use crate::trace::{RateSource, Trace};

/// Options of a run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// The wall clock at step 0 (TIME policies).
    pub start_wall: jiff::Timestamp,
    /// The VM whose rate and frequencies are kept for plots.
    pub plot_vm: usize,
    /// At most this many points per plotted series.
    pub max_points: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            start_wall: jiff::Timestamp::UNIX_EPOCH,
            plot_vm: 0,
            max_points: 2000,
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// VMs simulated.
    pub vms: usize,
    /// vCPUs per VM.
    pub vcpus: usize,
    /// Steps simulated.
    pub steps: usize,
    /// The step, ms.
    pub step_ms: u64,
    /// Simulated seconds.
    pub duration_s: f64,
    /// The CPU model's name.
    pub cpu_model: String,
    /// Per controller.
    pub results: Vec<ControllerResult>,
    /// (seconds, packets/s) offered to the plotted VM, downsampled.
    #[serde(skip)]
    pub rate_series: Vec<(f64, f64)>,
    /// Wall-clock seconds the run took (not in the JSON, which is then a
    /// function of the trace and settings only).
    #[serde(skip)]
    pub elapsed_s: f64,
}

struct Lane {
    wanted: Vec<usize>,
    current: Vec<usize>,
    pending: Vec<Option<(usize, f64)>>,
    rings: Vec<RxRing>,
    queued: Vec<f64>,
    busy: Vec<f64>,
    /// Each VM's drop counter, whole packets (what controllers see).
    dropped: Vec<u64>,
    /// Each VM's drops, exactly.
    drop_sum: Vec<f64>,
    tally: Tally,
    bucket: (f64, usize),
}

/// Runs `controllers` over `source` on `host`. `future` is the same trace
/// in memory, for offline controllers (the oracle); `None` when streamed.
pub fn simulate(
    host: &SimHost,
    source: &mut dyn RateSource,
    future: Option<&Trace>,
    controllers: &mut [Box<dyn Controller>],
    opts: RunOptions,
) -> anyhow::Result<RunReport> {
    let began = Instant::now();
    let n = source.vms().len();
    anyhow::ensure!(
        n == host.vms.len(),
        "the trace has {n} VMs, the host {}",
        host.vms.len()
    );
    let steps = source.steps();
    let step = source.step();
    let dt = step.as_secs_f64();
    let setup = Setup {
        host,
        step,
        steps,
        start_wall: opts.start_wall,
        future,
    };
    for c in controllers.iter_mut() {
        c.start(&setup)?;
    }
    let mut lanes: Vec<Lane> = controllers
        .iter()
        .map(|_| Lane {
            wanted: vec![0; n],
            current: vec![0; n],
            pending: vec![None; n],
            rings: vec![RxRing::default(); n],
            queued: vec![0.0; n],
            busy: vec![0.0; n],
            dropped: vec![0; n],
            drop_sum: vec![0.0; n],
            tally: Tally::default(),
            bucket: (0.0, 0),
        })
        .collect();
    let every = steps.div_ceil(opts.max_points.max(1)).max(1);
    let mut rate_series = Vec::new();
    let mut rate_bucket = 0.0;
    let lat = host.params.transition_latency.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let vcpus = host.vcpus as f64;
    let uncore_w = host.model.uncore_share_w();
    let power: Vec<f64> = (0..host.levels()).map(|i| host.model.core_w(i)).collect();
    let khz = host.model.khz();
    let mut rates = vec![0.0; n];
    let mut counted = vec![0.0f64; n];
    let mut counters = vec![0u64; n];
    let plot_vm = opts.plot_vm.min(n - 1);
    for k in 0..steps {
        source.fill(k, &mut rates);
        #[allow(clippy::cast_precision_loss)]
        let t = k as f64 * dt;
        let now = step * u32::try_from(k).unwrap_or(u32::MAX);
        let wall = opts
            .start_wall
            .checked_add(jiff::SignedDuration::try_from(now).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(jiff::Timestamp::MAX);
        for (lane, c) in lanes.iter_mut().zip(controllers.iter_mut()) {
            let obs = Observation {
                step: k,
                now,
                wall,
                counters: &counters,
                queued: &lane.queued,
                busy: &lane.busy,
                dropped: &lane.dropped,
            };
            c.decide(&obs, &mut lane.wanted);
            for (vm, rate) in rates.iter().enumerate() {
                let want = lane.wanted[vm].min(power.len() - 1);
                let cur = lane.current[vm];
                match lane.pending[vm] {
                    Some((p, _)) if p == want => {}
                    _ if want == cur => lane.pending[vm] = None,
                    _ => lane.pending[vm] = Some((want, t + lat)),
                }
                let (capacity, energy, end) = match lane.pending[vm] {
                    Some((new, at)) if at < t + dt => {
                        let switch = Duration::from_secs_f64((at - t).max(0.0));
                        let head = switch.as_secs_f64().min(dt);
                        lane.pending[vm] = None;
                        lane.current[vm] = new;
                        lane.tally.transitions += 1;
                        (
                            step_capacity(
                                host.service_pps[cur],
                                host.service_pps[new],
                                switch,
                                step,
                            ),
                            power[cur] * head + power[new] * (dt - head),
                            new,
                        )
                    }
                    _ => (host.service_pps[cur] * dt, power[cur] * dt, cur),
                };
                let offered = host.per_vcpu(*rate) * dt;
                let before = lane.rings[vm].queued;
                let o = lane.rings[vm].step(
                    &host.params,
                    offered,
                    capacity,
                    host.service_pps[end],
                    step,
                );
                lane.queued[vm] = lane.rings[vm].queued;
                // Served over what could have been: the poll loop's busy
                // share of the step at the frequencies in force.
                let served = (before + offered - o.dropped - lane.queued[vm]).max(0.0);
                lane.busy[vm] = if capacity > 0.0 {
                    (served / capacity).min(1.0)
                } else {
                    1.0
                };
                let tally = &mut lane.tally;
                tally.core_j += energy * vcpus;
                tally.uncore_j += uncore_w * dt * vcpus;
                tally.offered += offered * vcpus;
                tally.dropped += o.dropped * vcpus;
                lane.drop_sum[vm] += o.dropped * vcpus;
                // Whole packets, as a kernel counter (far below 2^53).
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                {
                    lane.dropped[vm] = lane.drop_sum[vm] as u64;
                }
                tally.latency.add(o.delay_s, o.accepted * vcpus);
                if o.under_provisioned {
                    tally.under_s += dt;
                }
                if vm == plot_vm {
                    lane.bucket.0 += f64::from(khz[end]) / 1e3;
                    lane.bucket.1 += 1;
                    if lane.bucket.1 == every || k + 1 == steps {
                        #[allow(clippy::cast_precision_loss)]
                        let mean = lane.bucket.0 / lane.bucket.1 as f64;
                        tally.series.push((t, mean));
                        lane.bucket = (0.0, 0);
                    }
                }
            }
        }
        rate_bucket += rates[plot_vm];
        if (k + 1) % every == 0 || k + 1 == steps {
            #[allow(clippy::cast_precision_loss)]
            let count = ((k % every) + 1) as f64;
            rate_series.push((t, rate_bucket / count));
            rate_bucket = 0.0;
        }
        for vm in 0..n {
            counted[vm] += rates[vm] * dt;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                counters[vm] = counted[vm] as u64;
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let duration_s = steps as f64 * dt;
    #[allow(clippy::cast_precision_loss)]
    let static_max_j = (power[0] + uncore_w) * vcpus * n as f64 * duration_s;
    let mut results: Vec<ControllerResult> = lanes
        .into_iter()
        .zip(controllers.iter())
        .map(|(lane, c)| lane.tally.finish(c.name(), static_max_j))
        .collect();
    if let Some(oracle) = results
        .iter()
        .find(|r| r.controller == "oracle")
        .map(|r| r.energy_j)
    {
        for r in &mut results {
            r.energy_ratio_to_oracle = (oracle > 0.0).then(|| r.energy_j / oracle);
        }
    }
    Ok(RunReport {
        vms: n,
        vcpus: host.vcpus,
        steps,
        step_ms: u64::try_from(step.as_millis()).unwrap_or(u64::MAX),
        duration_s,
        cpu_model: host.model.name.clone(),
        results,
        rate_series,
        elapsed_s: began.elapsed().as_secs_f64(),
    })
}

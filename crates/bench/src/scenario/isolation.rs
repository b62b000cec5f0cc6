//! Benchmark 4, flood isolation: guest B (vm0) does paced latency round
//! trips, first alone, then while guest A (vm1) floods its own channel as
//! in the throughput benchmark. Reported per rate-limit setting: the
//! default limit is the daemon's defence against A; with the limit off,
//! the daemon processes all of A's flood.
//!
//! B is paced (one request per `interval`) to stay within the default
//! limit of 1000/s itself, and alternates SCALE_MIN/SCALE_MAX so each of
//! its requests writes sysfs.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::Context;
use vmpower_proto::{ScalingUnit, Verdict};

use super::{Ctx, launch};
use crate::guest::{Flood, RECORD, power_record, round_trip};
use crate::host::{HostSpec, RateLimitSetting, vm_name};
use crate::probe::{CpuSample, DaemonStats};
use crate::report::{Percentiles, Report, Target};

/// Sizes of the isolation benchmark.
#[derive(Debug, Clone)]
pub struct IsolationArgs {
    /// Timed round trips of B per phase.
    pub requests: usize,
    /// B's untimed round trips first.
    pub warmup: usize,
    /// B's pace.
    pub interval: Duration,
    /// Records per write of A's flood.
    pub batch: usize,
    /// The rate-limit settings to run.
    pub limits: Vec<RateLimitSetting>,
}

/// Runs it.
pub fn run(ctx: &Ctx, args: &IsolationArgs) -> anyhow::Result<Report> {
    let mut r = Report::default();
    r.note(format!(
        "isolation: B = vm0 ({} round trips per phase, one per {:?}, after {} warm-up), A = vm1 flooding SCALE_MIN in writes of {} records",
        args.requests, args.interval, args.warmup, args.batch
    ));
    for &limit in &args.limits {
        phase_pair(ctx, args, limit, &mut r)?;
    }
    Ok(r)
}

fn phase_pair(
    ctx: &Ctx,
    args: &IsolationArgs,
    limit: RateLimitSetting,
    r: &mut Report,
) -> anyhow::Result<()> {
    let tag = match limit {
        RateLimitSetting::Default => "default limit",
        RateLimitSetting::Off => "limit off",
    };
    let spec = HostSpec {
        cpus: ctx.cpus,
        vms: 2,
        rate_limit: limit,
        vcpus: 1,
        queries: false,
    };
    let running = launch(ctx, "isolation", &spec, 1, Duration::from_secs(30))?;
    let mut streams = running.streams.into_iter();
    let mut b = streams.next().context("no channel for B")?;
    let a = streams.next().context("no channel for A")?;
    let vm = vm_name(0);
    let records = [
        power_record(&vm, 0, ScalingUnit::ScaleMin)?,
        power_record(&vm, 0, ScalingUnit::ScaleMax)?,
    ];
    paced(&mut b, &records, args.warmup, args.interval)?;
    let pid = running.daemon.pid();
    let (c0, t0) = (CpuSample::read(pid)?, Instant::now());
    let (mut alone, nacks_alone) = paced(&mut b, &records, args.requests, args.interval)?;
    let cpu_alone = cpu_percent(c0, CpuSample::read(pid)?, t0.elapsed());
    let a_record = power_record(&vm_name(1), 0, ScalingUnit::ScaleMin)?;
    let flood = Flood::start(vec![(a, a_record)], args.batch)?;
    std::thread::sleep(Duration::from_millis(500));
    let s0 = DaemonStats::fetch(&running.host.control)?;
    let (c0, t0) = (CpuSample::read(pid)?, Instant::now());
    let (mut loaded, nacks_loaded) = paced(&mut b, &records, args.requests, args.interval)?;
    let cpu_loaded = cpu_percent(c0, CpuSample::read(pid)?, t0.elapsed());
    let secs = t0.elapsed().as_secs_f64();
    let s1 = DaemonStats::fetch(&running.host.control)?;
    flood.stop()?;
    let status = running.daemon.stop()?;

    let p_alone = Percentiles::of(&mut alone).context("no samples")?;
    let p_loaded = Percentiles::of(&mut loaded).context("no samples")?;
    r.note(format!(
        "[{tag}] {}; daemon exit: {status}",
        limit.describe()
    ));
    r.add(format!("[{tag}] B p50 alone"), p_alone.p50, "us");
    r.add(format!("[{tag}] B p99 alone"), p_alone.p99, "us");
    r.add(format!("[{tag}] B p50 under flood"), p_loaded.p50, "us");
    r.add(format!("[{tag}] B p99 under flood"), p_loaded.p99, "us");
    r.add(format!("[{tag}] B max under flood"), p_loaded.max, "us");
    r.add_target(
        format!("[{tag}] B p99 ratio flood/alone"),
        p_loaded.p99 / p_alone.p99,
        "x",
        Target::AtMost(2.0),
    );
    r.add(
        format!("[{tag}] B NACKs alone + under flood"),
        (nacks_alone + nacks_loaded) as f64,
        "",
    );
    r.add(
        format!("[{tag}] daemon requests handled per s under flood (all)"),
        (s1.requests - s0.requests) as f64 / secs,
        "/s",
    );
    r.add(
        format!("[{tag}] of which NACKed per s"),
        (s1.nacks - s0.nacks) as f64 / secs,
        "/s",
    );
    r.add(
        format!("[{tag}] daemon CPU, B alone (paced)"),
        cpu_alone,
        "%",
    );
    r.add(format!("[{tag}] daemon CPU under flood"), cpu_loaded, "%");
    Ok(())
}

/// The daemon's CPU use between two samples `window` apart, in % of a
/// core (schedstat, summed over threads).
fn cpu_percent(before: CpuSample, after: CpuSample, window: Duration) -> f64 {
    after.run_ns.saturating_sub(before.run_ns) as f64 / window.as_nanos() as f64 * 100.0
}

/// `n` round trips, one per `interval`; the samples and the NACK count.
fn paced(
    stream: &mut UnixStream,
    records: &[Vec<u8>; 2],
    n: usize,
    interval: Duration,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let mut reply = [0u8; RECORD];
    let mut samples = Vec::with_capacity(n);
    let mut nacks = 0;
    let mut next = Instant::now();
    for i in 0..n {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        let t = Instant::now();
        let verdict = round_trip(stream, &records[i % 2], &mut reply)?;
        samples.push(t.elapsed());
        nacks += u64::from(verdict != Verdict::Ack);
    }
    Ok((samples, nacks))
}

//! Issue 15: the busyness controller's reaction and cost.
//!
//! - **Reaction**: one VM on the native contract v2; its guest reports a
//!   low busyness until its pCPU comes down, then a saturated one, and the
//!   bench times the report's write to the pCPU's `scaling_setspeed`
//!   reading max. A busyness step in the guest waits at most one report
//!   interval for the next report, so the step reaches sysfs within one
//!   interval plus this time (target: + 2 ms).
//! - **Cost**: many VMs, each reporting every `interval` (staggered over
//!   it), in the band (no frequency change: the cost of the reports
//!   themselves); the daemon's CPU time over a window, as % of one core
//!   (target ≤ 2 %).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use vmpower_proto::contract::NATIVE_VERSION;
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{BusyEntry, BusynessReport, Layout, Request, RequestBody, VmName};

use super::{Ctx, launch};
use crate::guest::RECORD;
use crate::host::{HostSpec, RateLimitSetting};
use crate::probe::{CpuSample, ticks_per_second};
use crate::report::{Report, Target};

/// A record of `body` with no name, current layout.
fn record(body: RequestBody) -> anyhow::Result<Vec<u8>> {
    let req = Request {
        vm_name: VmName::default(),
        body,
    };
    Ok(encode_request_record(&req, Layout::Current)?
        .as_slice()
        .to_vec())
}

/// A report of vCPU 0 at `permille`.
fn report(seq: u64, permille: u16, interval: Duration) -> anyhow::Result<Vec<u8>> {
    let ms = u32::try_from(interval.as_millis()).unwrap_or(u32::MAX);
    let r = BusynessReport::new(seq, &[BusyEntry { vcpu: 0, permille }], ms, None)?;
    record(RequestBody::Busyness(r))
}

/// HELLO for the native contract v2 on `stream`, and its answer.
fn hello(stream: &mut UnixStream) -> anyhow::Result<()> {
    let hello = record(RequestBody::Hello {
        version: NATIVE_VERSION,
    })?;
    stream.write_all(&hello).context("write HELLO")?;
    let mut reply = [0u8; RECORD];
    stream
        .read_exact(&mut reply)
        .context("read HELLO's answer")?;
    let granted = u32::from_le_bytes([reply[8], reply[9], reply[10], reply[11]]);
    if granted < 2 {
        bail!("the daemon granted native v{granted}, reports need v2");
    }
    Ok(())
}

/// Sizes of the reaction benchmark.
#[derive(Debug, Clone, Copy)]
pub struct ReactionArgs {
    /// Steps timed.
    pub steps: usize,
    /// The guest's report interval.
    pub interval: Duration,
}

/// Runs the reaction benchmark.
pub fn reaction(ctx: &Ctx, args: ReactionArgs) -> anyhow::Result<Report> {
    let spec = HostSpec {
        cpus: ctx.cpus,
        vms: 1,
        rate_limit: RateLimitSetting::Default,
        vcpus: 1,
        queries: false,
    };
    let mut running = launch(ctx, "busyness-reaction", &spec, 1, Duration::from_secs(60))?;
    let cpu = spec.pcpu(0, 0);
    let mut stream = running.streams.remove(0);
    hello(&mut stream)?;
    let host = &running.host;
    let setspeed = || host.cpu_file(cpu, "scaling_setspeed").unwrap_or_default();
    let mut seq = 0u64;
    let mut send = |stream: &mut UnixStream, permille: u16| -> anyhow::Result<Instant> {
        seq += 1;
        let rec = report(seq, permille, args.interval)?;
        let t0 = Instant::now();
        stream.write_all(&rec).context("write a report")?;
        Ok(t0)
    };
    let wait_until = |what: &str, cond: &dyn Fn(&str) -> bool| -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if cond(&setspeed()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what} never happened (setspeed {})", setspeed());
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    };
    // A saturated report takes the pCPU over at max: learn what max reads.
    send(&mut stream, 1000)?;
    wait_until("the first report's takeover", &|s| s.parse::<u64>().is_ok())?;
    let max_khz = setspeed();
    let mut times = Vec::with_capacity(args.steps);
    for _ in 0..args.steps {
        // Low reports, one per interval, until the pCPU comes down (the
        // cooldown passes).
        let deadline = Instant::now() + Duration::from_secs(10);
        while setspeed() == max_khz {
            send(&mut stream, 100)?;
            std::thread::sleep(args.interval);
            if Instant::now() > deadline {
                bail!("the pCPU never came down");
            }
        }
        let t0 = send(&mut stream, 1000)?;
        wait_until("a saturated report reaching sysfs", &|s| s == max_khz)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    drop(stream);
    let status = running.daemon.stop()?;
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).copied().unwrap_or(f64::NAN)
    };
    let worst = times.last().copied().unwrap_or(f64::NAN);
    let mut r = Report::default();
    r.note(format!(
        "busyness reaction: 1 VM on native v2, report interval {} ms; a saturated report after a low one, timed from its write to scaling_setspeed reading max ({} steps; polled every 20 µs)",
        args.interval.as_millis(),
        times.len()
    ));
    r.add("report to sysfs, p50", pick(0.5), "ms");
    r.add("report to sysfs, p99", pick(0.99), "ms");
    r.add_target("report to sysfs, max", worst, "ms", Target::AtMost(2.0));
    #[allow(clippy::cast_precision_loss)]
    let interval_ms = args.interval.as_secs_f64() * 1e3;
    r.add_target(
        "busyness step to sysfs, worst case (interval + max)",
        interval_ms + worst,
        "ms",
        Target::AtMost(interval_ms + 2.0),
    );
    r.note(format!("daemon exit: {status}"));
    Ok(r)
}

/// Sizes of the cost benchmark.
#[derive(Debug, Clone, Copy)]
pub struct CostArgs {
    /// VMs, each reporting.
    pub vms: usize,
    /// Each VM's report interval.
    pub interval: Duration,
    /// Measured window.
    pub seconds: f64,
}

/// Runs the cost benchmark.
pub fn cost(ctx: &Ctx, args: CostArgs) -> anyhow::Result<Report> {
    let spec = HostSpec {
        cpus: ctx.cpus,
        vms: args.vms,
        rate_limit: RateLimitSetting::Default,
        vcpus: 1,
        queries: false,
    };
    let mut running = launch(ctx, "busyness-cost", &spec, 1, Duration::from_secs(120))?;
    for s in &mut running.streams {
        hello(s)?;
    }
    // Every VM once per interval, staggered in 10 slices.
    const SLICES: usize = 10;
    let slice = args.interval / u32::try_from(SLICES)?;
    let mut seq = 0u64;
    let mut send_round = |streams: &mut [UnixStream], part: usize| -> anyhow::Result<()> {
        seq += 1;
        let rec = report(seq, 800, args.interval)?;
        for s in streams.iter_mut().skip(part).step_by(SLICES) {
            s.write_all(&rec).context("write a report")?;
        }
        Ok(())
    };
    // Warm up one interval (every VM's first report takes its pCPU).
    let mut next = Instant::now();
    for part in 0..SLICES {
        send_round(&mut running.streams, part)?;
        next += slice;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let pid = running.daemon.pid();
    let start = Instant::now();
    let s0 = CpuSample::read(pid)?;
    let mut part = 0;
    while start.elapsed().as_secs_f64() < args.seconds {
        send_round(&mut running.streams, part)?;
        part = (part + 1) % SLICES;
        next += slice;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let s1 = CpuSample::read(pid)?;
    let window = start.elapsed().as_secs_f64();
    let status = running.daemon.stop()?;
    let tck = ticks_per_second();
    #[allow(clippy::cast_precision_loss)]
    let cpu_s = (s1.ticks - s0.ticks) as f64 / tck as f64;
    let mut r = Report::default();
    #[allow(clippy::cast_precision_loss)]
    let rate = args.vms as f64 / args.interval.as_secs_f64();
    r.note(format!(
        "busyness cost: {} VMs on native v2, each reporting every {} ms (staggered, in the band: no frequency change), {rate:.0} reports/s; window {window:.1} s; CPU from /proc/PID/stat at {tck} ticks/s",
        args.vms,
        args.interval.as_millis(),
    ));
    r.add_target(
        "daemon CPU, % of one core",
        cpu_s / window * 100.0,
        "%",
        Target::AtMost(2.0),
    );
    if s1.run_ns > 0 {
        #[allow(clippy::cast_precision_loss)]
        let run_s = (s1.run_ns - s0.run_ns) as f64 / 1e9;
        r.add(
            "daemon CPU, % of one core (schedstat)",
            run_s / window * 100.0,
            "%",
        );
        r.add(
            "daemon CPU per report (schedstat)",
            run_s / (rate * window) * 1e6,
            "µs",
        );
    }
    r.add(
        "daemon wakeups (voluntary ctxt switches) per s",
        (s1.voluntary - s0.voluntary) as f64 / window,
        "/s",
    );
    r.note(format!("daemon exit: {status}"));
    Ok(r)
}

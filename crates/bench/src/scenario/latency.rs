//! Benchmark 2, request latency: one guest, one channel, CPU_POWER
//! alternating SCALE_MIN and SCALE_MAX so that every request writes sysfs;
//! each round trip is guest write → daemon decides and writes the pCPU's
//! file → ACK read by the guest. The rate limit is off (back-to-back
//! requests would exceed the default 1000/s).
//!
//! In the same run, the same round trips against two plain echo
//! processes give the floor of this machine at this moment: one on a tokio
//! runtime like the daemon's (`plain-reader --echo`: socket + runtime
//! wakeup), one with a plain thread blocked in `read(2)` (`--echo
//! --blocking`: socket + thread wakeup, the least any daemon can do).
//!
//! Outside the timing, the harness checks that the two units write
//! different values and that the file holds the last request's value.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use vmpower_proto::layout::decode_verdict;
use vmpower_proto::{Layout, ScalingUnit, Verdict};

use super::{Ctx, launch};
use crate::guest::{GuestWait, Qemu, RECORD, accept_all, exchange, power_record, round_trip};
use crate::host::{HostSpec, RateLimitSetting, Workdir, vm_name};
use crate::plain::PlainReader;
use crate::probe::DaemonStats;
use crate::report::{Percentiles, Report, Target};

/// Sizes of the latency benchmark.
#[derive(Debug, Clone, Copy)]
pub struct LatencyArgs {
    /// Timed round trips.
    pub requests: usize,
    /// Untimed round trips first.
    pub warmup: usize,
    /// How the guest waits for each reply (the echo baselines' guest too).
    pub wait: GuestWait,
}

/// The file the acpi-cpufreq backend writes under the userspace governor.
const SETSPEED: &str = "scaling_setspeed";

/// Runs it.
pub fn run(ctx: &Ctx, args: LatencyArgs) -> anyhow::Result<Report> {
    let spec = HostSpec {
        cpus: ctx.cpus,
        vms: 1,
        rate_limit: RateLimitSetting::Off,
        vcpus: 1,
        queries: false,
    };
    let mut running = launch(ctx, "latency", &spec, 1, Duration::from_secs(30))?;
    let vm = vm_name(0);
    let pcpu = 0; // vm0's vCPU 0 (see HostSpec).
    let min = power_record(&vm, 0, ScalingUnit::ScaleMin)?;
    let max = power_record(&vm, 0, ScalingUnit::ScaleMax)?;
    let records = [&min, &max];
    let stream = running.streams.first_mut().context("no channel")?;
    let mut reply = [0u8; RECORD];

    // Which value each unit leaves in the file.
    let mut value_after = [String::new(), String::new()];
    for (i, rec) in records.iter().enumerate() {
        ensure!(
            round_trip(stream, rec, &mut reply)? == Verdict::Ack,
            "no ACK"
        );
        value_after[i] = running.host.cpu_file(pcpu, SETSPEED)?;
    }
    ensure!(
        value_after[0] != value_after[1],
        "SCALE_MIN and SCALE_MAX leave the same {SETSPEED} ({})",
        value_after[0]
    );
    for i in 0..args.warmup {
        exchange(stream, records[i % 2], &mut reply, args.wait)?;
        ensure!(
            decode_verdict(&reply, Layout::Current)?.verdict == Verdict::Ack,
            "no ACK"
        );
    }
    let before = DaemonStats::fetch(&running.host.control)?;
    let mut samples = Vec::with_capacity(args.requests);
    let mut nacks = 0u64;
    let start = Instant::now();
    for i in 0..args.requests {
        let t = Instant::now();
        exchange(stream, records[i % 2], &mut reply, args.wait)?;
        samples.push(t.elapsed());
        nacks += u64::from(decode_verdict(&reply, Layout::Current)?.verdict != Verdict::Ack);
    }
    let elapsed = start.elapsed();
    let after = DaemonStats::fetch(&running.host.control)?;
    let last = args.requests.saturating_sub(1) % 2;
    let file = running.host.cpu_file(pcpu, SETSPEED)?;
    if args.requests > 0 && file != value_after[last] {
        bail!(
            "{SETSPEED} of CPU {pcpu} holds {file}, not {} from the last request",
            value_after[last]
        );
    }
    let status = running.daemon.stop()?;
    drop(running.dir);
    let echo = echo_baseline(args.requests, args.warmup, &min, false, args.wait)?;
    let blocking = echo_baseline(args.requests, args.warmup, &min, true, args.wait)?;

    let p = Percentiles::of(&mut samples).context("no samples")?;
    let mut r = Report::default();
    r.note(format!(
        "latency: 1 VM x 1 channel, {} timed round trips after {} warm-up, SCALE_MIN/SCALE_MAX alternating on pCPU {pcpu}",
        args.requests, args.warmup
    ));
    r.note(RateLimitSetting::Off.describe());
    r.note(args.wait.describe());
    if let Some(setting) = ctx.daemon.describe() {
        r.note(setting);
    }
    r.note(format!(
        "checked: {SETSPEED} holds the last request's value ({file} kHz; min {} / max {})",
        value_after[0], value_after[1]
    ));
    r.add_target("p50", p.p50, "us", Target::AtMost(20.0));
    r.add("p90", p.p90, "us");
    r.add_target("p99", p.p99, "us", Target::AtMost(100.0));
    r.add("max", p.max, "us");
    r.add(
        "round trips per s",
        args.requests as f64 / elapsed.as_secs_f64(),
        "/s",
    );
    r.add("plain echo p50 (baseline)", echo.p50, "us");
    r.add("plain echo p99 (baseline)", echo.p99, "us");
    r.add("daemon p50 minus echo p50", p.p50 - echo.p50, "us");
    r.add("blocking echo p50 (floor)", blocking.p50, "us");
    r.add("blocking echo p99 (floor)", blocking.p99, "us");
    r.add(
        "daemon p50 / blocking echo p50",
        p.p50 / blocking.p50.max(f64::MIN_POSITIVE),
        "x",
    );
    r.add("NACKs", nacks as f64, "");
    r.add(
        "sysfs writes per request",
        after.sysfs_writes.saturating_sub(before.sysfs_writes) as f64 / args.requests.max(1) as f64,
        "",
    );
    r.note(format!("daemon exit: {status}"));
    Ok(r)
}

/// `requests` timed round trips (after `warmup` untimed ones) of `record`
/// against an echo baseline (tokio, or `blocking` plain threads), the
/// guest waiting as `wait` says.
pub fn echo_baseline(
    requests: usize,
    warmup: usize,
    record: &[u8],
    blocking: bool,
    wait: GuestWait,
) -> anyhow::Result<Percentiles> {
    let dir = Workdir::create("echo")?;
    let qemu = Qemu::bind(dir.path(), [format!("{}.0", vm_name(0))])?;
    let _echo = if blocking {
        PlainReader::spawn_blocking_echo(dir.path(), 1)?
    } else {
        PlainReader::spawn(dir.path(), 1, true)?
    };
    let mut stream = accept_all(qemu, Duration::from_secs(30))?
        .pop()
        .context("no echo channel")?;
    let mut reply = [0u8; RECORD];
    let mut samples = Vec::with_capacity(requests);
    for i in 0..warmup + requests {
        let t = Instant::now();
        exchange(&mut stream, record, &mut reply, wait).context("echo")?;
        if i >= warmup {
            samples.push(t.elapsed());
        }
    }
    ensure!(reply[..] == record[..], "the echo changed the record");
    Percentiles::of(&mut samples).context("no echo samples")
}

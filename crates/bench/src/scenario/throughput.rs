//! Benchmark 3, throughput: many guests flood the same request (SCALE_MIN
//! on vCPU 0: one sysfs write, then deduplicated) in big writes while the
//! bench drains their replies. The daemon's rate is its own request
//! counter (`stats.requests`, summed, via the control socket): replies may
//! be dropped by design when a guest's buffer is full, requests are not.
//!
//! In the same run, a plain reader (this binary's hidden `plain-reader`
//! mode, a separate process with a tokio runtime like the daemon's) is
//! flooded the same way: it connects to the same number of sockets and
//! only reads and discards. Its rate is the guests' written bytes / 464
//! (what sits unread in socket buffers is a few hundred KiB per channel,
//! negligible over the window).

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use vmpower_proto::ScalingUnit;

use super::{Ctx, launch};
use crate::guest::{Flood, Qemu, RECORD, accept_all, power_record};
use crate::host::{HostSpec, RateLimitSetting, Workdir, vm_name};
use crate::plain::PlainReader;
use crate::probe::DaemonStats;
use crate::report::{Report, Target};

/// Sizes of the throughput benchmark.
#[derive(Debug, Clone, Copy)]
pub struct ThroughputArgs {
    /// Flooding VMs, one channel each.
    pub vms: usize,
    /// Measured window (each of daemon and plain reader).
    pub seconds: f64,
    /// Records per write.
    pub batch: usize,
}

/// Unmeasured flooding before the window.
const WARMUP: Duration = Duration::from_secs(1);

/// Runs it.
pub fn run(ctx: &Ctx, args: ThroughputArgs) -> anyhow::Result<Report> {
    let window = Duration::from_secs_f64(args.seconds);
    let spec = HostSpec {
        cpus: ctx.cpus,
        vms: args.vms,
        rate_limit: RateLimitSetting::Off,
        vcpus: 1,
        queries: false,
    };
    // The daemon.
    let running = launch(ctx, "throughput", &spec, 1, Duration::from_secs(30))?;
    let control = running.host.control.clone();
    let flood = Flood::start(per_vm(running.streams)?, args.batch)?;
    std::thread::sleep(WARMUP);
    let (w0, tw0) = (flood.written(), Instant::now());
    let (s0, t0, took0) = DaemonStats::snapshot(&control)?;
    std::thread::sleep(window);
    let (w1, tw1) = (flood.written(), Instant::now());
    let (s1, t1, took1) = DaemonStats::snapshot(&control)?;
    flood.stop()?;
    let status = running.daemon.stop()?;
    drop(running.dir);
    let secs = (t1 - t0).as_secs_f64();
    let daemon_rate = (s1.requests - s0.requests) as f64 / secs;
    let daemon_written = (w1 - w0) as f64 / RECORD as f64 / (tw1 - tw0).as_secs_f64();

    // The plain reader, same flood.
    let plain_rate = plain_reader_rate(args, window)?;

    let mut r = Report::default();
    r.note(format!(
        "throughput: {} VMs x 1 channel flooding SCALE_MIN vCPU 0 in writes of {} records, window {secs:.1} s after {WARMUP:?} warm-up; guests on one bench thread",
        args.vms, args.batch
    ));
    r.note(RateLimitSetting::Off.describe());
    r.note("daemon rate = stats.requests delta (control socket); plain reader rate = guest bytes written / 464");
    r.note(format!(
        "control-socket status calls under flood took {took0:?} and {took1:?} (window timed from their midpoints)"
    ));
    r.add_target(
        "daemon requests processed per s",
        daemon_rate,
        "/s",
        Target::AtLeast(1_000_000.0),
    );
    r.add("daemon: guest records written per s", daemon_written, "/s");
    r.add("plain reader records per s", plain_rate, "/s");
    r.add("ratio daemon / plain reader", daemon_rate / plain_rate, "");
    r.add("NACKs in window", (s1.nacks - s0.nacks) as f64, "");
    r.add(
        "replies dropped in window",
        (s1.replies_dropped - s0.replies_dropped) as f64,
        "",
    );
    r.note(format!("daemon exit: {status}"));
    Ok(r)
}

/// Floods a plain reader process the same way; its records/s.
fn plain_reader_rate(args: ThroughputArgs, window: Duration) -> anyhow::Result<f64> {
    let dir = Workdir::create("plain")?;
    let names = (0..args.vms).map(|i| format!("{}.0", vm_name(i)));
    let qemu = Qemu::bind(dir.path(), names)?;
    let reader = PlainReader::spawn(dir.path(), args.vms, false)?;
    let streams = accept_all(qemu, Duration::from_secs(30))?;
    let flood = Flood::start(per_vm(streams)?, args.batch)?;
    std::thread::sleep(WARMUP);
    let (t0, w0) = (Instant::now(), flood.written());
    std::thread::sleep(window);
    let (t1, w1) = (Instant::now(), flood.written());
    flood.stop()?;
    drop(reader);
    Ok((w1 - w0) as f64 / RECORD as f64 / (t1 - t0).as_secs_f64())
}

/// Pairs the `i`-th stream with a SCALE_MIN record naming `vm<i>` (its
/// own VM: no name mismatch is counted).
pub fn per_vm(streams: Vec<UnixStream>) -> anyhow::Result<Vec<(UnixStream, Vec<u8>)>> {
    streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| Ok((s, power_record(&vm_name(i), 0, ScalingUnit::ScaleMin)?)))
        .collect()
}

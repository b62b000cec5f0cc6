//! Benchmark 1, idle cost: many connected, silent channels; the daemon's
//! CPU time and wakeups over a window, after every channel is connected
//! and a settling pause.

use std::time::{Duration, Instant};

use super::{Ctx, launch};
use crate::host::{HostSpec, RateLimitSetting};
use crate::probe::{CpuSample, DaemonStats, ticks_per_second};
use crate::report::{Report, Target};

/// Sizes of the idle benchmark.
#[derive(Debug, Clone, Copy)]
pub struct IdleArgs {
    /// VMs, one channel each.
    pub vms: usize,
    /// Measured window.
    pub seconds: f64,
    /// Pause between "all connected" and the window.
    pub settle: f64,
}

/// Runs it.
pub fn run(ctx: &Ctx, args: IdleArgs) -> anyhow::Result<Report> {
    let spec = HostSpec {
        cpus: ctx.cpus,
        vms: args.vms,
        rate_limit: RateLimitSetting::Default,
        vcpus: 1,
        queries: false,
    };
    let running = launch(ctx, "idle", &spec, 1, Duration::from_secs(120))?;
    let control = &running.host.control;
    let want = u64::try_from(args.vms)?;
    let before = DaemonStats::wait_connects(control, want, Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs_f64(args.settle));
    let pid = running.daemon.pid();
    let start = Instant::now();
    let s0 = CpuSample::read(pid)?;
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    let s1 = CpuSample::read(pid)?;
    let window = start.elapsed().as_secs_f64();
    let after = DaemonStats::fetch(control)?;
    let status = running.daemon.stop()?;

    let tck = ticks_per_second();
    let mut r = Report::default();
    r.note(format!(
        "idle: {} VMs x 1 channel, all connected ({} served), window {window:.1} s after {:.1} s settling",
        args.vms, after.channels_served, args.settle
    ));
    r.note(format!(
        "CPU time from /proc/PID/stat utime+stime at {tck} ticks/s (resolution {} ms); schedstat sums on-CPU ns over threads",
        1000 / tck.max(1)
    ));
    let ms = |ticks: u64| ticks as f64 * 1000.0 / tck as f64;
    let scale = 60.0 / window;
    r.add(
        "daemon CPU time in window (ticks)",
        ms(s1.ticks - s0.ticks),
        "ms",
    );
    r.add_target(
        "daemon CPU time per 60 s (ticks)",
        ms(s1.ticks - s0.ticks) * scale,
        "ms",
        Target::AtMost(60.0),
    );
    if s1.run_ns > 0 {
        r.add(
            "daemon CPU time per 60 s (schedstat)",
            (s1.run_ns - s0.run_ns) as f64 / 1e6 * scale,
            "ms",
        );
    }
    r.add(
        "daemon wakeups (voluntary ctxt switches) per s",
        (s1.voluntary - s0.voluntary) as f64 / window,
        "/s",
    );
    r.add(
        "daemon involuntary ctxt switches per s",
        (s1.involuntary - s0.involuntary) as f64 / window,
        "/s",
    );
    r.add(
        "reconnects during the run",
        (after.connects - before.connects.min(after.connects)) as f64,
        "",
    );
    r.note(format!("daemon exit: {status}"));
    Ok(r)
}

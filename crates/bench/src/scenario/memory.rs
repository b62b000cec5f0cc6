//! Benchmark 5, memory: many VMs with several channels each, all
//! connected; the daemon's resident memory (VmRSS, and its peak VmHWM)
//! from /proc/PID/status.
//!
//! The bench holds one descriptor per channel (listeners are closed once
//! accepted), so it raises its own open-file limit first and says so when
//! the hard limit is too low.

use std::time::Duration;

use anyhow::bail;

use super::{Ctx, launch};
use crate::host::{HostSpec, RateLimitSetting};
use crate::probe::{DaemonStats, memory_kib, threads};
use crate::report::{Report, Target};

/// Sizes of the memory benchmark.
#[derive(Debug, Clone, Copy)]
pub struct MemoryArgs {
    /// VMs.
    pub vms: usize,
    /// Channels per VM.
    pub channels: u32,
    /// Pause between "all connected" and the reading.
    pub settle: f64,
}

/// Descriptors the bench needs beyond one per channel.
const FD_MARGIN: u64 = 256;

/// Runs it.
pub fn run(ctx: &Ctx, args: MemoryArgs) -> anyhow::Result<Report> {
    let total = u64::try_from(args.vms)? * u64::from(args.channels);
    let limit = raise_fd_limit(total + FD_MARGIN)?;
    let spec = HostSpec {
        cpus: ctx.cpus,
        vms: args.vms,
        rate_limit: RateLimitSetting::Default,
        vcpus: 1,
        queries: false,
    };
    let running = launch(
        ctx,
        "memory",
        &spec,
        args.channels,
        Duration::from_secs(300),
    )?;
    let stats = DaemonStats::wait_connects(&running.host.control, total, Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs_f64(args.settle));
    let pid = running.daemon.pid();
    let (rss, hwm) = memory_kib(pid)?;
    let nthreads = threads(pid)?;
    let status = running.daemon.stop()?;

    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut r = Report::default();
    r.note(format!(
        "memory: {} VMs x {} channels = {total} connected ({} served); bench open-file limit {limit}",
        args.vms, args.channels, stats.channels_served
    ));
    r.add_target("daemon VmRSS", mib(rss), "MiB", Target::AtMost(64.0));
    r.add("daemon VmHWM (peak RSS)", mib(hwm), "MiB");
    r.add(
        "daemon RSS per channel",
        rss as f64 * 1024.0 / total.max(1) as f64,
        "B",
    );
    r.add("daemon threads", nthreads as f64, "");
    r.note(format!("daemon exit: {status}"));
    Ok(r)
}

/// Raises the soft open-file limit to at least `need` (up to the hard
/// limit); the resulting soft limit, or why it cannot suffice.
fn raise_fd_limit(need: u64) -> anyhow::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if hard < need {
        bail!(
            "the bench needs {need} open files but the hard limit is {hard}; raise it (ulimit -Hn, or LimitNOFILE) and retry"
        );
    }
    let current = limit.current.unwrap_or(u64::MAX);
    if current < need {
        limit.current = Some(need.max(current).min(hard));
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

//! Policy benchmark 3 (issue 4), daemon CPU with many TRAFFIC policies:
//! 1,024 VMs × 1 channel, each sending a TRAFFIC policy for the MAC of the
//! host end of its own veth pair (1,024 pairs, peers in one namespace),
//! sampled every 100 ms; the daemon's CPU time over a window.
//!
//! ## Behavior
//! - Every policy must be ACKed and, before the window, `policy list`
//!   must show all of them `active` with a rate measured (the MACs found).
//! - Pair 0 carries a steady `--pps` of real traffic (its policy's level
//!   follows it); the others are silent, so the engine sees 1,024 rates
//!   per tick but few level changes — the steady state.
//! - CPU time from /proc/PID/stat utime+stime (10 ms ticks) and schedstat.
//!
//! ## Limitations
//! Needs root and iproute2; 1,024 veth pairs take a few seconds to make.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use vmpower_api::{Client, CtlRequest, CtlResponse};
use vmpower_proto::Verdict;

use vmpower_netlab::{Rate, Sender, SenderSpec};

use super::netns::{Netns, config, traffic_policy};
use super::{Ctx, Running};
use crate::guest::{Qemu, RECORD, accept_all, round_trip};
use crate::host::{Host, HostSpec, RateLimitSetting, Workdir, vm_name};
use crate::probe::{CpuSample, ticks_per_second};
use crate::report::{Report, Target};

/// Sizes of the CPU benchmark.
#[derive(Debug, Clone, Copy)]
pub struct TrafficCpuArgs {
    /// VMs, one policy each.
    pub vms: usize,
    /// Veth pairs (VM i uses pair i mod pairs).
    pub pairs: usize,
    /// Sampling interval in ms.
    pub interval_ms: u64,
    /// Measured window in seconds.
    pub seconds: f64,
    /// Steady packets per second on pair 0.
    pub pps: u64,
}

/// Runs it.
pub fn run(ctx: &Ctx, args: TrafficCpuArgs) -> anyhow::Result<Report> {
    let made = Instant::now();
    let ns = Netns::create("c", args.pairs)?;
    let made = made.elapsed();
    let spec = HostSpec {
        cpus: ctx.cpus,
        vms: args.vms,
        rate_limit: RateLimitSetting::Default,
        vcpus: 1,
        queries: false,
    };
    let dir = Workdir::create("traffic-cpu")?;
    let host = Host::build(dir.path(), &spec)?;
    std::fs::write(
        dir.path().join("vmpowerd.toml"),
        config(args.vms, args.interval_ms, |i| {
            u32::try_from(i).unwrap_or(0) % ctx.cpus.max(1)
        }),
    )
    .context("cannot write the config")?;
    let qemu = Qemu::bind(
        &host.channels,
        (0..args.vms).map(|i| format!("{}.0", vm_name(i))),
    )?;
    let daemon = host.spawn(&ctx.daemon)?;
    let streams = accept_all(qemu, Duration::from_secs(120))?;
    let mut running = Running {
        daemon,
        streams,
        host,
        dir,
    };
    let mut reply = [0u8; RECORD];
    for (i, stream) in running.streams.iter_mut().enumerate() {
        let record = traffic_policy(&vm_name(i), ns.macs[i % args.pairs], 500, 1_000)?;
        let verdict = round_trip(stream, &record, &mut reply)?;
        if verdict != Verdict::Ack {
            bail!("policy of {} refused: {verdict:?}", vm_name(i));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sender = sender(&ns, args.pps, Arc::clone(&stop))?;
    let (active, measured) = wait_active(&running, args.vms)?;
    let pid = running.daemon.pid();
    let start = Instant::now();
    let s0 = CpuSample::read(pid)?;
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    let s1 = CpuSample::read(pid)?;
    let window = start.elapsed().as_secs_f64();
    let (active_after, _) = policy_counts(&running)?;
    stop.store(true, Ordering::Relaxed);
    let _ = sender.stop();
    let status = running.daemon.stop()?;
    drop(ns);

    let tck = ticks_per_second();
    let mut r = Report::default();
    r.note(format!(
        "traffic-cpu: {} VMs x 1 channel, one TRAFFIC policy each on {} veth pairs (made in {:.1} s), interval {} ms, {} pps on pair 0, window {window:.1} s",
        args.vms,
        args.pairs,
        made.as_secs_f64(),
        args.interval_ms,
        args.pps
    ));
    r.note(format!(
        "before the window: {active} policies active, {measured} with a rate; after: {active_after} active; daemon exit {status}"
    ));
    let ms = |ticks: u64| ticks as f64 * 1000.0 / tck as f64;
    let scale = 60.0 / window;
    let cpu_ms = ms(s1.ticks - s0.ticks) * scale;
    r.add_target(
        "daemon CPU time per 60 s (ticks)",
        cpu_ms,
        "ms",
        Target::AtMost(1_200.0),
    );
    r.add_target(
        "daemon CPU, % of one core (ticks)",
        cpu_ms / 600.0,
        "%",
        Target::AtMost(2.0),
    );
    if s1.run_ns > 0 {
        let ns_ms = (s1.run_ns - s0.run_ns) as f64 / 1e6 * scale;
        r.add("daemon CPU time per 60 s (schedstat)", ns_ms, "ms");
        r.add("daemon CPU, % of one core (schedstat)", ns_ms / 600.0, "%");
    }
    r.add(
        "daemon wakeups (voluntary ctxt switches) per s",
        (s1.voluntary - s0.voluntary) as f64 / window,
        "/s",
    );
    Ok(r)
}

/// (active policies, policies with a measured rate) from `policy list`.
fn policy_counts(running: &Running) -> anyhow::Result<(usize, usize)> {
    let mut client = Client::connect(&running.host.control)?;
    let list = match client.call(&CtlRequest::PolicyList)? {
        CtlResponse::Ok(v) => v,
        CtlResponse::Error(e) => bail!("policy list refused: {e:?}"),
    };
    let all = list.as_array().cloned().unwrap_or_default();
    let active = all.iter().filter(|p| p["state"] == "active").count();
    let measured = all.iter().filter(|p| p["rate_pps"].is_number()).count();
    Ok((active, measured))
}

/// Waits (bounded) until every policy is active with a rate, plus 3 s.
fn wait_active(running: &Running, vms: usize) -> anyhow::Result<(usize, usize)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = policy_counts(running)?;
        if counts == (vms, vms) {
            std::thread::sleep(Duration::from_secs(3));
            return Ok(counts);
        }
        if Instant::now() > deadline {
            bail!("after 60 s, {counts:?} of {vms} policies (active, with a rate)");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Steady `pps` on pair 0 from inside the namespace until `stop`.
fn sender(ns: &Netns, pps: u64, stop: Arc<AtomicBool>) -> anyhow::Result<Sender> {
    let spec = SenderSpec {
        step: Duration::from_millis(10),
        backlog: Duration::from_millis(50),
        stop: Some(stop),
        ..SenderSpec::new(
            format!("{}:0", ns.peer_addr).parse()?,
            format!("{}:9", ns.host_addr).parse()?,
        )
        .in_netns(&ns.name)
        .payload(b"vmpower cpu")
    };
    Ok(Sender::start(spec, Rate::Set(pps))?)
}

//! Policy benchmark 2 (issue 4), reaction: real packets on a veth pair
//! whose host end has the MAC of a guest's TRAFFIC policy; the time from
//! the counter crossing the threshold to the daemon's sysfs write.
//!
//! ## What is measured
//! The policy (sent by the bench as the guest, on vCPU 0 of `vm0`, pCPU 1)
//! has `avg_pps` 500 and `max_pps` 1,000. Each crossing is: a silent phase
//! (longer than the hysteresis dwell, so the level falls back to min),
//! then a burst of `4 × max_pps × interval` datagrams sent back to back,
//! then a steady 5,000 pps for the rest of the high phase. After the burst
//! every sampling window that contains it measures ≥ 4 × `max_pps`, so the
//! counter has crossed by the end of the burst. The write is seen through
//! inotify (IN_MODIFY | IN_CLOSE_WRITE) on pCPU 1's `scaling_setspeed` in
//! the fake tree; the bench reads the file on each event and timestamps
//! the first change to the max value. Reported: write − burst end (the
//! reaction) and write − burst start (an upper bound that includes the
//! burst), both with `Instant` (µs resolution, plus the inotify wakeup).
//!
//! ## Limitations
//! Needs root and iproute2. The expected figure is the wait for the next
//! sampling tick (uniform over one interval) plus the daemon's work.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::fs::inotify;
use vmpower_proto::Verdict;

use super::netns::{Netns, config, enter, traffic_policy};
use super::{Ctx, Running};
use crate::guest::{Qemu, RECORD, accept_all, round_trip};
use crate::host::{Host, HostSpec, RateLimitSetting, Workdir};
use crate::report::{Report, Target};

const AVG_PPS: u32 = 500;
const MAX_PPS: u32 = 1_000;
const STEADY_PPS: u64 = 5_000;

/// Sizes of the reaction benchmark.
#[derive(Debug, Clone)]
pub struct ReactionArgs {
    /// Upward crossings per interval.
    pub crossings: usize,
    /// Sampling intervals to run, in ms.
    pub intervals_ms: Vec<u64>,
    /// Silent phase (≥ dwell + 2 intervals).
    pub low: Duration,
    /// High phase.
    pub high: Duration,
}

/// One crossing as the sender did it.
#[derive(Debug, Clone, Copy)]
struct Crossing {
    start: Instant,
    crossed: Instant,
    end: Instant,
}

/// Runs it for each interval.
pub fn run(ctx: &Ctx, args: &ReactionArgs) -> anyhow::Result<Report> {
    let mut r = Report::default();
    let ns = Netns::create("r", 1)?;
    r.note(format!(
        "reaction: veth pair, policy avg {AVG_PPS} / max {MAX_PPS} pps on vm0 vCPU 0 (pCPU 1); {} crossings per interval; silent {:?}, high {:?} (burst 4 x max x interval, then {STEADY_PPS} pps); write seen by inotify on scaling_setspeed",
        args.crossings, args.low, args.high
    ));
    for &ms in &args.intervals_ms {
        once(ctx, args, &ns, ms, &mut r)?;
    }
    Ok(r)
}

fn once(
    ctx: &Ctx,
    args: &ReactionArgs,
    ns: &Netns,
    interval_ms: u64,
    r: &mut Report,
) -> anyhow::Result<()> {
    let spec = HostSpec {
        cpus: ctx.cpus,
        vms: 1,
        rate_limit: RateLimitSetting::Default,
        vcpus: 1,
        queries: false,
    };
    let dir = Workdir::create("reaction")?;
    let host = Host::build(dir.path(), &spec)?;
    std::fs::write(
        dir.path().join("vmpowerd.toml"),
        config(1, interval_ms, |_| 1),
    )
    .context("cannot write the config")?;
    let qemu = Qemu::bind(&host.channels, ["vm0.0".to_owned()])?;
    let daemon = host.spawn(&ctx.daemon)?;
    let streams = accept_all(qemu, Duration::from_secs(30))?;
    let mut running = Running {
        daemon,
        streams,
        host,
        dir,
    };
    let record = traffic_policy("vm0", ns.macs[0], AVG_PPS, MAX_PPS)?;
    let mut reply = [0u8; RECORD];
    let stream = running.streams.first_mut().context("no channel")?;
    let verdict = round_trip(stream, &record, &mut reply)?;
    if verdict != Verdict::Ack {
        bail!("the daemon refused the TRAFFIC policy: {verdict:?}");
    }
    // Silence: the level settles at min.
    std::thread::sleep(args.low);
    let min_value = running.host.cpu_file(1, "scaling_setspeed")?;

    let file = running
        .host
        .sysfs
        .join("devices/system/cpu/cpu1/cpufreq/scaling_setspeed");
    let writes = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    watch(&file, Arc::clone(&writes), Arc::clone(&stop))?;
    let crossings = send(ns, args, interval_ms)?;
    std::thread::sleep(args.low);
    stop.store(true, Ordering::Relaxed);
    let writes = writes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let status = running.daemon.stop()?;

    let mut from_end = Vec::new();
    let mut from_start = Vec::new();
    let mut down = Vec::new();
    let mut missed = 0;
    for c in &crossings {
        let up = writes
            .iter()
            .find(|(t, v)| *t >= c.start && *v != min_value && *t <= c.end);
        match up {
            Some((t, _)) => {
                from_end.push(t.saturating_duration_since(c.crossed).as_secs_f64() * 1e3);
                from_start.push(t.duration_since(c.start).as_secs_f64() * 1e3);
            }
            None => missed += 1,
        }
        if let Some((t, _)) = writes.iter().find(|(t, v)| *t > c.end && *v == min_value) {
            down.push(t.duration_since(c.end).as_secs_f64() * 1e3);
        }
    }
    let burst: Vec<f64> = crossings
        .iter()
        .map(|c| c.crossed.duration_since(c.start).as_secs_f64() * 1e3)
        .collect();
    let target = interval_ms as f64 + 2.0;
    let tag = format!("{interval_ms} ms");
    r.note(format!(
        "{tag}: min {min_value} kHz, up writes {:?}; {} writes seen; {missed} crossings without an up write in their high phase; daemon exit {status}",
        ups(&writes, &min_value),
        writes.len()
    ));
    r.add_target(
        format!("[{tag}] reaction median (write - burst end)"),
        median(&from_end),
        "ms",
        Target::AtMost(target),
    );
    r.add_target(
        format!("[{tag}] reaction worst (write - burst end)"),
        max(&from_end),
        "ms",
        Target::AtMost(target),
    );
    r.add(
        format!("[{tag}] reaction best (write - burst end)"),
        min(&from_end),
        "ms",
    );
    r.add(
        format!("[{tag}] median write - burst start"),
        median(&from_start),
        "ms",
    );
    r.add(
        format!("[{tag}] worst write - burst start"),
        max(&from_start),
        "ms",
    );
    r.add(
        format!("[{tag}] burst duration median"),
        median(&burst),
        "ms",
    );
    r.add(
        format!("[{tag}] crossings measured"),
        from_end.len() as f64,
        "",
    );
    r.add(
        format!("[{tag}] down: last packet -> min write, median (dwell 500 ms)"),
        median(&down),
        "ms",
    );
    Ok(())
}

/// Records (time, content) of `file` on every inotify event until `stop`.
fn watch(
    file: &Path,
    writes: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let fd: OwnedFd = inotify::init(inotify::CreateFlags::CLOEXEC).context("inotify_init")?;
    inotify::add_watch(
        &fd,
        file,
        inotify::WatchFlags::MODIFY | inotify::WatchFlags::CLOSE_WRITE,
    )
    .context("inotify_add_watch")?;
    let file = file.to_path_buf();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut last = String::new();
        // Ends when the file goes (IN_IGNORED wakes the read) after `stop`.
        while !stop.load(Ordering::Relaxed) {
            if rustix::io::read(&fd, &mut buf).is_err() {
                return;
            }
            let at = Instant::now();
            let Ok(now) = std::fs::read_to_string(&file) else {
                return;
            };
            let now = now.trim().to_owned();
            if now != last && !now.is_empty() {
                writes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((at, now.clone()));
                last = now;
            }
        }
    });
    Ok(())
}

/// The sender, inside the namespace: `crossings` silent/high phases.
fn send(ns: &Netns, args: &ReactionArgs, interval_ms: u64) -> anyhow::Result<Vec<Crossing>> {
    let (src, dst) = (format!("{}:0", ns.peer_addr), format!("{}:9", ns.host_addr));
    let burst = (4 * u64::from(MAX_PPS) * interval_ms / 1000).max(20);
    let args = args.clone();
    let name = ns.name.clone();
    let handle = std::thread::spawn(move || -> anyhow::Result<Vec<Crossing>> {
        enter(&name)?;
        let socket = std::net::UdpSocket::bind(&src)?;
        let mut out = Vec::new();
        for k in 0..args.crossings {
            // A different phase against the sampler's ticks each time.
            let offset = Duration::from_micros((k as u64 * 3_700) % (interval_ms * 1000));
            std::thread::sleep(args.low + offset);
            let start = Instant::now();
            let mut sent = 0;
            while sent < burst {
                if socket.send_to(b"vmpower reaction", &dst).is_ok() {
                    sent += 1;
                }
            }
            let crossed = Instant::now();
            let mut count = 0u64;
            while crossed.elapsed() < args.high {
                let due = u64::try_from(crossed.elapsed().as_micros())? * STEADY_PPS / 1_000_000;
                while count < due {
                    let _ = socket.send_to(b"vmpower reaction", &dst);
                    count += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            out.push(Crossing {
                start,
                crossed,
                end: Instant::now(),
            });
        }
        Ok(out)
    });
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?
}

/// The distinct values written other than `min`.
fn ups(writes: &[(Instant, String)], min: &str) -> Vec<String> {
    let mut v: Vec<String> = writes
        .iter()
        .filter(|(_, w)| w != min)
        .map(|(_, w)| w.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

fn median(v: &[f64]) -> f64 {
    let s = sorted(v);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn max(v: &[f64]) -> f64 {
    sorted(v).last().copied().unwrap_or(f64::NAN)
}

fn min(v: &[f64]) -> f64 {
    sorted(v).first().copied().unwrap_or(f64::NAN)
}

//! The demo from start to end: set up the traffic (veth pairs or
//! synthetic counters), build the host, start the daemon, start the
//! guests, watch (live view or plain lines) until the time is up or a
//! signal, then stop everything, remove the pairs, check the host was
//! restored, remove the temporary directory and return the summary.
//!
//! ## Behavior
//! - SIGINT (Ctrl-C), SIGTERM and SIGHUP end the watch, never the process,
//!   so the clean-up always runs.
//! - Whatever fails after the traffic is set up, the daemon is stopped,
//!   the guests and their feeds joined, the pairs removed (their guard's
//!   `Drop`) and the temporary directory removed before the error is
//!   returned.
//! - Timing scales with the duration: one simulated day over the run, a
//!   traffic cycle of a third of it (4–12 s), direct requests every
//!   twentieth of it (0.25–1 s).

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::time::Instant;
use vmpower_api::CtlRequest;
use vmpowerd::traffic::TrafficCounters;

use crate::feed::{self, Feed, TrafficChoice, TrafficMode};
use crate::guests::{self, Guest, Timing};
use crate::host::{SimHost, ctl};
use crate::sample::{Accounting, Sampler};
use crate::scenario::{self, Role, VmPlan};
use crate::summary::{GuestReport, Summary};
use crate::view::{self, Frame};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long.
    pub duration: Duration,
    /// Simulated VMs.
    pub vms: u32,
    /// CPUs of the simulated host.
    pub cpus: u32,
    /// Redraw a live view in place (a terminal) instead of plain lines.
    pub live: bool,
    /// Real packets or synthetic counters.
    pub traffic: TrafficChoice,
}

/// How often pCPUs are sampled and the live view redrawn.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How often a plain line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(1);

/// A signal that ended the watch, by name; `None` while running.
type Interrupt = watch::Receiver<Option<&'static str>>;

/// What the watched part of the run produced.
struct Watched {
    ran: Duration,
    interrupted: Option<&'static str>,
    decisions: usize,
    accounting: Accounting,
    guests: Vec<GuestReport>,
}

/// Turns SIGINT, SIGTERM and SIGHUP into the interrupt (registered at
/// once, so a signal from here on never kills the process).
fn signals() -> anyhow::Result<(tokio::task::JoinHandle<()>, Interrupt)> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(None);
    let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("handling SIGHUP")?;
    let task = tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        };
        let _ = tx.send(Some(name));
    });
    Ok((task, rx))
}

/// Runs the demo; the summary says what happened and what was cleaned.
pub async fn run(options: Options) -> anyhow::Result<Summary> {
    let plans = scenario::plan(options.vms, options.cpus)?;
    let (signals, interrupt) = signals()?;
    let pid = std::process::id();
    let macs: Vec<_> = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| p.role == Role::Traffic)
        .map(|(i, _)| (i, guests::mac_of(pid, i)))
        .collect();
    let fake = vmpowerd::traffic::FakeTrafficCounters::new();
    let (choice, f) = (options.traffic, fake.clone());
    let (mut traffic, counters) =
        tokio::task::spawn_blocking(move || feed::setup(choice, &macs, &f))
            .await
            .context("setting up the traffic")??;
    let mut host = SimHost::build(options.cpus, &plans, fake)?;
    let watched = drive(
        &mut host,
        &plans,
        options,
        &traffic.mode,
        counters,
        interrupt,
    )
    .await;
    signals.abort();
    let stopped = host.stop_daemon().await;
    // The feeds are joined (in `drive`): no sender is left in a namespace.
    let network = match traffic.pairs.take() {
        Some(mut pairs) => {
            let removed = tokio::task::spawn_blocking(move || pairs.remove())
                .await
                .context("removing the veth pairs")?;
            Some(removed.map_err(|e| e.to_string()))
        }
        None => None,
    };
    let restore = host.restore_check();
    let path = host.path().to_owned();
    let removed = host.remove().map(|_| ()).map_err(|e| format!("{e:#}"));
    let watched = watched?;
    stopped?;
    Ok(Summary {
        ran: watched.ran,
        interrupted: watched.interrupted,
        cpus: options.cpus,
        traffic: traffic.mode,
        decisions: watched.decisions,
        sample_every: SAMPLE_EVERY,
        accounting: watched.accounting,
        guests: watched.guests,
        network,
        restore: restore?,
        temp_dir: (path, removed),
    })
}

fn timing(duration: Duration) -> Timing {
    Timing {
        traffic_period: (duration / 3).clamp(Duration::from_secs(4), Duration::from_secs(12)),
        hour: (duration / 24).clamp(Duration::from_millis(100), Duration::from_secs(2)),
        direct_every: (duration / 20).clamp(Duration::from_millis(250), Duration::from_secs(1)),
    }
}

async fn drive(
    host: &mut SimHost,
    plans: &[VmPlan],
    options: Options,
    mode: &TrafficMode,
    counters: Box<dyn TrafficCounters>,
    interrupt: Interrupt,
) -> anyhow::Result<Watched> {
    host.start_daemon(counters).await?;
    let timing = timing(options.duration);
    let stop = Arc::new(AtomicBool::new(false));
    let mut listeners = Vec::new();
    for plan in plans {
        let path = host.socket(&plan.name);
        let l = UnixListener::bind(&path)
            .with_context(|| format!("listening at {}", path.display()))?;
        listeners.push(l);
    }
    let mut guests = Vec::new();
    let pid = std::process::id();
    for (index, (plan, listener)) in plans.iter().zip(listeners).enumerate() {
        let mac = guests::mac_of(pid, index);
        let feed = match mode {
            TrafficMode::Veth { .. } => Feed::Veth {
                netns: crate::veth::name(pid, index),
            },
            TrafficMode::Synthetic { .. } => Feed::Synthetic(host.traffic.clone()),
        };
        let traffic = guests::Traffic {
            feed,
            plan: mode.plan(),
        };
        let started = guests::start(
            plan.clone(),
            mac,
            listener,
            Some(traffic),
            timing,
            stop.clone(),
        )
        .await;
        match started {
            Ok(g) => guests.push(g),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                join_all(guests).await;
                return Err(e);
            }
        }
    }
    let watched = watch(host, &guests, options, mode, interrupt).await;
    stop.store(true, Ordering::Relaxed);
    let guests = join_all(guests).await;
    let (ran, accounting, interrupted, seen) = watched?;
    let socket = host.control_socket();
    let history = CtlRequest::History {
        vm: None,
        since: None,
        limit: Some(u32::MAX),
    };
    let decisions = tokio::task::spawn_blocking(move || ctl(&socket, &history))
        .await
        .context("asking the history")?
        .context("asking the daemon's history")?;
    Ok(Watched {
        ran,
        interrupted,
        decisions: decisions.as_array().map_or(0, Vec::len),
        accounting,
        guests: guests
            .iter()
            .zip(seen)
            .map(|(g, seen)| GuestReport {
                plan: g.plan.clone(),
                status: g.status(),
                sent: g.sent.load(Ordering::Relaxed),
                peak_pps: seen.peak_pps,
                source: seen.source,
            })
            .collect(),
    })
}

async fn join_all(mut guests: Vec<Guest>) -> Vec<Guest> {
    tokio::task::spawn_blocking(move || {
        for g in &mut guests {
            g.join();
        }
        guests
    })
    .await
    .unwrap_or_default()
}

/// What the daemon was seen measuring for one VM over the run.
#[derive(Debug, Clone, Default)]
struct Seen {
    peak_pps: Option<u64>,
    source: Option<String>,
}

/// Samples the pCPUs and the daemon's view of each VM, and shows the
/// frames, until the end or a signal.
async fn watch(
    host: &SimHost,
    guests: &[Guest],
    options: Options,
    mode: &TrafficMode,
    mut interrupt: Interrupt,
) -> anyhow::Result<(Duration, Accounting, Option<&'static str>, Vec<Seen>)> {
    let sampler = Sampler::new(&*host.fake, options.cpus)?;
    let plans: Vec<VmPlan> = guests.iter().map(|g| g.plan.clone()).collect();
    let socket = host.control_socket();
    let mut accounting = Accounting::default();
    let mut seen = vec![Seen::default(); guests.len()];
    let start = Instant::now();
    let mut last = start;
    let mut last_plain: Option<Instant> = None;
    let mut interrupted = None;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut out = std::io::stdout();
    let traffic_line = format!("traffic: {}", mode.describe());
    if options.live {
        let _ = write!(out, "\x1b[?25l\x1b[2J");
    } else {
        let _ = writeln!(out, "{traffic_line}");
    }
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            signal = interrupt.wait_for(Option::is_some) => {
                interrupted = signal.ok().and_then(|s| *s).or(Some("a signal"));
                break;
            }
        }
        let now = Instant::now();
        let readings = sampler.read(&*host.fake);
        accounting.add(&readings, sampler.ranges(), now - last);
        last = now;
        let elapsed = now - start;
        // Asked at every sample, so the summary's peak rate misses nothing.
        let (s, p) = (socket.clone(), plans.clone());
        let states = tokio::task::spawn_blocking(move || view::query(&s, &p))
            .await
            .unwrap_or_default();
        for (seen, state) in seen.iter_mut().zip(&states) {
            if let Some(rate) = state.rate_pps {
                seen.peak_pps = Some(seen.peak_pps.unwrap_or(0).max(rate));
            }
            if state.source.is_some() {
                seen.source.clone_from(&state.source);
            }
        }
        let plain_due = last_plain.is_none_or(|t| now - t >= PLAIN_EVERY);
        if options.live || plain_due {
            let frame = Frame {
                elapsed,
                duration: options.duration,
                traffic: &traffic_line,
                cpus: &readings,
                ranges: sampler.ranges(),
                vms: guests
                    .iter()
                    .zip(states)
                    .map(|(g, st)| (&g.plan, st, g.status(), g.fed_pps.load(Ordering::Relaxed)))
                    .collect(),
            };
            if options.live {
                let _ = write!(out, "{}", view::render(&frame));
            } else {
                let _ = writeln!(out, "{}", view::plain_line(&frame));
                last_plain = Some(now);
            }
            let _ = out.flush();
        }
        if elapsed >= options.duration {
            break;
        }
    }
    if options.live {
        let _ = writeln!(out, "\x1b[?25h");
    }
    Ok((last - start, accounting, interrupted, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_scales_with_the_duration() {
        let short = timing(Duration::from_secs(6));
        assert_eq!(short.hour, Duration::from_millis(250));
        assert_eq!(short.traffic_period, Duration::from_secs(4));
        let long = timing(Duration::from_secs(30));
        assert_eq!(long.hour, Duration::from_millis(1250));
        assert_eq!(long.traffic_period, Duration::from_secs(10));
        assert_eq!(long.direct_every, Duration::from_secs(1));
        assert_eq!(short.direct_every, Duration::from_millis(300));
    }
}

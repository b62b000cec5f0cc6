//! The demo from start to end: build the host, start the daemon, start
//! the guests, watch (live view or plain lines) until the time is up or
//! Ctrl-C, then stop everything, check the host was restored, remove the
//! temporary directory and return the summary.
//!
//! ## Behavior
//! - Whatever fails after the host is built, the daemon is stopped and the
//!   temporary directory removed before the error is returned.
//! - Timing scales with the duration: one simulated day over the run, a
//!   traffic cycle of a third of it (4–12 s), direct requests every
//!   twentieth of it (0.25–1 s).

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::UnixListener;
use tokio::time::Instant;
use vmpower_api::CtlRequest;

use crate::guests::{self, Guest, Timing};
use crate::host::{SimHost, ctl};
use crate::sample::{Accounting, Sampler};
use crate::scenario::{self, VmPlan};
use crate::summary::Summary;
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
}

/// How often pCPUs are sampled and the live view redrawn.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How often a plain line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(1);

/// What the watched part of the run produced.
struct Watched {
    ran: Duration,
    interrupted: bool,
    decisions: usize,
    accounting: Accounting,
    guests: Vec<Guest>,
}

/// Runs the demo; the summary says what happened and what was cleaned.
pub async fn run(options: Options) -> anyhow::Result<Summary> {
    let plans = scenario::plan(options.vms, options.cpus)?;
    // Ctrl-C is ours from here on: it ends the watch, never the process,
    // so the clean-up below always runs.
    let (tx, interrupt) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
    });
    let mut host = SimHost::build(options.cpus, &plans)?;
    let watched = drive(&mut host, &plans, options, interrupt).await;
    signals.abort();
    let stopped = host.stop_daemon().await;
    let restore = host.restore_check();
    let path = host.path().to_owned();
    let removed = host.remove().map(|_| ()).map_err(|e| format!("{e:#}"));
    let watched = watched?;
    stopped?;
    Ok(Summary {
        ran: watched.ran,
        interrupted: watched.interrupted,
        cpus: options.cpus,
        decisions: watched.decisions,
        sample_every: SAMPLE_EVERY,
        accounting: watched.accounting,
        guests: watched
            .guests
            .iter()
            .map(|g| (g.plan.clone(), g.status()))
            .collect(),
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
    interrupt: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Watched> {
    host.start_daemon().await?;
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
    for (index, (plan, listener)) in plans.iter().zip(listeners).enumerate() {
        let started = guests::start(
            plan.clone(),
            index,
            listener,
            host.traffic.clone(),
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
    let watched = watch(host, &guests, options, interrupt).await;
    stop.store(true, Ordering::Relaxed);
    let guests = join_all(guests).await;
    let (ran, accounting, interrupted) = watched?;
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
        guests,
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

/// Samples the pCPUs and shows the frames until the end or Ctrl-C.
async fn watch(
    host: &SimHost,
    guests: &[Guest],
    options: Options,
    mut interrupt: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(Duration, Accounting, bool)> {
    let sampler = Sampler::new(&*host.fake, options.cpus)?;
    let plans: Vec<VmPlan> = guests.iter().map(|g| g.plan.clone()).collect();
    let socket = host.control_socket();
    let mut accounting = Accounting::default();
    let start = Instant::now();
    let mut last = start;
    let mut last_plain: Option<Instant> = None;
    let mut interrupted = false;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut out = std::io::stdout();
    if options.live {
        let _ = write!(out, "\x1b[?25l\x1b[2J");
    }
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = interrupt.wait_for(|&i| i) => {
                interrupted = true;
                break;
            }
        }
        let now = Instant::now();
        let readings = sampler.read(&*host.fake);
        accounting.add(&readings, sampler.ranges(), now - last);
        last = now;
        let elapsed = now - start;
        let plain_due = last_plain.is_none_or(|t| now - t >= PLAIN_EVERY);
        if options.live || plain_due {
            let (s, p) = (socket.clone(), plans.clone());
            let states = tokio::task::spawn_blocking(move || view::query(&s, &p))
                .await
                .unwrap_or_default();
            let frame = Frame {
                elapsed,
                duration: options.duration,
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
    Ok((last - start, accounting, interrupted))
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

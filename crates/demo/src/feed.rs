//! The traffic behind each TRAFFIC policy, and which kind the demo runs:
//! real packets on a veth pair per traffic VM (as root), or synthetic
//! counters (anyone).
//!
//! ## Behavior
//! - `--traffic auto` (the default) tries veth pairs and falls back to
//!   synthetic counters, saying why; `--traffic veth` fails instead of
//!   falling back; `--traffic synthetic` never touches the network.
//! - Real mode: the daemon gets its real rtnetlink counters
//!   ([`NetlinkTrafficCounters`]), which find each policy's MAC on its
//!   pair's end in the demo's namespace (a netdev, counting received
//!   packets). A sender thread per traffic VM enters the VM's namespace
//!   and sends UDP datagrams to the limited broadcast address out of the
//!   pair, paced along [`RatePlan::VETH`] ([`vmpower_netlab::Sender`]).
//! - Synthetic mode: a pump task advances the MAC's counter in
//!   [`FakeTrafficCounters`] along [`RatePlan::SYNTHETIC`]; nothing is
//!   sent.
//! - Both feeds follow the same script through the same [`Pacer`], publish
//!   the rate they feed (for the view) and count what they fed, and stop
//!   within one step of the stop flag.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use vmpower_netlab::{Pacer, Rate, Sender, SenderSpec};
use vmpower_proto::MacAddr;
use vmpowerd::traffic::{FakeTrafficCounters, NetlinkTrafficCounters, SourceKind, TrafficCounters};

use crate::scenario::RatePlan;
use crate::veth::{self, Pairs};

/// The `--traffic` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrafficChoice {
    /// Synthetic counters: no packets, no privilege.
    Synthetic,
    /// Real packets on veth pairs; fails unless root with `ip`.
    Veth,
    /// Real packets when possible, else synthetic counters.
    Auto,
}

/// The traffic the demo runs, for the view and the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficMode {
    /// Synthetic counters, and why.
    Synthetic {
        /// Why not real packets.
        why: String,
    },
    /// Real packets on these pairs (their names).
    Veth {
        /// The pairs' names (namespace and host end alike).
        names: Vec<String>,
    },
}

impl TrafficMode {
    /// The rates and thresholds of this mode.
    pub fn plan(&self) -> RatePlan {
        match self {
            TrafficMode::Synthetic { .. } => RatePlan::SYNTHETIC,
            TrafficMode::Veth { .. } => RatePlan::VETH,
        }
    }

    /// One line: `real packets on veth …` or `synthetic counters, …`.
    pub fn describe(&self) -> String {
        match self {
            TrafficMode::Veth { names } => format!(
                "real packets on veth {} (UDP broadcast from a namespace of the same name; the daemon reads its rtnetlink counters)",
                names.join(", ")
            ),
            TrafficMode::Synthetic { why } => {
                format!("synthetic counters, no packets sent ({why})")
            }
        }
    }
}

/// The traffic set up for a run: the mode and the pairs (real mode).
#[derive(Debug)]
pub struct Traffic {
    /// The mode.
    pub mode: TrafficMode,
    /// The pairs; dropping them removes them.
    pub pairs: Option<Pairs>,
}

/// Applies the choice to an attempt at real traffic: `Ok(Ok(t))` real,
/// `Ok(Err(why))` synthetic, `Err` when `--traffic veth` cannot be had.
pub fn resolve<T>(
    choice: TrafficChoice,
    attempt: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<Result<T, String>> {
    match choice {
        TrafficChoice::Synthetic => Ok(Err("--traffic synthetic".to_owned())),
        TrafficChoice::Veth => attempt()
            .map(Ok)
            .context("--traffic veth: cannot make veth pairs"),
        TrafficChoice::Auto => Ok(attempt().map_err(|e| format!("veth pairs unavailable: {e:#}"))),
    }
}

/// Sets up the traffic for the traffic VMs `macs` (`(n, mac)`: VM index
/// and policy MAC), returning the counters for the daemon.
pub fn setup(
    choice: TrafficChoice,
    macs: &[(usize, MacAddr)],
    fake: &FakeTrafficCounters,
) -> anyhow::Result<(Traffic, Box<dyn TrafficCounters>)> {
    let real = resolve(choice, || {
        veth::available()?;
        let swept = veth::sweep_stale(std::path::Path::new("/proc"));
        if !swept.is_empty() {
            eprintln!(
                "vmpower-demo: removed {}, left by demo runs that were killed",
                swept.join(", ")
            );
        }
        let pairs = Pairs::create(macs)?;
        // Pairs are made before the daemon starts: its first topology
        // dump already finds them.
        let counters = NetlinkTrafficCounters::new(Default::default())
            .context("opening the daemon's rtnetlink counters")?;
        Ok((pairs, counters))
    })?;
    Ok(match real {
        Ok((pairs, counters)) => {
            let names = pairs.pairs().iter().map(|p| p.name.clone()).collect();
            let traffic = Traffic {
                mode: TrafficMode::Veth { names },
                pairs: Some(pairs),
            };
            (traffic, Box::new(counters))
        }
        Err(why) => {
            let traffic = Traffic {
                mode: TrafficMode::Synthetic { why },
                pairs: None,
            };
            (traffic, Box::new(fake.clone()))
        }
    })
}

/// What feeds one traffic VM.
#[derive(Debug, Clone)]
pub enum Feed {
    /// Advance this MAC's synthetic counter.
    Synthetic(FakeTrafficCounters),
    /// Send real packets out of this namespace's `eth0`.
    Veth {
        /// The namespace.
        netns: String,
    },
}

/// A running feed.
#[derive(Debug)]
pub struct Running {
    /// The rate being fed now, in pps.
    pub fed_pps: Arc<AtomicU64>,
    /// Packets fed so far.
    pub sent: Arc<AtomicU64>,
    pump: Option<tokio::task::JoinHandle<()>>,
    sender: Option<Sender>,
}

impl Running {
    /// Waits for the feed (after the stop flag is set); the sender's error,
    /// if it failed.
    pub fn join(&mut self) -> Option<String> {
        if let Some(p) = self.pump.take() {
            p.abort();
        }
        self.sender
            .take()
            .and_then(|s| s.stop().err())
            .map(|e| e.to_string())
    }
}

/// How often the synthetic pump steps, and the real sender.
const PUMP_STEP: Duration = Duration::from_millis(50);
const SEND_STEP: Duration = Duration::from_millis(2);

/// Starts `feed` for `mac` along `plan` with cycles of `period`, until
/// `stop` (call within a tokio runtime: the pump is a task).
pub fn start(
    feed: Feed,
    mac: MacAddr,
    plan: RatePlan,
    period: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Running> {
    match feed {
        Feed::Synthetic(counters) => {
            let fed_pps = Arc::new(AtomicU64::new(0));
            let sent = Arc::new(AtomicU64::new(0));
            let meters = (fed_pps.clone(), sent.clone());
            // The view names the counter's source: say what it is.
            let source = SourceKind::Netdev {
                ifname: "synthetic".into(),
            };
            counters.set(mac, source, 0);
            let pump = tokio::spawn(async move {
                let mut tick = tokio::time::interval(PUMP_STEP);
                let mut pace = Pace::new(plan, period, PUMP_STEP * 4, meters);
                loop {
                    tick.tick().await;
                    let due = pace.due();
                    counters.advance(mac, due);
                    pace.fed(due);
                }
            });
            Ok(Running {
                fed_pps,
                sent,
                pump: Some(pump),
                sender: None,
            })
        }
        Feed::Veth { netns } => {
            // The discard port of the limited broadcast address: nothing
            // on the other side is meant to answer.
            let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
            let to = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 9));
            let spec = SenderSpec {
                broadcast: true,
                step: SEND_STEP,
                backlog: SEND_STEP * 5,
                stop: Some(stop),
                ..SenderSpec::new(any, to)
                    .in_netns(&netns)
                    .payload(b"vmpower-demo traffic")
            };
            let script = Rate::Script(Box::new(move |since| plan.pps(since, period)));
            let sender = Sender::start(spec, script)
                .with_context(|| format!("starting the sender in {netns}"))?;
            let (fed_pps, sent) = sender.meters();
            Ok(Running {
                fed_pps,
                sent,
                pump: None,
                sender: Some(sender),
            })
        }
    }
}

/// The script, the pacer and the meters of the synthetic pump.
struct Pace {
    plan: RatePlan,
    period: Duration,
    pacer: Pacer,
    start: Instant,
    last: Instant,
    fed_pps: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

impl Pace {
    fn new(
        plan: RatePlan,
        period: Duration,
        backlog: Duration,
        (fed_pps, sent): (Arc<AtomicU64>, Arc<AtomicU64>),
    ) -> Self {
        let now = Instant::now();
        Pace {
            plan,
            period,
            pacer: Pacer::new(backlog),
            start: now,
            last: now,
            fed_pps,
            sent,
        }
    }

    /// The packets due now; publishes the current rate.
    fn due(&mut self) -> u64 {
        let now = Instant::now();
        let rate = self.plan.pps(now - self.start, self.period);
        self.fed_pps.store(rate, Ordering::Relaxed);
        let due = self.pacer.due(rate, now - self.last);
        self.last = now;
        due
    }

    /// Counts `n` packets fed.
    fn fed(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails() -> anyhow::Result<u8> {
        Err(anyhow::anyhow!("not root"))
    }

    #[test]
    fn the_choice_decides_what_a_failure_means() {
        assert_eq!(resolve(TrafficChoice::Auto, || Ok(7)).unwrap(), Ok(7));
        assert_eq!(resolve(TrafficChoice::Veth, || Ok(7)).unwrap(), Ok(7));
        let why = resolve(TrafficChoice::Auto, fails).unwrap().unwrap_err();
        assert!(why.contains("not root"), "{why}");
        let err = resolve(TrafficChoice::Veth, fails).unwrap_err();
        assert!(format!("{err:#}").contains("--traffic veth"), "{err:#}");
        let mut tried = false;
        let synthetic = resolve(TrafficChoice::Synthetic, || {
            tried = true;
            Ok(7)
        });
        assert_eq!(synthetic.unwrap(), Err("--traffic synthetic".to_owned()));
        assert!(!tried, "synthetic never touches the network");
    }

    #[test]
    fn modes_describe_themselves() {
        let veth = TrafficMode::Veth {
            names: vec!["vmpd-12-0".into(), "vmpd-12-3".into()],
        };
        assert!(
            veth.describe()
                .starts_with("real packets on veth vmpd-12-0, vmpd-12-3 ")
        );
        assert_eq!(veth.plan(), RatePlan::VETH);
        let synthetic = TrafficMode::Synthetic { why: "x".into() };
        assert!(synthetic.describe().starts_with("synthetic counters"));
        assert_eq!(synthetic.plan(), RatePlan::SYNTHETIC);
    }

    #[tokio::test]
    async fn the_synthetic_pump_advances_the_counter_and_stops() {
        let counters = FakeTrafficCounters::new();
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let stop = Arc::new(AtomicBool::new(false));
        let plan = RatePlan {
            quiet_pps: 1_000,
            peak_pps: 1_000,
            ..RatePlan::SYNTHETIC
        };
        let feed = Feed::Synthetic(counters.clone());
        let mut running = start(feed, mac, plan, Duration::from_secs(4), stop.clone()).unwrap();
        for _ in 0..500 {
            if running.sent.load(Ordering::Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(running.sent.load(Ordering::Relaxed) > 0, "nothing fed");
        assert_eq!(running.fed_pps.load(Ordering::Relaxed), 1_000);
        let mut c = counters.clone();
        let samples = c.sample(&[mac]).unwrap();
        assert!(
            matches!(samples[0].reading, vmpowerd::traffic::MacReading::Found { rx_packets, .. } if rx_packets > 0),
            "{samples:?}"
        );
        stop.store(true, Ordering::Relaxed);
        assert_eq!(running.join(), None);
    }
}

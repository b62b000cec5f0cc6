//! The simulated guests. The demo plays QEMU: it listens at
//! `<channel-dir>/<vm>.0`, accepts the daemon's connection, and hands the
//! stream to a guest thread that speaks the real protocol through the
//! guest library ([`vmpower_guest::Channel`]), as an application in a VM
//! would.
//!
//! ## Behavior
//! - A traffic guest sends its TRAFFIC policy once (its thresholds from the
//!   traffic mode's [`RatePlan`]); its feed ([`crate::feed`]) makes the
//!   traffic: real packets on its veth pair, or a synthetic counter.
//! - A time guest re-sends its TIME policy at each simulated hour with its
//!   hour sets rotated around the real local hour (see [`scenario::rotate`]):
//!   the daemon reads the real clock; what is accelerated is the guest's day.
//! - A direct guest sends up/down/min/max requests for each vCPU in turn.
//! - Each guest keeps a one-line status for the view and counts refusals
//!   and errors; it stops when told to, within one poll step.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::UnixListener;
use vmpower_guest::{Channel, ChannelConfig, ChannelError};
use vmpower_proto::{MacAddr, MacList, Policy, PolicyKind, VcpuList, VmName};

use crate::feed::{self, Feed, Running};
use crate::scenario::{self, RatePlan, Role, VmPlan};

/// How often a guest checks whether to stop.
const STEP: Duration = Duration::from_millis(20);

/// The timing of the script.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// One cycle of the traffic.
    pub traffic_period: Duration,
    /// One simulated hour.
    pub hour: Duration,
    /// Between two direct requests.
    pub direct_every: Duration,
}

/// What a guest did last, for the view and the summary.
#[derive(Debug, Clone, Default)]
pub struct GuestStatus {
    /// One line for the screen.
    pub last: String,
    /// Requests and policies the host accepted.
    pub acks: u64,
    /// Refused ones (NACK).
    pub nacks: u64,
    /// Transport errors, with the latest message.
    pub errors: u64,
    /// The latest error message.
    pub last_error: Option<String>,
}

/// A running guest.
#[derive(Debug)]
pub struct Guest {
    /// Its VM.
    pub plan: VmPlan,
    /// Its status.
    pub status: Arc<Mutex<GuestStatus>>,
    /// The rate fed to its MAC (traffic guests), in pps.
    pub fed_pps: Arc<AtomicU64>,
    /// Packets fed to its MAC so far (traffic guests).
    pub sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    feed: Option<Running>,
}

impl Guest {
    /// The status now.
    pub fn status(&self) -> GuestStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits for its thread and its feed (after `stop` is set); a feed's
    /// failure is counted as an error of the guest.
    pub fn join(&mut self) {
        let failed = self.feed.as_mut().and_then(Running::join);
        if let Some(e) = failed {
            let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            s.errors += 1;
            s.last_error = Some(format!("traffic feed: {e}"));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The MAC of VM `index` in the run of process `pid`: locally
/// administered, unique per run (demos running side by side never share
/// a MAC on the host) and per VM.
pub fn mac_of(pid: u32, index: usize) -> MacAddr {
    let [_, p1, p2, p3] = pid.to_be_bytes();
    let [.., hi, lo] = u64::try_from(index).unwrap_or(u64::MAX).to_be_bytes();
    MacAddr([0x02, p1, p2, p3, hi, lo])
}

/// How a guest's traffic is made (traffic guests only).
#[derive(Debug, Clone)]
pub struct Traffic {
    /// The feed.
    pub feed: Feed,
    /// The rates and thresholds.
    pub plan: RatePlan,
}

/// Listens at `socket`, waits for the daemon, and starts `plan`'s guest;
/// a traffic guest's feed is `traffic`.
pub async fn start(
    plan: VmPlan,
    mac: MacAddr,
    listener: UnixListener,
    traffic: Option<Traffic>,
    timing: Timing,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Guest> {
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .with_context(|| format!("the daemon did not connect to {}'s channel", plan.name))?
        .context("accepting the daemon's connection")?;
    // The listener may go: the daemon is connected.
    drop(listener);
    let stream = stream
        .into_std()
        .context("handing the stream to the guest")?;
    stream
        .set_nonblocking(false)
        .context("making the stream blocking")?;
    let status = Arc::new(Mutex::new(GuestStatus::default()));
    let rates = traffic.as_ref().map_or(RatePlan::SYNTHETIC, |t| t.plan);
    let config = ChannelConfig {
        vm_name: VmName::new(&plan.name).unwrap_or_default(),
        timeout: Duration::from_secs(2),
        ..ChannelConfig::default()
    };
    let channel = Channel::from_stream(stream, 0, config)
        .with_context(|| format!("opening {}'s channel", plan.name))?;
    let script = Script {
        plan: plan.clone(),
        mac,
        rates,
        timing,
        status: status.clone(),
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(plan.name.clone())
        .spawn(move || script.run(channel))
        .context("starting a guest thread")?;
    let feed = match traffic.filter(|_| plan.role == Role::Traffic) {
        Some(t) => {
            let period = timing.traffic_period;
            Some(feed::start(t.feed, mac, t.plan, period, stop)?)
        }
        None => None,
    };
    let zero = || Arc::new(AtomicU64::new(0));
    Ok(Guest {
        plan,
        status,
        fed_pps: feed.as_ref().map_or_else(zero, |f| f.fed_pps.clone()),
        sent: feed.as_ref().map_or_else(zero, |f| f.sent.clone()),
        thread: Some(thread),
        feed,
    })
}

/// One guest's behaviour.
struct Script {
    plan: VmPlan,
    mac: MacAddr,
    rates: RatePlan,
    timing: Timing,
    status: Arc<Mutex<GuestStatus>>,
    stop: Arc<AtomicBool>,
}

impl Script {
    fn note(&self, what: String, result: Result<(), ChannelError>) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => {
                s.acks += 1;
                s.last = format!("{what}: ACK");
            }
            Err(ChannelError::HostRefused { .. }) => {
                s.nacks += 1;
                s.last = format!("{what}: NACK");
            }
            Err(e) => {
                s.errors += 1;
                s.last = format!("{what}: error");
                s.last_error = Some(e.to_string());
            }
        }
    }

    fn policy(&self, kind: PolicyKind) -> Policy {
        let vcpus: Vec<u8> = (0..self.plan.pcpus.len())
            .filter_map(|v| u8::try_from(v).ok())
            .collect();
        Policy::new(kind, VcpuList::from_slice(&vcpus).unwrap_or_default())
    }

    /// Sleeps until `until` or until told to stop; false when stopping.
    fn wait(&self, until: Instant) -> bool {
        while Instant::now() < until {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(STEP.min(until - Instant::now()));
        }
        !self.stop.load(Ordering::Relaxed)
    }

    fn run(self, mut channel: Channel) {
        let start = Instant::now();
        match self.plan.role {
            Role::Traffic => {
                let policy = Policy {
                    macs: MacList::from_slice(&[self.mac]).unwrap_or_default(),
                    traffic: self.rates.thresholds,
                    ..self.policy(PolicyKind::Traffic)
                };
                let what = format!(
                    "TRAFFIC policy (MAC {}, medium ≥ {} kpps, max ≥ {} kpps)",
                    self.mac,
                    self.rates.thresholds.avg_pps / 1000,
                    self.rates.thresholds.max_pps / 1000
                );
                self.note(what, channel.send_policy(&policy));
                while self.wait(Instant::now() + STEP * 5) {}
            }
            Role::Time => self.run_time(&mut channel, start),
            Role::Direct => {
                let vcpus = u64::try_from(self.plan.pcpus.len()).unwrap_or(1).max(1);
                let mut n: u64 = 0;
                loop {
                    let vcpu = n % vcpus;
                    let unit = scenario::direct_request(n / vcpus);
                    let what = format!("vCPU {vcpu} {}", unit_name(unit));
                    self.note(what, channel.set_cpu_freq(vcpu, unit));
                    n += 1;
                    let next = start + self.timing.direct_every.mul_f64(n as f64 / vcpus as f64);
                    if !self.wait(next) {
                        break;
                    }
                }
            }
        }
    }

    fn run_time(&self, channel: &mut Channel, start: Instant) {
        let Ok(day) = scenario::simulated_day() else {
            self.note("TIME policy".into(), Ok(()));
            return;
        };
        let mut sent: Option<u8> = None;
        loop {
            let sim = scenario::simulated_hour(start.elapsed(), self.timing.hour);
            if sent != Some(sim) {
                let local = jiff::tz::TimeZone::system().to_datetime(jiff::Timestamp::now());
                let real = u8::try_from(local.hour()).unwrap_or(0);
                if let Ok(hours) = scenario::rotate(&day, sim, real) {
                    let policy = Policy {
                        hours,
                        ..self.policy(PolicyKind::Time)
                    };
                    let class = if day.busy.contains(sim) {
                        "busy"
                    } else if day.quiet.contains(sim) {
                        "quiet"
                    } else {
                        "other"
                    };
                    let what = format!("TIME policy, simulated {sim:02}:00 ({class})");
                    self.note(what, channel.send_policy(&policy));
                }
                sent = Some(sim);
            }
            if !self.wait(Instant::now() + STEP * 5) {
                break;
            }
        }
    }
}

fn unit_name(unit: vmpower_proto::ScalingUnit) -> &'static str {
    use vmpower_proto::ScalingUnit as U;
    match unit {
        U::ScaleUp => "up",
        U::ScaleDown => "down",
        U::ScaleMax => "max",
        U::ScaleMin => "min",
        U::EnableTurbo => "turbo on",
        U::DisableTurbo => "turbo off",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_local_and_distinct_per_run_and_vm() {
        assert_ne!(mac_of(7, 0), mac_of(7, 3));
        assert_ne!(mac_of(7, 0), mac_of(8, 0));
        assert_eq!(mac_of(0x12_3456, 1).to_string(), "02:12:34:56:00:01");
        assert_eq!(mac_of(1, 258).to_string(), "02:00:00:01:01:02");
    }
}

//! The loops that feed policies their inputs: traffic counters every
//! sampling interval while a policy needs them, and the wall clock at each
//! local hour boundary of a TIME policy. With no policy they sleep until
//! one is set: an idle daemon does not wake up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use vmpower_engine::VmId;
use vmpower_proto::{MacAddr, MacList};

use crate::SharedCore;
use crate::traffic::{MacRates, MacReading, MissingReason, SourceKind, TrafficCounters};

/// Where each MAC's counter was last found (or why not), for `policy show`.
pub type MacSources = Arc<Mutex<BTreeMap<MacAddr, MacSource>>>;

/// Where one MAC's counter was found, or why it was not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacSource {
    /// Found at this source.
    Found(SourceKind),
    /// Not found, for this reason.
    Missing(MissingReason),
}

impl std::fmt::Display for MacSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MacSource::Found(source) => write!(f, "{source}"),
            MacSource::Missing(why) => write!(f, "waiting: {why}"),
        }
    }
}

/// Ticks after which the traffic sampler re-reads the policy list even
/// when no change was announced.
const RELIST_TICKS: u32 = 10;

/// Samples traffic for every policy that needs it, every `interval`.
pub async fn run_traffic(
    core: SharedCore,
    counters: Box<dyn TrafficCounters>,
    interval: Duration,
    sources: MacSources,
) {
    let mut changed = crate::lock(&core).watch_policies();
    let mut counters = Some(counters);
    let mut rates = MacRates::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The policies and their MACs, re-read when a policy is set or
    // removed, and every `RELIST_TICKS` ticks in case a change came by
    // another way (a VM removed with its policy).
    let mut policies: Vec<(VmId, MacList)> = Vec::new();
    let mut macs: Arc<Vec<MacAddr>> = Arc::default();
    let mut ticks_since_list = RELIST_TICKS;
    loop {
        if ticks_since_list >= RELIST_TICKS || changed.has_changed().unwrap_or(true) {
            changed.borrow_and_update();
            ticks_since_list = 0;
            policies = crate::lock(&core).engine.traffic_policies();
            let mut list: Vec<MacAddr> = policies
                .iter()
                .flat_map(|(_, m)| m.as_slice().iter().copied())
                .collect();
            list.sort();
            list.dedup();
            rates.retain(|m| list.binary_search(&m).is_ok());
            sources
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|m, _| list.binary_search(m).is_ok());
            macs = Arc::new(list);
        }
        if policies.is_empty() {
            if changed.changed().await.is_err() {
                return;
            }
            ticks_since_list = RELIST_TICKS;
            tick.reset();
            continue;
        }
        tick.tick().await;
        ticks_since_list += 1;
        let Some(mut c) = counters.take() else { return };
        let job = Arc::clone(&macs);
        let Ok((back, result, at)) = tokio::task::spawn_blocking(move || {
            let r = c.sample(&job);
            (c, r, Instant::now())
        })
        .await
        else {
            warn!("traffic sampler task failed");
            return;
        };
        counters = Some(back);
        let samples = match result {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "traffic sampling failed");
                continue;
            }
        };
        rates.update(&samples, at);
        let missing: BTreeMap<MacAddr, String> = samples
            .iter()
            .filter_map(|s| match &s.reading {
                MacReading::Missing(why) => Some((s.mac, why.to_string())),
                MacReading::Found { .. } => None,
            })
            .collect();
        {
            // Formatted only when a MAC's source changes (most ticks: none).
            let mut shown = sources.lock().unwrap_or_else(PoisonError::into_inner);
            for s in &samples {
                let known = shown.get(&s.mac);
                let same = match (&s.reading, known) {
                    (MacReading::Found { source, .. }, Some(MacSource::Found(k))) => source == k,
                    (MacReading::Missing(why), Some(MacSource::Missing(k))) => why == k,
                    _ => false,
                };
                if !same {
                    let entry = match &s.reading {
                        MacReading::Found { source, .. } => MacSource::Found(source.clone()),
                        MacReading::Missing(why) => MacSource::Missing(why.clone()),
                    };
                    shown.insert(s.mac, entry);
                }
            }
        }
        let tick: Vec<_> = policies
            .iter()
            .map(|(vm, list)| (vm.clone(), policy_rate(&rates, &missing, list.as_slice())))
            .collect();
        let mut core = crate::lock(&core);
        let now = core.now();
        core.stats.policy_evaluated("traffic", tick.len());
        let actions = core.engine.traffic_tick(tick, now);
        core.execute(&actions);
    }
}

/// A policy's rate: the sum over its MACs, or why there is none.
fn policy_rate(
    rates: &MacRates,
    missing: &BTreeMap<MacAddr, String>,
    macs: &[MacAddr],
) -> Result<f64, String> {
    if let Some(r) = rates.policy_rate_pps(macs) {
        return Ok(r);
    }
    let why: Vec<String> = macs
        .iter()
        .filter_map(|m| missing.get(m).map(|w| format!("MAC {m}: {w}")))
        .collect();
    if why.is_empty() {
        Err("waiting for a second counter reading".to_owned())
    } else {
        Err(why.join("; "))
    }
}

/// Re-evaluates TIME policies at every local hour boundary (and when
/// policies change). Sleeps at most `MAX_SLEEP` at a time so a wall-clock
/// jump is noticed.
pub async fn run_time(core: SharedCore) {
    const MAX_SLEEP: Duration = Duration::from_secs(600);
    let mut changed = crate::lock(&core).watch_policies();
    loop {
        let next = {
            let mut core = crate::lock(&core);
            let wall = jiff::Timestamp::now();
            let now = core.now();
            core.engine.set_wall_clock(wall);
            let time_policies = usize::from(core.engine.next_time_event(wall).is_some());
            core.stats.policy_evaluated("time", time_policies);
            let actions = core.engine.time_tick(wall, now);
            core.execute(&actions);
            core.engine.next_time_event(wall).map(|t| {
                let left = t.duration_since(wall);
                Duration::try_from(left).unwrap_or(Duration::ZERO)
            })
        };
        match next {
            Some(wait) => {
                let wait = (wait + Duration::from_millis(1)).min(MAX_SLEEP);
                debug!(?wait, "next TIME evaluation");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    r = changed.changed() => if r.is_err() { return },
                }
            }
            None => {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

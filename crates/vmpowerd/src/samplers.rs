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
use crate::traffic::{
    MacRates, MacReading, MissingReason, SampleBatch, SourceKind, TrafficCounters,
};

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
    // The last answer, refreshed in place by the counters when the links
    // did not change, and the reasons of its missing MACs.
    let mut batch = Some(SampleBatch::new());
    let mut missing: BTreeMap<MacAddr, String> = BTreeMap::new();
    // Per policy, the positions of its MACs in `macs` (and so in the
    // batch), and each batch sample's latest rate.
    let mut slots: Vec<Vec<usize>> = Vec::new();
    let mut fed: Vec<Option<f64>> = Vec::new();
    loop {
        if ticks_since_list >= RELIST_TICKS || changed.has_changed().unwrap_or(true) {
            changed.borrow_and_update();
            ticks_since_list = 0;
            let listed = crate::lock(&core).engine.traffic_policies();
            if listed != policies {
                policies = listed;
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
                slots = policies
                    .iter()
                    .map(|(_, m)| {
                        m.as_slice()
                            .iter()
                            .filter_map(|mac| list.binary_search(mac).ok())
                            .collect()
                    })
                    .collect();
                macs = Arc::new(list);
            }
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
        let (Some(mut c), Some(mut b)) = (counters.take(), batch.take()) else {
            return;
        };
        let job = Arc::clone(&macs);
        let Ok((back, back_batch, result, at)) = tokio::task::spawn_blocking(move || {
            let r = c.sample_into(&job, &mut b);
            (c, b, r, Instant::now())
        })
        .await
        else {
            warn!("traffic sampler task failed");
            return;
        };
        counters = Some(back);
        let batch = batch.insert(back_batch);
        let sources_changed = match result {
            Ok(changed) => changed,
            Err(e) => {
                warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "traffic sampling failed");
                continue;
            }
        };
        let samples = batch.samples();
        rates.update_into(samples, at, &mut fed);
        if sources_changed {
            // Only when a MAC's source or reason changed (most ticks: none).
            missing = samples
                .iter()
                .filter_map(|s| match &s.reading {
                    MacReading::Missing(why) => Some((s.mac, why.to_string())),
                    MacReading::Found { .. } => None,
                })
                .collect();
            let mut shown = sources.lock().unwrap_or_else(PoisonError::into_inner);
            for s in samples {
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
            .zip(&slots)
            .map(|((vm, list), at)| (vm.clone(), policy_rate(&fed, at, &missing, list.as_slice())))
            .collect();
        let mut core = crate::lock(&core);
        let now = core.now();
        core.stats.policy_evaluated("traffic", tick.len());
        let actions = core.engine.traffic_tick(tick, now);
        core.execute(&actions);
    }
}

/// A policy's rate: the sum over its MACs (their rates `fed[slot]` for
/// each of its `slots`) of those that have one, or why none has.
fn policy_rate(
    fed: &[Option<f64>],
    slots: &[usize],
    missing: &BTreeMap<MacAddr, String>,
    macs: &[MacAddr],
) -> Result<f64, String> {
    let mut rates = slots
        .iter()
        .filter_map(|&i| fed.get(i).copied().flatten())
        .peekable();
    if rates.peek().is_some() {
        return Ok(rates.sum());
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

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    #[test]
    fn policy_rate_sums_the_rates_its_slots_have() {
        let fed = [Some(100.0), None, Some(20.5)];
        let none = BTreeMap::new();
        assert_eq!(policy_rate(&fed, &[0, 2], &none, &[A, B]), Ok(120.5));
        assert_eq!(policy_rate(&fed, &[1, 2], &none, &[A, B]), Ok(20.5));
        // A slot past the batch (never expected) counts as no rate.
        assert_eq!(policy_rate(&fed, &[0, 7], &none, &[A, B]), Ok(100.0));
    }

    #[test]
    fn policy_without_any_rate_says_why() {
        let fed = [None, None];
        let none = BTreeMap::new();
        assert_eq!(
            policy_rate(&fed, &[0, 1], &none, &[A, B]),
            Err("waiting for a second counter reading".to_owned())
        );
        let missing: BTreeMap<MacAddr, String> = [(B, "gone".to_owned())].into_iter().collect();
        let why = policy_rate(&fed, &[0, 1], &missing, &[A, B]).unwrap_err();
        assert_eq!(why, format!("MAC {B}: gone"));
    }
}

//! The loops that feed policies their inputs: traffic counters every
//! sampling interval while a policy needs them (on a thread of its own,
//! one wakeup per tick, recording the rates it measures), and the wall
//! clock at each local hour boundary of a TIME policy. With no policy they sleep until one is set: an idle
//! daemon does not wake up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use vmpower_engine::policy::drops::TrafficReading;
use vmpower_engine::{Action, VmId};
use vmpower_proto::{MacAddr, MacList};

use crate::SharedCore;
use crate::traffic::record::{RateBlock, RateRecorder, RecordSettings};
use crate::traffic::{
    MacRates, MacReading, MacSample, MissingReason, SampleBatch, SourceKind, TrafficCounters,
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

/// The traffic sampler's thread (see [`spawn_traffic`]); dropping the
/// handle stops the thread and waits for it.
pub struct TrafficSampler {
    stop: Arc<Stop>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How the sampler's thread is told to end, wherever it waits.
#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    /// Wakes the wait for a policy change.
    notify: tokio::sync::Notify,
}

impl TrafficSampler {
    /// Stops the thread and waits for it to end (at most one tick's work).
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.stop.flag.store(true, Ordering::Release);
        self.stop.notify.notify_one();
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            if thread.join().is_err() {
                warn!("traffic sampler thread panicked");
            }
        }
    }
}

impl Drop for TrafficSampler {
    fn drop(&mut self) {
        self.end();
    }
}

/// Samples traffic for every policy that needs it, every `interval`, on a
/// thread of its own: it sleeps to the next tick, reads the counters (a
/// blocking netlink exchange) and runs the engine's tick, so one tick is
/// one wakeup (no timer task, no hop to a blocking pool and back). With
/// no TRAFFIC policy it waits for a policy change. With `record`, each
/// policy's rate also goes to the rate record (written at the end of each
/// block and at stop). Must be called within the daemon's tokio runtime
/// (the wait for a change is a watch channel).
pub fn spawn_traffic(
    core: SharedCore,
    counters: Box<dyn TrafficCounters>,
    interval: Duration,
    sources: MacSources,
    record: Option<RecordSettings>,
) -> std::io::Result<TrafficSampler> {
    let stop = Arc::new(Stop::default());
    let runtime = tokio::runtime::Handle::current();
    let thread = std::thread::Builder::new()
        .name("vmpowerd-traffic".to_owned())
        .spawn({
            let stop = Arc::clone(&stop);
            move || {
                let _entered = runtime.enter();
                let mut state = TrafficState {
                    recorder: record.map(|r| (RateRecorder::new(r.step_ms), r.keep_ms)),
                    ..TrafficState::default()
                };
                run_traffic(
                    &core, counters, interval, &sources, &stop, &runtime, &mut state,
                );
                state.flush_record(&core);
            }
        })?;
    Ok(TrafficSampler {
        stop,
        thread: Some(thread),
    })
}

/// The sampler's loop (see [`spawn_traffic`]).
fn run_traffic(
    core: &SharedCore,
    mut counters: Box<dyn TrafficCounters>,
    interval: Duration,
    sources: &MacSources,
    stop: &Stop,
    runtime: &tokio::runtime::Handle,
    state: &mut TrafficState,
) {
    let mut changed = crate::lock(core).watch_policies();
    let mut ticks_since_list = RELIST_TICKS;
    let mut next = Instant::now() + interval;
    while !stop.flag.load(Ordering::Acquire) {
        // The policies and their MACs are re-read when a policy is set or
        // removed, and every `RELIST_TICKS` ticks in case a change came by
        // another way (a VM removed with its policy).
        if ticks_since_list >= RELIST_TICKS || changed.has_changed().unwrap_or(true) {
            changed.borrow_and_update();
            ticks_since_list = 0;
            let listed = crate::lock(core).engine.traffic_policies();
            state.set_policies(listed, sources);
        }
        if state.policies.is_empty() {
            // Blocks closed when the last policy went: written before the
            // sampler sleeps, not at some later tick.
            state.write_record(&mut crate::lock(core), unix_millis());
            let more = runtime.block_on(async {
                tokio::select! {
                    r = changed.changed() => r.is_ok(),
                    () = stop.notify.notified() => false,
                }
            });
            if !more {
                return;
            }
            ticks_since_list = RELIST_TICKS;
            next = Instant::now() + interval;
            continue;
        }
        if !sleep_until(next, stop) {
            return;
        }
        // A late tick delays the next ones rather than bunching them.
        let now = Instant::now();
        next += interval;
        if next <= now {
            next = now + interval;
        }
        ticks_since_list += 1;
        state.tick(core, counters.as_mut(), sources);
    }
}

/// Sleeps until `deadline`; false when told to stop meanwhile.
fn sleep_until(deadline: Instant, stop: &Stop) -> bool {
    loop {
        if stop.flag.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// What the traffic sampler keeps from tick to tick.
#[derive(Default)]
struct TrafficState {
    rates: MacRates,
    /// The TRAFFIC policies and their MACs, as last listed.
    policies: Vec<(VmId, MacList)>,
    /// Every MAC of `policies`, sorted, without duplicates.
    macs: Vec<MacAddr>,
    /// The last answer, refreshed in place by the counters when the links
    /// did not change.
    batch: SampleBatch,
    /// The reasons of the batch's missing MACs.
    missing: BTreeMap<MacAddr, String>,
    /// Per policy, the positions of its MACs in `macs` (and so in the
    /// batch).
    slots: Vec<Vec<usize>>,
    /// Each batch sample's latest rate.
    fed: Vec<Option<f64>>,
    /// The packets each batch sample counted this tick.
    packets: Vec<u64>,
    /// Each batch sample's drops per second (`None`: no drop counter) and
    /// drops counted this tick.
    drops: Vec<(Option<f64>, u64)>,
    /// The engine's input, one entry per policy: the VMs are set with the
    /// policies, each tick rewrites only the readings.
    input: Vec<(VmId, Result<TrafficReading, String>)>,
    /// The engine's output, kept from tick to tick.
    actions: Vec<Action>,
    /// The rate record and how long it keeps a block (ms), when on.
    recorder: Option<(RateRecorder, u64)>,
    /// Blocks of the record not yet written.
    blocks: Vec<RateBlock>,
}

impl TrafficState {
    /// Takes the listed policies, if they changed: their MACs, the rates
    /// and shown sources kept for those MACs only, their batch positions.
    fn set_policies(&mut self, listed: Vec<(VmId, MacList)>, sources: &MacSources) {
        if listed == self.policies {
            return;
        }
        self.policies = listed;
        if let Some((recorder, _)) = &mut self.recorder {
            let sampled = &self.policies;
            recorder.retain(|vm| sampled.iter().any(|(v, _)| v == vm), &mut self.blocks);
        }
        let mut list: Vec<MacAddr> = self
            .policies
            .iter()
            .flat_map(|(_, m)| m.as_slice().iter().copied())
            .collect();
        list.sort();
        list.dedup();
        self.rates.retain(|m| list.binary_search(&m).is_ok());
        sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|m, _| list.binary_search(m).is_ok());
        self.slots = self
            .policies
            .iter()
            .map(|(_, m)| {
                m.as_slice()
                    .iter()
                    .filter_map(|mac| list.binary_search(mac).ok())
                    .collect()
            })
            .collect();
        self.macs = list;
        self.input = self
            .policies
            .iter()
            .map(|(vm, _)| (vm.clone(), Err(String::new())))
            .collect();
    }

    /// One tick: the counters, the rates, the engine's traffic tick.
    fn tick(
        &mut self,
        core: &SharedCore,
        counters: &mut dyn TrafficCounters,
        sources: &MacSources,
    ) {
        let result = counters.sample_into(&self.macs, &mut self.batch);
        let at = Instant::now();
        let sources_changed = match result {
            Ok(changed) => changed,
            Err(e) => {
                warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "traffic sampling failed");
                return;
            }
        };
        let samples = self.batch.samples();
        self.rates.update_counting(
            samples,
            at,
            &mut self.fed,
            &mut self.packets,
            &mut self.drops,
        );
        if sources_changed {
            // Only when a MAC's source or reason changed (most ticks: none).
            self.missing = samples
                .iter()
                .filter_map(|s| match &s.reading {
                    MacReading::Missing(why) => Some((s.mac, why.to_string())),
                    MacReading::Found { .. } => None,
                })
                .collect();
            show_sources(samples, sources);
        }
        let policies = self.policies.iter().zip(&self.slots);
        for ((_, rate), ((_, list), at)) in self.input.iter_mut().zip(policies) {
            *rate = policy_rate(&self.fed, at, &self.missing, list.as_slice()).map(|rate_pps| {
                TrafficReading {
                    rate_pps,
                    drops_pps: at
                        .iter()
                        .filter_map(|&i| self.drops.get(i).and_then(|d| d.0))
                        .sum(),
                }
            });
        }
        let at_ms = self.recorder.as_ref().map(|_| unix_millis());
        if let (Some((recorder, _)), Some(at_ms)) = (&mut self.recorder, at_ms) {
            for (vm, rate) in &self.input {
                let rate = rate.as_ref().ok().map(|r| r.rate_pps);
                recorder.observe(vm, rate, at_ms, &mut self.blocks);
            }
        }
        let mut core = crate::lock(core);
        if let Some(at_ms) = at_ms {
            self.write_record(&mut core, at_ms);
        }
        for ((vm, _), slots) in self.policies.iter().zip(&self.slots) {
            let counted: u64 = slots.iter().filter_map(|&i| self.packets.get(i)).sum();
            core.stats.vm_packets_counted(vm, counted);
            let dropped: u64 = slots
                .iter()
                .filter_map(|&i| self.drops.get(i))
                .map(|d| d.1)
                .sum();
            core.stats.vm_drops_counted(vm, dropped);
        }
        let now = core.now();
        core.stats.policy_evaluated("traffic", self.input.len());
        self.actions.clear();
        core.engine
            .traffic_tick_into(&self.input, now, &mut self.actions);
        core.execute(&self.actions);
        persist_learned(&mut core);
    }
}

impl TrafficState {
    /// Writes the record's finished blocks, if any, dropping those older
    /// than its retention; a failure is logged and the blocks dropped (a
    /// record, not a promise: the sampler must not grow without bound).
    fn write_record(&mut self, core: &mut crate::core::Core, now_ms: u64) {
        let Some((_, keep_ms)) = &self.recorder else {
            return;
        };
        if self.blocks.is_empty() {
            return;
        }
        if let Some(store) = core.store.as_mut()
            && let Err(e) = store.append_rate_blocks(&self.blocks, now_ms.saturating_sub(*keep_ms))
        {
            warn!(error = %e, blocks = self.blocks.len(), "cannot write the traffic rate record");
        }
        self.blocks.clear();
    }

    /// Closes the record's open blocks and writes them (at stop).
    fn flush_record(&mut self, core: &SharedCore) {
        if let Some((recorder, _)) = &mut self.recorder {
            recorder.flush(&mut self.blocks);
            self.write_record(&mut crate::lock(core), unix_millis());
        }
    }
}

/// The wall clock, unix ms (the record's time base, as the history's).
fn unix_millis() -> u64 {
    jiff::Timestamp::now()
        .as_millisecond()
        .try_into()
        .unwrap_or(0)
}

/// Updates what `policy show` says of each MAC's source, where it changed.
fn show_sources(samples: &[MacSample], sources: &MacSources) {
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

/// Writes what TRAFFIC policies learned from drops this tick into their
/// stored extensions (`learned`), so a restart keeps it; a failure is
/// logged (the policy learns again).
fn persist_learned(core: &mut crate::core::Core) {
    for (vm, learned) in core.engine.take_learned() {
        let Some(store) = core.store.as_mut() else {
            return;
        };
        let value = serde_json::to_value(learned).unwrap_or_default();
        if let Err(e) = store.put_policy_extension(&vm, "learned", value) {
            warn!(%vm, error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot persist what the policy learned");
        }
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
pub async fn run_time(core: SharedCore, clock: std::sync::Arc<dyn crate::backends::Clock>) {
    const MAX_SLEEP: Duration = Duration::from_secs(600);
    let mut changed = crate::lock(&core).watch_policies();
    loop {
        let next = {
            let mut core = crate::lock(&core);
            let wall = clock.wall();
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

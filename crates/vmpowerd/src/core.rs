//! The daemon's shared state: the engine, the cpufreq façade and the
//! counters, behind one lock. Channel tasks hand it whole records; it asks
//! the engine, applies the engine's actions through cpufreq, logs each
//! decision, and encodes the reply.
//!
//! ## Behavior
//! - An ACK becomes a NACK when a write the decision needed failed; the
//!   engine is told ([`Engine::write_failed`]) so its view stays true.
//! - Decisions are logged at info with VM, vCPU, pCPU, old and new
//!   frequency and the reason. For a guest's records the line, the
//!   history entry and the last-decision counters wait until the channel
//!   has sent its replies ([`Core::flush_decisions`]): the ACK says the
//!   pCPU was written, and the bookkeeping stays out of the round trip.
//! - Lines a guest can cause go through per-VM [`LogLimiter`]s: one for
//!   the decisions of its requests and policy, one for the rest of what
//!   its records cause (refusals, name mismatches, CONNECT, policies, and
//!   failed writes, whose lines name the VM and vCPU as decisions do);
//!   the lines of pCPUs given back have a budget per pCPU. Suppressed
//!   lines are counted; history entries are never suppressed.

use std::time::Instant;

use tracing::{info, warn};
use vmpower_api::answers::{DecisionInputs, GivenBack, PolicyInputs};
use vmpower_cpufreq::levels::Level;
use vmpower_cpufreq::sysfs::format_u32;
use vmpower_cpufreq::{CpuFreq, CpuId, Khz};
use vmpower_engine::{
    Action, ChannelId, CoreKey, Decision, Engine, FreqChange, Note, OperatorAction, Rejection,
    Reply, Trigger, VmId, Winner,
};
use vmpower_proto::contract::{Contract, NackReason};
use vmpower_proto::layout::{
    RecordHead, encode_caps_list, encode_freq_list, encode_hello_reply, encode_nack_with_reason,
    encode_verdict,
};
use vmpower_proto::stream::Frame;
use vmpower_proto::{Layout, ScalingUnit, Verdict};

use crate::ratelog::LogLimiter;
use crate::state::PolicyFrom;
use crate::stats::Stats;
use crate::store::{HistoryEntry, PolicySource, Store, StoredPolicy};

/// The history's reason for a CPU no VM wants any more.
pub const RELEASED: &str = "released: no VM wants it; original governor and bounds restored";
/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The engine refused it.
    #[error(transparent)]
    Refused(#[from] Rejection),
    /// The frequency could not be written (details in the log).
    #[error("writing the frequency of {0} failed")]
    WriteFailed(CpuId),
}

/// Engine, cpufreq and counters: everything a decision touches.
#[derive(Debug)]
pub struct Core {
    /// The decisions.
    pub engine: Engine,
    /// The frequency control.
    pub cpufreq: CpuFreq,
    /// Counters for status and metrics.
    pub stats: Stats,
    started: Instant,
    /// The time of the batch being handled ([`Core::begin_batch`]).
    batch_now: std::time::Duration,
    /// Budget of the lines a guest's records cause (refusals, mismatches,
    /// CONNECT, policies set).
    guest_log: LogLimiter,
    /// Budget of the decision lines a guest can cause: those of its
    /// requests and of its VM's policy (its history entries are all kept).
    decision_log: LogLimiter,
    /// Budget of the lines about another writer of a pCPU's files.
    pub(crate) foreign_log: LogLimiter<CpuId>,
    /// What to do when another writer changes a held pCPU's files.
    pub foreign_writer: crate::config::ForeignWriter,
    /// Budget of the "given back" lines per pCPU: a guest that sets and
    /// removes its policy again and again takes and gives back its pCPUs.
    release_log: LogLimiter<CpuId>,
    /// Bumped whenever a policy is set or removed: wakes the samplers.
    policies_changed: tokio::sync::watch::Sender<u64>,
    /// The state database (policies, settings, history), once opened.
    pub store: Option<Store>,
    /// Decisions not yet written to the history.
    history_buf: Vec<HistoryEntry>,
    /// Wakes the history writer when the first entry is buffered.
    history_pending: std::sync::Arc<tokio::sync::Notify>,
    /// Changes applied for guests' records whose log line and history
    /// entry wait for the replies to be sent: (change, old kHz, new kHz).
    deferred: Vec<(FreqChange, u32, u32)>,
    /// How long a channel keeps reading after a request before it goes
    /// back to epoll (`channel_busy_poll_us`; zero: never).
    pub channel_busy_poll: std::time::Duration,
    /// Wakes the busyness staleness timer ([`crate::busyness`]) when it
    /// sleeps without a deadline and a report is accepted.
    busy_wake: std::sync::Arc<tokio::sync::Notify>,
    busy_timer_idle: bool,
}

impl Core {
    /// A core over a ready engine and cpufreq façade.
    pub fn new(engine: Engine, cpufreq: CpuFreq) -> Self {
        Core {
            engine,
            cpufreq,
            stats: Stats::default(),
            started: Instant::now(),
            batch_now: std::time::Duration::ZERO,
            guest_log: LogLimiter::default(),
            decision_log: LogLimiter::default(),
            release_log: LogLimiter::default(),
            foreign_log: LogLimiter::default(),
            foreign_writer: crate::config::ForeignWriter::default(),
            policies_changed: tokio::sync::watch::Sender::new(0),
            store: None,
            history_buf: Vec::new(),
            history_pending: std::sync::Arc::new(tokio::sync::Notify::new()),
            deferred: Vec::new(),
            channel_busy_poll: std::time::Duration::ZERO,
            busy_wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            busy_timer_idle: true,
        }
    }

    /// What wakes the busyness staleness timer.
    pub fn busy_wake(&self) -> std::sync::Arc<tokio::sync::Notify> {
        std::sync::Arc::clone(&self.busy_wake)
    }

    /// Whether the staleness timer sleeps without a deadline (the next
    /// accepted report wakes it).
    pub fn set_busy_timer_idle(&mut self, idle: bool) {
        self.busy_timer_idle = idle;
    }

    /// Persists `vm`'s policy as the engine holds it, with its source.
    /// Called before the guest's ACK is sent: an accepted policy survives
    /// a crash.
    pub fn persist_policy(&mut self, vm: &VmId, source: PolicySource) {
        let Some(st) = self.engine.policy_status(vm) else {
            return;
        };
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let mut stored = StoredPolicy::new(st.spec.policy, source, unix_seconds());
        if let Ok(serde_json::Value::Object(ext)) = serde_json::to_value(&st.spec.ext) {
            stored.extensions = ext;
        }
        if let Err(e) = store.put_policy(vm, &stored) {
            warn!(%vm, error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot persist policy");
        }
    }

    /// Forgets `vm`'s persisted policy (durably: an operator's doing).
    pub fn forget_policy(&mut self, vm: &VmId) {
        self.forget_with(vm, Store::remove_policy);
    }

    /// Persists `vm`'s accepted policy with the source of the door it came
    /// `from` (a restored one is already persisted).
    pub fn policy_kept(&mut self, from: &PolicyFrom, vm: &VmId) {
        if let Some(source) = from.stored() {
            self.persist_policy(vm, source);
        }
    }

    /// Forgets `vm`'s removed policy: durably, unless a guest removed it
    /// (a guest may remove again and again; at worst the next start
    /// applies a policy it removed).
    pub fn policy_forgotten(&mut self, from: &PolicyFrom, vm: &VmId) {
        match from {
            PolicyFrom::Guest(_) => self.forget_with(vm, Store::remove_guest_policy),
            _ => self.forget_policy(vm),
        }
    }

    fn forget_with(
        &mut self,
        vm: &VmId,
        remove: fn(&mut Store, &VmId) -> Result<bool, crate::store::StoreError>,
    ) {
        if let Some(store) = self.store.as_mut()
            && let Err(e) = remove(store, vm)
        {
            warn!(%vm, error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot forget policy");
        }
    }

    /// Persists a VM's operator settings.
    pub fn persist_settings(&mut self, vm: &VmId) {
        let (Some(settings), Some(store)) = (self.engine.settings(vm), self.store.as_mut()) else {
            return;
        };
        if let Err(e) = store.put_settings(vm, &settings) {
            warn!(%vm, error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot persist VM settings");
        }
    }

    /// Whether a line `vm`'s guest causes may be logged now (its VM's
    /// budget): `Some(lines suppressed since the last one)`, or `None`
    /// (counted as suppressed).
    pub fn guest_line(&mut self, vm: &VmId) -> Option<u64> {
        let now = self.now();
        self.guest_log
            .allow(vm, now, &mut self.stats.log_lines_suppressed)
    }

    /// A receiver that sees every policy change.
    pub fn watch_policies(&self) -> tokio::sync::watch::Receiver<u64> {
        self.policies_changed.subscribe()
    }

    /// Tells the samplers that the set of policies changed.
    pub fn policies_changed(&self) {
        self.policies_changed.send_modify(|g| *g += 1);
    }

    /// Reads the clocks once for a batch of records (one `read()`):
    /// decisions within a batch share the time.
    pub fn begin_batch(&mut self) {
        self.batch_now = self.started.elapsed();
        self.engine.set_wall_clock(jiff::Timestamp::now());
    }

    /// Monotonic time since start, the engine's clock.
    pub fn now(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Handles one record of a channel and appends the reply bytes to
    /// `out` (nothing when no reply is due).
    pub fn handle_frame(
        &mut self,
        channel: &ChannelId,
        layout: Layout,
        frame: &Frame<'_>,
        out: &mut Vec<u8>,
    ) {
        let request = frame
            .request
            .as_ref()
            .map_err(|e| Rejection::Malformed(e.to_string()));
        let head = RecordHead::of(frame.raw);
        let (decision, contract) =
            self.engine
                .handle_record(self.batch_now, channel, head, request);
        self.stats.count_request(&channel.vm, frame, &decision);
        if self.busy_timer_idle
            && head.command == vmpower_proto::layout::offsets::command::BUSYNESS
            && self.engine.busyness_deadline().is_some()
        {
            self.busy_timer_idle = false;
            self.busy_wake.notify_one();
        }
        let ok = self.execute_deferring(&decision.actions, true);
        self.log_notes(&channel.vm, &decision);
        for note in &decision.notes {
            match note {
                // The guest door: kept and forgotten as every door's
                // policy is (see crate::state).
                Note::PolicySet(vm, _) => self.policy_kept(&PolicyFrom::Guest(channel.clone()), vm),
                Note::PolicyRemoved(vm) => {
                    self.policy_forgotten(&PolicyFrom::Guest(channel.clone()), vm)
                }
                _ => {}
            }
        }
        match decision.reply {
            Reply::None => {}
            Reply::Verdict(v) => {
                let v = if ok { v } else { Verdict::Nack };
                let encoded = match (v, contract) {
                    (Verdict::Nack, Contract::Native(_)) => {
                        let reason = decision.nack_reason().unwrap_or(NackReason::WriteFailed);
                        encode_nack_with_reason(frame.raw, layout, reason)
                    }
                    _ => encode_verdict(frame.raw, layout, v),
                };
                match encoded {
                    Ok(bytes) => out.extend_from_slice(bytes.as_slice()),
                    Err(e) => warn!(%channel, error = %e, "cannot encode verdict"),
                }
            }
            Reply::Hello(version) => match encode_hello_reply(frame.raw, layout, version) {
                Ok(bytes) => out.extend_from_slice(bytes.as_slice()),
                Err(e) => warn!(%channel, error = %e, "cannot encode HELLO reply"),
            },
            Reply::FreqList(r) => match encode_freq_list(&r) {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(e) => warn!(%channel, error = %e, "cannot encode FREQ_LIST"),
            },
            Reply::Caps(r) => match encode_caps_list(&r) {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(e) => warn!(%channel, error = %e, "cannot encode CAPS_LIST"),
            },
        }
    }

    /// An operator's direct command on a host CPU (vmpowerctl, DPDK's
    /// FIFO): an override of the VMs' arbitration for its domain.
    pub fn operator(&mut self, cpu: CpuId, unit: ScalingUnit) -> Result<(), OperatorError> {
        let actions = self.engine.operator_apply(cpu, unit)?;
        let ok = self.execute(&actions);
        self.foreign_reclaimed();
        if ok {
            Ok(())
        } else {
            Err(OperatorError::WriteFailed(cpu))
        }
    }

    /// Hands an operator-held CPU back to the VMs' arbitration.
    pub fn operator_release(&mut self, cpu: CpuId) -> Result<(), OperatorError> {
        let actions = self.engine.operator_release(cpu)?;
        if self.execute(&actions) {
            Ok(())
        } else {
            Err(OperatorError::WriteFailed(cpu))
        }
    }

    /// Applies the engine's actions; false if any write failed.
    pub fn execute(&mut self, actions: &[Action]) -> bool {
        self.execute_deferring(actions, false)
    }

    /// Whether changes wait for [`Core::flush_decisions`].
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Writes the log lines, history entries and last-decision counters
    /// of the changes applied for guests' records; the channel calls it
    /// once its replies are out.
    pub fn flush_decisions(&mut self) {
        let mut deferred = std::mem::take(&mut self.deferred);
        for (change, old_khz, new_khz) in deferred.drain(..) {
            self.decided(&change, old_khz, new_khz);
        }
        self.deferred = deferred;
    }

    /// The log line, counters and history entry of one applied change.
    fn decided(&mut self, change: &FreqChange, old_khz: u32, new_khz: u32) {
        let now = self.now();
        let line = Line::budgeted(
            &mut self.decision_log,
            &mut self.stats.log_lines_suppressed,
            &change.trigger,
            now,
        );
        let (vm, reason, inputs) = log_change(change, old_khz, new_khz, line);
        self.stats.decided(vm.map(VmId::as_str), change, &reason);
        let vm = vm.cloned();
        self.record_history(change, vm, reason, inputs);
    }

    /// [`Core::execute`]; with `defer`, a successful change's log line and
    /// history entry wait for [`Core::flush_decisions`].
    fn execute_deferring(&mut self, actions: &[Action], defer: bool) -> bool {
        let mut ok = true;
        for action in actions {
            match action {
                Action::Set(change) => {
                    let mut applied = self.cpufreq.apply(change.cpu, Level::Index(change.index));
                    // Another writer changed the domain: handled as
                    // `foreign_writer` says; once retaken, tried again.
                    if let Err(e) = &applied
                        && e.is_foreign_write()
                        && self.foreign_write(change.cpu, e)
                    {
                        applied = self.cpufreq.apply(change.cpu, Level::Index(change.index));
                    }
                    match applied {
                        Ok(outcome) => {
                            self.stats.sysfs_writes += u64::from(outcome.changed);
                            let (old, new) = (outcome.old_khz.0, outcome.new_khz.0);
                            if defer {
                                self.deferred.push((change.clone(), old, new));
                            } else {
                                self.decided(change, old, new);
                            }
                        }
                        Err(e) => {
                            ok = false;
                            self.stats.sysfs_failed(
                                vm_and_vcpu(&change.trigger).0,
                                "write",
                                format_args!("pCPU {} to {} kHz: {e}", change.cpu.0, change.to.0),
                            );
                            self.engine.write_failed(change);
                            // A guest can cause failing writes as often as
                            // it asks while the file stays broken.
                            let now = self.now();
                            let line = Line::budgeted(
                                &mut self.guest_log,
                                &mut self.stats.log_lines_suppressed,
                                &change.trigger,
                                now,
                            );
                            if let Line::Log { suppressed } = line {
                                let (vm, vcpu) = vm_and_vcpu(&change.trigger);
                                let mut digits = [0u8; 10];
                                warn!(
                                    vm = vm.map_or("-", VmId::as_str),
                                    vcpu = vcpu.map_or("-", |v| format_u32(v, &mut digits)),
                                    pcpu = change.cpu.0,
                                    new_khz = change.to.0,
                                    error = %format_args!("{:#}", anyhow::Error::from(e)),
                                    suppressed,
                                    "frequency change failed"
                                );
                            }
                        }
                    }
                }
                Action::Release { cpu, domain } => self.release(*cpu, domain),
            }
        }
        ok
    }

    fn release(&mut self, cpu: CpuId, domain: &[CpuId]) {
        match self.cpufreq.release(cpu) {
            Ok(how) => {
                if matches!(how, vmpower_cpufreq::control::Released::Restored) {
                    let old = self.engine.known_khz(cpu);
                    self.record_given_back(cpu, old, RELEASED);
                }
                let now = self.now();
                let budget = &mut self.stats.log_lines_suppressed;
                if let Some(suppressed) = self.release_log.allow(&cpu, now, budget) {
                    info!(pcpu = cpu.0, ?domain, outcome = ?how, suppressed, "pCPU given back");
                }
            }
            Err(e) => {
                self.stats
                    .sysfs_failed(None, "release", format_args!("pCPU {}: {e}", cpu.0));
                warn!(pcpu = cpu.0, error = %format_args!("{:#}", anyhow::Error::from(e)), "release failed");
            }
        }
    }

    fn log_notes(&mut self, vm: &VmId, decision: &Decision) {
        let now = self.now();
        for note in &decision.notes {
            if let Note::NameMismatch { .. } = note {
                self.stats.name_mismatches += 1;
            }
            // Every line here is one a guest's record caused.
            let budget = &mut self.stats.log_lines_suppressed;
            let Some(suppressed) = self.guest_log.allow(vm, now, budget) else {
                if matches!(note, Note::PolicySet(..) | Note::PolicyRemoved(_)) {
                    self.policies_changed();
                }
                continue;
            };
            match note {
                Note::Connected(ch) => {
                    info!(channel = %ch, suppressed, "guest connected (CONNECT)")
                }
                Note::NameMismatch { channel, claimed } => {
                    warn!(%channel, claimed, suppressed, "packet names another VM; ignored, the channel's VM is used");
                }
                Note::PolicySet(vm, policy) => {
                    info!(%vm, kind = ?policy.kind, cores = ?policy.cores, suppressed, "policy accepted");
                    self.policies_changed();
                }
                Note::PolicyRemoved(vm) => {
                    info!(%vm, suppressed, "policy removed");
                    self.policies_changed();
                }
                Note::Rejected(r) => {
                    warn!(vm = %vm, reason = r.label(), detail = %r, suppressed, "request refused");
                }
                Note::ContractChosen(ch, contract) => {
                    info!(channel = %ch, contract = contract.label(), suppressed, "guest chose its reply contract (HELLO)");
                }
            }
        }
    }
}

impl Core {
    /// One history entry per frequency change.
    fn record_history(
        &mut self,
        change: &FreqChange,
        vm: Option<VmId>,
        reason: String,
        inputs: DecisionInputs,
    ) {
        self.push_history(HistoryEntry {
            at_ms: unix_millis(),
            vm,
            pcpu: change.cpu,
            old: Some(change.from),
            new: change.to,
            reason,
            inputs,
        });
    }

    /// Buffers a history entry for the writer (nothing without a store).
    fn push_history(&mut self, entry: HistoryEntry) {
        if self.store.is_none() {
            return;
        }
        if self.history_buf.is_empty() {
            self.history_pending.notify_one();
        }
        self.history_buf.push(entry);
        if self.history_buf.len() >= HISTORY_BATCH {
            self.flush_history();
        }
    }

    /// The history entry of a CPU given back to its original governor
    /// (released, restored at stop or at start): from `old` (the last
    /// frequency set, when known) to what it reads now (when unreadable,
    /// `old`, else the frequency the engine knows).
    pub fn record_given_back(&mut self, cpu: CpuId, old: Option<Khz>, reason: &str) {
        let now = self.cpufreq.current(cpu).ok().flatten();
        let Some(new) = now.or(old).or_else(|| self.engine.known_khz(cpu)) else {
            return;
        };
        self.push_history(HistoryEntry {
            at_ms: unix_millis(),
            vm: None,
            pcpu: cpu,
            old,
            new,
            reason: reason.to_owned(),
            inputs: DecisionInputs::GivenBack(GivenBack {}),
        });
    }

    /// What the history writer waits on (see `run`).
    pub fn history_pending(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.history_pending.clone()
    }

    /// Writes the buffered history entries in one transaction. The daemon
    /// calls it periodically and at stop: history is not a promise, and
    /// one write per decision would sit in every request's latency.
    pub fn flush_history(&mut self) {
        self.flush_decisions();
        if self.history_buf.is_empty() {
            return;
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if let Err(e) = store.append_history_batch(&self.history_buf) {
            warn!(
                entries = self.history_buf.len(),
                error = %format_args!("{:#}", anyhow::Error::from(e)),
                "cannot record history"
            );
        }
        self.history_buf.clear();
    }
}

/// History entries buffered before a write is forced.
const HISTORY_BATCH: usize = 4096;

fn unix_millis() -> u64 {
    jiff::Timestamp::now()
        .as_millisecond()
        .try_into()
        .unwrap_or(0)
}

fn unix_seconds() -> u64 {
    jiff::Timestamp::now().as_second().try_into().unwrap_or(0)
}

/// Separates the reason from the arbitration's winner in a history reason.
const DECIDED_BY: &str = "; decided by ";

/// Whether a decision's log line is written.
#[derive(Debug, Clone, Copy)]
enum Line {
    /// Written; for a guest-caused one, with the lines its VM's budget
    /// suppressed since the last one.
    Log { suppressed: Option<u64> },
    /// Over its VM's budget.
    Skip,
}

impl Line {
    /// Whether the line of a change caused by `trigger` is written: always
    /// when no guest caused it, else within its VM's budget in `limiter`
    /// (a skipped line is counted in `suppressed_total`).
    fn budgeted(
        limiter: &mut LogLimiter,
        suppressed_total: &mut u64,
        trigger: &Trigger,
        now: std::time::Duration,
    ) -> Line {
        let Some(vm) = guest_caused(trigger) else {
            return Line::Log { suppressed: None };
        };
        match limiter.allow(vm, now, suppressed_total) {
            Some(n) => Line::Log {
                suppressed: Some(n),
            },
            None => Line::Skip,
        }
    }
}

/// The VM and vCPU a change was for, as far as its trigger names them
/// (a physical-core request or an operator's command names no vCPU).
fn vm_and_vcpu(trigger: &Trigger) -> (Option<&VmId>, Option<u32>) {
    match trigger {
        Trigger::Request {
            vm,
            core: CoreKey::Vcpu(v),
            ..
        } => (Some(vm), Some(*v)),
        Trigger::Busyness { vm, vcpu, .. } => (Some(vm), Some(*vcpu)),
        Trigger::Request { vm, .. }
        | Trigger::BusynessStale(vm)
        | Trigger::Placement(vm)
        | Trigger::VmRemoved(vm)
        | Trigger::Policy { vm, .. }
        | Trigger::PolicyRemoved(vm) => (Some(vm), None),
        Trigger::Operator(_) => (None, None),
    }
}

/// The VM whose guest caused a change, when one did: its request, its
/// policy's reading of its own traffic, time or counters, or the removal
/// of its policy.
fn guest_caused(trigger: &Trigger) -> Option<&VmId> {
    match trigger {
        // A removed policy may be the guest's doing (POLICY_REMOVE, again
        // and again): budgeted like the rest (an operator's is rare).
        Trigger::Request { vm, .. }
        | Trigger::Policy { vm, .. }
        | Trigger::PolicyRemoved(vm)
        | Trigger::Busyness { vm, .. } => Some(vm),
        _ => None,
    }
}

/// One info line per frequency decision, unless `line` says to skip it;
/// returns the VM, the reason (as the history keeps it: what happened,
/// then who won the arbitration) and the inputs for the history. One
/// allocation for the text: the log line's `reason` and `decided_by` are
/// slices of it.
fn log_change(
    change: &FreqChange,
    old_khz: u32,
    new_khz: u32,
    line: Line,
) -> (Option<&VmId>, String, DecisionInputs) {
    use std::fmt::Write as _;
    let mut inputs = DecisionInputs::Unmeasured;
    let mut reason = String::with_capacity(64);
    // Writing into a String cannot fail.
    match &change.trigger {
        Trigger::Request { unit, .. } => {
            let _ = write!(reason, "request {unit:?}");
        }
        Trigger::Placement(_) => reason.push_str("vCPUs re-pinned"),
        Trigger::VmRemoved(_) => reason.push_str("VM removed"),
        Trigger::Operator(OperatorAction::Unit(u)) => {
            let _ = write!(reason, "operator {u:?}");
        }
        Trigger::Operator(OperatorAction::Release) => reason.push_str("operator release"),
        Trigger::Policy { input, .. } => {
            inputs = DecisionInputs::Policy(PolicyInputs {
                branch_ratio: input.branch_ratio,
                drops_pps: input.drops.map(|d| d.drops_pps),
                hour: input.hour,
                rate_pps: input.rate_pps,
            });
            let _ = write!(reason, "policy {:?}", input.kind);
            if let Some(d) = input.drops {
                let _ = write!(
                    reason,
                    " drops: {:.0}/s at level {:?}, rate {:.0} pps",
                    d.drops_pps, d.level, d.rate_pps
                );
            }
            if let Some(rate) = input.rate_pps {
                let _ = write!(reason, " rate {rate:.0} pps");
            }
            if let Some(hour) = input.hour {
                let _ = write!(reason, " hour {hour}");
            }
        }
        Trigger::PolicyRemoved(_) => reason.push_str("policy removed"),
        Trigger::Busyness { permille, .. } => {
            inputs = DecisionInputs::Other(serde_json::json!({ "busy_permille": permille }));
            let _ = write!(reason, "busyness {permille} per mille");
        }
        Trigger::BusynessStale(_) => reason.push_str("busyness reports stale: max"),
    }
    let (vm, vcpu) = vm_and_vcpu(&change.trigger);
    let split = reason.len();
    reason.push_str(DECIDED_BY);
    match &change.winner {
        Winner::Vm(v) => {
            let _ = write!(reason, "want of {v}");
        }
        Winner::DefaultMax => reason.push_str("a sharing VM without requests (max)"),
        Winner::Operator => reason.push_str("operator"),
    }
    let Line::Log { suppressed } = line else {
        return (vm, reason, inputs);
    };
    let mut digits = [0u8; 10];
    info!(
        vm = vm.map_or("-", VmId::as_str),
        vcpu = vcpu.map_or("-", |v| format_u32(v, &mut digits)),
        pcpu = change.cpu.0,
        old_khz,
        new_khz,
        reason = &reason[..split],
        decided_by = &reason[split + DECIDED_BY.len()..],
        suppressed,
        "frequency changed"
    );
    (vm, reason, inputs)
}

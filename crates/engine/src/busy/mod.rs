//! The busyness controller: a guest on the native contract v2 reports how
//! busy its vCPUs' poll loops are ([`vmpower_proto::BusynessReport`]), and
//! the engine keeps each reported vCPU inside a target band with the least
//! frequency ([`controller`]); the result is one more want on the vCPU's
//! pCPU, arbitrated with every other VM's as any want is.
//!
//! ## Behavior
//! - **Who is controlled.** Implicitly, a vCPU whose guest reports it: no
//!   policy kind is needed, and DPDK's policies are unchanged. A vCPU that
//!   the VM's policy owns is not the controller's: a report naming it is
//!   refused (`policy_owns_core`). A direct CPU_POWER request on a
//!   controlled vCPU replaces its want until the next report (the latest
//!   source wins for a vCPU).
//! - **Untrusted.** A report is accepted only on a channel granted native
//!   v2 or later, at no more than [`BusyConfig::max_rate`] per VM (a token
//!   bucket, as channels have), and only if every entry names one of the
//!   VM's own, placed vCPUs (as a direct request must); one bad entry
//!   refuses the whole report. Refusals are [`Rejection`]s: counted and
//!   logged by the daemon, never answered.
//! - **Fail safe.** A VM silent for [`BusyConfig::stale_after`] its
//!   (clamped) report interval has every vCPU the controller still drives
//!   put at max, once, with [`Trigger::BusynessStale`]; the next report
//!   takes them back. [`Engine::busyness_deadline`] says when to look.
//! - Sequence numbers only count gaps (wrapping), for status.
//!
//! No clock: every call takes `now`.

pub mod controller;

use std::collections::{BTreeMap, BTreeSet};

use vmpower_cpufreq::CpuId;
use vmpower_cpufreq::levels::Level;
use vmpower_proto::{BusynessReport, CoreType};

use crate::engine::{Action, Engine, Trigger};
use crate::ids::{Vcpu, VmId};
use crate::ratelimit::TokenBucket;
use crate::reject::Rejection;
use crate::settings::Now;
use crate::vm::{CoreKey, Want};
pub use controller::{BusyConfig, BusyConfigError, VcpuControl};

/// One VM's busyness reports and the controller's state for its vCPUs.
#[derive(Debug, Clone)]
pub(crate) struct BusyState {
    bucket: TokenBucket,
    /// The guest's interval as last reported (ms, unclamped).
    interval_ms: u32,
    /// When the last accepted report came.
    last_report: Now,
    last_seq: Option<u64>,
    /// Whether the reported vCPUs were put at max for silence (cleared by
    /// the next report).
    stale: bool,
    counters: BusyCounters,
    rx_missed: Option<u64>,
    vcpus: BTreeMap<Vcpu, VcpuControl>,
}

/// Counts of one VM's reports, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusyCounters {
    /// Reports accepted.
    pub accepted: u64,
    /// Reports missing by sequence number (gaps between accepted ones).
    pub gaps: u64,
    /// Times the VM fell silent and its vCPUs were put at max.
    pub stale_events: u64,
}

/// One VM's busyness control, as status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BusynessStatus {
    /// The guest's report interval, clamped as the host uses it (ms).
    pub interval_ms: u64,
    /// Time since its last accepted report.
    pub age: std::time::Duration,
    /// Whether its vCPUs are at max for silence.
    pub stale: bool,
    /// Its counters.
    pub counters: BusyCounters,
    /// The guest's rx-missed packets, as last reported (if known).
    pub rx_missed: Option<u64>,
    /// Per controlled vCPU: its last busyness (per mille) and the index
    /// the controller wants in its pCPU's table.
    pub vcpus: Vec<(Vcpu, u16, usize)>,
}

/// What a staleness check found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaleOutcome {
    /// The frequency changes.
    pub actions: Vec<Action>,
    /// The VMs that just fell silent.
    pub stale: Vec<VmId>,
}

impl Engine {
    /// Handles an accepted-for-decoding busyness report of `vm_id` (the
    /// channel's VM, already known to exist). See the module doc.
    pub(crate) fn busyness(
        &mut self,
        vm_id: &VmId,
        report: &BusynessReport,
        now: Now,
    ) -> Result<Vec<Action>, Rejection> {
        let config = self.config.busyness;
        let vm = self.vms.get_mut(vm_id).expect("the caller checked the VM");
        let state = vm.busy.get_or_insert_with(|| BusyState {
            bucket: TokenBucket::new(config.max_rate, now),
            interval_ms: report.interval_ms(),
            last_report: now,
            last_seq: None,
            stale: false,
            counters: BusyCounters::default(),
            rx_missed: None,
            vcpus: BTreeMap::new(),
        });
        if !state.bucket.try_take(now) {
            return Err(Rejection::ReportRateExceeded);
        }
        // Every entry is checked before any is applied.
        let vm = &self.vms[vm_id];
        let mut plan = Vec::with_capacity(report.entries().len());
        for entry in report.entries() {
            let (key, targets) = self.resolve(vm, u64::from(entry.vcpu), CoreType::Virtual)?;
            if self.policy_owns(vm_id, key) {
                return Err(Rejection::PolicyOwnsCore(format!("vCPU {}", entry.vcpu)));
            }
            plan.push((Vcpu::from(entry.vcpu), entry.permille, targets));
        }
        let vm = self.vms.get_mut(vm_id).expect("checked above");
        let state = vm.busy.as_mut().expect("inserted above");
        if let Some(last) = state.last_seq {
            let gap = report.seq().wrapping_sub(last).wrapping_sub(1);
            // A restarted guest (sequence back to 0) is not a gap.
            if gap < u64::from(u32::MAX) {
                state.counters.gaps += gap;
            }
        }
        state.last_seq = Some(report.seq());
        state.interval_ms = report.interval_ms();
        state.last_report = now;
        state.stale = false;
        state.counters.accepted += 1;
        state.rx_missed = report.rx_missed();

        let mut actions = Vec::new();
        let mut new_key = false;
        for (vcpu, permille, targets) in plan {
            let first = *targets.iter().next().expect("resolve gives a pCPU");
            let domain = self.host.domain_of(first).expect("resolve checked it");
            let at = domain.applied.unwrap_or(domain.known_index);
            let vm = self.vms.get_mut(vm_id).expect("checked above");
            let state = vm.busy.as_mut().expect("inserted above");
            let old = state.vcpus.get(&vcpu).copied();
            let busy = f64::from(permille) / 1000.0;
            let index = controller::next_index(&config, &domain.table, at, old.as_ref(), busy, now);
            let changed = old.is_none_or(|o| o.index != index);
            state.vcpus.insert(
                vcpu,
                VcpuControl {
                    index,
                    changed: if changed {
                        Some(now)
                    } else {
                        old.and_then(|o| o.changed)
                    },
                    permille,
                },
            );
            let key = CoreKey::Vcpu(vcpu);
            new_key |= vm.wants.get(&key).is_none();
            let want = Want::Busy(Level::Index(index));
            if vm.wants.set(key, Some(want))
                || targets
                    .iter()
                    .any(|c| self.host.leader(*c).is_some_and(|l| self.host.dirty(l)))
            {
                if new_key {
                    self.reindex(vm_id);
                    new_key = false;
                }
                let trigger = Trigger::Busyness {
                    vm: vm_id.clone(),
                    vcpu,
                    permille,
                };
                actions.extend(self.rearbitrate(&targets, &trigger));
            }
        }
        Ok(actions)
    }

    /// When the next VM falls silent if no report comes first (`None`:
    /// no VM reports, or every reporting VM is already at max): the
    /// daemon's timer sleeps until then, and not at all without reports.
    pub fn busyness_deadline(&self) -> Option<Now> {
        let config = &self.config.busyness;
        self.vms
            .values()
            .filter_map(|vm| vm.busy.as_ref())
            .filter(|b| !b.stale && !b.vcpus.is_empty())
            .map(|b| b.last_report + config.stale_after(b.interval_ms))
            .min()
    }

    /// Puts at max the vCPUs of every VM silent past its bound at `now`,
    /// once per silence.
    pub fn busyness_check(&mut self, now: Now) -> StaleOutcome {
        let config = self.config.busyness;
        let mut out = StaleOutcome::default();
        let silent: Vec<VmId> = self
            .vms
            .iter()
            .filter(|(_, vm)| {
                vm.busy.as_ref().is_some_and(|b| {
                    !b.stale && now >= b.last_report + config.stale_after(b.interval_ms)
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for vm_id in silent {
            let vm = self.vms.get_mut(&vm_id).expect("listed above");
            let state = vm.busy.as_mut().expect("filtered above");
            state.stale = true;
            state.counters.stale_events += 1;
            // The controller restarts from max: the next report steps
            // down from there only after the cooldown.
            for control in state.vcpus.values_mut() {
                control.index = 0;
                control.changed = Some(now);
            }
            let vcpus: Vec<Vcpu> = state.vcpus.keys().copied().collect();
            let mut touched = BTreeSet::<CpuId>::new();
            for vcpu in &vcpus {
                let key = CoreKey::Vcpu(*vcpu);
                // Only the vCPUs the controller still drives.
                if matches!(vm.wants.get(&key), Some(Want::Busy(_)))
                    && vm.wants.set(key, Some(Want::Busy(Level::Max)))
                {
                    touched.extend(vm.targets(key));
                }
            }
            out.actions
                .extend(self.rearbitrate(&touched, &Trigger::BusynessStale(vm_id.clone())));
            out.stale.push(vm_id);
        }
        out
    }

    /// `vm`'s busyness control, if its guest ever reported.
    pub fn busyness_status(&self, vm: &VmId, now: Now) -> Option<BusynessStatus> {
        let b = self.vms.get(vm)?.busy.as_ref()?;
        let config = &self.config.busyness;
        Some(BusynessStatus {
            interval_ms: u64::try_from(
                config.stale_after(b.interval_ms).as_millis() / u128::from(config.stale_intervals),
            )
            .unwrap_or(u64::MAX),
            age: now.saturating_sub(b.last_report),
            stale: b.stale,
            counters: b.counters,
            rx_missed: b.rx_missed,
            vcpus: b
                .vcpus
                .iter()
                .map(|(v, c)| (*v, c.permille, c.index))
                .collect(),
        })
    }
}

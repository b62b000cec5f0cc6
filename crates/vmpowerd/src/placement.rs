//! Glue between the inventory and the engine: for each VM, what the
//! inventory needs to find it (its channel sockets, its QMP socket, the
//! QEMU pid found last time), and the refresh that hands the merged
//! placement to the engine.
//!
//! ## Behavior
//! - A VM's placement is refreshed when one of its channel sockets
//!   appears, after `set-pcpu`, on libvirt events, and every
//!   `placement_refresh_ms`; the engine re-arbitrates only what changed.
//! - Sources that fail are logged at debug level; the merge still uses the
//!   others (see [`crate::inventory`] for the precedence).
//! - `set-pcpu` never makes a VM wider than it is: a vCPU at or past the
//!   VM's known size is refused ([`SetPcpuError::NoSuchVcpu`]). The size
//!   is the one a live source (QMP, libvirt, /proc) reports, else the
//!   length of the config's `pcpus` list. A VM neither knows (declared by
//!   `add-vm`, QEMU not found) takes any vCPU up to
//!   [`crate::inventory::static_map::MAX_VCPU`] (KVM's 4096 vCPUs per VM).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{debug, info};
use vmpower_cpufreq::CpuId;
use vmpower_engine::{Vcpu, VmId};

use crate::SharedCore;
use crate::config::Config;
use crate::inventory::{
    Inventory, PlacementSourceError, ProcfsPlacement, QmpPlacement, StaticMapError,
    StaticPlacement, Tid, VcpuPlacement, VmPlacement, VmTarget,
};

/// Why `set-pcpu` was refused.
#[derive(Debug, thiserror::Error)]
pub enum SetPcpuError {
    /// The vCPU is at or past the VM's known size.
    #[error("VM {vm} has no vCPU {vcpu}: it has {vcpus} vCPU(s) ({known_from})")]
    NoSuchVcpu {
        /// The VM.
        vm: VmId,
        /// The vCPU asked for.
        vcpu: Vcpu,
        /// The VM's vCPU count.
        vcpus: usize,
        /// Where the count comes from.
        known_from: &'static str,
    },
    /// The inventory refused or could not apply the entry.
    #[error(transparent)]
    Source(#[from] PlacementSourceError),
}

/// How long a QMP exchange may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(2);

/// The inventory and what it needs to know of each VM.
pub struct Placer {
    inventory: Inventory,
    targets: Mutex<BTreeMap<VmId, VmTarget>>,
    /// Each VM's vCPU count from the config's `pcpus` list (VMs with one).
    config_vcpus: Mutex<BTreeMap<VmId, usize>>,
    /// Per VM: when its periodic refresh is next due, and how many periodic
    /// refreshes in a row found no live source.
    schedule: Mutex<BTreeMap<VmId, (Instant, u32)>>,
}

impl std::fmt::Debug for Placer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placer").finish_non_exhaustive()
    }
}

impl Placer {
    /// The inventory over /proc, QMP and the operator's map from the
    /// config (checked against `host_cpus`).
    pub fn new(
        config: &Config,
        host_cpus: BTreeSet<CpuId>,
        extra: Vec<Box<dyn VcpuPlacement>>,
    ) -> Result<Self, (String, StaticMapError)> {
        let mut operator = StaticPlacement::new(host_cpus);
        let mut targets = BTreeMap::new();
        let mut config_vcpus = BTreeMap::new();
        for (name, vm) in &config.vm {
            let id = VmId::new(name);
            if !vm.pcpus.is_empty() {
                config_vcpus.insert(id.clone(), vm.pcpus.len());
            }
            operator
                .set_all(&id, (0..).zip(vm.pcpus.iter().map(|p| CpuId(*p))))
                .map_err(|e| (name.clone(), e))?;
            let mut target = VmTarget::new(id.clone());
            if let Some(qmp) = &vm.qmp_socket {
                target = target.with_qmp_socket(qmp);
            }
            targets.insert(id, target);
        }
        let procfs = ProcfsPlacement::new(&config.proc_root);
        let mut live: Vec<Box<dyn VcpuPlacement>> = vec![
            Box::new(ProcfsPlacement::new(&config.proc_root)),
            Box::new(QmpPlacement::new(procfs, QMP_TIMEOUT)),
        ];
        live.extend(extra);
        Ok(Placer {
            inventory: Inventory::new(operator, live),
            targets: Mutex::new(targets),
            config_vcpus: Mutex::new(config_vcpus),
            schedule: Mutex::new(BTreeMap::new()),
        })
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, BTreeMap<VmId, VmTarget>> {
        self.targets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn target(&self, vm: &VmId) -> VmTarget {
        self.targets()
            .entry(vm.clone())
            .or_insert_with(|| VmTarget::new(vm.clone()))
            .clone()
    }

    /// Notes a channel socket of `vm` (the QEMU holding it is that VM's).
    pub fn note_socket(&self, vm: &VmId, path: &Path) {
        let mut targets = self.targets();
        let target = targets
            .entry(vm.clone())
            .or_insert_with(|| VmTarget::new(vm.clone()));
        if !target.channel_sockets.iter().any(|p| p == path) {
            target.channel_sockets.push(path.to_owned());
        }
    }

    /// Restores an operator entry (from the state database).
    pub fn operator_set(&self, vm: &VmId, vcpu: Vcpu, pcpu: CpuId) -> Result<(), StaticMapError> {
        self.inventory
            .with_operator_map(|m| m.set(vm, vcpu, pcpu))
            .map(|_| ())
    }

    /// Forgets a VM and the operator's entries for it.
    pub fn forget(&self, vm: &VmId) {
        self.targets().remove(vm);
        self.config_vcpus
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(vm);
        self.schedule
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(vm);
        self.inventory.with_operator_map(|m| m.remove_vm(vm));
    }

    /// Every VM with a target.
    pub fn vms(&self) -> Vec<VmId> {
        self.targets().keys().cloned().collect()
    }

    /// Re-reads `vm`'s placement and hands it to the engine.
    pub async fn refresh(&self, vm: &VmId, core: &SharedCore) -> VmPlacement {
        let target = self.target(vm);
        let found = self.inventory.refresh(&target).await;
        if let (Some(pid), Some(t)) = (found.pid, self.targets().get_mut(vm)) {
            t.pid = Some(pid);
        }
        for e in &found.errors {
            debug!(%vm, error = %e, "placement source failed");
        }
        let mut core = crate::lock(core);
        if core.engine.settings(vm).is_some() {
            let before = core.engine.placement(vm).cloned();
            let actions = core.engine.set_placement(vm, found.placement.clone());
            if before.as_ref() != Some(&found.placement) {
                info!(%vm, vcpus = found.placement.vcpus, placement = ?found.placement.affinity, "vCPU placement");
            }
            core.execute(&actions);
        }
        found
    }

    /// The periodic refresh: every VM whose turn it is. A VM whose QEMU
    /// no live source found (not started yet, or placed by the operator
    /// only) is retried with a backoff, doubling up to 16 periods, so that
    /// an idle host with many such VMs does not scan /proc constantly.
    pub async fn refresh_due(&self, vms: &[VmId], period: Duration, core: &SharedCore) {
        let now = Instant::now();
        for vm in vms {
            let due = self
                .schedule
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(vm)
                .is_none_or(|(at, _)| *at <= now);
            if !due {
                continue;
            }
            let found = self.refresh(vm, core).await;
            let live = found.pid.is_some() || !found.threads.is_empty();
            let mut schedule = self.schedule.lock().unwrap_or_else(PoisonError::into_inner);
            let misses = schedule.get(vm).map_or(0, |(_, m)| *m);
            let misses = if live { 0 } else { (misses + 1).min(4) };
            schedule.insert(vm.clone(), (now + period * (1 << misses), misses));
        }
    }

    /// `set-pcpu`: checks `vcpu` against the VM's known size, records the
    /// mapping, re-pins the live vCPU thread if one is known, and
    /// refreshes the VM. A refused vCPU changes nothing.
    pub async fn set_pcpu(
        &self,
        vm: &VmId,
        vcpu: Vcpu,
        pcpu: CpuId,
        core: &SharedCore,
    ) -> Result<Option<Tid>, SetPcpuError> {
        let target = self.target(vm);
        let now = self.inventory.refresh(&target).await;
        if let Some((vcpus, known_from)) = self.known_size(vm, &now)
            && usize::try_from(vcpu).is_ok_and(|v| v >= vcpus)
        {
            return Err(SetPcpuError::NoSuchVcpu {
                vm: vm.clone(),
                vcpu,
                vcpus,
                known_from,
            });
        }
        let result = self.inventory.set_pcpu(&target, vcpu, pcpu, &now);
        self.refresh(vm, core).await;
        result.map_err(SetPcpuError::from)
    }

    /// The VM's vCPU count and where it comes from, when anything but the
    /// operator's own `set-pcpu` entries knows it.
    fn known_size(&self, vm: &VmId, now: &VmPlacement) -> Option<(usize, &'static str)> {
        // A QEMU found without named vCPU threads reports 0: not a size.
        if let Some(live) = now.live_vcpus.filter(|n| *n > 0) {
            return Some((live, "as QEMU reports it through QMP, libvirt or /proc"));
        }
        self.config_vcpus
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(vm)
            .map(|n| (*n, "from the config's pcpus list"))
    }
}

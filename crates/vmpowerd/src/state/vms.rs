//! A VM's life through the state as the operator changes it: added,
//! removed, its settings (queries), its channels enabled or not, where its
//! vCPUs run. (A VM is also added when its channel socket appears or a
//! policy names it, when `auto_add_vms` is on: [`State::ensure_vm`].)

use tracing::debug;
use vmpower_cpufreq::CpuId;
use vmpower_engine::{ChannelId, Vcpu, VmId, VmSettings};

use super::State;
use crate::inventory::Tid;
use crate::placement::SetPcpuError;

/// Why an operator's change to a VM was not made, or not wholly.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// `add-vm` of a VM the engine knows.
    #[error("VM {0} is already known")]
    Known(VmId),
    /// Removed from the engine, but the state database kept it (the
    /// store's error, with its chain).
    #[error("VM removed but not from the state database: {0}")]
    NotForgotten(String),
    /// The placement source refused the mapping.
    #[error(transparent)]
    Placement(#[from] SetPcpuError),
    /// The mapping is in force, but the state database did not take it.
    #[error("mapping in force but not stored: {0}")]
    NotStored(String),
}

/// Where `set-pcpu` re-pinned the vCPU's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repinned {
    /// The thread re-pinned through /proc or QMP, if one was.
    pub thread: Option<Tid>,
    /// Whether libvirt re-pinned it (when nothing else did).
    pub by_libvirt: bool,
}

impl State {
    /// Adds a VM with default settings, persisted (`add-vm`).
    pub fn add_vm(&self, vm: &VmId) -> Result<(), VmError> {
        let mut core = self.lock();
        if core.engine.settings(vm).is_some() {
            return Err(VmError::Known(vm.clone()));
        }
        core.engine.add_vm(vm.clone(), Default::default());
        core.persist_settings(vm);
        Ok(())
    }

    /// Removes a VM (`rm-vm`): its channels stop being served, its
    /// placement and counters are forgotten, its CPUs follow the other VMs
    /// (or are given back), and its settings, mappings and policy leave
    /// the state database.
    pub fn remove_vm(&self, vm: &VmId) -> Result<(), VmError> {
        for path in self.vm_channel_paths(vm) {
            self.stop_serving(&path);
        }
        self.placer().forget(vm);
        let mut core = self.lock();
        let actions = core.engine.remove_vm(vm);
        core.execute(&actions);
        core.stats.forget_vm(vm);
        if let Some(store) = core.store.as_mut() {
            let gone = store
                .remove_settings(vm)
                .and_then(|_| store.remove_pcpus(vm))
                .and_then(|_| store.remove_policy(vm));
            if let Err(e) = gone {
                return Err(VmError::NotForgotten(format!(
                    "{:#}",
                    anyhow::Error::from(e)
                )));
            }
        }
        Ok(())
    }

    /// Allows or refuses the VM's frequency queries, persisted
    /// (`set-query`).
    pub fn set_queries(&self, vm: &VmId, enabled: bool) {
        let mut core = self.lock();
        let mut settings = core.engine.settings(vm).unwrap_or_default();
        settings.queries_allowed = enabled;
        core.engine.add_vm(vm.clone(), settings);
        core.persist_settings(vm);
    }

    /// Enables or disables the VM's channels `indices`
    /// (`set-channel-status`).
    pub fn set_channels_enabled(&self, vm: &VmId, indices: &[u32], enabled: bool) {
        let mut core = self.lock();
        let now = core.now();
        for index in indices {
            let channel = ChannelId {
                vm: vm.clone(),
                index: *index,
            };
            core.engine.set_channel_enabled(&channel, enabled, now);
        }
    }

    /// Sets the host CPU the VM's `vcpu` runs on (`set-pcpu`): recorded
    /// as the operator's mapping and persisted, the live thread re-pinned
    /// when it is known (through /proc or QMP, else libvirt).
    pub async fn set_placement(
        &self,
        vm: &VmId,
        vcpu: Vcpu,
        pcpu: CpuId,
    ) -> Result<Repinned, VmError> {
        let thread = self.placer().set_pcpu(vm, vcpu, pcpu, self.core()).await?;
        // A libvirt domain's vCPU is re-pinned through libvirt (which
        // keeps its cgroups and live XML right) when /proc or QMP did
        // not already move the thread.
        #[cfg(feature = "libvirt")]
        let by_libvirt = match (&thread, self.libvirt()) {
            (None, Some(source)) => {
                let pcpus = std::collections::BTreeSet::from([pcpu]);
                match source.pin_vcpu(vm, vcpu, &pcpus).await {
                    Ok(()) => {
                        self.placer().refresh(vm, self.core()).await;
                        true
                    }
                    Err(e) => {
                        debug!(%vm, error = %e, "not re-pinned through libvirt");
                        false
                    }
                }
            }
            _ => false,
        };
        #[cfg(not(feature = "libvirt"))]
        let by_libvirt = false;
        if let Some(store) = self.lock().store.as_mut() {
            store
                .put_pcpu(vm, vcpu, pcpu)
                .map_err(|e| VmError::NotStored(format!("{:#}", anyhow::Error::from(e))))?;
        }
        Ok(Repinned { thread, by_libvirt })
    }

    /// Sets a VM's settings as the configuration declares them (a reload),
    /// persisted as `set-query` persists them; adds the VM if it is new.
    pub fn set_vm_settings(&self, vm: &VmId, settings: VmSettings) {
        let mut core = self.lock();
        core.engine.add_vm(vm.clone(), settings);
        core.persist_settings(vm);
    }
}

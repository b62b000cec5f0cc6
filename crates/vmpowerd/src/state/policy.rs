//! A policy's life through the state, the same whichever door it came
//! through ([`PolicyFrom`]): turning an operator's [`PolicyFile`] into the
//! engine's [`PolicySpec`], applying it, persisting it, removing it.
//!
//! ## Behavior
//! - A policy for a VM the engine does not know adds the VM (default
//!   settings) when `auto_add_vms` is on, and is refused as
//!   [`PolicyError::UnknownVm`] when it is off, for every source.
//! - A FIFO's policy (and one restored that came from a FIFO) is the host
//!   operator's: its cores are host CPUs. Every other is a VM's: its cores
//!   are the VM's vCPUs.
//! - A policy the engine accepts is persisted with its source (a restored
//!   one already is) before its frequencies are written; a write that
//!   then fails leaves it in force and persisted, and is returned as
//!   [`PolicyError::WriteFailed`] for the door to report its way.
//! - Removing a policy the engine holds forgets it from the state
//!   database too (a guest's removal without waiting for the disk); a VM
//!   without a policy is left alone.

use vmpower_api::PolicyFile;
use vmpower_engine::{
    ChannelId, OtherHours, PolicyExtensions, PolicySpec, Rejection, VmId,
    policy::traffic::Hysteresis,
};

use super::State;
use crate::store::PolicySource;

/// The door a policy came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyFrom {
    /// A guest's policy record on its channel (the engine takes it while
    /// handling the record: see [`crate::core::Core::handle_frame`]).
    Guest(ChannelId),
    /// DPDK's JSON FIFO `fifo<N>`, the host operator's.
    Fifo(u32),
    /// The control API (`vmpowerctl policy create`).
    Control,
    /// A file of the policy directory, by name.
    PolicyDir(String),
    /// The state database at start, with the source it was accepted from.
    Restore(PolicySource),
}

impl PolicyFrom {
    /// The source the state database records; `None` for a restored
    /// policy (already recorded).
    pub fn stored(&self) -> Option<PolicySource> {
        match self {
            PolicyFrom::Guest(channel) => Some(PolicySource::GuestChannel(channel.clone())),
            PolicyFrom::Fifo(n) => Some(PolicySource::Fifo(*n)),
            PolicyFrom::Control => Some(PolicySource::Operator),
            PolicyFrom::PolicyDir(name) => Some(PolicySource::PolicyDir(name.clone())),
            PolicyFrom::Restore(_) => None,
        }
    }

    /// Whether the policy is the host operator's (its cores are host
    /// CPUs, which need no grant): a FIFO's, restored or not.
    fn operator(&self) -> bool {
        matches!(
            self,
            PolicyFrom::Fifo(_) | PolicyFrom::Restore(PolicySource::Fifo(_))
        )
    }
}

/// Why a policy is not in force, or in force without its frequencies.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No such VM, and undeclared VMs are not served.
    #[error(
        "no VM named {0} (auto_add_vms = false: declare it in the config or `vmpowerctl add-vm` it)"
    )]
    UnknownVm(String),
    /// The engine refused it.
    #[error(transparent)]
    Refused(#[from] Rejection),
    /// In force and persisted, but a frequency write failed (details in
    /// the log and in `status`'s last errors).
    #[error("the policy is in force but a frequency write failed (see the log)")]
    WriteFailed,
}

/// The engine's spec for a policy file (resolving its time zone).
pub fn spec_of(
    file: &PolicyFile,
    default_tz: &jiff::tz::TimeZone,
) -> Result<PolicySpec, PolicyError> {
    let policy = file
        .policy()
        .map_err(|e| PolicyError::Invalid(e.to_string()))?;
    let tz = match &file.time_zone {
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|e| PolicyError::Invalid(format!("time_zone: {name:?}: {e}")))?,
        None => default_tz.clone(),
    };
    let other_hours = match file.other_hours.as_deref() {
        Some("min") => Some(OtherHours::Min),
        Some("medium") => Some(OtherHours::Medium),
        Some("max") => Some(OtherHours::Max),
        Some("unchanged") => Some(OtherHours::Unchanged),
        // The daemon's `time_other_hours` (checked by the file's parser).
        _ => None,
    };
    let ext = PolicyExtensions {
        time_zone: file.time_zone.clone(),
        other_hours,
        hysteresis: file.hysteresis.map(|h| Hysteresis {
            band: h.band,
            dwell: std::time::Duration::from_millis(h.dwell_ms),
        }),
        branch_threshold: file.branch_threshold,
        adaptive: file.adaptive,
        drops: None,
        learned: None,
    };
    Ok(PolicySpec { policy, ext, tz })
}

impl State {
    /// Applies `spec` as `vm`'s policy, come `from` a door (see the
    /// module's Behavior).
    pub fn apply_policy(
        &self,
        from: &PolicyFrom,
        vm: &VmId,
        spec: PolicySpec,
    ) -> Result<(), PolicyError> {
        crate::vm_name::check(vm.as_str()).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        let mut core = self.lock();
        // A VM not known yet is added as its channel socket would add it (the
        // policy waits for its placement): a policy may come first.
        if core.engine.settings(vm).is_none() {
            if !self.config().auto_add_vms {
                return Err(PolicyError::UnknownVm(vm.to_string()));
            }
            core.engine.add_vm(vm.clone(), Default::default());
        }
        let now = core.now();
        let wall = self.clock().wall();
        core.engine.set_wall_clock(wall);
        let actions = if from.operator() {
            core.engine.set_operator_policy(vm, spec, now, wall)?
        } else {
            core.engine.set_policy(vm, spec, now, wall)?
        };
        core.policy_kept(from, vm);
        core.policies_changed();
        if core.execute(&actions) {
            Ok(())
        } else {
            Err(PolicyError::WriteFailed)
        }
    }

    /// The time zone of a policy that names none (the host's).
    pub fn default_time_zone(&self) -> jiff::tz::TimeZone {
        self.lock().engine.default_time_zone().clone()
    }

    /// Applies an operator's policy file `from` the control API or the
    /// policy directory; the VM it names.
    pub fn apply_policy_file(
        &self,
        from: &PolicyFrom,
        file: &PolicyFile,
    ) -> Result<VmId, PolicyError> {
        crate::vm_name::check(&file.vm).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        let vm = VmId::new(&file.vm);
        let tz = self.default_time_zone();
        let spec = spec_of(file, &tz)?;
        self.apply_policy(from, &vm, spec).map(|()| vm)
    }

    /// Removes `vm`'s policy, come `from` a door, and forgets it from the
    /// state database (a guest's removal without waiting for the disk: a
    /// guest may remove again and again); false if it had none.
    pub fn remove_policy(&self, from: &PolicyFrom, vm: &VmId) -> bool {
        let mut core = self.lock();
        if core.engine.policy_status(vm).is_none() {
            return false;
        }
        let actions = core.engine.remove_policy(vm);
        core.policy_forgotten(from, vm);
        core.policies_changed();
        core.execute(&actions);
        true
    }

    /// The source each persisted policy was accepted from, by VM.
    pub fn stored_sources(&self) -> Vec<(VmId, PolicySource)> {
        let core = self.lock();
        let stored = core.store.as_ref().and_then(|s| s.policies().ok());
        stored
            .unwrap_or_default()
            .into_iter()
            .map(|(vm, p)| (vm, p.source))
            .collect()
    }

    /// The source `vm`'s persisted policy was accepted from, if any.
    pub fn stored_source(&self, vm: &VmId) -> Option<PolicySource> {
        let core = self.lock();
        let stored = core.store.as_ref()?.policy(vm).ok().flatten()?;
        Some(stored.source)
    }

    /// Lists a policy file refused, with why, in `status`.
    pub fn policy_file_refused(&self, path: &std::path::Path, error: String) {
        self.lock().stats.policy_file_refused(path, error);
    }

    /// Takes a policy file off `status`'s refused list (applied or gone).
    pub fn policy_file_settled(&self, path: &std::path::Path) {
        self.lock().stats.policy_file_settled(path);
    }
}

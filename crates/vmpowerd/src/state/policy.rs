//! A policy's life through the state: turning an operator's
//! [`PolicyFile`] into the engine's [`PolicySpec`], applying it, removing
//! it, persisting it.

use vmpower_api::PolicyFile;
use vmpower_engine::{
    OtherHours, PolicyExtensions, PolicySpec, Rejection, VmId, policy::traffic::Hysteresis,
};

use super::State;

/// Why an operator's policy was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PolicyOpError {
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
    /// The frequency writes failed (details in the log).
    #[error("the policy is in force but a frequency write failed (see the log)")]
    WriteFailed,
}

/// The engine's spec for a policy file (resolving its time zone).
pub fn spec_of(
    file: &PolicyFile,
    default_tz: &jiff::tz::TimeZone,
) -> Result<PolicySpec, PolicyOpError> {
    let policy = file
        .policy()
        .map_err(|e| PolicyOpError::Invalid(e.to_string()))?;
    let tz = match &file.time_zone {
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|e| PolicyOpError::Invalid(format!("time_zone: {name:?}: {e}")))?,
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
    };
    Ok(PolicySpec { policy, ext, tz })
}

impl State {
    /// Applies an operator's policy file.
    pub fn apply_operator_policy(&self, file: &PolicyFile) -> Result<VmId, PolicyOpError> {
        crate::vm_name::check(&file.vm).map_err(|e| PolicyOpError::Invalid(e.to_string()))?;
        let vm = VmId::new(&file.vm);
        // A VM not known yet is added as its channel socket would add it (the
        // policy waits for its placement): a policy file may come first.
        if !self.ensure_vm(&vm) {
            return Err(PolicyOpError::UnknownVm(file.vm.clone()));
        }
        let mut core = self.lock();
        let spec = spec_of(file, core.engine.default_time_zone())?;
        let now = core.now();
        let wall = jiff::Timestamp::now();
        core.engine.set_wall_clock(wall);
        let actions = core.engine.set_policy(&vm, spec, now, wall)?;
        core.policies_changed();
        if core.execute(&actions) {
            Ok(vm)
        } else {
            Err(PolicyOpError::WriteFailed)
        }
    }

    /// Removes a VM's policy; false if it had none.
    pub fn remove_operator_policy(&self, vm: &VmId) -> bool {
        let mut core = self.lock();
        if core.engine.policy_status(vm).is_none() {
            return false;
        }
        let actions = core.engine.remove_policy(vm);
        core.policies_changed();
        core.execute(&actions);
        true
    }

    /// Persists an operator's policy (control API, policy directory).
    pub fn persist_policy(&self, vm: &VmId, source: crate::store::PolicySource) {
        self.lock().persist_policy(vm, source);
    }

    /// Forgets a persisted policy.
    pub fn forget_policy(&self, vm: &VmId) {
        self.lock().forget_policy(vm);
    }
}

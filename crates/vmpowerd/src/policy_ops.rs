//! Operator-side policy operations shared by the control API and the
//! policy directory: turning a [`PolicyFile`] into the engine's
//! [`PolicySpec`], applying it, and describing policies for display
//! (with where each came from, as the state database records it).

use vmpower_api::answers::{self, PolicyStateName};
use vmpower_api::{PolicyFile, PolicyOrigin};
use vmpower_engine::{
    CoreKey, OtherHours, PolicyExtensions, PolicySpec, PolicyState, PolicyStatus, Rejection, VmId,
    policy::traffic::Hysteresis,
};

use crate::run::Daemon;
use crate::store::PolicySource;

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
        adaptive: file.adaptive,
        drops: None,
        learned: None,
    };
    Ok(PolicySpec { policy, ext, tz })
}

/// Applies an operator's policy file.
pub fn apply(daemon: &Daemon, file: &PolicyFile) -> Result<VmId, PolicyOpError> {
    crate::vm_name::check(&file.vm).map_err(|e| PolicyOpError::Invalid(e.to_string()))?;
    let vm = VmId::new(&file.vm);
    // A VM not known yet is added as its channel socket would add it (the
    // policy waits for its placement): a policy file may come first.
    if !daemon.ensure_vm(&vm) {
        return Err(PolicyOpError::UnknownVm(file.vm.clone()));
    }
    let mut core = crate::lock(&daemon.core);
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
pub fn remove(daemon: &Daemon, vm: &VmId) -> bool {
    let mut core = crate::lock(&daemon.core);
    if core.engine.policy_status(vm).is_none() {
        return false;
    }
    let actions = core.engine.remove_policy(vm);
    core.policies_changed();
    core.execute(&actions);
    true
}

fn core_name(key: &CoreKey) -> String {
    match key {
        CoreKey::Vcpu(v) => format!("vcpu{v}"),
        CoreKey::Pcpu(c) => c.to_string(),
    }
}

/// Where `vm`'s policy came from, as the state database records it, with
/// the paths of its file or FIFO; `None` when nothing is recorded.
pub fn origin(daemon: &Daemon, vm: &VmId) -> Option<PolicyOrigin> {
    let source = crate::lock(&daemon.core)
        .store
        .as_ref()?
        .policy(vm)
        .ok()
        .flatten()?
        .source;
    Some(match source {
        PolicySource::GuestChannel(channel) => PolicyOrigin::GuestChannel {
            channel: channel.to_string(),
        },
        PolicySource::Operator => PolicyOrigin::Operator,
        PolicySource::PolicyDir(file) => PolicyOrigin::PolicyFile {
            path: daemon.config.policy_dir.join(file),
        },
        PolicySource::Fifo(n) => PolicyOrigin::Fifo {
            path: daemon.config.channel_dir.join(format!("fifo{n}")),
        },
    })
}

/// A policy's status for `policy show` / `policy list`.
pub fn describe(daemon: &Daemon, vm: &VmId, st: &PolicyStatus) -> answers::PolicyDescription {
    let sources = daemon
        .mac_sources
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let macs = st
        .spec
        .policy
        .macs
        .as_slice()
        .iter()
        .map(|m| answers::PolicyMac {
            mac: m.to_string(),
            source: sources.get(m).map(ToString::to_string),
        })
        .collect();
    let (state, waiting_for) = match &st.state {
        PolicyState::Active => (PolicyStateName::Active, None),
        PolicyState::Waiting(why) => (PolicyStateName::Waiting, Some(why.clone())),
    };
    answers::PolicyDescription {
        vm: vm.as_str().to_owned(),
        policy: st.spec.policy,
        extensions: extensions(&st.spec.ext),
        state,
        waiting_for,
        cores: st.cores.iter().map(core_name).collect(),
        levels: st
            .levels
            .iter()
            .map(|(k, l)| answers::CoreLevel {
                core: core_name(k),
                level: format!("{l:?}"),
            })
            .collect(),
        rate_pps: st.rate_pps,
        drops_pps: st.drops_pps,
        learned: (!st.learned.is_empty()).then(|| answers::LearnedCapacities {
            min: st.learned.min.map(|c| answers::Capacity {
                rate_pps: c.rate_pps,
            }),
            medium: st.learned.medium.map(|c| answers::Capacity {
                rate_pps: c.rate_pps,
            }),
        }),
        thresholds_pps: st.effective.map(|e| answers::ThresholdsInForce {
            avg: e.avg.is_finite().then_some(e.avg),
            max: e.max.is_finite().then_some(e.max),
        }),
        hour: st.hour,
        macs,
        source: origin(daemon, vm),
    }
}

/// A policy's extensions as `policy show` shows them.
fn extensions(ext: &PolicyExtensions) -> answers::PolicyExtensions {
    answers::PolicyExtensions {
        time_zone: ext.time_zone.clone(),
        other_hours: ext.other_hours.map(|o| match o {
            OtherHours::Unchanged => answers::OtherHours::Unchanged,
            OtherHours::Min => answers::OtherHours::Min,
            OtherHours::Medium => answers::OtherHours::Medium,
            OtherHours::Max => answers::OtherHours::Max,
        }),
        hysteresis: ext.hysteresis.map(|h| answers::Hysteresis {
            band: h.band,
            dwell: u64::try_from(h.dwell.as_millis()).unwrap_or(u64::MAX),
        }),
        branch_threshold: ext.branch_threshold,
        adaptive: ext.adaptive,
    }
}

//! Describing policies for display (`policy show`, `policy list`), with
//! where each came from, as the state database records it. Applying and
//! removing them is the state's ([`crate::state`]).

use vmpower_api::PolicyOrigin;
use vmpower_api::answers::{self, PolicyStateName};
use vmpower_engine::{CoreKey, OtherHours, PolicyExtensions, PolicyState, PolicyStatus, VmId};

use crate::state::State;
use crate::store::PolicySource;

fn core_name(key: &CoreKey) -> String {
    match key {
        CoreKey::Vcpu(v) => format!("vcpu{v}"),
        CoreKey::Pcpu(c) => c.to_string(),
    }
}

/// Where `vm`'s policy came from, as the state database records it, with
/// the paths of its file or FIFO; `None` when nothing is recorded.
pub fn origin(daemon: &State, vm: &VmId) -> Option<PolicyOrigin> {
    let source = daemon.stored_source(vm)?;
    Some(match source {
        PolicySource::GuestChannel(channel) => PolicyOrigin::GuestChannel {
            channel: channel.to_string(),
        },
        PolicySource::Operator => PolicyOrigin::Operator,
        PolicySource::PolicyDir(file) => PolicyOrigin::PolicyFile {
            path: daemon.config().policy_dir.join(file),
        },
        PolicySource::Fifo(n) => PolicyOrigin::Fifo {
            path: daemon.config().channel_dir.join(format!("fifo{n}")),
        },
    })
}

/// A policy's status for `policy show` / `policy list`.
pub fn describe(daemon: &State, vm: &VmId, st: &PolicyStatus) -> answers::PolicyDescription {
    let sources = daemon
        .mac_sources()
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

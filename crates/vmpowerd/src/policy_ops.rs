//! Describing policies for display (`policy show`, `policy list`), with
//! where each came from, as the state database records it. Applying and
//! removing them is the state's ([`crate::state`]).

use serde_json::{Value, json};
use vmpower_api::PolicyOrigin;
use vmpower_engine::{CoreKey, PolicyState, PolicyStatus, VmId};

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
pub fn describe(daemon: &State, vm: &VmId, st: &PolicyStatus) -> Value {
    let sources = daemon
        .mac_sources()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let macs: Vec<Value> = st
        .spec
        .policy
        .macs
        .as_slice()
        .iter()
        .map(|m| json!({ "mac": m.to_string(), "source": sources.get(m).map(ToString::to_string) }))
        .collect();
    let (state, reason) = match &st.state {
        PolicyState::Active => ("active", None),
        PolicyState::Waiting(why) => ("waiting", Some(why.clone())),
    };
    json!({
        "vm": vm.as_str(),
        "policy": st.spec.policy,
        "extensions": st.spec.ext,
        "state": state,
        "waiting_for": reason,
        "cores": st.cores.iter().map(core_name).collect::<Vec<_>>(),
        "levels": st.levels.iter().map(|(k, l)| json!({ "core": core_name(k), "level": format!("{l:?}") })).collect::<Vec<_>>(),
        "rate_pps": st.rate_pps,
        "hour": st.hour,
        "macs": macs,
        "source": origin(daemon, vm),
    })
}

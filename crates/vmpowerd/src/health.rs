//! What `vmpowerctl status` and `vmpowerctl top` show: the daemon's
//! health (channels up and down, policies waiting and why, the last
//! errors, the counters) and a live view (each pCPU's frequency and
//! level, each VM's rate, policy and last decision).
//!
//! Both are read under one lock of the core and returned as the typed
//! answers of `vmpower-api`; the CLI renders them. Nothing here changes
//! state.

use std::collections::BTreeMap;

use vmpower_api::answers::{self, PolicyStateName};
use vmpower_engine::{PolicyState, VmId};

use crate::core::Core;
use crate::metrics::collect::{COMMIT, VERSION, kind_label};
use crate::run::Daemon;

/// The answer to `status`.
pub fn status(daemon: &Daemon) -> answers::Status {
    let served = daemon.channel_paths();
    let core = crate::lock(&daemon.core);
    let managed: Vec<u32> = core
        .engine
        .pcpus()
        .into_iter()
        .filter(|c| core.engine.is_managed(*c))
        .map(|c| c.0)
        .collect();
    let up = core.stats.channels.values().filter(|c| c.up).count();
    let policies: Vec<answers::PolicyBrief> = core
        .engine
        .vm_ids()
        .iter()
        .filter_map(|vm| policy(&core, vm))
        .collect();
    answers::Status {
        version: VERSION.to_owned(),
        commit: COMMIT.to_owned(),
        channel_dir: daemon.config.channel_dir.clone(),
        channels_served: served,
        channels_up: up,
        channels_down: core.stats.channels.len() - up,
        metrics_address: daemon.metrics_address.get().map(ToString::to_string),
        vms: core.engine.vm_ids().len(),
        pcpus: core.engine.pcpus().len(),
        pcpus_managed: managed,
        policies,
        stats: core.stats.counters(),
    }
}

/// A VM's policy in brief: kind, state and why it waits.
fn policy(core: &Core, vm: &VmId) -> Option<answers::PolicyBrief> {
    let st = core.engine.policy_status(vm)?;
    let (state, waiting_for) = match st.state {
        PolicyState::Active => (PolicyStateName::Active, None),
        PolicyState::Waiting(why) => (PolicyStateName::Waiting, Some(why)),
    };
    Some(answers::PolicyBrief {
        vm: vm.as_str().to_owned(),
        kind: kind_label(st.spec.policy.kind).to_owned(),
        state,
        waiting_for,
        rate_pps: st.rate_pps,
    })
}

/// The answer to `top`: one frame of the live view.
pub fn top(daemon: &Daemon) -> answers::TopFrame {
    let core = crate::lock(&daemon.core);
    let pcpus: Vec<answers::TopPcpu> = core
        .engine
        .pcpus()
        .into_iter()
        .map(|cpu| {
            let khz = core.engine.known_khz(cpu);
            let table = core.cpufreq.table(cpu).ok();
            answers::TopPcpu {
                cpu: cpu.0,
                khz: khz.map(|k| k.0),
                level: khz.zip(table).map(|(k, t)| t.nearest_index(k)),
                levels: table.map(|t| t.len()),
                managed: core.engine.is_managed(cpu),
                operator: core.engine.operator_holds(cpu),
            }
        })
        .collect();
    let mut channels: BTreeMap<&VmId, (usize, usize)> = BTreeMap::new();
    for (c, s) in &core.stats.channels {
        let e = channels.entry(&c.vm).or_default();
        e.0 += usize::from(s.up);
        e.1 += 1;
    }
    let mut requests: BTreeMap<&VmId, u64> = BTreeMap::new();
    for ((vm, _, _), n) in &core.stats.requests {
        *requests.entry(vm).or_default() += n;
    }
    let vms: Vec<answers::TopVm> = core
        .engine
        .vm_ids()
        .iter()
        .map(|vm| {
            let (up, total) = channels.get(vm).copied().unwrap_or_default();
            answers::TopVm {
                vm: vm.as_str().to_owned(),
                policy: policy(&core, vm),
                channels_up: up,
                channels: total,
                requests: requests.get(vm).copied().unwrap_or(0),
                last_decision: core.stats.last_decisions.get(vm).cloned(),
            }
        })
        .collect();
    let stats = &core.stats;
    answers::TopFrame {
        at_ms: jiff::Timestamp::now().as_millisecond(),
        pcpus,
        vms,
        totals: answers::Totals {
            requests: stats.requests.values().sum(),
            rejections: stats.rejections.values().sum(),
            sysfs_writes: stats.sysfs_writes,
            sysfs_failures: stats.sysfs_failures,
        },
    }
}

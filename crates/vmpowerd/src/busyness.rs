//! The busyness controller's glue: the staleness timer and what status
//! shows. The decisions (reports, bands, staleness) are the engine's
//! ([`vmpower_engine::busy`]); reports reach it through the channel path
//! like every record (`Core::handle_frame`).
//!
//! ## Behavior
//! - The timer sleeps until the engine's [`Engine::busyness_deadline`]
//!   (the first moment a reporting VM would be silent too long), then
//!   asks the engine to put silent VMs' vCPUs at max, applies that, logs
//!   one warning per silent VM within its log budget and sleeps again.
//! - Without a deadline (no VM reports, or all are already at max) it
//!   waits for the wake-up the channel path sends with the first report
//!   accepted after that: idle channels cost nothing.
//!
//! [`Engine::busyness_deadline`]: vmpower_engine::Engine::busyness_deadline

use std::time::Duration;

use tracing::warn;

use crate::SharedCore;
use crate::core::Core;

/// Runs the staleness timer until the task is dropped.
pub async fn run_staleness(core: SharedCore) {
    let wake = crate::lock(&core).busy_wake();
    loop {
        let wait = {
            let mut core = crate::lock(&core);
            check(&mut core)
        };
        match wait {
            // One millisecond past the deadline, so that it has passed.
            Some(wait) => tokio::time::sleep(wait + Duration::from_millis(1)).await,
            None => wake.notified().await,
        }
    }
}

/// One look: puts silent VMs at max; returns how long until the next
/// deadline (`None`: none, and the channel path is told to wake us).
fn check(core: &mut Core) -> Option<Duration> {
    let now = core.now();
    let out = core.engine.busyness_check(now);
    core.execute(&out.actions);
    for vm in &out.stale {
        if let Some(suppressed) = core.guest_line(vm) {
            warn!(%vm, suppressed, "busyness reports stopped: the reported vCPUs are at max");
        }
    }
    let deadline = core.engine.busyness_deadline();
    core.set_busy_timer_idle(deadline.is_none());
    deadline.map(|d| d.saturating_sub(now))
}

/// Each reporting VM's busyness control, for `vmpowerctl status`.
pub fn status(core: &Core) -> Vec<vmpower_api::answers::BusynessControl> {
    let now = core.now();
    core.engine
        .vm_ids()
        .iter()
        .filter_map(|vm| {
            let st = core.engine.busyness_status(vm, now)?;
            Some(vmpower_api::answers::BusynessControl {
                vm: vm.as_str().to_owned(),
                interval_ms: st.interval_ms,
                last_report_ms_ago: u64::try_from(st.age.as_millis()).unwrap_or(u64::MAX),
                stale: st.stale,
                reports: st.counters.accepted,
                gaps: st.counters.gaps,
                stale_events: st.counters.stale_events,
                rx_missed: st.rx_missed,
                vcpus: st
                    .vcpus
                    .iter()
                    .map(|&(vcpu, permille, index)| vmpower_api::answers::BusyVcpu {
                        vcpu,
                        busy_permille: permille,
                        level: index,
                    })
                    .collect(),
            })
        })
        .collect()
}

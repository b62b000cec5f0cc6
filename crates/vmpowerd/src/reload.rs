//! SIGHUP: the configuration file is read again and the policy directory
//! rescanned, without stopping anything.
//!
//! ## Behavior
//! - Live: the `log` filter (when logging was started by
//!   [`crate::notify::init_logging`], as the binary does), `[vm.NAME]`
//!   grants and layout (a VM new in the file is added;
//!   its settings are persisted as `set-query` persists them), `pcpus`
//!   entries, `core_branch_ratio`, `channel_busy_poll_us` (for connections
//!   made after the reload), `foreign_writer` (for the next foreign write
//!   found; a pCPU already yielded stays so), and the policy directory's files (a file
//!   whose content changed since it was read applies, a file gone is
//!   withdrawn: see [`crate::policy_dir`]).
//! - Every other setting changed in the file is logged with a warning
//!   naming it: it takes effect at the next restart, and until then the
//!   running value stays (and is what the next reload compares with).
//! - A file that cannot be read or parsed changes nothing; the error is
//!   logged and the daemon keeps serving.
//!
//! ## Limitations
//! - A VM removed from the file stays served (with its last settings)
//!   until `vmpowerctl rm-vm` or a restart; a vCPU removed from a `pcpus`
//!   list keeps its mapping until a restart; a `policy_dir` that did not
//!   exist at start is not followed until a restart.

use std::collections::BTreeMap;

use tracing::{debug, info, warn};
use vmpower_cpufreq::CpuId;
use vmpower_engine::VmId;

use crate::config::Config;
use crate::state::State;

/// Settings a reload applies; every other one waits for a restart.
pub const LIVE_SETTINGS: [&str; 4] = [
    "vm",
    "core_branch_ratio",
    "channel_busy_poll_us",
    "foreign_writer",
];

/// Applies what can change live from `new` (a validated configuration)
/// to the daemon, warns about what cannot, and makes `new`'s live
/// settings the running ones. Returns the VMs whose placement must be
/// read again (their `pcpus` changed).
pub fn apply(daemon: &State, running: &mut Config, new: &Config) -> Vec<VmId> {
    let mut changed = Vec::new();
    for key in changed_keys(running, new) {
        if key == "log" {
            match crate::notify::set_log_filter(&new.log) {
                Ok(true) => {
                    running.log.clone_from(&new.log);
                    debug!(filter = %new.log, "log filter reloaded");
                    changed.push(key);
                }
                Ok(false) => {
                    warn!(setting = %key, "setting changed in the config file: takes effect at the next restart")
                }
                Err(e) => {
                    warn!(filter = %new.log, error = %e, "invalid log filter: the running one stays")
                }
            }
        } else if LIVE_SETTINGS.contains(&key.as_str()) {
            changed.push(key);
        } else {
            warn!(setting = %key, "setting changed in the config file: takes effect at the next restart");
        }
    }
    let mut replace = Vec::new();
    for (name, vm) in &new.vm {
        if running.vm.get(name) == Some(vm) {
            continue;
        }
        let id = VmId::new(name);
        daemon.set_vm_settings(&id, vm.settings());
        info!(%id, settings = ?vm.settings(), "VM settings reloaded");
        if running.vm.get(name).map(|v| &v.pcpus) != Some(&vm.pcpus) {
            replace.push((id, vm.pcpus.clone()));
        }
    }
    for name in running.vm.keys().filter(|n| !new.vm.contains_key(*n)) {
        warn!(vm = %name, "VM no longer in the config file: still served until `vmpowerctl rm-vm` or a restart");
    }
    let thresholds = (running.core_branch_ratio != new.core_branch_ratio)
        .then(|| new.branch_thresholds().ok())
        .flatten();
    daemon.set_live_settings(thresholds, new.channel_busy_poll(), new.foreign_writer);
    let mut refresh = Vec::new();
    for (id, pcpus) in replace {
        for (vcpu, pcpu) in (0..).zip(&pcpus) {
            if let Err(e) = daemon.placer().operator_set(&id, vcpu, CpuId(*pcpu)) {
                warn!(%id, vcpu, pcpu, error = %e, "reloaded mapping refused");
            }
        }
        refresh.push(id);
    }
    // What is running now: the live settings from the file, the others
    // as they were.
    running.vm.clone_from(&new.vm);
    running.core_branch_ratio.clone_from(&new.core_branch_ratio);
    running.channel_busy_poll_us = new.channel_busy_poll_us;
    running.foreign_writer = new.foreign_writer;
    info!(changed = ?changed, "configuration reloaded");
    refresh
}

/// The top-level settings whose values differ.
fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let flat = |c: &Config| -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(c) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    };
    let (old, new) = (flat(old), flat(new));
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_named() {
        let old = Config::default();
        let mut new = Config {
            log: "debug".into(),
            ..Config::default()
        };
        new.vm.insert("vm2".into(), Default::default());
        assert_eq!(changed_keys(&old, &new), ["log", "vm"]);
        assert!(changed_keys(&old, &old).is_empty());
    }
}

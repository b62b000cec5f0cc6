//! Arbitration: the level a frequency domain gets when several VMs (or
//! several vCPUs of one VM) want different things of it.
//!
//! ## Behavior
//! - A domain is *managed* once any VM has an explicit want on one of its
//!   pCPUs; an unmanaged domain is left alone (and given back if it was
//!   taken over).
//! - A managed domain gets the highest frequency (lowest index) wanted by
//!   any VM using any of its pCPUs. A VM that uses one of those pCPUs but
//!   has asked nothing of it counts as wanting max (DPDK's rule: a VM that
//!   did not ask is never slowed down by its neighbour).
//! - pCPUs of the domain that no VM uses do not vote.

use std::collections::{BTreeMap, BTreeSet};

use vmpower_cpufreq::CpuId;
use vmpower_cpufreq::levels::{Level, level_index};

use crate::host::Domain;
use crate::ids::VmId;
use crate::vm::Vm;

/// Whose want decided a domain's level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Winner {
    /// This VM's explicit want.
    Vm(VmId),
    /// A VM that asked nothing, counted at max.
    DefaultMax,
    /// The operator's override.
    Operator,
}

/// The outcome of arbitrating one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The index the domain should run at.
    pub index: usize,
    /// Whose want set it.
    pub winner: Winner,
}

/// Arbitrates one domain. `users` maps each pCPU to the VMs that use it or
/// asked about it. Returns `None` when no VM has an explicit want on it.
pub(crate) fn arbitrate(
    domain: &Domain,
    users: &BTreeMap<CpuId, BTreeSet<VmId>>,
    vms: &BTreeMap<VmId, Vm>,
) -> Option<Verdict> {
    let table = &domain.table;
    if let Some(op) = domain.operator {
        return Some(Verdict {
            index: op.index().min(table.last_index()),
            winner: Winner::Operator,
        });
    }
    let default_max =
        level_index(table, table.turbo_available(), Level::Max).expect("Max is always in range");
    let mut managed = false;
    // (index, winner): the winner's name is cloned once, at the end.
    let mut best: Option<(usize, Option<&VmId>)> = None;
    for cpu in &domain.cpus {
        let Some(vm_ids) = users.get(cpu) else {
            continue;
        };
        for id in vm_ids {
            let Some(vm) = vms.get(id) else { continue };
            let explicit = vm
                .wants
                .iter()
                .filter(|(key, _)| vm.governs(**key, *cpu))
                .map(|(_, want)| want.index(table))
                .min();
            let (index, winner) = match explicit {
                Some(i) => {
                    managed = true;
                    (i, Some(id))
                }
                None => (default_max, None),
            };
            if best.is_none_or(|(b, _)| index < b) {
                best = Some((index, winner));
            }
        }
    }
    let best = best.map(|(index, winner)| Verdict {
        index,
        winner: winner.map_or(Winner::DefaultMax, |id| Winner::Vm(id.clone())),
    });
    if managed { best } else { None }
}

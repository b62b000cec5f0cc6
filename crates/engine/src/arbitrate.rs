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

use vmpower_types::levels::{Level, level_index};

use crate::cpumap::CpuMap;
use crate::host::Domain;
use crate::ids::VmId;

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

/// One VM's cached vote on one pCPU: kept in the engine's per-pCPU list
/// (sorted by VM name, as the tie-break between equal wants needs) and
/// updated wherever the VM's wants, placement or the pCPU's table change,
/// so arbitration reads integers instead of looking VMs up by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Voter {
    /// The VM that uses (or asked about) the pCPU.
    pub vm: VmId,
    /// Its explicit want's index in the pCPU's table, `None` when it asked
    /// nothing of the pCPU (or the pCPU is not controllable). A `u16`
    /// (tables are shorter: [`vmpower_types::levels::TableShape`]) keeps
    /// a voter at two words, so a pCPU's list spans fewer cache lines.
    pub explicit: Option<u16>,
}

/// Arbitrates one domain. `users` maps each pCPU to the votes of the VMs
/// that use it or asked about it, in VM-name order. Returns `None` when
/// no VM has an explicit want on it.
pub(crate) fn arbitrate(domain: &Domain, users: &CpuMap<Vec<Voter>>) -> Option<Verdict> {
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
    for cpu in domain.cpus.iter() {
        let Some(voters) = users.get(cpu) else {
            continue;
        };
        for voter in voters {
            let (index, winner) = match voter.explicit {
                Some(i) => {
                    managed = true;
                    (usize::from(i), Some(&voter.vm))
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

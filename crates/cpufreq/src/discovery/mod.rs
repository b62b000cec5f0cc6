//! Discovery of the host's CPUs, cpufreq drivers, frequency tables,
//! topology, frequency domains, global switches and uncore domains, from a
//! [`SysfsIo`].
//!
//! [`discover`] reads everything once into a [`HostCpus`]; [`read_state`]
//! and [`HostCpus::refresh`] re-read what changes (governor, bounds,
//! current frequency, setspeed) so that a backend can read back after a
//! write and notice another tool's changes.
//!
//! ## Behavior
//! - CPUs are the `cpuN` directories; the online set comes from `online`,
//!   cross-checked with every `cpuN/online` (a disagreement is an error:
//!   the host is mid-hotplug, try again).
//! - Offline CPUs and online CPUs without `cpufreq/` are listed, with
//!   `cpufreq: None`; a host with no cpufreq at all discovers fine.
//! - An unknown driver is [`Driver::Other`](crate::Driver::Other), not an
//!   error. A file that exists but cannot be parsed is an error naming the
//!   file and its content ([`SysfsError::Parse`]).
//!
//! This module only reads; it never writes to sysfs.

mod cpu;
mod globals;
pub mod paths;
pub(crate) mod read;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use cpu::{
    CpuFreqInfo, CpuInfo, Epp, FreqState, Topology, read_cpufreq, read_state, read_topology,
};
pub use globals::{GlobalSwitches, IntelPstateSwitches, read_globals};

use crate::sysfs::{SysfsError, SysfsIo};
use crate::types::CpuId;
use crate::uncore::{UncoreDomain, discover_uncore};

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A file could not be read or parsed (names the file and content).
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    /// The `online` list and a CPU's `online` file disagree.
    #[error("{cpu}: {list} says online={listed} but {file} says online={file_says}")]
    OnlineMismatch {
        /// The CPU.
        cpu: CpuId,
        /// The `online` list file.
        list: PathBuf,
        /// Whether the list has it.
        listed: bool,
        /// The CPU's `online` file.
        file: PathBuf,
        /// What that file says.
        file_says: bool,
    },
    /// No `cpuN` directory at all: the root is probably wrong.
    #[error("{path}: no cpuN directories (is the sysfs root right?)")]
    NoCpus {
        /// The directory listed.
        path: PathBuf,
    },
    /// A CPU asked about has no cpufreq (offline, or none on this host).
    #[error("{cpu} has no cpufreq")]
    NoCpufreq {
        /// The CPU.
        cpu: CpuId,
    },
}

/// A frequency domain: CPUs that share one policy and move together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreqDomain {
    /// The policy directory name (`policy0`).
    pub policy: String,
    /// Every CPU of the domain (`related_cpus`).
    pub related: BTreeSet<CpuId>,
    /// Its online CPUs (`affected_cpus`).
    pub affected: BTreeSet<CpuId>,
}

/// Everything discovery found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCpus {
    /// Every CPU, online or not, by id.
    pub cpus: BTreeMap<CpuId, CpuInfo>,
    /// Frequency domains of the online CPUs with cpufreq, by policy name.
    pub domains: BTreeMap<String, FreqDomain>,
    /// Host-wide switches.
    pub globals: GlobalSwitches,
    /// Uncore domains (empty when the host has none).
    pub uncore: Vec<UncoreDomain>,
}

impl HostCpus {
    /// One CPU.
    pub fn cpu(&self, id: CpuId) -> Option<&CpuInfo> {
        self.cpus.get(&id)
    }

    /// The online CPUs, in order.
    pub fn online(&self) -> impl Iterator<Item = CpuId> + '_ {
        self.cpus.values().filter(|c| c.online).map(|c| c.id)
    }

    /// The online CPUs that have cpufreq, in order.
    pub fn with_cpufreq(&self) -> impl Iterator<Item = &CpuInfo> + '_ {
        self.cpus.values().filter(|c| c.has_cpufreq())
    }

    /// The frequency domain of a CPU with cpufreq.
    pub fn domain_of(&self, id: CpuId) -> Option<&FreqDomain> {
        let policy = &self.cpu(id)?.cpufreq.as_ref()?.policy;
        self.domains.get(policy)
    }

    /// The CPUs whose frequency moves when `id`'s does (its domain's
    /// `related_cpus`, itself included); just `id` without cpufreq.
    pub fn moves_with(&self, id: CpuId) -> BTreeSet<CpuId> {
        self.domain_of(id)
            .map(|d| d.related.clone())
            .unwrap_or_else(|| BTreeSet::from([id]))
    }

    /// Whether turbo is enabled host-wide (see [`GlobalSwitches::turbo_enabled`]).
    pub fn turbo_enabled(&self) -> Option<bool> {
        self.globals.turbo_enabled()
    }

    /// Re-reads `id`'s dynamic state and stores it in every CPU of its
    /// domain (they share the policy files); returns it.
    pub fn refresh(&mut self, io: &dyn SysfsIo, id: CpuId) -> Result<FreqState, DiscoveryError> {
        let policy = match self.cpu(id).and_then(|c| c.cpufreq.as_ref()) {
            Some(freq) => freq.policy.clone(),
            None => return Err(DiscoveryError::NoCpufreq { cpu: id }),
        };
        let state = read_state(io, id)?;
        for freq in self.cpus.values_mut().filter_map(|c| c.cpufreq.as_mut()) {
            if freq.policy == policy {
                freq.state = state.clone();
            }
        }
        Ok(state)
    }
}

/// The CPU numbers of the `cpuN` directories.
fn cpu_dirs(io: &dyn SysfsIo) -> Result<BTreeSet<CpuId>, SysfsError> {
    Ok(io
        .list_dir(&PathBuf::from(paths::CPU_DIR))?
        .iter()
        .filter_map(|name| name.strip_prefix("cpu"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|n| n.parse().ok())
        .map(CpuId)
        .collect())
}

/// The online set: the `online` list cross-checked with each `cpuN/online`
/// (or those files alone, cpu0 online, when the list is absent).
fn online_set(io: &dyn SysfsIo, cpus: &BTreeSet<CpuId>) -> Result<BTreeSet<CpuId>, DiscoveryError> {
    let list_path = paths::cpu_root("online");
    let list = if io.exists(&list_path) {
        Some(read::cpu_list(io, &list_path)?)
    } else {
        None
    };
    let mut online = BTreeSet::new();
    for &cpu in cpus {
        let file = read::flag_opt(io, &paths::cpu_online(cpu))?;
        let listed = list.as_ref().map(|l| l.contains(&cpu));
        if let (Some(listed), Some(file_says)) = (listed, file)
            && listed != file_says
        {
            return Err(DiscoveryError::OnlineMismatch {
                cpu,
                list: io.root().join(&list_path),
                listed,
                file: io.root().join(paths::cpu_online(cpu)),
                file_says,
            });
        }
        if listed.or(file).unwrap_or(true) {
            online.insert(cpu);
        }
    }
    Ok(online)
}

/// Discovers the host's CPUs, cpufreq, topology, domains, switches and uncore.
pub fn discover(io: &dyn SysfsIo) -> Result<HostCpus, DiscoveryError> {
    let ids = cpu_dirs(io)?;
    if ids.is_empty() {
        return Err(DiscoveryError::NoCpus {
            path: io.root().join(paths::CPU_DIR),
        });
    }
    let online = online_set(io, &ids)?;
    let globals = read_globals(io)?;
    let mut cpus = BTreeMap::new();
    let mut domains: BTreeMap<String, FreqDomain> = BTreeMap::new();
    for id in ids {
        let is_online = online.contains(&id);
        let (topology, cpufreq) = if is_online {
            (read_topology(io, id)?, read_cpufreq(io, id, &globals)?)
        } else {
            (None, None)
        };
        if let Some(freq) = &cpufreq {
            domains
                .entry(freq.policy.clone())
                .or_insert_with(|| FreqDomain {
                    policy: freq.policy.clone(),
                    related: freq.related_cpus.clone(),
                    affected: freq.affected_cpus.clone(),
                });
        }
        cpus.insert(
            id,
            CpuInfo {
                id,
                online: is_online,
                topology,
                cpufreq,
            },
        );
    }
    Ok(HostCpus {
        cpus,
        domains,
        globals,
        uncore: discover_uncore(io)?,
    })
}

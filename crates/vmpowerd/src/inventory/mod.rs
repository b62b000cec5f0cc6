//! The VM inventory: which pCPUs each vCPU of each VM may run on, gathered
//! from several sources and merged into the [`Placement`] the engine takes.
//!
//! Every source implements [`VcpuPlacement`] and lives in its own file:
//! - [`static_map`]: the operator's vCPU → pCPU map (config file and
//!   `vmpowerctl set-pcpu`), validated against the host's CPUs;
//! - [`qmp`]: QEMU's QMP `query-cpus-fast` for the vCPU thread ids, with each
//!   thread's affinity read from /proc;
//! - [`procfs`]: the QEMU process found in /proc (by its channel socket or
//!   its `-name`), its `CPU <n>/KVM` threads and their affinity; the text
//!   formats of those files are parsed in [`proc_text`];
//! - `libvirt` (cargo feature `libvirt`): libvirt's vCPU pinning, the
//!   domains' channel paths from their live XML, and domain events.
//!
//! [`Inventory`] merges them. [`pin`] re-pins a live vCPU thread when the
//! operator moves a vCPU.
//!
//! ## Precedence
//! Per vCPU, the first source that knows it wins, in this order:
//! 1. the operator's static map ([`SourceKind::Operator`]): the operator
//!    said so, and on a live VM `set-pcpu` also re-pins the thread;
//! 2. QMP ([`SourceKind::Qmp`]): QEMU itself names the vCPU threads;
//! 3. libvirt ([`SourceKind::Libvirt`]): its own pinning, without thread ids;
//! 4. /proc ([`SourceKind::Procfs`]): thread names, which need
//!    `debug-threads=on`.
//!
//! The number of vCPUs is the largest any *live* source (QMP, /proc)
//! reported, so every placed vCPU is below it; only when no live source
//! answered is it taken from the operator's map (highest vCPU named + 1). Operator entries for vCPUs a live
//! source says do not exist are dropped and reported in
//! [`VmPlacement::ignored`], never silently obeyed.
//!
//! ## Refresh
//! A placement is a snapshot: vCPU threads are re-pinned by libvirt, taskset
//! or the operator, and QEMU restarts with new threads. The daemon never
//! assumes a mapping is stale-free: it calls [`Inventory::refresh`] for a VM
//! when a channel (re)connects, after `set-pcpu`, on libvirt events, and
//! periodically, and hands the result to the engine each time.
//!
//! ## Limitations
//! - /proc is read synchronously: procfs files are generated in memory and
//!   never block on a disk; only QMP, a socket to another process, is async.
//! - Thread ids and socket inodes are those of the daemon's PID and network
//!   namespaces; a QEMU in another namespace is not found through /proc.

pub mod pin;
pub mod proc_text;
pub mod procfs;
pub mod qmp;
pub mod static_map;

#[cfg(feature = "libvirt")]
pub mod libvirt;

#[cfg(any(test, feature = "test-utils"))]
pub mod fake_proc;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake_qmp;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin as StdPin;
use std::sync::{PoisonError, RwLock};

use vmpower_cpufreq::CpuId;
use vmpower_engine::{Placement, Vcpu, VmId};

pub use self::pin::{PinError, pin_thread, thread_affinity};
pub use self::procfs::{ProcfsError, ProcfsPlacement};
pub use self::qmp::{QmpClient, QmpCpu, QmpError, QmpPlacement};
pub use self::static_map::{StaticMapError, StaticPlacement};

/// A process id (the kernel's tgid) as /proc numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(pub u32);

/// A thread id (what `gettid` returns and QMP calls `thread-id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tid(pub u32);

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.0)
    }
}

impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tid {}", self.0)
    }
}

/// Where a vCPU's placement came from; the order is the precedence
/// (`Operator` < `Qmp` < `Libvirt` < `Procfs`: lower wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// The operator's static map (config, `set-pcpu`).
    Operator,
    /// QMP `query-cpus-fast` plus /proc affinity.
    Qmp,
    /// libvirt's vCPU pinning (feature `libvirt`).
    Libvirt,
    /// /proc thread names and affinity.
    Procfs,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Operator => "operator map",
            SourceKind::Qmp => "QMP",
            SourceKind::Libvirt => "libvirt",
            SourceKind::Procfs => "/proc",
        })
    }
}

/// What the daemon knows of a VM that helps a source find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmTarget {
    /// The VM, named as its channel sockets; also matched against QEMU's `-name`.
    pub vm: VmId,
    /// The VM's channel sockets (`<channel-dir>/<vm>.<n>`): the process that
    /// has one open is the VM's QEMU.
    pub channel_sockets: Vec<PathBuf>,
    /// The VM's QMP socket, when the operator configured one.
    pub qmp_socket: Option<PathBuf>,
    /// The QEMU process, when already known (libvirt, or
    /// [`VmPlacement::pid`] of an earlier refresh, which spares /proc a scan
    /// of every process). Ignored once that process has exited.
    pub pid: Option<Pid>,
}

impl VmTarget {
    /// A VM known only by its name.
    pub fn new(vm: VmId) -> Self {
        VmTarget {
            vm,
            channel_sockets: Vec::new(),
            qmp_socket: None,
            pid: None,
        }
    }

    /// Adds a channel socket path.
    pub fn with_channel_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.channel_sockets.push(path.into());
        self
    }

    /// Sets the QMP socket path.
    pub fn with_qmp_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.qmp_socket = Some(path.into());
        self
    }

    /// Sets the QEMU process id.
    pub fn with_pid(mut self, pid: Pid) -> Self {
        self.pid = Some(pid);
        self
    }
}

/// What one source found for one VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePlacement {
    /// vCPU count and affinities.
    pub placement: Placement,
    /// Each vCPU's host thread, where the source knows it.
    pub threads: BTreeMap<Vcpu, Tid>,
    /// The QEMU process, where the source knows it.
    pub pid: Option<Pid>,
}

/// The future a [`VcpuPlacement`] returns: `Ok(None)` when the source does
/// not apply to the VM (no QMP socket configured, nothing in the map).
pub type PlacementFuture<'a> = StdPin<
    Box<dyn Future<Output = Result<Option<SourcePlacement>, PlacementSourceError>> + Send + 'a>,
>;

/// A source of vCPU placements.
pub trait VcpuPlacement: Send + Sync {
    /// Which source this is (its rank in the precedence).
    fn kind(&self) -> SourceKind;

    /// Reads where `target`'s vCPUs run now.
    fn placement<'a>(&'a self, target: &'a VmTarget) -> PlacementFuture<'a>;
}

/// A source failed for a VM: names the source and the VM; the cause says
/// what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementSourceError {
    /// The operator's map refused an entry.
    #[error("operator map, VM {vm}")]
    Operator {
        /// The VM.
        vm: VmId,
        /// What was wrong.
        #[source]
        source: StaticMapError,
    },
    /// QMP failed.
    #[error("QMP, VM {vm}")]
    Qmp {
        /// The VM.
        vm: VmId,
        /// What failed.
        #[source]
        source: QmpError,
    },
    /// /proc failed.
    #[error("/proc, VM {vm}")]
    Procfs {
        /// The VM.
        vm: VmId,
        /// What failed.
        #[source]
        source: ProcfsError,
    },
    /// libvirt failed.
    #[cfg(feature = "libvirt")]
    #[error("libvirt, VM {vm}")]
    Libvirt {
        /// The VM.
        vm: VmId,
        /// What failed.
        #[source]
        source: libvirt::LibvirtError,
    },
    /// Re-pinning a live vCPU thread after `set-pcpu` failed.
    #[error("re-pinning vCPU {vcpu} of VM {vm}")]
    Repin {
        /// The VM.
        vm: VmId,
        /// The vCPU.
        vcpu: Vcpu,
        /// What failed.
        #[source]
        source: PinError,
    },
}

impl PlacementSourceError {
    /// The source that failed.
    pub fn kind(&self) -> SourceKind {
        match self {
            PlacementSourceError::Operator { .. } | PlacementSourceError::Repin { .. } => {
                SourceKind::Operator
            }
            PlacementSourceError::Qmp { .. } => SourceKind::Qmp,
            PlacementSourceError::Procfs { .. } => SourceKind::Procfs,
            #[cfg(feature = "libvirt")]
            PlacementSourceError::Libvirt { .. } => SourceKind::Libvirt,
        }
    }
}

/// One VM's merged placement, with where each part came from.
#[derive(Debug, Default)]
pub struct VmPlacement {
    /// What the engine gets.
    pub placement: Placement,
    /// The source of each placed vCPU.
    pub origin: BTreeMap<Vcpu, SourceKind>,
    /// Each vCPU's host thread, from the live sources.
    pub threads: BTreeMap<Vcpu, Tid>,
    /// The QEMU process, if a live source found it.
    pub pid: Option<Pid>,
    /// The vCPU count a live source (QMP, libvirt, /proc) reported, if any
    /// answered: the VM's size independent of the operator's map.
    pub live_vcpus: Option<usize>,
    /// Operator entries dropped because a live source says the VM has no
    /// such vCPU.
    pub ignored: BTreeMap<Vcpu, CpuId>,
    /// Sources that failed (the merge used the others); log them.
    pub errors: Vec<PlacementSourceError>,
}

impl VmPlacement {
    /// Whether any vCPU is placed.
    pub fn is_placed(&self) -> bool {
        !self.placement.affinity.is_empty()
    }
}

/// Merges the answers of the sources, per vCPU, by precedence (see the
/// module doc). `live` must be in precedence order (QMP before /proc). Pure.
pub fn merge(
    operator: &BTreeMap<Vcpu, CpuId>,
    live: &[(SourceKind, SourcePlacement)],
) -> VmPlacement {
    let mut out = VmPlacement::default();
    let live_count = live.iter().map(|(_, s)| s.placement.vcpus).max();
    for (kind, found) in live {
        if out.pid.is_none() {
            out.pid = found.pid;
        }
        for (vcpu, cpus) in &found.placement.affinity {
            if !out.origin.contains_key(vcpu) {
                out.origin.insert(*vcpu, *kind);
                out.placement.affinity.insert(*vcpu, cpus.clone());
            }
        }
        for (vcpu, tid) in &found.threads {
            out.threads.entry(*vcpu).or_insert(*tid);
        }
    }
    let operator_count = operator.keys().next_back().map_or(0, |v| {
        usize::try_from(*v).map_or(usize::MAX, |v| v.saturating_add(1))
    });
    out.live_vcpus = live_count;
    out.placement.vcpus = live_count.unwrap_or(operator_count);
    for (vcpu, pcpu) in operator {
        let exists = usize::try_from(*vcpu).is_ok_and(|v| v < out.placement.vcpus);
        if exists {
            out.origin.insert(*vcpu, SourceKind::Operator);
            out.placement
                .affinity
                .insert(*vcpu, BTreeSet::from([*pcpu]));
        } else {
            out.ignored.insert(*vcpu, *pcpu);
        }
    }
    out
}

/// The inventory: the operator's map plus the live sources, merged per VM.
///
/// `Send + Sync`: share it behind an `Arc`; the map has its own lock, never
/// held across an await.
pub struct Inventory {
    operator: RwLock<StaticPlacement>,
    live: Vec<Box<dyn VcpuPlacement>>,
}

impl Inventory {
    /// An inventory over the operator's map and the given live sources (any
    /// order: they are ranked by [`VcpuPlacement::kind`]).
    pub fn new(operator: StaticPlacement, mut live: Vec<Box<dyn VcpuPlacement>>) -> Self {
        live.sort_by_key(|s| s.kind());
        Inventory {
            operator: RwLock::new(operator),
            live,
        }
    }

    /// Runs `f` on the operator's map (to add or remove entries).
    pub fn with_operator_map<R>(&self, f: impl FnOnce(&mut StaticPlacement) -> R) -> R {
        let mut map = self
            .operator
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut map)
    }

    /// The operator's entries for `vm`.
    pub fn operator_entries(&self, vm: &VmId) -> BTreeMap<Vcpu, CpuId> {
        let map = self.operator.read().unwrap_or_else(PoisonError::into_inner);
        map.entries(vm).cloned().unwrap_or_default()
    }

    /// Re-reads where `target`'s vCPUs run, from every source, and merges
    /// the answers. Never fails as a whole: failed sources are listed in
    /// [`VmPlacement::errors`].
    pub async fn refresh(&self, target: &VmTarget) -> VmPlacement {
        let operator = self.operator_entries(&target.vm);
        let mut live = Vec::new();
        let mut errors = Vec::new();
        for source in &self.live {
            match source.placement(target).await {
                Ok(Some(found)) => live.push((source.kind(), found)),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        let mut merged = merge(&operator, &live);
        merged.errors = errors;
        merged
    }

    /// `set-pcpu`: records that `vcpu` of `target` runs on `pcpu` and, when
    /// a live source knows the vCPU's thread, re-pins that thread there.
    /// `now` is the VM's placement as the caller just read it
    /// ([`Inventory::refresh`]): its threads name the one to re-pin.
    /// Returns the thread re-pinned, if any. If re-pinning fails the entry
    /// stays recorded (it is the operator's intent and wins in the merge)
    /// and the error says which thread could not be moved.
    pub fn set_pcpu(
        &self,
        target: &VmTarget,
        vcpu: Vcpu,
        pcpu: CpuId,
        now: &VmPlacement,
    ) -> Result<Option<Tid>, PlacementSourceError> {
        self.with_operator_map(|m| m.set(&target.vm, vcpu, pcpu))
            .map_err(|source| PlacementSourceError::Operator {
                vm: target.vm.clone(),
                source,
            })?;
        let Some(tid) = now.threads.get(&vcpu).copied() else {
            return Ok(None);
        };
        pin_thread(tid, &BTreeSet::from([pcpu])).map_err(|source| PlacementSourceError::Repin {
            vm: target.vm.clone(),
            vcpu,
            source,
        })?;
        Ok(Some(tid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(
        kind: SourceKind,
        vcpus: usize,
        aff: &[(Vcpu, &[u32])],
    ) -> (SourceKind, SourcePlacement) {
        let affinity = aff
            .iter()
            .map(|(v, c)| (*v, c.iter().map(|c| CpuId(*c)).collect()))
            .collect();
        let threads = aff.iter().map(|(v, _)| (*v, Tid(100 + v))).collect();
        (
            kind,
            SourcePlacement {
                placement: Placement { vcpus, affinity },
                threads,
                pid: Some(Pid(7)),
            },
        )
    }

    #[test]
    fn operator_beats_qmp_beats_procfs_per_vcpu() {
        let operator = BTreeMap::from([(1, CpuId(5))]);
        let qmp = live(SourceKind::Qmp, 2, &[(0, &[2]), (1, &[2])]);
        let proc = live(SourceKind::Procfs, 3, &[(0, &[3]), (1, &[3]), (2, &[4])]);
        let m = merge(&operator, &[qmp, proc]);
        assert_eq!(m.placement.vcpus, 3);
        assert_eq!(m.placement.affinity[&0], BTreeSet::from([CpuId(2)]));
        assert_eq!(m.placement.affinity[&1], BTreeSet::from([CpuId(5)]));
        assert_eq!(m.placement.affinity[&2], BTreeSet::from([CpuId(4)]));
        assert_eq!(m.origin[&0], SourceKind::Qmp);
        assert_eq!(m.origin[&1], SourceKind::Operator);
        assert_eq!(m.origin[&2], SourceKind::Procfs);
        assert_eq!(m.threads[&2], Tid(102));
        assert_eq!(m.pid, Some(Pid(7)));
        assert!(m.ignored.is_empty());
    }

    #[test]
    fn operator_alone_sets_the_count_and_live_count_drops_extra_entries() {
        let operator = BTreeMap::from([(0, CpuId(1)), (3, CpuId(0))]);
        let alone = merge(&operator, &[]);
        assert_eq!(alone.placement.vcpus, 4);
        assert_eq!(alone.placement.affinity.len(), 2);
        assert!(alone.is_placed());
        assert!(alone.origin.values().all(|k| *k == SourceKind::Operator));
        assert!(alone.threads.is_empty());

        let proc = live(SourceKind::Procfs, 2, &[(0, &[0, 1]), (1, &[0, 1])]);
        let m = merge(&operator, &[proc]);
        assert_eq!(m.placement.vcpus, 2);
        assert_eq!(m.ignored, BTreeMap::from([(3, CpuId(0))]));
        assert!(!m.placement.affinity.contains_key(&3));
        assert_eq!(m.placement.affinity[&0], BTreeSet::from([CpuId(1)]));
    }

    #[test]
    fn nothing_known_is_not_placed() {
        let m = merge(&BTreeMap::new(), &[]);
        assert!(!m.is_placed());
        assert_eq!(m.placement, Placement::default());
    }

    #[test]
    fn errors_name_their_source() {
        let e = PlacementSourceError::Procfs {
            vm: VmId::new("vm0"),
            source: ProcfsError::NoProcess {
                vm: "vm0".into(),
                proc_root: "/p".into(),
            },
        };
        assert_eq!(e.kind(), SourceKind::Procfs);
        assert!(e.to_string().contains("/proc"));
        assert!(e.to_string().contains("vm0"));
    }
}

//! The operator's vCPU → pCPU map per VM, from the config file and
//! `vmpowerctl set-pcpu`: the inventory source that wins over every other.
//!
//! ## Behavior
//! - Every entry is validated when it is made: the pCPU must be one of the
//!   host's CPUs (as the daemon discovered them) and the vCPU below
//!   [`MAX_VCPU`]. A refused entry leaves the map unchanged.
//! - Entries from the config file are all checked before any is kept, so a
//!   config with one bad line changes nothing, and a vCPU given twice with
//!   two pCPUs is refused rather than resolved by order.
//! - No I/O: re-pinning a live thread is [`super::Inventory::set_pcpu`]'s job.

use std::collections::{BTreeMap, BTreeSet};

use vmpower_cpufreq::CpuId;
use vmpower_cpufreq::cpulist::format_cpu_list;
use vmpower_engine::{Placement, Vcpu, VmId};

use super::{PlacementFuture, SourceKind, SourcePlacement, VcpuPlacement, VmTarget};

/// The highest vCPU number accepted (QEMU's x86 `maxcpus` ceiling is 4096
/// vCPUs, numbered from 0).
pub const MAX_VCPU: Vcpu = 4095;

/// Why an operator entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticMapError {
    /// The pCPU is not one of the host's CPUs.
    #[error("vCPU {vcpu} → pCPU {pcpu}: the host has no such CPU (host CPUs: {host})")]
    PcpuNotOnHost {
        /// The vCPU.
        vcpu: Vcpu,
        /// The pCPU asked for.
        pcpu: u32,
        /// The host's CPUs, as a CPU list.
        host: String,
    },
    /// The vCPU number is beyond any VM QEMU can run.
    #[error("vCPU {vcpu} is above the limit {MAX_VCPU}")]
    VcpuTooLarge {
        /// The vCPU.
        vcpu: Vcpu,
    },
    /// The same vCPU is given two different pCPUs in one batch.
    #[error("vCPU {vcpu} is mapped twice: to pCPU {first} and to pCPU {second}")]
    Conflict {
        /// The vCPU.
        vcpu: Vcpu,
        /// The first pCPU given.
        first: u32,
        /// The other pCPU given.
        second: u32,
    },
}

/// The operator's map: vCPU → one pCPU, per VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticPlacement {
    host_cpus: BTreeSet<CpuId>,
    vms: BTreeMap<VmId, BTreeMap<Vcpu, CpuId>>,
}

impl StaticPlacement {
    /// An empty map for a host with `host_cpus`.
    pub fn new(host_cpus: BTreeSet<CpuId>) -> Self {
        StaticPlacement {
            host_cpus,
            vms: BTreeMap::new(),
        }
    }

    /// The host CPUs entries are checked against.
    pub fn host_cpus(&self) -> &BTreeSet<CpuId> {
        &self.host_cpus
    }

    fn check(&self, vcpu: Vcpu, pcpu: CpuId) -> Result<(), StaticMapError> {
        if vcpu > MAX_VCPU {
            return Err(StaticMapError::VcpuTooLarge { vcpu });
        }
        if !self.host_cpus.contains(&pcpu) {
            return Err(StaticMapError::PcpuNotOnHost {
                vcpu,
                pcpu: pcpu.0,
                host: format_cpu_list(&self.host_cpus),
            });
        }
        Ok(())
    }

    /// Records that `vcpu` of `vm` runs on `pcpu` (`set-pcpu`); returns the
    /// pCPU it replaced.
    pub fn set(
        &mut self,
        vm: &VmId,
        vcpu: Vcpu,
        pcpu: CpuId,
    ) -> Result<Option<CpuId>, StaticMapError> {
        self.check(vcpu, pcpu)?;
        Ok(self.vms.entry(vm.clone()).or_default().insert(vcpu, pcpu))
    }

    /// Records a VM's entries from the config file: all or nothing.
    pub fn set_all(
        &mut self,
        vm: &VmId,
        entries: impl IntoIterator<Item = (Vcpu, CpuId)>,
    ) -> Result<(), StaticMapError> {
        let mut batch = BTreeMap::new();
        for (vcpu, pcpu) in entries {
            self.check(vcpu, pcpu)?;
            if let Some(first) = batch.insert(vcpu, pcpu)
                && first != pcpu
            {
                return Err(StaticMapError::Conflict {
                    vcpu,
                    first: first.0,
                    second: pcpu.0,
                });
            }
        }
        if !batch.is_empty() {
            self.vms.entry(vm.clone()).or_default().extend(batch);
        }
        Ok(())
    }

    /// Forgets one vCPU's entry; returns the pCPU it had.
    pub fn unset(&mut self, vm: &VmId, vcpu: Vcpu) -> Option<CpuId> {
        let map = self.vms.get_mut(vm)?;
        let old = map.remove(&vcpu);
        if map.is_empty() {
            self.vms.remove(vm);
        }
        old
    }

    /// Forgets a VM (`rm-vm`).
    pub fn remove_vm(&mut self, vm: &VmId) {
        self.vms.remove(vm);
    }

    /// A VM's entries, if it has any.
    pub fn entries(&self, vm: &VmId) -> Option<&BTreeMap<Vcpu, CpuId>> {
        self.vms.get(vm)
    }

    /// Every VM with entries.
    pub fn vms(&self) -> impl Iterator<Item = &VmId> {
        self.vms.keys()
    }

    /// The VM's placement from the map alone: as many vCPUs as the highest
    /// one named + 1, each pinned to its one pCPU.
    pub fn placement(&self, vm: &VmId) -> Option<Placement> {
        let map = self.vms.get(vm)?;
        let vcpus = map
            .keys()
            .next_back()
            .and_then(|v| usize::try_from(*v).ok())
            .map_or(0, |v| v + 1);
        Some(Placement {
            vcpus,
            affinity: map
                .iter()
                .map(|(v, p)| (*v, BTreeSet::from([*p])))
                .collect(),
        })
    }
}

impl VcpuPlacement for StaticPlacement {
    fn kind(&self) -> SourceKind {
        SourceKind::Operator
    }

    fn placement<'a>(&'a self, target: &'a VmTarget) -> PlacementFuture<'a> {
        let found = StaticPlacement::placement(self, &target.vm).map(|placement| SourcePlacement {
            placement,
            ..SourcePlacement::default()
        });
        Box::pin(std::future::ready(Ok(found)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: u32) -> StaticPlacement {
        StaticPlacement::new((0..n).map(CpuId).collect())
    }

    #[test]
    fn set_replaces_and_reports_the_old_pcpu() {
        let mut m = host(4);
        let vm = VmId::new("vm0");
        assert_eq!(m.set(&vm, 1, CpuId(2)), Ok(None));
        assert_eq!(m.set(&vm, 1, CpuId(3)), Ok(Some(CpuId(2))));
        let p = m.placement(&vm).expect("has entries");
        assert_eq!(p.vcpus, 2);
        assert_eq!(p.affinity[&1], BTreeSet::from([CpuId(3)]));
        assert!(!p.affinity.contains_key(&0));
    }

    #[test]
    fn pcpu_beyond_the_host_is_refused_and_changes_nothing() {
        let mut m = host(2);
        let vm = VmId::new("vm0");
        let err = m.set(&vm, 0, CpuId(2)).expect_err("cpu2 does not exist");
        assert_eq!(
            err,
            StaticMapError::PcpuNotOnHost {
                vcpu: 0,
                pcpu: 2,
                host: "0-1".into()
            }
        );
        assert!(err.to_string().contains("0-1"));
        assert_eq!(m.entries(&vm), None);
    }

    #[test]
    fn vcpu_above_the_limit_is_refused() {
        let mut m = host(2);
        let err = m.set(&VmId::new("a"), MAX_VCPU + 1, CpuId(0));
        assert_eq!(
            err,
            Err(StaticMapError::VcpuTooLarge { vcpu: MAX_VCPU + 1 })
        );
        assert_eq!(m.set(&VmId::new("a"), MAX_VCPU, CpuId(0)), Ok(None));
    }

    #[test]
    fn set_all_is_all_or_nothing() {
        let mut m = host(4);
        let vm = VmId::new("vm0");
        let bad = m.set_all(&vm, [(0, CpuId(1)), (1, CpuId(9))]);
        assert!(matches!(
            bad,
            Err(StaticMapError::PcpuNotOnHost { pcpu: 9, .. })
        ));
        assert_eq!(m.entries(&vm), None);
        let twice = m.set_all(&vm, [(0, CpuId(1)), (0, CpuId(2))]);
        assert_eq!(
            twice,
            Err(StaticMapError::Conflict {
                vcpu: 0,
                first: 1,
                second: 2
            })
        );
        assert_eq!(m.entries(&vm), None);
        m.set_all(&vm, [(0, CpuId(1)), (0, CpuId(1)), (2, CpuId(3))])
            .expect("valid");
        assert_eq!(m.entries(&vm).map(BTreeMap::len), Some(2));
    }

    #[test]
    fn unset_and_remove_forget() {
        let mut m = host(2);
        let vm = VmId::new("vm0");
        m.set(&vm, 0, CpuId(1)).expect("valid");
        m.set(&vm, 1, CpuId(0)).expect("valid");
        assert_eq!(m.unset(&vm, 0), Some(CpuId(1)));
        assert_eq!(m.unset(&vm, 0), None);
        assert_eq!(m.vms().count(), 1);
        m.remove_vm(&vm);
        assert_eq!(m.vms().count(), 0);
        assert_eq!(m.placement(&vm), None);
    }

    #[tokio::test]
    async fn as_a_source_it_answers_only_for_mapped_vms() {
        let mut m = host(2);
        m.set(&VmId::new("a"), 0, CpuId(1)).expect("valid");
        let a = VcpuPlacement::placement(&m, &VmTarget::new(VmId::new("a")))
            .await
            .expect("infallible")
            .expect("mapped");
        assert_eq!(a.placement, Placement::pinned(&[1]));
        assert!(a.threads.is_empty());
        let b = VcpuPlacement::placement(&m, &VmTarget::new(VmId::new("b"))).await;
        assert!(matches!(b, Ok(None)));
        assert_eq!(m.kind(), SourceKind::Operator);
    }
}

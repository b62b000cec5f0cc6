//! Operator-given vCPU placements (config file `pcpus`, `vmpowerctl
//! set-pcpu`): the first inventory source, which wins over what /proc or
//! QMP report.

use std::collections::{BTreeMap, BTreeSet};

use vmpower_cpufreq::CpuId;
use vmpower_engine::{Placement, Vcpu, VmId};

/// vCPU → pCPU per VM, as the operator stated it.
#[derive(Debug, Default, Clone)]
pub struct Placements {
    vms: BTreeMap<VmId, BTreeMap<Vcpu, CpuId>>,
}

impl Placements {
    /// Records that `vcpu` of `vm` runs on `pcpu`.
    pub fn set(&mut self, vm: &VmId, vcpu: Vcpu, pcpu: CpuId) {
        self.vms.entry(vm.clone()).or_default().insert(vcpu, pcpu);
    }

    /// Forgets a VM.
    pub fn remove(&mut self, vm: &VmId) {
        self.vms.remove(vm);
    }

    /// The VM's placement: as many vCPUs as the highest one named + 1.
    pub fn get(&self, vm: &VmId) -> Placement {
        let Some(map) = self.vms.get(vm) else {
            return Placement::default();
        };
        let vcpus = map.keys().next_back().map_or(0, |v| *v as usize + 1);
        Placement {
            vcpus,
            affinity: map
                .iter()
                .map(|(v, p)| (*v, BTreeSet::from([*p])))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_vcpu_sets_the_count() {
        let mut p = Placements::default();
        let vm = VmId::new("a");
        assert_eq!(p.get(&vm), Placement::default());
        p.set(&vm, 2, CpuId(5));
        p.set(&vm, 0, CpuId(1));
        let got = p.get(&vm);
        assert_eq!(got.vcpus, 3);
        assert_eq!(got.affinity.len(), 2);
        assert!(!got.affinity.contains_key(&1));
        p.remove(&vm);
        assert_eq!(p.get(&vm).vcpus, 0);
    }
}

//! The levels a VM wants, per core it asked about: per vCPU (a vector
//! indexed by vCPU number, read on every vote) and per pCPU named
//! directly (rare: physical-core requests).
//!
//! Iterates in [`CoreKey`] order (every vCPU key, then every pCPU key),
//! as the ordered map it replaces did.

use std::collections::BTreeMap;

use vmpower_types::CpuId;

use crate::cpumap::DenseMap;
use crate::ids::Vcpu;
use crate::vm::{CoreKey, Want};

/// vCPU numbers kept in the vector (more than any VM has); larger ones,
/// which only an operator's placement could allow, in an ordered map.
const VCPU_LIMIT: u32 = 1 << 12;

/// A VM's wants, per core.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wants {
    vcpus: DenseMap<Vcpu, Want, VCPU_LIMIT>,
    pcpus: BTreeMap<CpuId, Want>,
}

impl Wants {
    /// The want on `key`.
    #[inline]
    pub fn get(&self, key: &CoreKey) -> Option<&Want> {
        match key {
            CoreKey::Vcpu(v) => self.vcpus.get(v),
            CoreKey::Pcpu(c) => self.pcpus.get(c),
        }
    }

    /// The want on `cpu` named directly, if any.
    #[inline]
    pub fn pcpu(&self, cpu: CpuId) -> Option<&Want> {
        if self.pcpus.is_empty() {
            None
        } else {
            self.pcpus.get(&cpu)
        }
    }

    /// Sets the want on `key`; returns the one it replaces.
    pub fn insert(&mut self, key: CoreKey, want: Want) -> Option<Want> {
        match key {
            CoreKey::Vcpu(v) => self.vcpus.insert(v, want),
            CoreKey::Pcpu(c) => self.pcpus.insert(c, want),
        }
    }

    /// Removes the want on `key` and returns it.
    pub fn remove(&mut self, key: &CoreKey) -> Option<Want> {
        match key {
            CoreKey::Vcpu(v) => self.vcpus.remove(v),
            CoreKey::Pcpu(c) => self.pcpus.remove(c),
        }
    }

    /// [`Wants::set`] on each of `keys`; whether that changed anything.
    pub fn set_all(&mut self, keys: &[CoreKey], want: Option<Want>) -> bool {
        let mut changed = false;
        for key in keys {
            changed |= self.set(*key, want);
        }
        changed
    }

    /// Sets (`Some`) or clears (`None`) the want on `key`; whether that
    /// changed anything.
    #[inline(always)]
    pub fn set(&mut self, key: CoreKey, want: Option<Want>) -> bool {
        let Some(want) = want else {
            return self.remove(&key).is_some();
        };
        let slot = match key {
            CoreKey::Vcpu(v) => self.vcpus.get_mut(&v),
            CoreKey::Pcpu(c) => self.pcpus.get_mut(&c),
        };
        match slot {
            Some(w) if *w == want => false,
            Some(w) => {
                *w = want;
                true
            }
            None => {
                self.insert(key, want);
                true
            }
        }
    }

    /// Every key with a want, in [`CoreKey`] order.
    pub fn keys(&self) -> impl Iterator<Item = CoreKey> + '_ {
        self.vcpus
            .keys()
            .map(CoreKey::Vcpu)
            .chain(self.pcpus.keys().map(|c| CoreKey::Pcpu(*c)))
    }
}

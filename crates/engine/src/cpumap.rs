//! Maps keyed by small integers (CPU and vCPU numbers) for the engine's
//! hot path: a traffic tick looks up several per vCPU change, and an
//! ordered or hashed map costs a dozen compares or a hash each, where a
//! vector indexed by the number costs one load.
//!
//! ## Behavior
//! - Keys below the map's `LIMIT` live in a vector indexed by the key;
//!   larger ones (a CPU number nobody's host has, which an operator could
//!   still type) in an ordered map beside it, so no key can make the map
//!   allocate more than `LIMIT` slots.
//! - Iteration is in ascending key order (the vector, then the larger
//!   keys).
//!
//! ## Limitations
//! The vector grows to the largest small key ever inserted and does not
//! shrink: fine for CPU numbers (bounded by the host) and vCPU numbers.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use vmpower_types::CpuId;

/// A key that is a small integer.
pub(crate) trait DenseKey: Copy + Ord {
    /// The integer.
    fn slot(self) -> u32;
    /// The key of an integer.
    fn from_slot(slot: u32) -> Self;
}

impl DenseKey for CpuId {
    fn slot(self) -> u32 {
        self.0
    }
    fn from_slot(slot: u32) -> Self {
        CpuId(slot)
    }
}

impl DenseKey for u32 {
    fn slot(self) -> u32 {
        self
    }
    fn from_slot(slot: u32) -> Self {
        slot
    }
}

/// Slots in the vector of a [`CpuMap`]: more CPUs than Linux supports
/// (`NR_CPUS` ≤ 8,192).
pub(crate) const CPU_LIMIT: u32 = 1 << 14;

/// A map from pCPU to `V`.
pub(crate) type CpuMap<V> = DenseMap<CpuId, V, CPU_LIMIT>;

/// A map from a small-integer key to `V` (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct DenseMap<K: DenseKey, V, const LIMIT: u32> {
    /// The first slots inline (a VM's few vCPUs need no allocation).
    dense: SmallVec<[Option<V>; 8]>,
    sparse: BTreeMap<K, V>,
}

impl<K: DenseKey, V, const LIMIT: u32> Default for DenseMap<K, V, LIMIT> {
    fn default() -> Self {
        DenseMap {
            dense: SmallVec::new(),
            sparse: BTreeMap::new(),
        }
    }
}

fn index(slot: u32) -> usize {
    usize::try_from(slot).expect("u32 fits usize")
}

impl<K: DenseKey, V, const LIMIT: u32> DenseMap<K, V, LIMIT> {
    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        let slot = key.slot();
        if slot < LIMIT {
            self.dense.get(index(slot)).and_then(Option::as_ref)
        } else {
            self.sparse.get(key)
        }
    }

    /// The value of `key`, mutably.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let slot = key.slot();
        if slot < LIMIT {
            self.dense.get_mut(index(slot)).and_then(Option::as_mut)
        } else {
            self.sparse.get_mut(key)
        }
    }

    /// Sets `key`'s value; returns the one it replaces.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let slot = key.slot();
        if slot < LIMIT {
            let i = index(slot);
            if self.dense.len() <= i {
                self.dense.resize_with(i + 1, || None);
            }
            self.dense[i].replace(value)
        } else {
            self.sparse.insert(key, value)
        }
    }

    /// Removes `key`'s value and returns it.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = key.slot();
        if slot < LIMIT {
            self.dense.get_mut(index(slot)).and_then(Option::take)
        } else {
            self.sparse.remove(key)
        }
    }

    /// `key`'s value, inserting `make()` first if it has none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let slot = key.slot();
        if slot < LIMIT {
            let i = index(slot);
            if self.dense.len() <= i {
                self.dense.resize_with(i + 1, || None);
            }
            self.dense[i].get_or_insert_with(make)
        } else {
            self.sparse.entry(key).or_insert_with(make)
        }
    }

    /// Every (key, value), in ascending key order.
    pub fn iter(&self) -> impl Iterator<Item = (K, &V)> {
        let dense = (0u32..)
            .zip(&self.dense)
            .filter_map(|(slot, v)| Some((K::from_slot(slot), v.as_ref()?)));
        dense.chain(self.sparse.iter().map(|(k, v)| (*k, v)))
    }

    /// Every key, in ascending order.
    pub fn keys(&self) -> impl Iterator<Item = K> {
        self.iter().map(|(k, _)| k)
    }

    /// Every value, mutably, in ascending key order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.dense
            .iter_mut()
            .filter_map(Option::as_mut)
            .chain(self.sparse.values_mut())
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(K, &mut V) -> bool) {
        for (slot, entry) in (0u32..).zip(self.dense.iter_mut()) {
            if let Some(v) = entry
                && !keep(K::from_slot(slot), v)
            {
                *entry = None;
            }
        }
        self.sparse.retain(|k, v| keep(*k, v));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every operation agrees with an ordered map, on keys both
        /// below and above the limit.
        #[test]
        fn behaves_as_an_ordered_map(ops in prop::collection::vec((0u8..5, 0u32..24, any::<u16>()), 1..200)) {
            let mut map: DenseMap<u32, u16, 16> = DenseMap::default();
            let mut model: BTreeMap<u32, u16> = BTreeMap::new();
            for (op, key, value) in ops {
                match op {
                    0 => prop_assert_eq!(map.insert(key, value), model.insert(key, value)),
                    1 => prop_assert_eq!(map.remove(&key), model.remove(&key)),
                    2 => {
                        let got = *map.get_or_insert_with(key, || value);
                        prop_assert_eq!(got, *model.entry(key).or_insert(value));
                    }
                    3 => {
                        map.retain(|k, v| (k + u32::from(*v)) % 3 != 0);
                        model.retain(|k, v| (k + u32::from(*v)) % 3 != 0);
                    }
                    _ => {
                        if let Some(v) = map.get_mut(&key) {
                            *v = v.wrapping_add(1);
                        }
                        if let Some(v) = model.get_mut(&key) {
                            *v = v.wrapping_add(1);
                        }
                    }
                }
                let got: Vec<(u32, u16)> = map.iter().map(|(k, v)| (k, *v)).collect();
                let want: Vec<(u32, u16)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(map.get(&key), model.get(&key));
            }
            for v in map.values_mut() {
                *v = 0;
            }
            prop_assert!(map.iter().all(|(_, v)| *v == 0));
        }
    }

    #[test]
    fn a_huge_cpu_number_does_not_grow_the_vector() {
        let mut map: CpuMap<u8> = CpuMap::default();
        map.insert(CpuId(u32::MAX), 1);
        map.insert(CpuId(3), 2);
        assert_eq!(map.dense.len(), 4);
        assert_eq!(map.keys().collect::<Vec<_>>(), [CpuId(3), CpuId(u32::MAX)]);
    }
}

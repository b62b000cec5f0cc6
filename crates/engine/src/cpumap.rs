//! A hash map keyed by CPU number, for the engine's per-pCPU lookups on
//! the hot path (a traffic tick looks up several per vCPU change; an
//! ordered map of 1,024 pCPUs costs a dozen compares each).
//!
//! The hash is a multiplication (Fibonacci hashing): CPU numbers are
//! small, dense and come from the host's inventory or are checked
//! against it, not chosen by a guest, so no keyed hash is needed.
//!
//! ## Limitations
//! Iteration order is not sorted: whoever needs an order sorts.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use vmpower_cpufreq::CpuId;

/// A map from pCPU to `V` with a cheap hash.
pub(crate) type CpuMap<V> = HashMap<CpuId, V, BuildHasherDefault<CpuHasher>>;

/// Multiplicative hasher for small integer keys.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuHasher(u64);

/// 2^64 / φ, odd: spreads consecutive keys over the high bits.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for CpuHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(GOLDEN);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(GOLDEN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_cpus_stay_distinct_keys() {
        let mut m: CpuMap<u32> = CpuMap::default();
        for cpu in 0..4_096 {
            m.insert(CpuId(cpu), cpu * 2);
        }
        assert_eq!(m.len(), 4_096);
        assert!((0..4_096).all(|c| m.get(&CpuId(c)) == Some(&(c * 2))));
        assert_eq!(m.get(&CpuId(4_096)), None);
    }

    #[test]
    fn consecutive_cpus_hash_apart() {
        let h = |cpu: u32| {
            let mut s = CpuHasher::default();
            s.write_u32(cpu);
            s.finish()
        };
        // The high 7 bits (hashbrown's tag) differ for neighbours.
        assert_ne!(h(0) >> 57, h(1) >> 57);
        assert_ne!(h(1) >> 57, h(2) >> 57);
    }
}

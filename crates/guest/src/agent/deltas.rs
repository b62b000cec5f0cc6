//! Busyness from cumulative counters: DPDK's lcore busy/total cycles and
//! the kernel's per-CPU busy/total time both only grow, so a busy share
//! is the ratio of two samples' differences. Pure; no I/O.

use std::collections::BTreeMap;

/// One CPU's busyness over the last interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuBusyness {
    /// The CPU inside the guest (a vCPU index).
    pub cpu: u32,
    /// Per mille of its counted time spent busy, 0..=1000.
    pub permille: u16,
}

/// One cumulative sample: `busy` of `total` units so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// What the counter belongs to (an lcore, a CPU).
    pub key: u32,
    /// Busy units so far.
    pub busy: u64,
    /// All units so far.
    pub total: u64,
}

/// The previous sample of every counter.
#[derive(Debug, Default, Clone)]
pub struct CounterDeltas {
    last: BTreeMap<u32, (u64, u64)>,
}

impl CounterDeltas {
    /// Forgets every previous sample (a new application, a new source).
    pub fn reset(&mut self) {
        self.last.clear();
    }

    /// Busyness per CPU since the previous call: each counter's growth,
    /// summed over the counters on the same CPU (`cpu_of`). A counter
    /// seen for the first time, one that went backwards (the application
    /// restarted), one that counted nothing, or one whose CPU is unknown
    /// gives nothing. Counters not in `sample` are forgotten.
    pub fn update(
        &mut self,
        sample: &[Counter],
        cpu_of: impl Fn(u32) -> Option<u32>,
    ) -> Vec<CpuBusyness> {
        let mut per_cpu: BTreeMap<u32, (u128, u128)> = BTreeMap::new();
        let mut next = BTreeMap::new();
        for c in sample {
            // A busy count above the total is read as fully busy.
            let busy = c.busy.min(c.total);
            if let Some(&(last_busy, last_total)) = self.last.get(&c.key)
                && let Some(d_total) = c.total.checked_sub(last_total).filter(|d| *d > 0)
                && let Some(d_busy) = busy.checked_sub(last_busy)
                && let Some(cpu) = cpu_of(c.key)
            {
                let e = per_cpu.entry(cpu).or_default();
                e.0 += u128::from(d_busy.min(d_total));
                e.1 += u128::from(d_total);
            }
            next.insert(c.key, (busy, c.total));
        }
        self.last = next;
        per_cpu
            .into_iter()
            .map(|(cpu, (busy, total))| CpuBusyness {
                cpu,
                permille: permille(busy, total),
            })
            .collect()
    }
}

/// `busy / total` in per mille, rounded (`total > 0`, `busy <= total`).
fn permille(busy: u128, total: u128) -> u16 {
    let p = (busy * 1000 + total / 2) / total;
    u16::try_from(p.min(1000)).expect("at most 1000")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: u32, busy: u64, total: u64) -> Counter {
        Counter { key, busy, total }
    }

    #[test]
    fn the_second_sample_gives_the_interval_share() {
        let mut d = CounterDeltas::default();
        assert_eq!(d.update(&[c(1, 100, 1000)], Some), vec![]);
        assert_eq!(
            d.update(&[c(1, 400, 2000)], Some),
            vec![CpuBusyness {
                cpu: 1,
                permille: 300
            }]
        );
        // Nothing counted: nothing said.
        assert_eq!(d.update(&[c(1, 400, 2000)], Some), vec![]);
    }

    #[test]
    fn lcores_on_one_cpu_are_summed_and_unknown_cpus_skipped() {
        let mut d = CounterDeltas::default();
        let cpu_of = |lcore| match lcore {
            1 | 2 => Some(5),
            _ => None,
        };
        d.update(&[c(1, 0, 0), c(2, 0, 0), c(3, 0, 0)], cpu_of);
        let out = d.update(&[c(1, 1000, 1000), c(2, 0, 1000), c(3, 5, 10)], cpu_of);
        assert_eq!(
            out,
            vec![CpuBusyness {
                cpu: 5,
                permille: 500
            }]
        );
    }

    #[test]
    fn counters_going_backwards_restart_the_count() {
        let mut d = CounterDeltas::default();
        d.update(&[c(1, 500, 1000)], Some);
        assert_eq!(d.update(&[c(1, 10, 20)], Some), vec![]);
        assert_eq!(
            d.update(&[c(1, 20, 40)], Some),
            vec![CpuBusyness {
                cpu: 1,
                permille: 500
            }]
        );
        // Busy above total (a racy read) counts as fully busy, never more.
        assert_eq!(
            d.update(&[c(1, u64::MAX, 60)], Some),
            vec![CpuBusyness {
                cpu: 1,
                permille: 1000
            }]
        );
    }

    #[test]
    fn rounding_and_huge_counters() {
        assert_eq!(permille(1, 3), 333);
        assert_eq!(permille(2, 3), 667);
        let mut d = CounterDeltas::default();
        d.update(&[c(0, u64::MAX - 10, u64::MAX - 10)], Some);
        assert_eq!(
            d.update(&[c(0, u64::MAX, u64::MAX)], Some),
            vec![CpuBusyness {
                cpu: 0,
                permille: 1000
            }]
        );
    }
}

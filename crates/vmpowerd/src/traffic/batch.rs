//! [`SampleBatch`]: one tick's answer for every sampled MAC, kept by the
//! sampler from tick to tick so that a counter source can refresh the
//! counters in place instead of building a new answer each time.
//!
//! With 1,024 TRAFFIC policies sampled every 100 ms, building a fresh
//! `Vec<MacSample>` each tick meant 1,024 device names cloned (and freed),
//! 1,024 MAC lookups through the precedence rules, and the sampler
//! comparing 1,024 sources with what `policy show` had. The sources change
//! only with the links (a dump, a VF re-read, a configuration reload); the
//! counters change every tick. So a batch remembers, for each found MAC,
//! where its counter sits in the [`LinkTable`] it was resolved from
//! ([`CounterRef`]), and which state of which source that was (a stamp).
//!
//! ## Behavior
//! - [`SampleBatch::replace`] puts a freshly resolved answer in and says
//!   whether any MAC, source or missing reason differs from what the batch
//!   held (the counters themselves are not compared).
//! - [`SampleBatch::refresh_counters`] re-reads each found MAC's counter
//!   from the table; the source that stamped the batch calls it only while
//!   its table has the same shape (same links, same VFs, same counters
//!   present) as when the batch was resolved.
//!
//! No I/O here.

use std::collections::HashMap;

use super::{LinkTable, MacAddr, MacReading, MacSample, SourceKind};

/// Where a found MAC's counter is read in a [`LinkTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CounterRef {
    /// `links[i].rx_packets`.
    LinkRx(usize),
    /// `links[i].tx_packets`.
    LinkTx(usize),
    /// `links[i].vfs[j].rx_packets`.
    VfRx(usize, usize),
}

/// One tick's samples, one per MAC asked for, in the order asked.
#[derive(Clone, Debug, Default)]
pub struct SampleBatch {
    samples: Vec<MacSample>,
    /// Per sample, where its counter is (`None` for a missing MAC); empty
    /// when the batch cannot be refreshed in place.
    refs: Vec<Option<CounterRef>>,
    /// The (source, table generation) the refs belong to.
    stamp: Option<(u64, u64)>,
}

impl SampleBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// The samples, one per MAC of the last call, in its order.
    pub fn samples(&self) -> &[MacSample] {
        &self.samples
    }

    /// Replaces the samples with `fresh`, forgetting any counter
    /// locations. True when a MAC, a source or a missing reason differs
    /// from the previous contents.
    pub fn replace(&mut self, fresh: Vec<MacSample>) -> bool {
        let changed = !same_sources(&self.samples, &fresh);
        self.samples = fresh;
        self.refs.clear();
        self.stamp = None;
        changed
    }

    /// The stamp given by [`SampleBatch::replace_located`], if the batch
    /// can be refreshed in place.
    pub(super) fn stamp(&self) -> Option<(u64, u64)> {
        self.stamp
    }

    /// True when the batch answers exactly `macs`, in that order.
    pub(super) fn answers(&self, macs: &[MacAddr]) -> bool {
        self.samples.len() == macs.len() && self.samples.iter().zip(macs).all(|(s, m)| s.mac == *m)
    }

    /// [`SampleBatch::replace`], remembering where each found counter sits
    /// in `table` and stamping the batch with `stamp`. If some found
    /// sample cannot be located the batch is left unstamped (it is then
    /// resolved afresh every tick: slower, never stale).
    pub(super) fn replace_located(
        &mut self,
        fresh: Vec<MacSample>,
        table: &LinkTable,
        stamp: (u64, u64),
    ) -> bool {
        let changed = self.replace(fresh);
        let names: HashMap<&str, usize> = table
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| (l.ifname.as_str(), i))
            .collect();
        let mut complete = true;
        self.refs = self
            .samples
            .iter()
            .map(|s| match &s.reading {
                MacReading::Found { source, .. } => {
                    let r = locate(table, &names, source);
                    complete &= r.is_some();
                    r
                }
                MacReading::Missing(_) => None,
            })
            .collect();
        if complete {
            self.stamp = Some(stamp);
        } else {
            self.refs.clear();
        }
        changed
    }

    /// Re-reads every located counter from `table` (same shape as when the
    /// batch was located; a counter that is absent keeps its last value).
    pub(super) fn refresh_counters(&mut self, table: &LinkTable) {
        for (sample, r) in self.samples.iter_mut().zip(&self.refs) {
            if let (
                MacReading::Found {
                    rx_packets, drops, ..
                },
                Some(r),
            ) = (&mut sample.reading, r)
                && let Some((value, dropped)) = read(table, *r)
            {
                *rx_packets = value;
                if dropped.is_some() {
                    *drops = dropped;
                }
            }
        }
    }
}

/// Where `source`'s counter is in `table` (`names`: ifname → position).
fn locate(
    table: &LinkTable,
    names: &HashMap<&str, usize>,
    source: &SourceKind,
) -> Option<CounterRef> {
    use super::Direction;
    match source {
        SourceKind::Netdev { ifname } => names.get(ifname.as_str()).map(|&i| CounterRef::LinkRx(i)),
        SourceKind::Tap { ifname } => names.get(ifname.as_str()).map(|&i| CounterRef::LinkTx(i)),
        SourceKind::Configured { ifname, direction } => {
            let &i = names.get(ifname.as_str())?;
            match direction {
                Direction::Tx => Some(CounterRef::LinkTx(i)),
                Direction::Rx => Some(CounterRef::LinkRx(i)),
                // A found configured source has its direction resolved.
                Direction::Auto => None,
            }
        }
        SourceKind::Vf { pf, vf } => {
            let &i = names.get(pf.as_str())?;
            let j = table.links[i].vfs.iter().position(|v| v.vf == *vf)?;
            Some(CounterRef::VfRx(i, j))
        }
    }
}

/// The packet counter at `r` and its drop counter.
fn read(table: &LinkTable, r: CounterRef) -> Option<(u64, Option<u64>)> {
    match r {
        CounterRef::LinkRx(i) => {
            let l = table.links.get(i)?;
            Some((l.rx_packets?, l.rx_drops))
        }
        CounterRef::LinkTx(i) => {
            let l = table.links.get(i)?;
            Some((l.tx_packets?, l.tx_drops))
        }
        CounterRef::VfRx(i, j) => {
            let v = table.links.get(i)?.vfs.get(j)?;
            Some((v.rx_packets?, v.rx_drops))
        }
    }
}

/// Same MACs in the same order, each with the same source or reason.
fn same_sources(old: &[MacSample], new: &[MacSample]) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|(a, b)| {
            a.mac == b.mac
                && match (&a.reading, &b.reading) {
                    (MacReading::Found { source: x, .. }, MacReading::Found { source: y, .. }) => {
                        x == y
                    }
                    (MacReading::Missing(x), MacReading::Missing(y)) => x == y,
                    _ => false,
                }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{
        ConfiguredDevice, ConfiguredMap, Direction, LinkEntry, MissingReason, VfEntry, resolve,
    };

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, last])
    }

    fn link(index: u32, ifname: &str, mac: MacAddr, is_tun: bool) -> LinkEntry {
        LinkEntry {
            index,
            ifname: ifname.into(),
            mac: Some(mac),
            rx_packets: Some(u64::from(index)),
            tx_packets: Some(u64::from(index) + 100),
            is_tun,
            vfs: Vec::new(),
            rx_drops: None,
            tx_drops: None,
        }
    }

    /// A table with each kind of source: a netdev, a libvirt tap, a PF
    /// with a VF, and a configured device.
    fn table() -> LinkTable {
        let mut pf = link(4, "pf0", mac(0x40), false);
        pf.vfs = vec![
            VfEntry {
                vf: 0,
                mac: mac(9),
                rx_packets: Some(5),
                tx_packets: Some(6),
                rx_drops: None,
            },
            VfEntry {
                vf: 3,
                mac: mac(3),
                rx_packets: Some(7),
                tx_packets: Some(8),
                rx_drops: None,
            },
        ];
        LinkTable {
            links: vec![
                link(2, "veth1", mac(1), false),
                link(3, "vnet0", crate::traffic::libvirt_tap_mac(mac(2)), true),
                pf,
                link(6, "cfg0", mac(0x60), false),
            ],
        }
    }

    fn configured() -> ConfiguredMap {
        [(
            mac(5),
            ConfiguredDevice {
                ifname: "cfg0".into(),
                direction: Direction::Tx,
            },
        )]
        .into_iter()
        .collect()
    }

    #[test]
    fn refreshed_counters_equal_a_fresh_resolution() {
        let macs = [mac(1), mac(2), mac(3), mac(5), mac(7)];
        let mut t = table();
        let mut batch = SampleBatch::new();
        let fresh = resolve(&t, &configured(), &macs);
        assert!(batch.replace_located(fresh, &t, (1, 1)));
        assert_eq!(batch.stamp(), Some((1, 1)));
        assert!(batch.answers(&macs));
        assert!(!batch.answers(&macs[..4]));
        for (i, l) in t.links.iter_mut().enumerate() {
            let i = u64::try_from(i).unwrap();
            l.rx_packets = Some(1_000 + i);
            l.tx_packets = Some(2_000 + i);
            for v in &mut l.vfs {
                v.rx_packets = Some(3_000 + u64::from(v.vf));
            }
        }
        batch.refresh_counters(&t);
        assert_eq!(
            batch.samples(),
            resolve(&t, &configured(), &macs).as_slice()
        );
        // Every kind was exercised, and the missing MAC stays missing.
        let counters: Vec<_> = batch
            .samples()
            .iter()
            .map(|s| match s.reading {
                MacReading::Found { rx_packets, .. } => Some(rx_packets),
                MacReading::Missing(_) => None,
            })
            .collect();
        assert_eq!(
            counters,
            [Some(1_000), Some(2_001), Some(3_003), Some(2_003), None]
        );
    }

    #[test]
    fn replace_reports_source_and_reason_changes_not_counters() {
        let found = |ifname: &str, rx| MacSample {
            mac: mac(1),
            reading: MacReading::Found {
                source: SourceKind::Netdev {
                    ifname: ifname.into(),
                },
                rx_packets: rx,
                drops: None,
            },
        };
        let mut batch = SampleBatch::new();
        assert!(batch.replace(vec![found("a", 1)]));
        assert!(!batch.replace(vec![found("a", 2)]));
        assert!(batch.replace(vec![found("b", 2)]));
        let missing = MacSample {
            mac: mac(1),
            reading: MacReading::Missing(MissingReason::NotFound),
        };
        assert!(batch.replace(vec![missing.clone()]));
        assert!(!batch.replace(vec![missing.clone()]));
        assert!(batch.replace(vec![missing.clone(), missing]));
        assert!(batch.replace(Vec::new()));
        assert_eq!(batch.stamp(), None);
    }

    #[test]
    fn a_source_missing_from_the_table_leaves_the_batch_unstamped() {
        let t = table();
        let ghost = MacSample {
            mac: mac(1),
            reading: MacReading::Found {
                source: SourceKind::Netdev {
                    ifname: "gone0".into(),
                },
                rx_packets: 1,
                drops: None,
            },
        };
        let mut batch = SampleBatch::new();
        batch.replace_located(vec![ghost], &t, (1, 1));
        assert_eq!(batch.stamp(), None);
    }
}

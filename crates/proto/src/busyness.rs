//! The BUSYNESS report of the native contract, version 2: a guest's
//! per-vCPU busyness (how much of its poll loops' time went to packets),
//! its report interval and its rx-missed packet count.
//!
//! A [`BusynessReport`] can only hold what the wire allows: 1..=64
//! entries, each a distinct vCPU with a busyness of at most 1000 per
//! mille. Its byte layout is in [`crate::layout::offsets::busyness`];
//! which channels may send it, and what the host answers (nothing), is in
//! [`crate::contract`].

use std::fmt;

/// One vCPU's busyness in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BusyEntry {
    /// The vCPU, as the guest numbers it.
    pub vcpu: u16,
    /// Busyness in per mille, 0..=1000.
    pub permille: u16,
}

/// Why a busyness report cannot be built or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BusynessError {
    /// The entry count (`unit`) is outside 1..=64.
    #[error("busyness report has {0} entries, expected 1-64")]
    EntryCount(usize),
    /// An entry's busyness is above 1000 per mille.
    #[error("busyness entry {index} (vCPU {vcpu}) is {permille} per mille, at most 1000")]
    PermilleOutOfRange {
        /// The entry's index in the report.
        index: usize,
        /// The entry's vCPU.
        vcpu: u16,
        /// The value sent.
        permille: u16,
    },
    /// A vCPU appears in two entries.
    #[error("busyness entry {index} names vCPU {vcpu} a second time")]
    DuplicateVcpu {
        /// The index of the second entry.
        index: usize,
        /// The repeated vCPU.
        vcpu: u16,
    },
}

/// A guest's busyness report, valid by construction.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BusynessReport {
    seq: u64,
    len: u8,
    entries: [BusyEntry; BusynessReport::CAPACITY],
    interval_ms: u32,
    rx_missed: Option<u64>,
}

impl BusynessReport {
    /// The most entries one report carries.
    pub const CAPACITY: usize = 64;
    /// The highest busyness, in per mille (fully busy).
    pub const MAX_PERMILLE: u16 = 1000;

    /// A report with sequence number `seq` (wraps; the host only counts
    /// gaps), `entries` (1..=64, distinct vCPUs, each at most 1000 per
    /// mille), the guest's report interval, and its rx-missed count summed
    /// over its ports (`None`: unknown). Refuses the first bad entry.
    pub fn new(
        seq: u64,
        entries: &[BusyEntry],
        interval_ms: u32,
        rx_missed: Option<u64>,
    ) -> Result<Self, BusynessError> {
        if entries.is_empty() || entries.len() > Self::CAPACITY {
            return Err(BusynessError::EntryCount(entries.len()));
        }
        for (index, entry) in entries.iter().enumerate() {
            if entry.permille > Self::MAX_PERMILLE {
                return Err(BusynessError::PermilleOutOfRange {
                    index,
                    vcpu: entry.vcpu,
                    permille: entry.permille,
                });
            }
            if entries[..index].iter().any(|e| e.vcpu == entry.vcpu) {
                return Err(BusynessError::DuplicateVcpu {
                    index,
                    vcpu: entry.vcpu,
                });
            }
        }
        let mut all = [BusyEntry::default(); Self::CAPACITY];
        all[..entries.len()].copy_from_slice(entries);
        Ok(BusynessReport {
            seq,
            len: u8::try_from(entries.len()).expect("at most 64"),
            entries: all,
            interval_ms,
            rx_missed,
        })
    }

    /// The report's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The entries, in the order sent (1..=64, distinct vCPUs).
    pub fn entries(&self) -> &[BusyEntry] {
        &self.entries[..usize::from(self.len)]
    }

    /// The guest's report interval in milliseconds, as sent (the host
    /// clamps it to its configured range).
    pub fn interval_ms(&self) -> u32 {
        self.interval_ms
    }

    /// The guest's total rx-missed packets over its ports, if it knows.
    pub fn rx_missed(&self) -> Option<u64> {
        self.rx_missed
    }
}

impl fmt::Debug for BusynessReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusynessReport")
            .field("seq", &self.seq)
            .field("entries", &self.entries())
            .field("interval_ms", &self.interval_ms)
            .field("rx_missed", &self.rx_missed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(vcpu: u16, permille: u16) -> BusyEntry {
        BusyEntry { vcpu, permille }
    }

    #[test]
    fn bounds_are_checked_and_named() {
        assert_eq!(
            BusynessReport::new(0, &[], 100, None),
            Err(BusynessError::EntryCount(0))
        );
        let many: Vec<BusyEntry> = (0..65).map(|v| e(v, 0)).collect();
        assert_eq!(
            BusynessReport::new(0, &many, 100, None),
            Err(BusynessError::EntryCount(65))
        );
        assert!(BusynessReport::new(0, &many[..64], 100, None).is_ok());
        assert_eq!(
            BusynessReport::new(0, &[e(0, 10), e(3, 1001)], 100, None),
            Err(BusynessError::PermilleOutOfRange {
                index: 1,
                vcpu: 3,
                permille: 1001
            })
        );
        assert_eq!(
            BusynessReport::new(0, &[e(2, 10), e(1, 5), e(2, 7)], 100, None),
            Err(BusynessError::DuplicateVcpu { index: 2, vcpu: 2 })
        );
    }

    #[test]
    fn accessors_give_back_what_was_built() {
        let r = BusynessReport::new(7, &[e(1, 1000), e(0, 0)], 20, Some(5)).expect("valid");
        assert_eq!(r.seq(), 7);
        assert_eq!(r.entries(), [e(1, 1000), e(0, 0)]);
        assert_eq!(r.interval_ms(), 20);
        assert_eq!(r.rx_missed(), Some(5));
    }
}

//! Decoding and encoding of the native v2 BUSYNESS record
//! ([`super::offsets::busyness`]): `resource_id` is the report's sequence
//! number, `unit` its entry count, entries of (vCPU u16, per mille u16)
//! from byte 48, the report interval at 304 and rx-missed at 308.
//! `vm_name` and every other byte are ignored (identity comes from the
//! channel). No heap, no panic on any input.

use crate::{BusyEntry, BusynessError, BusynessReport};

use super::offsets::busyness as off;
use super::wire::{put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};

/// Reads a BUSYNESS record's fields; the caller checked its length
/// (a request record of either layout is longer than [`off::END`]).
pub(super) fn decode_busyness(bytes: &[u8]) -> Result<BusynessReport, BusynessError> {
    let count = u32_at(bytes, off::COUNT);
    let n = usize::try_from(count)
        .ok()
        .filter(|n| (1..=off::ENTRY_SLOTS).contains(n))
        .ok_or(BusynessError::EntryCount(
            usize::try_from(count).unwrap_or(usize::MAX),
        ))?;
    let mut entries = [BusyEntry::default(); BusynessReport::CAPACITY];
    for (i, entry) in entries.iter_mut().take(n).enumerate() {
        let at = off::ENTRIES + i * off::ENTRY_LEN;
        *entry = BusyEntry {
            vcpu: u16_at(bytes, at),
            permille: u16_at(bytes, at + 2),
        };
    }
    let rx_missed = Some(u64_at(bytes, off::RX_MISSED)).filter(|m| *m != u64::MAX);
    BusynessReport::new(
        u64_at(bytes, off::SEQ),
        &entries[..n],
        u32_at(bytes, off::INTERVAL_MS),
        rx_missed,
    )
}

/// Writes a report's fields (not `command`, not the sequence number)
/// into a zeroed record.
pub(super) fn put_busyness(out: &mut [u8], report: &BusynessReport) {
    let n = report.entries().len();
    put_u32(out, off::COUNT, u32::try_from(n).expect("at most 64"));
    for (i, entry) in report.entries().iter().enumerate() {
        let at = off::ENTRIES + i * off::ENTRY_LEN;
        put_u16(out, at, entry.vcpu);
        put_u16(out, at + 2, entry.permille);
    }
    put_u32(out, off::INTERVAL_MS, report.interval_ms());
    put_u64(out, off::RX_MISSED, report.rx_missed().unwrap_or(u64::MAX));
}

#[cfg(test)]
mod tests {
    use crate::layout::{RequestDecodeError, decode_request, encode_request_record};
    use crate::{BusyEntry, BusynessError, BusynessReport, Layout, Request, RequestBody, VmName};

    /// A hand-written BUSYNESS record: seq 9, vCPU 3 at 812 ‰, vCPU 0 at
    /// 1000 ‰, every 20 ms, 17 packets missed; a name the host ignores.
    fn golden(len: usize) -> Vec<u8> {
        let mut rec = vec![0u8; len];
        rec[0] = 9;
        rec[8] = 2;
        rec[12..16].copy_from_slice(&[0x42, 0x50, 0x4d, 0x56]);
        rec[16..20].copy_from_slice(b"\xff\xfe\xfd\xfc");
        rec[48..52].copy_from_slice(&[3, 0, 0x2c, 0x03]);
        rec[52..56].copy_from_slice(&[0, 0, 0xe8, 0x03]);
        rec[304] = 20;
        rec[308] = 17;
        rec
    }

    #[test]
    fn golden_bytes_decode_in_both_layouts() {
        let want = BusynessReport::new(
            9,
            &[
                BusyEntry {
                    vcpu: 3,
                    permille: 812,
                },
                BusyEntry {
                    vcpu: 0,
                    permille: 1000,
                },
            ],
            20,
            Some(17),
        )
        .expect("valid");
        for layout in [Layout::Current, Layout::Dpdk1711] {
            let rec = golden(layout.record_len());
            let req = decode_request(&rec, layout).expect("decodes");
            assert_eq!(req.body, RequestBody::Busyness(want));
            assert_eq!(req.vm_name, VmName::default(), "the name is not read");
            let again = encode_request_record(&req, layout).expect("encodes");
            assert_eq!(&again[..16], &rec[..16]);
            assert_eq!(&again[48..316], &rec[48..316]);
        }
    }

    #[test]
    fn unknown_rx_missed_is_all_ones() {
        let mut rec = golden(464);
        rec[308..316].fill(0xff);
        let req = decode_request(&rec, Layout::Current).expect("decodes");
        let RequestBody::Busyness(report) = req.body else {
            panic!("a report: {req:?}");
        };
        assert_eq!(report.rx_missed(), None);
        let again = encode_request_record(&req, Layout::Current).expect("encodes");
        assert_eq!(&again[308..316], &[0xff; 8]);
    }

    #[test]
    fn bad_reports_name_the_fault() {
        let refuse = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut rec = golden(464);
            edit(&mut rec);
            match decode_request(&rec, Layout::Current) {
                Err(RequestDecodeError::Busyness(e)) => e,
                other => panic!("expected a busyness error, got {other:?}"),
            }
        };
        assert_eq!(refuse(&|r| r[8] = 0), BusynessError::EntryCount(0));
        assert_eq!(refuse(&|r| r[8] = 65), BusynessError::EntryCount(65));
        assert_eq!(
            refuse(&|r| r[8..12].fill(0xff)),
            BusynessError::EntryCount(usize::try_from(u32::MAX).expect("64-bit"))
        );
        assert_eq!(
            refuse(&|r| r[54..56].copy_from_slice(&1001u16.to_le_bytes())),
            BusynessError::PermilleOutOfRange {
                index: 1,
                vcpu: 0,
                permille: 1001
            }
        );
        assert_eq!(
            refuse(&|r| r[52] = 3),
            BusynessError::DuplicateVcpu { index: 1, vcpu: 3 }
        );
        // Entries past the count are not read.
        let mut rec = golden(464);
        rec[56..60].copy_from_slice(&[3, 0, 0xff, 0xff]);
        assert!(decode_request(&rec, Layout::Current).is_ok());
        let msg = refuse(&|r| r[8] = 0).to_string();
        assert!(msg.contains("0 entries"), "{msg}");
    }

    #[test]
    fn encoded_request_round_trips() {
        let report = BusynessReport::new(
            u64::MAX,
            &[BusyEntry {
                vcpu: 63,
                permille: 0,
            }],
            0,
            None,
        )
        .expect("valid");
        let req = Request {
            vm_name: VmName::default(),
            body: RequestBody::Busyness(report),
        };
        for layout in [Layout::Current, Layout::Dpdk1711] {
            let rec = encode_request_record(&req, layout).expect("encodes");
            assert_eq!(decode_request(&rec, layout), Ok(req));
        }
    }
}

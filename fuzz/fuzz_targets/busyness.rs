//! Fuzzes the native v2 BUSYNESS record: any bytes, with `command` set to
//! BUSYNESS, in both layouts: decoding never panics, an accepted report
//! holds 1..=64 distinct vCPUs at no more than 1000 per mille, and it
//! re-encodes to bytes that decode to the same report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmpower_proto::layout::offsets::{busyness, command};
use vmpower_proto::layout::{decode_request, encode_request_record};
use vmpower_proto::{BusynessReport, Layout, RequestBody};

fuzz_target!(|data: &[u8]| {
    for layout in [Layout::Current, Layout::Dpdk1711] {
        let len = layout.record_len();
        let mut record = [0u8; 464];
        let n = data.len().min(len);
        record[..n].copy_from_slice(&data[..n]);
        record[busyness::COMMAND..busyness::COMMAND + 4]
            .copy_from_slice(&command::BUSYNESS.to_le_bytes());
        let Ok(req) = decode_request(&record[..len], layout) else {
            continue;
        };
        let RequestBody::Busyness(report) = req.body else {
            panic!("a BUSYNESS record decoded as {req:?}");
        };
        let entries = report.entries();
        assert!((1..=BusynessReport::CAPACITY).contains(&entries.len()));
        for (i, e) in entries.iter().enumerate() {
            assert!(e.permille <= BusynessReport::MAX_PERMILLE);
            assert!(entries[..i].iter().all(|o| o.vcpu != e.vcpu));
        }
        let again = encode_request_record(&req, layout).expect("decoded reports encode");
        assert_eq!(decode_request(&again, layout), Ok(req));
    }
});

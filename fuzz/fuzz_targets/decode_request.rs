//! Fuzzes `decode_request` in both layouts: it must never panic, and any
//! record it accepts must re-encode to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmpower_proto::Layout;
use vmpower_proto::layout::{decode_request, encode_request_record};

fuzz_target!(|data: &[u8]| {
    for layout in [Layout::Current, Layout::Dpdk1711] {
        // Try the input as is, and cut or padded to the record size so the
        // fuzzer reaches the field checks.
        let mut record = [0u8; 464];
        let len = layout.record_len();
        let n = data.len().min(len);
        record[..n].copy_from_slice(&data[..n]);
        for bytes in [data, &record[..len]] {
            if let Ok(req) = decode_request(bytes, layout) {
                let again = encode_request_record(&req, layout).expect("decoded values encode");
                assert_eq!(decode_request(&again, layout), Ok(req));
            }
        }
    }
});

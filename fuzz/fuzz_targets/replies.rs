//! Fuzzes the guest-side reply decoders: never panic; an accepted
//! FREQ_LIST / CAPS_LIST re-encodes to a reply that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmpower_proto::Layout;
use vmpower_proto::layout::{
    Reply, decode_caps_list, decode_freq_list, decode_reply, decode_verdict, encode_caps_list,
    encode_freq_list, peek_reply_kind,
};

fuzz_target!(|data: &[u8]| {
    let _ = peek_reply_kind(data);
    for layout in [Layout::Current, Layout::Dpdk1711] {
        let _ = decode_verdict(data, layout);
        match decode_reply(data, layout) {
            Ok(Reply::FreqList(r)) => {
                let bytes = encode_freq_list(&r).expect("decoded values encode");
                assert_eq!(decode_freq_list(&bytes), Ok(r));
            }
            Ok(Reply::CapsList(r)) => {
                let bytes = encode_caps_list(&r).expect("decoded values encode");
                assert_eq!(decode_caps_list(&bytes), Ok(r));
            }
            Ok(Reply::Verdict(_)) | Err(_) => {}
        }
    }
});

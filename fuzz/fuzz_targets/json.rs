//! Fuzzes DPDK's JSON forms: one-object parsing and the FIFO stream
//! decoder. Must never panic; whatever parses must serialise back (when
//! JSON can express it) to text that parses to the same request; the
//! stream must read the same messages whatever the chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmpower_proto::json::{JsonStreamDecoder, parse_request, to_json};

fn messages(bytes: &[u8], chunk: usize) -> Vec<String> {
    let mut dec = JsonStreamDecoder::with_max_object_len(4096);
    let mut out = Vec::new();
    for part in bytes.chunks(chunk) {
        for item in dec.feed(part) {
            out.push(format!("{item:?}"));
        }
        assert!(dec.buffered_len() <= 4096 + part.len());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request(data) {
        if let Ok(text) = to_json(&req) {
            assert_eq!(parse_request(text.as_bytes()), Ok(req));
        }
    }
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first) + 1;
    // Valid messages come out the same whatever the chunking (errors may
    // differ in how garbage is split, so compare only the successes).
    let ok = |v: Vec<String>| v.into_iter().filter(|m| m.starts_with("Ok")).collect::<Vec<_>>();
    assert_eq!(ok(messages(bytes, chunk)), ok(messages(bytes, bytes.len().max(1))));
});

//! Fuzzes DPDK's JSON FIFO stream as the daemon's FIFO reader drives it
//! (`crates/vmpowerd/src/channels/fifo.rs`): the default decoder (64 KiB
//! object cap), `push` of each read then `next_message` until none. The
//! first two bytes give the read size (1 to 65,536 bytes; the daemon reads
//! at most 16 KiB). Must never panic or loop; the buffer never holds more
//! than one object's cap plus one read; every message it yields is a
//! request or an error, and the requests are the same whatever the reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmpower_proto::json::JsonStreamDecoder;

fn requests(bytes: &[u8], read: usize) -> Vec<String> {
    let mut decoder = JsonStreamDecoder::new();
    let cap = decoder.max_object_len();
    let mut out = Vec::new();
    for chunk in bytes.chunks(read) {
        decoder.push(chunk);
        // Each message consumes buffered bytes, so the messages end
        // within as many steps as bytes are held.
        let mut steps = decoder.buffered_len() + 2;
        loop {
            assert!(steps > 0, "next_message never ends");
            steps -= 1;
            match decoder.next_message() {
                Some(Ok(request)) => out.push(format!("{request:?}")),
                Some(Err(_)) => {}
                None => break,
            }
        }
        assert!(decoder.buffered_len() <= cap + chunk.len());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [a, b, bytes @ ..] = data else {
        return;
    };
    let read = usize::from(u16::from_le_bytes([*a, *b])) + 1;
    assert_eq!(requests(bytes, read), requests(bytes, bytes.len().max(1)));
});

//! Fuzzes the incremental record stream: the first byte picks the layout
//! and the read size, the rest is the byte stream. Must never panic, must
//! account for every byte, and must yield the same records as feeding the
//! stream whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmpower_proto::Layout;
use vmpower_proto::stream::RecordStream;

fn feed(layout: Layout, bytes: &[u8], read: usize) -> (Vec<Vec<u8>>, usize) {
    let mut stream = RecordStream::new(layout);
    let mut raws = Vec::new();
    for chunk in bytes.chunks(read) {
        let mut input = chunk;
        while let Some(frame) = stream.next_frame(&mut input) {
            assert_eq!(frame.raw.len(), layout.record_len());
            raws.push(frame.raw.to_vec());
        }
        assert!(input.is_empty());
    }
    (raws, stream.pending())
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let layout = if first & 1 == 0 {
        Layout::Current
    } else {
        Layout::Dpdk1711
    };
    let read = usize::from(first >> 1) + 1;
    let (raws, pending) = feed(layout, bytes, read);
    assert!(pending < layout.record_len());
    assert_eq!(raws.len() * layout.record_len() + pending, bytes.len());
    assert_eq!(feed(layout, bytes, bytes.len().max(1)), (raws, pending));
});

//! Property tests of the incremental record stream: any split of a byte
//! stream (including 1-byte chunks) yields exactly the frames that feeding
//! it whole yields; arbitrary bytes never panic and every byte is either
//! yielded in a record or held as the (bounded) partial tail.

use proptest::prelude::*;
use vmpower_proto::layout::{RequestDecodeError, encode_request_record};
use vmpower_proto::stream::RecordStream;
use vmpower_proto::*;

/// Frames as owned values, to compare runs.
type Owned = Vec<(Vec<u8>, Result<Request, RequestDecodeError>)>;

/// Feeds `bytes` in chunks of the given sizes (cycled), collecting frames.
fn feed(layout: Layout, bytes: &[u8], chunks: &[usize]) -> (Owned, usize) {
    let mut stream = RecordStream::new(layout);
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().expect("non-empty cycle")).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let mut input = chunk;
        while let Some(frame) = stream.next_frame(&mut input) {
            out.push((frame.raw.to_vec(), frame.request));
        }
        assert!(input.is_empty(), "None only when the chunk is consumed");
        assert!(stream.pending() < layout.record_len());
    }
    (out, stream.pending())
}

fn connect(id: u64) -> Request {
    Request {
        vm_name: VmName::default(),
        body: RequestBody::Connect { resource_id: id },
    }
}

/// A stream of valid records interleaved with invalid ones (unknown
/// command), plus a partial tail.
fn mixed_stream(layout: Layout, ids: &[u64], bad: &[bool], tail: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (id, is_bad) in ids.iter().zip(bad.iter().cycle()) {
        let rec = encode_request_record(&connect(*id), layout).expect("encodable");
        let mut rec = rec.to_vec();
        if *is_bad {
            rec[12] = 0x63;
        }
        bytes.extend_from_slice(&rec);
    }
    bytes.extend(std::iter::repeat_n(0xab, tail));
    bytes
}

fn any_layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Current), Just(Layout::Dpdk1711)]
}

#[test]
fn one_byte_chunks_equal_whole() {
    for layout in [Layout::Current, Layout::Dpdk1711] {
        let bytes = mixed_stream(layout, &[1, 2, 3, 4, 5], &[false, true], 17);
        let whole = feed(layout, &bytes, &[bytes.len()]);
        let bytewise = feed(layout, &bytes, &[1]);
        assert_eq!(whole.0.len(), 5);
        assert_eq!(whole.1, 17);
        assert_eq!(whole, bytewise);
        assert_eq!(whole.0[1].1, Err(RequestDecodeError::UnknownCommand(0x63)));
        assert_eq!(whole.0[2].1, Ok(connect(3)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_split_yields_the_same_frames(
        layout in any_layout(),
        ids in proptest::collection::vec(any::<u64>(), 0..12),
        bad in proptest::collection::vec(any::<bool>(), 1..4),
        tail in 0usize..456,
        chunks in proptest::collection::vec(1usize..2000, 1..8),
    ) {
        let bytes = mixed_stream(layout, &ids, &bad, tail);
        let whole = feed(layout, &bytes, &[bytes.len()]);
        prop_assert_eq!(whole.0.len(), ids.len());
        prop_assert_eq!(whole.1, tail);
        for ((raw, req), id) in whole.0.iter().zip(&ids) {
            prop_assert_eq!(raw.len(), layout.record_len());
            if let Ok(r) = req {
                prop_assert_eq!(*r, connect(*id));
            }
        }
        prop_assert_eq!(feed(layout, &bytes, &chunks), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_are_accounted_for(
        layout in any_layout(),
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        chunks in proptest::collection::vec(1usize..700, 1..8),
    ) {
        let (frames, pending) = feed(layout, &bytes, &chunks);
        prop_assert_eq!(frames.len() * layout.record_len() + pending, bytes.len());
        let mut joined: Vec<u8> = frames.iter().flat_map(|(raw, _)| raw.iter().copied()).collect();
        joined.extend_from_slice(&bytes[bytes.len() - pending..]);
        prop_assert_eq!(joined, bytes);
    }
}

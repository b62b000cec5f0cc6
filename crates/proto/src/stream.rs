//! Incremental reassembly and decoding of a byte stream of fixed-size
//! request records of one [`Layout`], as a virtio-serial port delivers it.
//!
//! ## Behavior
//! - Feed whatever a `read()` returned, of any size: one byte, part of a
//!   record, several records. [`RecordStream::next_frame`] yields whole
//!   records one at a time and advances the caller's input slice; `None`
//!   means "need more bytes": the input is consumed and any partial record
//!   is held inside the stream. A caller loops until `None`:
//!
//!   ```
//!   # use vmpower_proto::{Layout, stream::RecordStream};
//!   let mut stream = RecordStream::new(Layout::Current);
//!   let read_buf = [0u8; 100]; // bytes from read()
//!   let mut input = &read_buf[..];
//!   while let Some(frame) = stream.next_frame(&mut input) {
//!       match frame.request {
//!           Ok(_request) => { /* act, then ACK by echoing frame.raw */ }
//!           Err(_why) => { /* NACK by echoing frame.raw */ }
//!       }
//!   }
//!   assert!(input.is_empty());
//!   assert_eq!(stream.pending(), 100);
//!   ```
//! - Framing is by size only, so an invalid record is still exactly one
//!   record: it is consumed whole and returned as an error together with
//!   its raw bytes (so the host can NACK echoing them), and decoding
//!   continues at the next record boundary. Garbage cannot desynchronise
//!   the stream beyond what the guest itself wrote.
//! - A record wholly inside the input is decoded in place (zero copy); only
//!   a record split across reads is copied, into a buffer of one record.
//!
//! ## Invariants
//! The stream holds at most one record's worth of bytes (an inline
//! 464-byte array): memory per channel is bounded and nothing allocates.
//!
//! ## Limitations
//! At disconnect the partial record must be dropped, never processed:
//! [`RecordStream::pending`] tells how many bytes it holds, and
//! [`RecordStream::discard_partial`] drops them and returns the count.

use crate::Layout;
use crate::Request;
use crate::layout::offsets::MAX_RECORD_LEN;
use crate::layout::{RequestDecodeError, decode_request};

/// One whole record taken from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The record's raw bytes (exactly `layout.record_len()`), to echo in
    /// an ACK/NACK.
    pub raw: &'a [u8],
    /// The decoded request, or why it was refused.
    pub request: Result<Request, RequestDecodeError>,
}

/// Reassembles fixed-size records of one layout from arbitrary chunks.
#[derive(Debug, Clone)]
pub struct RecordStream {
    layout: Layout,
    buf: [u8; MAX_RECORD_LEN],
    filled: usize,
}

impl RecordStream {
    /// An empty stream of records of `layout`.
    pub const fn new(layout: Layout) -> Self {
        RecordStream {
            layout,
            buf: [0; MAX_RECORD_LEN],
            filled: 0,
        }
    }

    /// The layout of this stream's records.
    pub const fn layout(&self) -> Layout {
        self.layout
    }

    /// Bytes of a partial record held, waiting for the rest (always less
    /// than one record).
    pub const fn pending(&self) -> usize {
        self.filled
    }

    /// Drops the partial record, if any (at disconnect), and returns how
    /// many bytes were dropped.
    pub fn discard_partial(&mut self) -> usize {
        std::mem::replace(&mut self.filled, 0)
    }

    /// Takes the next whole record's raw bytes from the pending bytes and
    /// `input`, advancing `input` past what was used. Returns `None` when
    /// `input` is exhausted without completing a record; its bytes are
    /// then held as the partial record.
    pub fn next_record<'s, 'i: 's>(&'s mut self, input: &mut &'i [u8]) -> Option<&'s [u8]> {
        let len = self.layout.record_len();
        let data: &'i [u8] = input;
        if self.filled == 0 && data.len() >= len {
            let (record, rest) = data.split_at(len);
            *input = rest;
            return Some(record);
        }
        let take = (len - self.filled).min(data.len());
        let (head, rest) = data.split_at(take);
        self.buf[self.filled..self.filled + take].copy_from_slice(head);
        self.filled += take;
        *input = rest;
        if self.filled == len {
            self.filled = 0;
            Some(&self.buf[..len])
        } else {
            None
        }
    }

    /// Like [`Self::next_record`], and decodes the record. An invalid
    /// record is consumed whole and returned with its error.
    pub fn next_frame<'s, 'i: 's>(&'s mut self, input: &mut &'i [u8]) -> Option<Frame<'s>> {
        let layout = self.layout;
        let raw = self.next_record(input)?;
        Some(Frame {
            raw,
            request: decode_request(raw, layout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_record(id: u8) -> [u8; 464] {
        let mut rec = [0u8; 464];
        rec[0] = id;
        rec[12] = 2; // CONNECT
        rec[16] = b'v';
        rec
    }

    #[test]
    fn whole_records_are_yielded_in_place() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&connect_record(1));
        bytes.extend_from_slice(&connect_record(2));
        let mut stream = RecordStream::new(Layout::Current);
        let mut input = &bytes[..];
        let first = stream.next_record(&mut input).map(<[u8]>::to_vec);
        assert_eq!(first.as_deref(), Some(&connect_record(1)[..]));
        assert_eq!(input.len(), 464);
        let second = stream.next_record(&mut input).map(<[u8]>::to_vec);
        assert_eq!(second.as_deref(), Some(&connect_record(2)[..]));
        assert!(stream.next_record(&mut input).is_none());
        assert_eq!(stream.pending(), 0);
    }

    #[test]
    fn split_record_is_held_then_completed() {
        let rec = connect_record(7);
        let mut stream = RecordStream::new(Layout::Current);
        let mut input = &rec[..100];
        assert!(stream.next_frame(&mut input).is_none());
        assert!(input.is_empty());
        assert_eq!(stream.pending(), 100);
        let mut input = &rec[100..];
        let frame = stream.next_frame(&mut input).expect("completed");
        assert_eq!(frame.raw, &rec[..]);
        assert!(frame.request.is_ok());
        assert_eq!(stream.pending(), 0);
    }

    #[test]
    fn invalid_record_is_consumed_whole_and_next_one_decodes() {
        let mut bad = connect_record(1);
        bad[12] = 99;
        let mut bytes = bad.to_vec();
        bytes.extend_from_slice(&connect_record(2));
        let mut stream = RecordStream::new(Layout::Current);
        let mut input = &bytes[..];
        let frame = stream.next_frame(&mut input).expect("one record");
        assert_eq!(frame.request, Err(RequestDecodeError::UnknownCommand(99)));
        assert_eq!(frame.raw, &bad[..]);
        let frame = stream.next_frame(&mut input).expect("second record");
        assert!(frame.request.is_ok());
    }

    #[test]
    fn discard_partial_reports_and_clears() {
        let rec = connect_record(3);
        let mut stream = RecordStream::new(Layout::Dpdk1711);
        let mut input = &rec[..455];
        assert!(stream.next_record(&mut input).is_none());
        assert_eq!(stream.discard_partial(), 455);
        assert_eq!(stream.pending(), 0);
        assert_eq!(stream.discard_partial(), 0);
    }

    #[test]
    fn empty_input_needs_more() {
        let mut stream = RecordStream::new(Layout::Current);
        let mut input: &[u8] = &[];
        assert!(stream.next_frame(&mut input).is_none());
        assert_eq!(stream.pending(), 0);
    }
}

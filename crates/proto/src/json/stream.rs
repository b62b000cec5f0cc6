//! Reassembles JSON objects from a FIFO read in chunks of any size, as
//! DPDK's host reads `<dir>/fifo<N>`: a stream of concatenated objects,
//! possibly with whitespace or newlines between them, without framing.
//!
//! ## Behavior
//! - [`JsonStreamDecoder::push`] appends a chunk;
//!   [`JsonStreamDecoder::next_message`] then returns each whole object as
//!   `Some(Ok(request))` or `Some(Err(..))`, and `None` when it needs more
//!   bytes. [`JsonStreamDecoder::feed`] does both. A well-formed object that
//!   is not a valid request (bad hour, unknown key, ...) is consumed whole
//!   and reported; the next object is unaffected.
//! - Bound: an object may be at most `max_object_len` bytes (default
//!   64 KiB). An incomplete object that grows past it is reported once as
//!   [`JsonError::ObjectTooLarge`] and every byte buffered for it is
//!   dropped, then the decoder skips to the next `{`. A complete object
//!   past the limit is consumed whole and reported the same way. If the
//!   caller drains with `next_message` after every `push`, the decoder
//!   holds at most `max_object_len` bytes plus the last chunk.
//! - "Need more bytes" is `None`, never an error: an object is parsed again
//!   only once a chunk brings a `}` (the only byte that can complete one),
//!   so a valid object split into many chunks costs few parse attempts.
//!
//! ## Resynchronisation
//! - Between objects, JSON whitespace is skipped silently.
//! - Any other byte where an object must start is reported once as
//!   [`JsonError::Garbage`]; the decoder then discards everything up to the
//!   next `{`, without further reports.
//! - A syntax error inside an object is reported once as
//!   [`JsonError::Syntax`] (line and column counted from the object's `{`).
//!   The decoder discards the object's bytes before the faulty byte, then
//!   everything up to the next `{` at or after it. So a `{` that is itself
//!   the fault is kept: this is the common case of a writer that died in the
//!   middle of an object, followed by the next writer's complete object —
//!   the parser fails exactly at that object's opening brace, and it is
//!   read normally. Every error discards at least one byte, so the decoder
//!   always makes progress.
//! - [`JsonStreamDecoder::finish`] (at end of stream: all writers closed the
//!   FIFO) drops a partial object and reports it as [`JsonError::Truncated`];
//!   it is never completed by bytes from a later writer.
//!
//! ## Limitations
//! - A syntax error detected only at a nested `{` restarts there, so the
//!   inner object of a broken message may be read on its own; it then fails
//!   as an unknown top-level message unless it is itself a complete
//!   `policy`/`instruction` object.
//! - Because objects are parsed only when a `}` arrives, a syntax error is
//!   seen at the latest with the next `}` (or at the size limit); until
//!   then the decoder says it needs more bytes, and [`JsonStreamDecoder::finish`]
//!   reports such an object as truncated.
//! - Each parse attempt reads the whole buffered object, so an object fed in
//!   many chunks each holding a `}` (possible only with `}` inside strings or
//!   in invalid JSON) costs up to (number of such chunks) × (object size);
//!   the size limit bounds it.
//! - What follows an oversized object depends on chunking: seen whole, it
//!   is consumed exactly; seen in parts, the rest of it is skipped up to the
//!   next `{`, which may lie inside it and produce further errors.

use serde_json::Deserializer;

use crate::Request;

use super::JsonError;
use super::node::Node;
use super::parse::{request_from_node, syntax_error};

/// A fault in the stream, with the stream byte offset where the object (or
/// the garbage) started. Offsets count every byte pushed since the decoder
/// was created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream byte {offset}: {error}")]
pub struct StreamError {
    /// Stream offset of the faulty object's `{`, or of the garbage byte.
    pub offset: u64,
    /// What was wrong.
    pub error: JsonError,
}

/// Incremental decoder of a stream of concatenated JSON objects.
#[derive(Debug, Clone)]
pub struct JsonStreamDecoder {
    /// Bytes received and not yet consumed start at `buf[start]`.
    buf: Vec<u8>,
    start: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    max_object_len: usize,
    /// Discarding everything up to the next `{`.
    skipping: bool,
    /// A `}` arrived since the last parse attempt that needed more bytes.
    ready: bool,
}

impl Default for JsonStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonStreamDecoder {
    /// The default maximum object size: 64 KiB, far above any valid object.
    pub const DEFAULT_MAX_OBJECT_LEN: usize = 64 * 1024;

    /// A decoder with [`Self::DEFAULT_MAX_OBJECT_LEN`].
    pub fn new() -> Self {
        Self::with_max_object_len(Self::DEFAULT_MAX_OBJECT_LEN)
    }

    /// A decoder that refuses objects longer than `max_object_len` bytes.
    pub fn with_max_object_len(max_object_len: usize) -> Self {
        JsonStreamDecoder {
            buf: Vec::new(),
            start: 0,
            base: 0,
            max_object_len,
            skipping: false,
            ready: false,
        }
    }

    /// The configured maximum object size in bytes.
    pub fn max_object_len(&self) -> usize {
        self.max_object_len
    }

    /// Bytes received and not yet consumed (a partial object, or objects
    /// not yet taken with [`Self::next_message`]).
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Total bytes pushed since the decoder was created.
    pub fn stream_len(&self) -> u64 {
        self.base + offset(self.buf.len())
    }

    /// Appends a chunk of any size (including empty). Garbage being skipped
    /// is discarded here without being stored.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 && (self.start == self.buf.len() || self.start >= self.buf.len() / 2) {
            self.base += offset(self.start);
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = chunk;
        if self.skipping && self.buf.is_empty() {
            let garbage = chunk.iter().position(|b| *b == b'{').unwrap_or(chunk.len());
            self.base += offset(garbage);
            chunk = &chunk[garbage..];
            self.skipping = chunk.is_empty();
        }
        if chunk.contains(&b'}') {
            self.ready = true;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Appends a chunk and returns an iterator over the messages it
    /// completes (the same as calling [`Self::next_message`] until `None`).
    pub fn feed(&mut self, chunk: &[u8]) -> Messages<'_> {
        self.push(chunk);
        Messages { decoder: self }
    }

    /// The next whole message, or `None` when more bytes are needed.
    pub fn next_message(&mut self) -> Option<Result<Request, StreamError>> {
        if self.skipping {
            let rest = &self.buf[self.start..];
            match rest.iter().position(|b| *b == b'{') {
                Some(i) => {
                    self.start += i;
                    self.skipping = false;
                }
                None => {
                    self.start = self.buf.len();
                    return None;
                }
            }
        }
        let rest = &self.buf[self.start..];
        let ws = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        self.start += ws;
        let at = self.base + offset(self.start);
        let first = *self.buf.get(self.start)?;
        if first != b'{' {
            self.start += 1;
            self.skipping = true;
            return Some(Err(StreamError {
                offset: at,
                error: JsonError::Garbage { found: first },
            }));
        }
        let pending = self.buf.len() - self.start;
        if !self.ready {
            return self.check_size(pending, at);
        }
        let mut objects = Deserializer::from_slice(&self.buf[self.start..]).into_iter::<Node>();
        let parsed = objects.next()?;
        match parsed {
            Ok(node) => {
                let len = objects.byte_offset().max(1);
                self.start += len;
                if len > self.max_object_len {
                    let error = JsonError::ObjectTooLarge {
                        limit: self.max_object_len,
                    };
                    return Some(Err(StreamError { offset: at, error }));
                }
                Some(request_from_node(node).map_err(|error| StreamError { offset: at, error }))
            }
            Err(e) if e.is_eof() => {
                self.ready = false;
                self.check_size(pending, at)
            }
            Err(e) => {
                let fault = fault_index(&self.buf[self.start..], e.line(), e.column());
                self.start += fault.max(1);
                self.skipping = true;
                Some(Err(StreamError {
                    offset: at,
                    error: syntax_error(&e),
                }))
            }
        }
    }

    /// Ends the stream: drops whatever is buffered and reports a partial
    /// object. Drain with [`Self::next_message`] first, or whole objects
    /// still buffered are dropped and reported as truncated too. The
    /// decoder can be used again afterwards (offsets keep counting).
    pub fn finish(&mut self) -> Option<StreamError> {
        let rest = &self.buf[self.start..];
        let ws = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        let at = self.base + offset(self.start + ws);
        let len = rest.len() - ws;
        let was_skipping = self.skipping;
        self.base += offset(self.buf.len());
        self.buf.clear();
        self.start = 0;
        self.skipping = false;
        self.ready = false;
        (len > 0 && !was_skipping).then_some(StreamError {
            offset: at,
            error: JsonError::Truncated { len },
        })
    }

    /// `None` while an incomplete object fits the limit; otherwise drops it
    /// and reports it.
    fn check_size(&mut self, pending: usize, at: u64) -> Option<Result<Request, StreamError>> {
        if pending <= self.max_object_len {
            return None;
        }
        self.start = self.buf.len();
        self.skipping = true;
        let error = JsonError::ObjectTooLarge {
            limit: self.max_object_len,
        };
        Some(Err(StreamError { offset: at, error }))
    }
}

/// Messages completed by one [`JsonStreamDecoder::feed`].
#[derive(Debug)]
pub struct Messages<'a> {
    decoder: &'a mut JsonStreamDecoder,
}

impl Iterator for Messages<'_> {
    type Item = Result<Request, StreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.decoder.next_message()
    }
}

/// Byte index in `text` of the fault `serde_json` reported at 1-based
/// `line` and `column` (the column of the offending byte), clamped to the
/// text.
fn fault_index(text: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// A buffer length as a stream offset (lossless: `usize` is at most 64 bits
/// on every supported target).
fn offset(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_index_finds_the_offending_byte() {
        let text = b"{\"a\":\n  {\"b\" 1}}";
        // serde_json reports the `1` at line 2, column 8.
        let e = serde_json::from_slice::<Node>(text).expect_err("invalid");
        assert_eq!((e.line(), e.column()), (2, 8));
        assert_eq!(text[fault_index(text, 2, 8)], b'1');
        assert_eq!(fault_index(text, 1, 0), 0);
        assert_eq!(fault_index(text, 9, 9), text.len());
    }

    #[test]
    fn skipped_garbage_is_not_stored() {
        let mut decoder = JsonStreamDecoder::new();
        assert!(matches!(
            decoder.feed(b"x").next(),
            Some(Err(StreamError { offset: 0, .. }))
        ));
        decoder.push(&[b'y'; 1000]);
        assert_eq!(decoder.buffered_len(), 0);
        assert_eq!(decoder.stream_len(), 1001);
        decoder.push(b"zz{");
        assert_eq!(decoder.buffered_len(), 1);
        assert!(decoder.next_message().is_none());
    }

    #[test]
    fn zero_limit_refuses_every_object_without_panicking() {
        let mut decoder = JsonStreamDecoder::with_max_object_len(0);
        let items: Vec<_> = decoder.feed(b"{}{}").collect();
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| matches!(
            i,
            Err(StreamError {
                error: JsonError::ObjectTooLarge { limit: 0 },
                ..
            })
        )));
    }
}

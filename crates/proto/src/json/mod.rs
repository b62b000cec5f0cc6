//! DPDK's JSON forms of requests: the objects an operator (or DPDK's own
//! tools) writes into the host-side FIFO `<dir>/fifo<N>`.
//!
//! - [`parse_request`] turns one object, `{"policy": {...}}` or
//!   `{"instruction": {...}}`, into the same [`crate::Request`] the binary
//!   codec produces; [`to_json`] is its inverse.
//! - [`JsonStreamDecoder`] reassembles objects from a FIFO read in chunks
//!   of any size, bounds what it buffers, and resynchronises after garbage.
//! - [`JsonError`] names the key path and the bad value of every fault.
//!
//! Cores in the JSON forms are host cores: requests parsed here carry
//! [`crate::CoreType::Physical`]. Whether the host honours them is the
//! engine's decision, not this module's.
//!
//! This module does no I/O and never panics on any input.

mod error;
mod node;
mod object;
mod parse;
mod stream;
mod write;

pub use error::{JsonError, MAX_QUOTED_LEN};
pub use parse::parse_request;
pub use stream::{JsonStreamDecoder, Messages, StreamError};
pub use write::to_json;

//! The guest channel protocol of vmpower, wire-compatible with DPDK's
//! `vm_power_manager`: the fixed-size C structs guests write over
//! virtio-serial (current 464-byte and DPDK 17.11 456-byte layouts), the
//! 88-byte frequency-list and 184-byte capabilities replies, ACK/NACK, and
//! DPDK's JSON objects; and vmpower's native contract, whose version 2
//! adds the guest's busyness report ([`busyness`]).
//!
//! This crate does no I/O and never panics on any input: every way bytes
//! can be wrong is a typed error naming the field and the bad value.

pub mod busyness;
pub mod contract;
mod error;
pub mod json;
pub mod layout;
pub mod model;
pub mod stream;

pub use busyness::{BusyEntry, BusynessError, BusynessReport};
pub use error::ModelError;
pub use model::*;

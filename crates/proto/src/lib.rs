//! The guest channel protocol of vmpower, wire-compatible with DPDK's
//! `vm_power_manager`: the fixed-size C structs guests write over
//! virtio-serial (current 464-byte and DPDK 17.11 456-byte layouts), the
//! 88-byte frequency-list and 184-byte capabilities replies, ACK/NACK, and
//! DPDK's JSON objects.
//!
//! This crate does no I/O and never panics on any input: every way bytes
//! can be wrong is a typed error naming the field and the bad value.

pub mod contract;
mod error;
pub mod json;
pub mod layout;
pub mod model;
pub mod stream;

pub use error::ModelError;
pub use model::*;

//! Fuzzes the reply contract: any byte stream, cut into records, through
//! the decoder and the engine as the daemon sends them; the invariants are
//! those of `crates/engine/tests/contract_invariants` (DPDK's contract
//! answers only what DPDK's host answers; CONNECT and BUSYNESS never;
//! HELLO always; the native contract answers every other record).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/engine/tests/contract_invariants/mod.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| invariants::check_stream(data));

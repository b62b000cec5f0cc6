//! The guest agent's own test stand-ins, beside the shared harness
//! (`vmpower-testkit`): a host that decodes reports, DPDK's telemetry
//! server, a real `dpdk-testpmd`.

#![allow(dead_code, clippy::unwrap_used)]

pub mod fake_host;
pub mod telemetry;
pub mod testpmd;

#[allow(unused_imports)]
pub use vmpower_testkit::prelude::*;

//! The value types vmpower's crates share, with no I/O: CPU numbers and
//! frequencies ([`CpuId`], [`Khz`]), the cpufreq [`Driver`], frequency
//! tables and librte_power's level semantics ([`levels`]), and the kernel's
//! CPU-list syntax ([`cpulist`]).
//!
//! The decision engine depends on this crate instead of `vmpower-cpufreq`
//! so that it stays pure by construction: this crate must never depend on
//! anything that touches files, sockets, processes or the clock (its
//! dependencies are serde and thiserror; `vmpower-engine`'s
//! `tests/purity.rs` checks the whole chain). `vmpower-cpufreq` re-exports
//! every item here at the paths it has always had.

pub mod cpu;
pub mod cpulist;
pub mod levels;

pub use cpu::{CpuId, Driver, Khz};

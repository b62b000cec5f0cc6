//! Small value types shared by every part of the crate: [`CpuId`], [`Khz`]
//! and [`Driver`], defined in `vmpower-types` (so that the pure engine need
//! not depend on this I/O crate) and re-exported here at their old paths.

pub use vmpower_types::cpu::{CpuId, Driver, Khz};

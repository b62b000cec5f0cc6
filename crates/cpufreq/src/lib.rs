//! Linux CPU frequency control from a configurable sysfs root.
//!
//! Discovers CPUs, drivers, frequency tables, topology, frequency domains
//! and uncore domains; drives each CPU through the backend its driver needs
//! (the `userspace` governor and `scaling_setspeed`, or pinned
//! `scaling_min_freq`/`scaling_max_freq`); implements librte_power's level
//! semantics (up, down, min, medium, max, turbo); records every CPU's
//! governor and bounds before first touching it and restores them.
//!
//! This crate knows nothing about VMs or policies. It never assumes a path:
//! the caller supplies the root that stands for `/sys`. Frequency tables,
//! levels and the CPU-list syntax are pure and live in `vmpower-types`;
//! they are re-exported here as [`levels`] and [`cpulist`].

pub mod backend;
pub mod control;
pub mod discovery;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
pub mod sysfs;
pub mod takeover;
pub mod turbo;
pub mod types;
pub mod uncore;
pub mod uncore_control;

// Pure code that lives in vmpower-types, re-exported at the paths it has
// always had here (`vmpower_cpufreq::levels::FreqTable`, ...).
pub use vmpower_types::{cpulist, levels};

pub use control::CpuFreq;
pub use sysfs::{Sysfs, SysfsError, SysfsIo};
pub use types::{CpuId, Driver, Khz};

//! vmpowerd, the vmpower host daemon: watches the channel directory for
//! the virtio-serial sockets QEMU exposes, reads guests' requests, asks the
//! engine what to do, drives cpufreq, and answers.
//!
//! The daemon is thin glue: every decision is in `vmpower-engine`; every
//! sysfs access in `vmpower-cpufreq`; every byte layout in `vmpower-proto`.
//! [`run::run`] is the entry point; `main.rs` only parses flags, starts
//! logging, and supplies the real sysfs and the signals.

pub mod backends;
pub mod branch;
pub mod channels;
pub mod config;
pub mod control;
pub mod core;
pub mod files;
pub mod foreign;
pub mod health;
pub mod instance;
pub mod inventory;
#[cfg(feature = "libvirt")]
pub mod libvirt;
pub mod metrics;
pub mod notify;
pub mod placement;
pub mod policy_dir;
pub mod policy_ops;
pub mod preflight;
pub mod rate_export;
pub mod ratelog;
pub mod recent;
pub mod reload;
pub mod run;
pub mod samplers;
pub mod stats;
pub mod store;
pub mod traffic;
pub mod vm_name;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The core, shared by every channel task and the control API.
pub type SharedCore = Arc<Mutex<core::Core>>;

/// Locks the core. A panic while holding it cannot leave a half-made
/// decision behind (decisions are computed before state is committed), so
/// a poisoned lock is taken over rather than propagated.
pub fn lock(core: &SharedCore) -> MutexGuard<'_, core::Core> {
    core.lock().unwrap_or_else(PoisonError::into_inner)
}

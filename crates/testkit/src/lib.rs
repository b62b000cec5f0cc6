//! The workspace's one test harness: a fake host and the daemon on it.
//!
//! - [`layout`]: the fake host itself — one temporary directory holding a
//!   fake sysfs tree (built by vmpower-cpufreq's builder, faithful to
//!   SYSFS.md), the channel, state, proc and policy directories and the
//!   control socket — and the daemon's flags for that layout.
//! - [`binary`]: the real `vmpowerd` binary on a fake host, as a process.
//! - [`daemon`] (feature `daemon`): the daemon in-process through
//!   vmpowerd's library `run`, on a task of the test's runtime or on a
//!   runtime thread of its own, with its own shutdown signal.
//! - [`qemu`] (feature `daemon`): a peer playing QEMU, the socket side of a
//!   virtio-serial channel, alone or relaying for a guest in the middle.
//! - [`records`]: guest records (and, with `daemon`, their verdicts).
//! - [`wait`]: bounded waits for conditions (never sleeps to prove that
//!   nothing happened).
//!
//! Used by the tests of vmpowerd, the guest, vmpowerctl and sim, and by
//! the demo, the bench and the e2e harness; nothing here is shipped.

#![allow(clippy::unwrap_used)]

pub mod binary;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod layout;
#[cfg(feature = "daemon")]
pub mod qemu;
pub mod records;
pub mod systemd;
pub mod wait;

#[cfg(feature = "daemon")]
pub use daemon::{Detached, Host, vm};
pub use layout::{FakeHost, HostDirs};
pub use wait::WAIT;

/// What a daemon test needs in one import: the in-process [`Host`], the
/// QEMU peer, records and verdicts, bounded waits.
#[cfg(feature = "daemon")]
pub mod prelude {
    pub use crate::daemon::{Detached, Host, blocking, vm};
    pub use crate::qemu::{Middle, accept};
    pub use crate::records::{call, native, power, read_verdict, record};
    pub use crate::wait::{WAIT, wait_for};
}

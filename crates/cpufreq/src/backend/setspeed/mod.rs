//! The `userspace` governor and `scaling_setspeed`: acpi-cpufreq,
//! intel_cpufreq (intel_pstate passive), amd-pstate passive/guided and
//! cppc_cpufreq.
//!
//! ## Behavior
//! - `prepare` refuses with [`super::BackendError::GovernorNotOffered`]
//!   when `userspace` is not in `scaling_available_governors`, then sets it
//!   (only if it is not already set) and reads it back.
//! - `scaling_setspeed` reading `<unsupported>` (any governor but
//!   `userspace`) is a valid "not set", never a parse failure.
//! - `set` checks that `scaling_setspeed` still holds what was last
//!   written before writing, and reads it back after. Under any governor
//!   but `userspace` the file reads `<unsupported>`, so this one read also
//!   notices a governor changed by another tool; only then (or on any
//!   other mismatch) is `scaling_governor` read, to name what moved.
//! - `scaling_setspeed` is kept open from `prepare` to `release`
//!   ([`crate::sysfs::SysfsIo::open`]): a change costs three system calls
//!   (read, write, read-back; plus a truncate on a fake tree of plain
//!   files) instead of about fifteen for opening, reading and closing the
//!   governor and the setspeed files by path. A descriptor that fails
//!   with an I/O error (or whose CPU went offline) is opened again at the
//!   next `set`, without touching the governor.
//!
//! ## Limitations
//! - The kernel reads `scaling_setspeed` back as the policy's current
//!   frequency; a driver that rounds a requested frequency (some CPPC
//!   firmware) reads back a different value, reported as
//!   [`super::BackendError::ChangedExternally`].

mod control;

pub use control::SetspeedControl;

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
//! - `set` checks that the governor is still `userspace` and that
//!   `scaling_setspeed` still holds what was last written before writing.
//!
//! ## Limitations
//! - The kernel reads `scaling_setspeed` back as the policy's current
//!   frequency; a driver that rounds a requested frequency (some CPPC
//!   firmware) reads back a different value, reported as
//!   [`super::BackendError::ChangedExternally`].

mod control;

pub use control::SetspeedControl;

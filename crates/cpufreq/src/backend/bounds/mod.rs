//! Pinned bounds: `scaling_min_freq = scaling_max_freq = f`, for drivers
//! that pick their own P-state inside the bounds (intel_pstate active,
//! amd-pstate-epp), which offer only `performance` and `powersave`.
//!
//! ## Behavior
//! - `prepare` leaves the governor and the energy-performance preference
//!   alone: pinning both bounds fixes the frequency under either governor.
//! - `set` writes the two bounds in an order the kernel accepts
//!   ([`super::write_bounds_ordered`]) and only the ones that differ.
//! - Before writing, bounds that no longer hold what was last written
//!   (tuned, power-profiles-daemon, an operator) fail with
//!   [`super::BackendError::ChangedExternally`].
//!
//! ## Limitations
//! - With hardware P-states, the hardware may still run below the pinned
//!   frequency when idle; `scaling_cur_freq` shows what it did.

mod control;

pub use control::BoundsControl;

//! The decisions of vmpower, with no I/O: VMs and where their vCPUs run,
//! what each channel may do, the level each VM wants for its cores, and the
//! level each frequency domain gets when VMs share it.
//!
//! The engine is a state machine. The daemon feeds it the inventory
//! ([`Engine::set_placement`]), the controllable pCPUs
//! ([`Engine::add_pcpu`]) and each decoded request with the time
//! ([`Engine::handle`], or [`Engine::handle_record`] for what goes back on
//! the channel's reply contract); it returns a [`Decision`]: the reply, the
//! frequency changes ([`Action`]) and notes to log and count. It never
//! reads a clock, a socket or sysfs, so every rule is testable as a table.

mod arbitrate;
pub mod busy;
mod contract;
mod cpumap;
mod engine;
mod host;
mod ids;
mod policies;
pub mod policy;
mod ratelimit;
mod reject;
mod settings;
mod vm;
mod votes;
mod wants;

pub use arbitrate::Winner;
pub use busy::{BusyConfig, BusyCounters, BusynessStatus, StaleOutcome};
pub use engine::{Action, Decision, Engine, FreqChange, Note, OperatorAction, Reply, Trigger};
pub use host::PcpuSpec;
pub use ids::{ChannelId, Vcpu, VmId};
pub use policies::{PolicyInput, PolicyStatus};
pub use policy::{OtherHours, PolicyExtensions, PolicySpec, PolicyState};
pub use ratelimit::TokenBucket;
pub use reject::Rejection;
pub use settings::{EngineConfig, Now, RateLimit, VmSettings};
pub use vm::{CoreKey, Placement};

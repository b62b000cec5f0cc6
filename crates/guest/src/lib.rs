//! The guest side of vmpower: a small, synchronous library for software
//! running inside a VM to talk to its host's power manager (vmpowerd, or
//! DPDK's `vm_power_manager`) over a virtio-serial power channel.
//!
//! ```no_run
//! use vmpower_guest::{Channel, ChannelConfig, PortRoots, QueryTarget};
//! use vmpower_proto::ScalingUnit;
//!
//! let mut channel = Channel::open(0, &PortRoots::default(), ChannelConfig::default())?;
//! channel.set_cpu_freq(1, ScalingUnit::ScaleDown)?;
//! let freqs = channel.query_freq(QueryTarget::All)?;
//! println!("{:?}", &freqs.freqs_khz[..usize::from(freqs.num_vcpu)]);
//! # Ok::<(), vmpower_guest::ChannelError>(())
//! ```
//!
//! - [`locate`]: which device is channel `N` (udev link or sysfs name).
//! - [`Channel`]: CONNECT on open, requests, policies, queries, each waiting
//!   at most [`ChannelConfig::timeout`] for the reply that answers it (the
//!   matching rule is documented on [`matching`]).
//! - [`spec`]: vCPU lists, hour sets and MAC lists from text, validated
//!   with errors that point at the bad element.
//! - [`profile`]: DPDK guest_cli's example policy.
//! - [`BusynessReporter`]: per-vCPU busyness reports to a host that
//!   granted native contract v2 (the agent's, and any application's).
//! - [`agent`] (feature `agent`): the `vmpower-guest agent` loop.
//! - [`telemetry`] (feature `agent`): a client of a DPDK
//!   application's telemetry socket.
//!
//! It needs nothing from the host crates but the protocol crate, uses no
//! async runtime and no unsafe, and builds statically.

#[cfg(feature = "agent")]
pub mod agent;
pub mod busyness;
pub mod channel;
/// The `vmpower-guest` command line (feature `cli`), here so that tools can
/// read its clap definitions (man pages, shell completions).
#[cfg(feature = "cli")]
pub mod cli;
pub mod describe;
mod error;
pub mod locate;
pub mod matching;
mod port;
pub mod profile;
pub mod spec;
#[cfg(feature = "agent")]
pub mod telemetry;

// The CLI's modules name this crate as the binary does.
#[cfg(feature = "cli")]
extern crate self as vmpower_guest;

pub use busyness::{BusynessReporter, ReporterError};
pub use channel::{Answer, Channel, ChannelConfig, QueryTarget};
pub use error::{ChannelError, ErrorClass};
pub use locate::{PortRoots, find_port, port_name};
pub use port::EOF_RETRY;

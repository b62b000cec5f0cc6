//! Network plumbing for vmpower's tests, demo, end-to-end harness and
//! benchmarks: real packets on real links, made with iproute2.
//!
//! - [`ip`]: runs `ip`, with errors naming the command and what `ip` said;
//!   whether this machine can do any of this ([`ip::available`],
//!   [`ip::can_run`]); parsers of `ip`'s listings.
//! - [`names`]: interface names within IFNAMSIZ, unique per process, and
//!   the pid they carry (to sweep what killed runs left); /30 link-local
//!   networks; MAC text.
//! - [`netns`]: a network namespace holding veth pairs, removed on drop;
//!   entering a namespace from a thread; sweeping stale namespaces.
//! - [`pair`]: the common case, a namespace with one addressed pair.
//! - [`tap`]: a host tap, removed on drop.
//! - [`slow_reader`]: a guest that does not keep up — a thread reading a
//!   tap's queue at a capped rate, so the kernel drops the rest (its
//!   `tx_dropped`).
//! - [`pacing`]: the pure pacing arithmetic (no bursts after a stall,
//!   rates below the step rate paced exactly).
//! - [`sender`]: a thread sending UDP datagrams at a rate that can change,
//!   from inside a namespace or from the caller's.
//!
//! ## Limitations
//! Everything but [`pacing`], [`names`] and the parsers needs root and
//! iproute2; it must never be used by the daemon itself (it shells out).

pub mod ip;
pub mod names;
pub mod netns;
pub mod pacing;
pub mod pair;
pub mod sender;
pub mod slow_reader;
pub mod tap;
mod tun_sys;

pub use ip::{IpError, available, can_run, ip, ip_batch};
pub use names::{LinkNet, NameError, mac_text, name, unique_name};
pub use netns::{Netns, NetnsError, VethSpec, enter};
pub use pacing::Pacer;
pub use pair::AddressedPair;
pub use sender::{Rate, Sender, SenderError, SenderSpec};
pub use slow_reader::SlowReader;
pub use tap::Tap;

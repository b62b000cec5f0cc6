//! `vmpower-sim`: what vmpower saves and what it costs, on a trace.
//!
//! The simulator replays the packet rate offered to each VM (a generated,
//! CSV or pcap trace) through a model of poll-mode guests ([`packet`]) and
//! of their cores' power ([`power`]), under several frequency controllers
//! side by side ([`controller`]): static max (what any OS governor gives a
//! busy-polling guest), DPDK's TRAFFIC thresholds as DPDK's host applies
//! them, vmpower's own policies through the real `vmpower-engine` (the
//! same code and the same calls as the daemon, with simulated time and
//! simulated counters), and an oracle that knows the future.
//!
//! Nothing here does I/O except the readers and writers of traces and
//! reports ([`trace`], [`report`]); the simulation is deterministic for a
//! given trace and seed.

pub mod controller;
pub mod host;
pub mod metrics;
pub mod packet;
pub mod power;
pub mod report;
pub mod run;
pub mod scenario;
pub mod standard;
pub mod trace;
pub mod tune;

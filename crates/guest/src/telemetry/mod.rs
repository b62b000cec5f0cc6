//! DPDK's telemetry socket, as the agent reads it: where an application's
//! socket is, a bounded client of its protocol, and typed readers of the
//! replies the agent uses (feature `agent`).
//!
//! DPDK's runtime directory is `/var/run/dpdk/<file-prefix>` for root (the
//! default prefix is `rte`), and the v2 socket in it is
//! `dpdk_telemetry.v2` (DPDK's `usertools/dpdk-telemetry.py` looks it up
//! the same way).

mod client;
mod error;
pub mod reply;

use std::path::{Path, PathBuf};

pub use client::{
    MAX_COMMAND_LEN, MAX_NAME_LEN, MAX_OUTPUT_LIMIT, TelemetryClient, command_text, parse_reply,
};
pub use error::TelemetryError;

/// DPDK's runtime directory for root.
pub const DEFAULT_RUNTIME_DIR: &str = "/var/run/dpdk";
/// DPDK's default `--file-prefix`.
pub const DEFAULT_PREFIX: &str = "rte";
/// The v2 socket's name in the runtime directory.
pub const SOCKET_NAME: &str = "dpdk_telemetry.v2";

/// The telemetry socket of the application started with `--file-prefix
/// prefix`, under DPDK's runtime directory `runtime_dir`.
pub fn socket_path(runtime_dir: &Path, prefix: &str) -> PathBuf {
    runtime_dir.join(prefix).join(SOCKET_NAME)
}

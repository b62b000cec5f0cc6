//! The ways talking to a DPDK application's telemetry socket can fail.
//! Every variant names the socket, and the command when there was one.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a telemetry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The command cannot be sent as DPDK reads commands; nothing was sent.
    #[error("telemetry command {command:?} is invalid: {reason}")]
    BadCommand {
        /// The command (and parameter) as given.
        command: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No connection could be made (no socket: the application is not
    /// running, or uses another file prefix).
    #[error("cannot connect to DPDK telemetry at {path}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The socket did not greet as DPDK's telemetry does.
    #[error("{path} did not greet as DPDK telemetry v2: {reason}")]
    Greeting {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The application closed the connection (it exited or restarted).
    #[error("{path} closed the connection {during}")]
    Closed {
        /// The socket path.
        path: PathBuf,
        /// `before greeting` or `while waiting for /cmd`.
        during: String,
    },
    /// No reply within the timeout; the connection is out of step from
    /// now on and must be dropped.
    #[error("{path} did not answer {command} within {waited:?}")]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// The command, or `greeting`.
        command: String,
        /// How long we waited.
        waited: Duration,
    },
    /// A system call failed.
    #[error("{op} on {path} failed (command {command})")]
    Io {
        /// `send`, `recv` or `setsockopt`.
        op: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The command, or `greeting`.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A reply longer than the greeting's `max_output_len`; it was dropped.
    #[error("{path} answered {command} with {len} bytes, more than its max_output_len {max}")]
    TooLong {
        /// The socket path.
        path: PathBuf,
        /// The command.
        command: String,
        /// The reply's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The reply is not what DPDK writes for this command.
    #[error("{path} answered {command} with a malformed reply: {reason}")]
    BadReply {
        /// The socket path.
        path: PathBuf,
        /// The command.
        command: String,
        /// What was wrong.
        reason: String,
    },
    /// An earlier command timed out: a late reply may still come, so this
    /// connection cannot tell which reply answers which command.
    #[error("the connection to {path} is out of step after a timeout; reconnect")]
    OutOfStep {
        /// The socket path.
        path: PathBuf,
    },
}

impl TelemetryError {
    /// True when the application is gone or not there (connect refused,
    /// socket missing, connection closed): retry later with a new
    /// connection.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            TelemetryError::Connect { .. } | TelemetryError::Closed { .. }
        )
    }
}

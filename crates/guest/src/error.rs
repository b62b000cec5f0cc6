//! The ways talking to the host over a power channel can fail.
//!
//! Every variant says what went wrong in terms a guest operator can act on
//! (which port, which request, how long we waited), and
//! [`ChannelError::class`] sorts them into the four outcomes a caller
//! usually branches on: could not reach the host, refused by the host, a
//! protocol fault, or a request that was invalid before anything was sent.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use vmpower_proto::layout::{EncodeError, ReplyDecodeError};

/// Why a channel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// No port for this channel index exists.
    #[error("no power channel {index}: looked for {}", describe(looked_at))]
    NoSuchPort {
        /// The channel index asked for.
        index: u32,
        /// Every path and directory that was tried, in order.
        looked_at: Vec<PathBuf>,
    },
    /// The port exists but could not be opened.
    #[error("cannot open the port {path}")]
    Open {
        /// The port path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the port failed.
    #[error("{op} on the port {path} failed")]
    Io {
        /// `read`, `write` or `poll`.
        op: &'static str,
        /// The port path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The host did not answer (or did not take the request) in time.
    #[error("the host did not answer {request} within {waited:?}{}", if *.host_connected { "" } else { " (the host side of the port is not connected)" })]
    HostSilent {
        /// The request, e.g. `CPU_POWER SCALE_UP vCPU 1`.
        request: String,
        /// How long we waited.
        waited: Duration,
        /// False when the port reported that no host is connected (EOF).
        host_connected: bool,
    },
    /// The host answered NACK.
    #[error("the host refused {request} (NACK{})", reason.map_or(String::new(), |r| format!(": {r}")))]
    HostRefused {
        /// The request that was refused.
        request: String,
        /// Why, when the host said (native contract only).
        reason: Option<&'static str>,
    },
    /// The host answered with a reply that does not fit the request.
    #[error("unexpected reply to {request}: expected {expected}, got {got}")]
    UnexpectedReply {
        /// The request sent.
        request: String,
        /// The reply kind expected.
        expected: &'static str,
        /// The reply kind received.
        got: &'static str,
    },
    /// The host's bytes are not a reply at all; what was buffered is dropped.
    #[error("malformed reply to {request}")]
    MalformedReply {
        /// The request sent.
        request: String,
        /// What is wrong with the bytes.
        #[source]
        source: ReplyDecodeError,
    },
    /// The request cannot be written in this channel's layout.
    #[error("{request} cannot be encoded")]
    Encode {
        /// The request.
        request: String,
        /// Why.
        #[source]
        source: EncodeError,
    },
}

/// The outcome classes callers (and the CLI's exit codes) branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The host could not be reached: no port, I/O failure, no answer.
    Unreachable,
    /// The host answered and refused.
    Refused,
    /// The host answered something that does not fit.
    Protocol,
    /// The request was invalid; nothing was sent.
    Invalid,
}

impl ChannelError {
    /// Which outcome class this error belongs to.
    pub fn class(&self) -> ErrorClass {
        match self {
            ChannelError::NoSuchPort { .. }
            | ChannelError::Open { .. }
            | ChannelError::Io { .. }
            | ChannelError::HostSilent { .. } => ErrorClass::Unreachable,
            ChannelError::HostRefused { .. } => ErrorClass::Refused,
            ChannelError::UnexpectedReply { .. } | ChannelError::MalformedReply { .. } => {
                ErrorClass::Protocol
            }
            ChannelError::Encode { .. } => ErrorClass::Invalid,
        }
    }
}

/// Joins paths for a message.
fn describe(paths: &[PathBuf]) -> String {
    let parts: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_context() {
        let e = ChannelError::NoSuchPort {
            index: 3,
            looked_at: vec![PathBuf::from("/dev/a"), PathBuf::from("/sys/b")],
        };
        assert_eq!(
            e.to_string(),
            "no power channel 3: looked for /dev/a, /sys/b"
        );
        let e = ChannelError::HostSilent {
            request: "QUERY_FREQ_LIST".into(),
            waited: Duration::from_secs(2),
            host_connected: false,
        };
        assert!(e.to_string().contains("not connected"), "{e}");
        assert_eq!(e.class(), ErrorClass::Unreachable);
        let e = ChannelError::HostRefused {
            request: "PKT_POLICY".into(),
            reason: None,
        };
        assert_eq!(e.class(), ErrorClass::Refused);
    }
}

//! A client of DPDK's telemetry socket (v2): connect, read the greeting,
//! send commands, read their replies.
//!
//! ## The protocol (DPDK `lib/telemetry/telemetry.c`, 22.11 to today)
//! - An `AF_UNIX` `SOCK_SEQPACKET` socket: every send and every reply is
//!   one message, so a reply is read whole with one `recv`.
//! - On accept DPDK sends the greeting
//!   `{"version":"DPDK 22.11.11","pid":1234,"max_output_len":16384}`; no
//!   reply is ever longer than `max_output_len`. A client beyond DPDK's
//!   10 is accepted and closed at once (no greeting).
//! - A command is `/name` or `/name,parameter`, not NUL-terminated; DPDK
//!   reads at most 1023 bytes of it and splits at the first comma. The
//!   name is `/` plus letters, digits, `_` and `/`, shorter than 56 bytes.
//! - The reply is `{"/name":VALUE}` (the name without the parameter).
//!   VALUE is `null` when the command is unknown to the application's
//!   DPDK (22.11 has no `/eal/lcore/*`), when its parameter is missing or
//!   invalid, or when it failed.
//!
//! ## Behavior
//! Every send and receive is bounded by the client's timeout; a reply is
//! read into a buffer of the greeting's `max_output_len` (itself bounded
//! by [`MAX_OUTPUT_LIMIT`]), a longer one is an error, never a larger
//! allocation. After a timeout the connection refuses further commands
//! ([`TelemetryError::OutOfStep`]): a late reply would answer the wrong
//! command.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketType, recv, send, socket,
    sockopt::{Timeout, set_socket_timeout},
};
use serde_json::Value;

use super::error::TelemetryError;
use super::reply::Greeting;

/// The longest command DPDK reads (its buffer is 1024 bytes with a NUL).
pub const MAX_COMMAND_LEN: usize = 1023;
/// DPDK's `MAX_CMD_LEN`: a command name must be shorter.
pub const MAX_NAME_LEN: usize = 56;
/// The largest `max_output_len` a greeting may announce (DPDK's is
/// 16 KiB): bounds what one reply can make us allocate.
pub const MAX_OUTPUT_LIMIT: usize = 1 << 20;
/// DPDK writes the greeting from a 1024-byte buffer.
const GREETING_MAX: usize = 1024;

/// An open telemetry connection.
#[derive(Debug)]
pub struct TelemetryClient {
    fd: OwnedFd,
    path: PathBuf,
    greeting: Greeting,
    timeout: Duration,
    out_of_step: bool,
}

impl TelemetryClient {
    /// Connects to the socket at `path` and reads the greeting; `timeout`
    /// bounds every send and every receive.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, TelemetryError> {
        let connect_err = |source: std::io::Error| TelemetryError::Connect {
            path: path.to_owned(),
            source,
        };
        let addr = SocketAddrUnix::new(path).map_err(|e| connect_err(e.into()))?;
        let fd = socket(AddressFamily::UNIX, SocketType::SEQPACKET, None)
            .map_err(|e| connect_err(e.into()))?;
        let io_err = |op, source: Errno| TelemetryError::Io {
            op,
            path: path.to_owned(),
            command: "greeting".to_owned(),
            source: source.into(),
        };
        // Before connect: a full backlog makes connect wait SO_SNDTIMEO.
        set_socket_timeout(&fd, Timeout::Send, Some(timeout))
            .map_err(|e| io_err("setsockopt", e))?;
        set_socket_timeout(&fd, Timeout::Recv, Some(timeout))
            .map_err(|e| io_err("setsockopt", e))?;
        rustix::net::connect(&fd, &addr).map_err(|e| connect_err(e.into()))?;
        let mut client = TelemetryClient {
            fd,
            path: path.to_owned(),
            greeting: Greeting::default(),
            timeout,
            out_of_step: false,
        };
        let bytes = match client.receive("greeting", GREETING_MAX) {
            Err(TelemetryError::Closed { path, .. }) => {
                return Err(TelemetryError::Closed {
                    path,
                    during: "before greeting (DPDK serves at most 10 telemetry clients at once)"
                        .to_owned(),
                });
            }
            other => other?,
        };
        client.greeting = Greeting::parse(&bytes).map_err(|reason| TelemetryError::Greeting {
            path: path.to_owned(),
            reason,
        })?;
        Ok(client)
    }

    /// What the application said when we connected.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `name` (with `,param` if given) and returns the reply's
    /// value: `None` for DPDK's `null` (unknown command, bad parameter,
    /// or a failure in the application).
    pub fn command(
        &mut self,
        name: &str,
        param: Option<&str>,
    ) -> Result<Option<Value>, TelemetryError> {
        let text = command_text(name, param)?;
        if self.out_of_step {
            return Err(TelemetryError::OutOfStep {
                path: self.path.clone(),
            });
        }
        loop {
            match send(&self.fd, text.as_bytes(), SendFlags::NOSIGNAL) {
                Ok(_) => break,
                Err(Errno::INTR) => {}
                Err(Errno::PIPE | Errno::CONNRESET) => {
                    return Err(self.closed(name));
                }
                Err(Errno::AGAIN) => return Err(self.timed_out(name)),
                Err(e) => return Err(self.io("send", name, e)),
            }
        }
        let bytes = self.receive(name, self.greeting.max_output_len)?;
        parse_reply(&bytes, name).map_err(|reason| TelemetryError::BadReply {
            path: self.path.clone(),
            command: name.to_owned(),
            reason,
        })
    }

    /// Receives one message of at most `max` bytes.
    fn receive(&mut self, what: &str, max: usize) -> Result<Vec<u8>, TelemetryError> {
        let mut buf = vec![0u8; max];
        loop {
            match recv(&self.fd, &mut buf[..], RecvFlags::TRUNC) {
                // A zero-length message is never sent by DPDK: end of stream.
                Ok((_, 0)) => return Err(self.closed(what)),
                Ok((_, len)) if len > max => {
                    return Err(TelemetryError::TooLong {
                        path: self.path.clone(),
                        command: what.to_owned(),
                        len,
                        max,
                    });
                }
                Ok((n, _)) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Err(self.timed_out(what)),
                Err(Errno::CONNRESET) => return Err(self.closed(what)),
                Err(e) => return Err(self.io("recv", what, e)),
            }
        }
    }

    fn closed(&self, what: &str) -> TelemetryError {
        TelemetryError::Closed {
            path: self.path.clone(),
            during: format!("while waiting for {what}"),
        }
    }

    fn timed_out(&mut self, what: &str) -> TelemetryError {
        self.out_of_step = true;
        TelemetryError::Timeout {
            path: self.path.clone(),
            command: what.to_owned(),
            waited: self.timeout,
        }
    }

    fn io(&self, op: &'static str, what: &str, e: Errno) -> TelemetryError {
        TelemetryError::Io {
            op,
            path: self.path.clone(),
            command: what.to_owned(),
            source: e.into(),
        }
    }
}

/// The bytes DPDK expects for `name` and `param`, checked as DPDK reads
/// them (a longer name or an oversized message would be answered for a
/// different command than the one we asked).
pub fn command_text(name: &str, param: Option<&str>) -> Result<String, TelemetryError> {
    let bad = |reason| TelemetryError::BadCommand {
        command: match param {
            Some(p) => format!("{name},{p}"),
            None => name.to_owned(),
        },
        reason,
    };
    if !name.starts_with('/') {
        return Err(bad("a command starts with '/'"));
    }
    if name.len() >= MAX_NAME_LEN {
        return Err(bad("a command name must be shorter than 56 bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/')
    {
        return Err(bad(
            "a command name holds only letters, digits, '_' and '/'",
        ));
    }
    let text = match param {
        Some(p) if p.contains('\0') => return Err(bad("a parameter cannot hold NUL")),
        Some(p) => format!("{name},{p}"),
        None => name.to_owned(),
    };
    if text.len() > MAX_COMMAND_LEN {
        return Err(bad("DPDK reads at most 1023 bytes of a command"));
    }
    Ok(text)
}

/// The value of a reply `{"name":VALUE}`; `None` for `null`.
pub fn parse_reply(bytes: &[u8], name: &str) -> Result<Option<Value>, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e}): {}", excerpt(bytes)))?;
    let Value::Object(mut map) = value else {
        return Err(format!("not a JSON object: {}", excerpt(bytes)));
    };
    if map.len() != 1 {
        return Err(format!(
            "{} keys where DPDK writes one, the command: {}",
            map.len(),
            excerpt(bytes)
        ));
    }
    match map.remove(name) {
        Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(v)),
        None => Err(format!(
            "the reply is for another command: {}",
            excerpt(bytes)
        )),
    }
}

/// The start of a reply, for messages.
pub(super) fn excerpt(bytes: &[u8]) -> String {
    const SHOWN: usize = 120;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)]);
    if bytes.len() > SHOWN {
        format!("{text}... ({} bytes)", bytes.len())
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked_as_dpdk_reads_them() {
        assert_eq!(
            command_text("/ethdev/stats", Some("0")).unwrap(),
            "/ethdev/stats,0"
        );
        assert_eq!(command_text("/", None).unwrap(), "/");
        for (name, param) in [
            ("ethdev/list", None),
            ("/eal/lcore,usage", None),
            ("/a b", None),
            ("/x", Some("a\0b")),
        ] {
            let err = command_text(name, param).unwrap_err();
            assert!(matches!(err, TelemetryError::BadCommand { .. }), "{err}");
        }
        let long = format!("/{}", "a".repeat(55));
        assert!(command_text(&long, None).is_err());
        assert!(command_text(&long[..55], None).is_ok());
        let param = "p".repeat(MAX_COMMAND_LEN);
        let err = command_text("/x", Some(&param)).unwrap_err();
        assert!(err.to_string().contains("1023"), "{err}");
    }

    #[test]
    fn replies_are_one_key_named_for_the_command() {
        assert_eq!(
            parse_reply(br#"{"/ethdev/list":[0,1]}"#, "/ethdev/list").unwrap(),
            Some(serde_json::json!([0, 1]))
        );
        assert_eq!(parse_reply(br#"{"/nope":null}"#, "/nope").unwrap(), None);
        for bad in [
            &br#"{"/other":[0]}"#[..],
            br#"{"/ethdev/list":[0],"x":1}"#,
            br#"[0]"#,
            br#"{"/ethdev/list":[0"#,
            b"\xff\xfe",
            b"",
        ] {
            assert!(parse_reply(bad, "/ethdev/list").is_err(), "{bad:?}");
        }
    }
}

//! Results and errors of a command as text or JSON, and the exit codes.
//!
//! Exit codes: 0 done; 1 the host could not be reached (no answer, I/O
//! error); 2 usage or invalid request (nothing was sent); 3 no such port;
//! 4 refused by the host (NACK); 5 the host's reply did not fit the request.

use std::process::ExitCode;

use serde_json::{Value, json};
use vmpower_guest::{ChannelError, ErrorClass, ReporterError};

/// A command that succeeded: what to print.
#[derive(Debug)]
pub struct Done {
    /// Lines for a human.
    pub text: String,
    /// The object printed with `--json` (`"ok": true` is added).
    pub json: Value,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// Invalid input; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// Talking to the host failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// Busyness reports cannot be sent (the agent).
    #[error(transparent)]
    Reporter(ReporterError),
}

impl CmdError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self.kind() {
            "unreachable" => 1,
            "no-such-port" => 3,
            "refused" => 4,
            "protocol" => 5,
            _ => 2,
        }
    }

    /// The machine-readable class, for `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            CmdError::Usage(_) => "usage",
            CmdError::Channel(e) | CmdError::Reporter(ReporterError::Channel(e)) => channel_kind(e),
            // The host answered HELLO, but not with what reports need.
            CmdError::Reporter(ReporterError::NotGranted { .. }) => "refused",
            CmdError::Reporter(_) => "usage",
        }
    }
}

/// The class of a channel error.
fn channel_kind(e: &ChannelError) -> &'static str {
    match e {
        ChannelError::NoSuchPort { .. } => "no-such-port",
        e => match e.class() {
            ErrorClass::Unreachable => "unreachable",
            ErrorClass::Invalid => "usage",
            ErrorClass::Refused => "refused",
            ErrorClass::Protocol => "protocol",
        },
    }
}

/// The full error chain on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Prints a command's outcome and returns its exit code.
pub fn report(result: Result<Done, CmdError>, json: bool) -> ExitCode {
    match result {
        Ok(done) => {
            if json {
                let mut value = done.json;
                if let Value::Object(map) = &mut value {
                    map.insert("ok".into(), Value::Bool(true));
                }
                println!("{value}");
            } else {
                print!("{}", done.text);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let message = chain(&e);
            if json {
                println!(
                    "{}",
                    json!({"ok": false, "error": {"kind": e.kind(), "message": message}})
                );
            }
            eprintln!("vmpower-guest: {message}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn exit_codes_tell_refused_from_unreachable() {
        let refused = CmdError::from(ChannelError::HostRefused {
            request: "PKT_POLICY".into(),
            reason: Some("invalid_policy"),
        });
        let silent = CmdError::from(ChannelError::HostSilent {
            request: "PKT_POLICY".into(),
            waited: Duration::from_secs(1),
            host_connected: true,
        });
        let missing = CmdError::from(ChannelError::NoSuchPort {
            index: 0,
            looked_at: vec![],
        });
        assert_eq!(refused.exit_code(), 4);
        assert_eq!(silent.exit_code(), 1);
        assert_eq!(missing.exit_code(), 3);
        assert_eq!(CmdError::Usage("x".into()).exit_code(), 2);
        assert_eq!(refused.kind(), "refused");
    }
}

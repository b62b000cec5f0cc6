//! Talking to the guest's /init over the control port: send "ID COMMAND",
//! read the command's output up to "@@E2E-END ID STATUS".
//!
//! ## Behavior
//! - Commands run one at a time, in the guest's `sh -c`, stdin from
//!   /dev/null, stdout and stderr together.
//! - An end marker with another id (the late answer of a command that timed
//!   out) is skipped with the output before it.
//! - Every command has a deadline; a guest that does not answer in time is
//!   an error naming the command.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::wait;

/// Default bound on one guest command.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// Marker the guest prints after a command's output.
const END: &str = "@@E2E-END ";

/// What a guest command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestOutput {
    /// Exit status of `sh -c`.
    pub status: i32,
    /// stdout and stderr.
    pub text: String,
}

/// The control connection to one guest.
#[derive(Debug)]
pub struct GuestCtl {
    stream: UnixStream,
    pending: Vec<u8>,
    next_id: u64,
}

/// Parses an end marker line: `@@E2E-END ID STATUS`.
pub fn parse_end(line: &str) -> Option<(u64, i32)> {
    let rest = line.strip_prefix(END)?;
    let mut words = rest.split_whitespace();
    let id = words.next()?.parse().ok()?;
    let status = words.next()?.parse().ok()?;
    words.next().is_none().then_some((id, status))
}

/// Takes one complete answer to command `id` out of `pending`, if there.
pub fn take_answer(pending: &mut Vec<u8>, id: u64) -> Option<GuestOutput> {
    let mut start = 0;
    let mut output_start = 0;
    while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
        let line_start = start;
        let end = start + pos;
        let line = String::from_utf8_lossy(&pending[start..end]).into_owned();
        start = end + 1;
        if let Some((got, status)) = parse_end(&line) {
            if got == id {
                let body = &pending[output_start..line_start];
                let mut text = String::from_utf8_lossy(body).into_owned();
                // /init adds one newline after the output.
                if text.ends_with('\n') {
                    text.pop();
                }
                pending.drain(..start);
                return Some(GuestOutput { status, text });
            }
            // A stale answer: drop it and what came before.
            output_start = start;
        }
    }
    pending.drain(..output_start);
    None
}

impl GuestCtl {
    /// Connects to QEMU's end of the control port.
    pub fn connect(path: &Path) -> anyhow::Result<GuestCtl> {
        let stream = wait::until(
            &format!("control socket {}", path.display()),
            Duration::from_secs(10),
            || Ok(UnixStream::connect(path).ok()),
        )?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(GuestCtl {
            stream,
            pending: Vec::new(),
            next_id: 1,
        })
    }

    /// Runs `cmd` in the guest, waiting at most `timeout`.
    pub fn run_for(&mut self, cmd: &str, timeout: Duration) -> anyhow::Result<GuestOutput> {
        if cmd.contains('\n') {
            bail!("guest commands are one line: {cmd:?}");
        }
        let id = self.next_id;
        self.next_id += 1;
        self.stream
            .write_all(format!("{id} {cmd}\n").as_bytes())
            .with_context(|| format!("sending {cmd:?} to the guest"))?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(out) = take_answer(&mut self.pending, id) {
                return Ok(out);
            }
            if Instant::now() >= deadline {
                bail!("the guest did not finish {cmd:?} within {timeout:?}");
            }
            match self.stream.read(&mut buf) {
                Ok(0) => bail!("the guest's control port closed during {cmd:?}"),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e).context("reading the guest's control port"),
            }
        }
    }

    /// Runs `cmd` with the default timeout.
    pub fn run(&mut self, cmd: &str) -> anyhow::Result<GuestOutput> {
        self.run_for(cmd, CMD_TIMEOUT)
    }

    /// Runs `cmd`; an exit status other than 0 is an error with its output.
    pub fn run_ok(&mut self, cmd: &str) -> anyhow::Result<String> {
        let out = self.run(cmd)?;
        if out.status != 0 {
            bail!("guest: `{cmd}` exited {}: {}", out.status, out.text);
        }
        Ok(out.text)
    }

    /// Runs `cmd` and requires exit status `status`; returns the output.
    pub fn run_expect(&mut self, cmd: &str, status: i32) -> anyhow::Result<String> {
        let out = self.run(cmd)?;
        if out.status != status {
            bail!(
                "guest: `{cmd}` exited {} (expected {status}): {}",
                out.status,
                out.text
            );
        }
        Ok(out.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_markers() {
        assert_eq!(parse_end("@@E2E-END 7 0"), Some((7, 0)));
        assert_eq!(parse_end("@@E2E-END 12 4"), Some((12, 4)));
        assert_eq!(parse_end("@@E2E-END 12"), None);
        assert_eq!(parse_end("@@E2E-END x 0"), None);
        assert_eq!(parse_end("@@E2E-END 1 0 extra"), None);
        assert_eq!(parse_end("output @@E2E-END 1 0"), None);
    }

    #[test]
    fn answers_are_cut_at_their_own_marker() {
        let mut pending = b"vCPU 0: 800000 kHz\n\n@@E2E-END 3 0\nnext".to_vec();
        assert_eq!(take_answer(&mut pending, 4), None);
        let mut pending = b"vCPU 0: 800000 kHz\n\n@@E2E-END 3 0\nnext".to_vec();
        let out = take_answer(&mut pending, 3).unwrap();
        assert_eq!(out.text, "vCPU 0: 800000 kHz\n");
        assert_eq!(out.status, 0);
        assert_eq!(pending, b"next");
    }

    #[test]
    fn a_partial_answer_waits_and_stale_answers_are_skipped() {
        let mut pending = b"late\n\n@@E2E-END 1 1\nmine\n".to_vec();
        assert_eq!(take_answer(&mut pending, 2), None);
        assert_eq!(pending, b"mine\n");
        pending.extend_from_slice(b"\n@@E2E-END 2 4\n");
        let out = take_answer(&mut pending, 2).unwrap();
        assert_eq!(
            out,
            GuestOutput {
                status: 4,
                text: "mine\n".into()
            }
        );
        assert!(pending.is_empty());
    }
}

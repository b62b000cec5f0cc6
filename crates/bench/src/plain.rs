//! The baselines (hidden subcommand `plain-reader`), a separate process
//! that connects as a client to `<dir>/vm<i>.0` like the daemon, on a
//! tokio multi-thread runtime like the daemon's:
//! - plain reader (throughput): only reads and discards, with the
//!   daemon's 64 KiB read size. No decoding, no engine, no replies.
//! - echo (`--echo`, latency): sends every 464-byte record straight
//!   back: the round-trip floor of a socket and a tokio wakeup.
//! - blocking echo (`--echo --blocking`, latency): the same with a plain
//!   thread blocked in `read(2)`, no runtime at all: the floor of a socket
//!   round trip and two thread wakeups on this machine.
//!
//! It exits on its own after [`MAX_LIFETIME`] so that it can never be left
//! behind; the bench kills it as soon as it is done ([`PlainReader`]).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::guest::RECORD;

/// The longest the reader lives.
pub const MAX_LIFETIME: Duration = Duration::from_secs(900);
/// Bytes read at once (the daemon's `READ_BUF`).
const READ_BUF: usize = 64 * 1024;

/// Connects to `count` channels in `dir` and drains (or echoes) them;
/// `blocking` echoes with plain threads instead of tokio.
pub fn run(dir: &Path, count: usize, echo: bool, blocking: bool) -> anyhow::Result<()> {
    if echo && blocking {
        return blocking_echo(dir, count);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for i in 0..count {
            let path = dir.join(format!("{}.0", crate::host::vm_name(i)));
            let stream = UnixStream::connect(&path)
                .await
                .with_context(|| format!("cannot connect to {}", path.display()))?;
            if echo {
                tokio::spawn(echo_records(stream));
                continue;
            }
            tokio::spawn(async move {
                let mut buf = vec![0u8; READ_BUF];
                loop {
                    if stream.readable().await.is_err() {
                        return;
                    }
                    match stream.try_read(&mut buf) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
            });
        }
        tokio::time::sleep(MAX_LIFETIME).await;
        anyhow::Ok(())
    })
}

/// Sends every record back as it is.
async fn echo_records(mut stream: UnixStream) {
    let mut record = [0u8; RECORD];
    while stream.read_exact(&mut record).await.is_ok() {
        if stream.write_all(&record).await.is_err() {
            return;
        }
    }
}

/// One thread per channel, blocked in `read(2)`, writing each record back.
fn blocking_echo(dir: &Path, count: usize) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    for i in 0..count {
        let path = dir.join(format!("{}.0", crate::host::vm_name(i)));
        let mut stream = std::os::unix::net::UnixStream::connect(&path)
            .with_context(|| format!("cannot connect to {}", path.display()))?;
        std::thread::spawn(move || {
            let mut record = [0u8; RECORD];
            while stream.read_exact(&mut record).is_ok() {
                if stream.write_all(&record).is_err() {
                    return;
                }
            }
        });
    }
    std::thread::sleep(MAX_LIFETIME);
    Ok(())
}

/// The baseline process; killed on drop.
#[derive(Debug)]
pub struct PlainReader(Child);

impl PlainReader {
    /// Starts this binary's `plain-reader` mode on `count` sockets of `dir`.
    pub fn spawn(dir: &Path, count: usize, echo: bool) -> anyhow::Result<Self> {
        Self::spawn_with(dir, count, echo, false)
    }

    /// The echo with plain blocking threads (no tokio) on `count` sockets.
    pub fn spawn_blocking_echo(dir: &Path, count: usize) -> anyhow::Result<Self> {
        Self::spawn_with(dir, count, true, true)
    }

    fn spawn_with(dir: &Path, count: usize, echo: bool, blocking: bool) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("plain-reader")
            .arg("--dir")
            .arg(dir)
            .arg("--count")
            .arg(count.to_string());
        if echo {
            cmd.arg("--echo");
        }
        if blocking {
            cmd.arg("--blocking");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the plain reader")?;
        Ok(PlainReader(child))
    }
}

impl Drop for PlainReader {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

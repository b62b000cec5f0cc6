//! One guest channel: connect to QEMU's socket as a client, reassemble
//! records, hand them to the core, write the replies without blocking,
//! and reconnect when QEMU restarts the socket.
//!
//! ## Behavior
//! - A remote close or an error ends this connection only. If the socket
//!   file is still there, the task reconnects with a backoff (50 ms
//!   doubling to 2 s). A vanished file, or a socket that keeps refusing
//!   connections (a stale one), ends the task; the directory watcher starts
//!   a new one when QEMU creates the socket again.
//! - A partial record left at disconnect is dropped and counted.
//! - The layout (464 or 456 bytes) is the VM's setting when the
//!   connection is made.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::UnixStream;
use tracing::{debug, info, warn};
use vmpower_engine::ChannelId;
use vmpower_proto::stream::RecordStream;

use super::outbox::Outbox;
use crate::SharedCore;

/// Bytes read at once: a few hundred records.
const READ_BUF: usize = 64 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Consecutive refused connects (about 7 s with the backoff) before a
/// socket is taken for stale.
const MAX_REFUSALS: u32 = 8;

/// Serves the channel at `path` until its socket goes away for good.
pub async fn serve_socket(path: PathBuf, channel: ChannelId, core: SharedCore) {
    let mut backoff = BACKOFF_MIN;
    let mut refusals = 0;
    loop {
        match UnixStream::connect(&path).await {
            Ok(stream) => {
                backoff = BACKOFF_MIN;
                refusals = 0;
                crate::lock(&core).stats.connects += 1;
                info!(%channel, path = %path.display(), "channel connected");
                let why = serve_stream(&stream, &channel, &core).await;
                info!(%channel, reason = %why, "channel closed");
            }
            // QEMU binds before it listens: a refusal right after the
            // socket appears is normal. Persistent refusal means a stale
            // socket; wait for it to be re-created.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                refusals += 1;
                if refusals >= MAX_REFUSALS {
                    debug!(%channel, "socket refuses connections; waiting for it to be re-created");
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => warn!(%channel, error = %e, "cannot connect"),
        }
        if !path.exists() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Closed {
    Eof,
    Error(io::Error),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Eof => f.write_str("remote closed"),
            Closed::Error(e) => write!(f, "{e}"),
        }
    }
}

async fn serve_stream(stream: &UnixStream, channel: &ChannelId, core: &SharedCore) -> Closed {
    let layout = crate::lock(core)
        .engine
        .settings(&channel.vm)
        .map(|s| s.layout)
        .unwrap_or_default();
    let mut records = RecordStream::new(layout);
    let mut buf = vec![0u8; READ_BUF];
    let mut replies = Vec::new();
    let mut lens = Vec::new();
    let mut outbox = Outbox::default();
    let closed = loop {
        let n = match read(stream, &mut buf).await {
            Ok(0) => break Closed::Eof,
            Ok(n) => n,
            Err(e) => break Closed::Error(e),
        };
        let mut input = &buf[..n];
        replies.clear();
        lens.clear();
        {
            let mut core = crate::lock(core);
            while let Some(frame) = records.next_frame(&mut input) {
                let before = replies.len();
                core.handle_frame(channel, layout, &frame, &mut replies);
                if replies.len() > before {
                    lens.push(replies.len() - before);
                }
            }
        }
        match outbox.send(stream, &replies, &lens) {
            Ok(0) => {}
            Ok(dropped) => crate::lock(core).stats.replies_dropped += dropped,
            Err(e) => break Closed::Error(e),
        }
    };
    let partial = records.discard_partial();
    if partial > 0 {
        crate::lock(core).stats.partial_bytes_dropped += partial as u64;
        info!(%channel, bytes = partial, "partial record dropped at disconnect");
    }
    closed
}

/// `read` on a shared stream reference.
async fn read(stream: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

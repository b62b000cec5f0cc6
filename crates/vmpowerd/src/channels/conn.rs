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
//! - One read's replies are sent before the log lines and history entries
//!   of the decisions they report ([`crate::core::Core::flush_decisions`]):
//!   the guest's round trip holds the sysfs write, not the bookkeeping.

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
                crate::lock(&core).stats.channel_up(&channel);
                info!(%channel, path = %path.display(), "channel connected");
                let why = serve_stream(&stream, &channel, &core).await;
                crate::lock(&core).stats.channel_down(&channel);
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
    let mut outbox = Outbox::default();
    let closed = loop {
        if let Err(e) = stream.readable().await {
            break Closed::Error(e);
        }
        match SCRATCH.with_borrow_mut(|scratch| {
            pump(
                stream,
                channel,
                core,
                layout,
                &mut records,
                &mut outbox,
                scratch,
            )
        }) {
            // Over its rate limit: stop reading until the next token, so
            // the flood backs up into the guest's own socket buffer.
            Ok(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
            Ok(_) => {}
            Err(closed) => break closed,
        }
    };
    let partial = records.discard_partial();
    if partial > 0 {
        crate::lock(core).stats.partial_bytes_dropped += partial as u64;
        info!(%channel, bytes = partial, "partial record dropped at disconnect");
    }
    closed
}

/// Per-thread buffers: a read buffer and the replies of one read. A
/// connection holds no buffer of its own between reads (only its partial
/// record), so thousands of idle channels cost little memory.
struct Scratch {
    buf: Vec<u8>,
    replies: Vec<u8>,
    lens: Vec<usize>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        buf: vec![0u8; READ_BUF],
        replies: Vec::new(),
        lens: Vec::new(),
    });
}

/// Reads what is there, decides, replies; never awaits. Returns how long
/// the channel must wait before it may be read again (its rate limit).
fn pump(
    stream: &UnixStream,
    channel: &ChannelId,
    core: &SharedCore,
    layout: vmpower_proto::Layout,
    records: &mut RecordStream,
    outbox: &mut Outbox,
    scratch: &mut Scratch,
) -> Result<Duration, Closed> {
    let n = match stream.try_read(&mut scratch.buf) {
        Ok(0) => return Err(Closed::Eof),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Duration::ZERO),
        Err(e) => return Err(Closed::Error(e)),
    };
    let mut input = &scratch.buf[..n];
    scratch.replies.clear();
    scratch.lens.clear();
    let (wait, deferred) = {
        let mut core = crate::lock(core);
        core.begin_batch();
        while let Some(frame) = records.next_frame(&mut input) {
            let before = scratch.replies.len();
            core.handle_frame(channel, layout, &frame, &mut scratch.replies);
            if scratch.replies.len() > before {
                scratch.lens.push(scratch.replies.len() - before);
            }
        }
        let now = core.now();
        (core.engine.channel_wait(channel, now), core.has_deferred())
    };
    // Replies first: the decisions' log lines and history entries wait
    // until the guest has its answers.
    let sent = outbox.send(stream, &scratch.replies, &scratch.lens);
    let dropped = *sent.as_ref().unwrap_or(&0);
    if deferred || dropped > 0 {
        let mut core = crate::lock(core);
        core.stats.replies_dropped += dropped;
        core.flush_decisions();
    }
    match sent {
        Ok(_) => Ok(wait),
        Err(e) => Err(Closed::Error(e)),
    }
}

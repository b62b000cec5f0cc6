//! One guest channel: connect to QEMU's socket as a client, reassemble
//! records, hand them to the core, write the replies without blocking,
//! and reconnect when QEMU restarts the socket.
//!
//! ## Behavior
//! - A remote close or an error ends this connection only. If the socket
//!   file is still there, the task reconnects with a backoff (50 ms
//!   doubling to 5 s), reset only after a connection that lived at least
//!   a second and carried a record: a peer that accepts and closes at once
//!   is tried less and less often, not 20 times a second. Its "channel
//!   connected" / "channel closed" lines have a budget (10 per 10 s per
//!   channel, [`crate::ratelog`]). A vanished file, or a socket that keeps
//!   refusing connections (a stale one), ends the task; the directory
//!   watcher starts a new one when QEMU creates the socket again.
//! - A partial record left at disconnect is dropped and counted, and so
//!   is one that nothing completes for 1 s while the guest is silent (a
//!   torn write, or a record of the wrong length): the stream realigns by
//!   itself at the guest's next record, so a guest that reads its replies
//!   is out of step for at most the records it sent back to back.
//! - The layout (464 or 456 bytes) is the VM's setting when the
//!   connection is made; the reply contract starts as DPDK's on every
//!   connection (the guest may ask for the native one).
//! - One read's replies are sent before the log lines and history entries
//!   of the decisions they report ([`crate::core::Core::flush_decisions`]):
//!   the guest's round trip holds the sysfs write, not the bookkeeping.
//! - A read takes no more records than the channel's rate limit allows
//!   (at least one); past it, the channel is not read until its next
//!   token, so a flood waits in the guest's own socket. Each pause is
//!   counted on the channel.
//! - With `channel_busy_poll_us` (50 µs by default), a channel whose guest
//!   sends requests back to back (each within two windows of the previous
//!   reply) keeps reading its socket for that window after each one
//!   ([`super::spin`]), yielding to the other channels between reads,
//!   before it waits on epoll again; only while the host has a CPU to
//!   spare, since on a busy one the window holds a CPU the guest may be
//!   waiting for.
//! - One read's batch per turn: after each, the task yields, so a guest
//!   that keeps its socket full does not keep the thread from the others.
//! - Runs on the channel thread ([`super::thread`]).

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::net::UnixStream;
use tracing::{debug, info, warn};
use vmpower_engine::ChannelId;
use vmpower_proto::stream::RecordStream;

use super::outbox::Outbox;
use super::spin::{BusyPoll, SpareCpu};
use crate::SharedCore;

/// Bytes read at once: a few hundred records.
const READ_BUF: usize = 64 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a connection that carried a record must have lived for the
/// backoff to start again from [`BACKOFF_MIN`].
const LIVED: Duration = Duration::from_secs(1);
/// How long a partial record may wait for its rest while nothing arrives
/// before it is dropped as torn (the guest writes whole records at once).
const STALE_PARTIAL: Duration = Duration::from_secs(1);
/// Consecutive refused connects (about 7 s with the backoff) before a
/// socket is taken for stale.
const MAX_REFUSALS: u32 = 8;

/// Serves the channel at `path` until its socket goes away for good.
pub async fn serve_socket(path: PathBuf, channel: ChannelId, core: SharedCore) {
    let mut backoff = BACKOFF_MIN;
    let mut refusals = 0;
    let mut log = crate::ratelog::Budget::default();
    crate::lock(&core).stats.channel_known(&channel);
    loop {
        match UnixStream::connect(&path).await {
            Ok(stream) => {
                refusals = 0;
                let (since, requests) = {
                    let mut core = crate::lock(&core);
                    core.stats.channel_up(&channel);
                    if let Some(suppressed) = log.allow(&mut core.stats.log_lines_suppressed) {
                        info!(%channel, path = %path.display(), suppressed, "channel connected");
                    }
                    (Instant::now(), core.stats.vm_requests(&channel.vm))
                };
                let why = serve_stream(&stream, &channel, &core).await;
                let mut core = crate::lock(&core);
                core.stats.channel_down(&channel);
                if let Some(suppressed) = log.allow(&mut core.stats.log_lines_suppressed) {
                    info!(%channel, reason = %why, suppressed, "channel closed");
                }
                // Its VM's request count stands for the channel's records.
                let carried = core.stats.vm_requests(&channel.vm) > requests;
                if carried && since.elapsed() >= LIVED {
                    backoff = BACKOFF_MIN;
                }
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
    let (layout, busy_poll, allowance) = {
        let mut core = crate::lock(core);
        // A new connection may be a new guest program: DPDK's contract.
        core.engine.channel_connected(channel);
        let layout = core
            .engine
            .settings(&channel.vm)
            .map(|s| s.layout)
            .unwrap_or_default();
        let now = core.now();
        let allowance = core.engine.channel_allowance(channel, now);
        (layout, core.channel_busy_poll, allowance)
    };
    let mut link = Link {
        stream,
        channel,
        core,
        layout,
        records: RecordStream::new(layout),
        outbox: Outbox::default(),
        allowance: usize::try_from(allowance).unwrap_or(usize::MAX),
    };
    let mut pacing = BusyPoll::new(busy_poll);
    let closed = loop {
        // A partial record that stays partial while the guest is silent was
        // torn or of the wrong length: dropping it realigns the stream.
        let readable = if link.records.pending() > 0 {
            match tokio::time::timeout(STALE_PARTIAL, stream.readable()).await {
                Ok(readable) => readable,
                Err(_) => {
                    link.drop_stale_partial();
                    continue;
                }
            }
        } else {
            stream.readable().await
        };
        if let Err(e) = readable {
            break Closed::Error(e);
        }
        let woke = Instant::now();
        let mut served = SCRATCH.with_borrow_mut(|scratch| link.pump(scratch));
        // Busy poll: once the guest's requests follow each other within
        // the window, serve the next ones without going back to epoll
        // (no wakeup), for as long as they keep coming that fast.
        let polling =
            pacing.follows(woke) && SCRATCH.with_borrow_mut(|scratch| scratch.spare.spare(woke));
        while matches!(served, Ok(Some(wait)) if wait.is_zero()) {
            pacing.served(Instant::now());
            // One batch per turn (its replies are out): the thread's other
            // channels go next, however full this guest keeps its socket.
            tokio::task::yield_now().await;
            if !polling {
                break;
            }
            served = link.spin(pacing.window()).await;
        }
        match served {
            // Over its rate limit: stop reading until the next token, so
            // the flood backs up into the guest's own socket buffer.
            Ok(Some(wait)) if !wait.is_zero() => tokio::time::sleep(wait).await,
            Ok(_) => {}
            Err(closed) => break closed,
        }
    };
    let partial = link.records.discard_partial();
    if partial > 0 {
        crate::lock(core).stats.partial_bytes_dropped += partial as u64;
        info!(%channel, bytes = partial, "partial record dropped at disconnect");
    }
    closed
}

/// A connected channel: its socket, its reassembly state and its
/// unfinished reply.
struct Link<'a> {
    stream: &'a UnixStream,
    channel: &'a ChannelId,
    core: &'a SharedCore,
    layout: vmpower_proto::Layout,
    records: RecordStream,
    outbox: Outbox,
    /// Requests the channel's rate limit allowed after the last read: the
    /// next read takes no more records than that (at least one), so a
    /// flood stays in the guest's socket instead of being read and
    /// dropped.
    allowance: usize,
}

/// Per-thread buffers: a read buffer and the replies of one read. A
/// connection holds no buffer of its own between reads (only its partial
/// record), so thousands of idle channels cost little memory. With them,
/// the thread's view of whether a CPU is spare for busy polling.
struct Scratch {
    buf: Vec<u8>,
    replies: Vec<u8>,
    lens: Vec<usize>,
    spare: SpareCpu,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        buf: vec![0u8; READ_BUF],
        replies: Vec::new(),
        lens: Vec::new(),
        spare: SpareCpu::open(
            std::path::Path::new(super::spin::LOADAVG),
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        ),
    });
}

impl Link<'_> {
    /// Drops a partial record nothing has completed for [`STALE_PARTIAL`]:
    /// the next record the guest writes is read from its first byte.
    fn drop_stale_partial(&mut self) {
        let bytes = self.records.discard_partial();
        let mut core = crate::lock(self.core);
        core.stats.partial_bytes_dropped += bytes as u64;
        if let Some(suppressed) = core.guest_line(&self.channel.vm) {
            info!(channel = %self.channel, bytes, suppressed, "partial record dropped after {} s of silence: the stream is realigned", STALE_PARTIAL.as_secs());
        }
    }

    /// Reads what is there (through tokio's readiness), decides, replies;
    /// never awaits. `None` when there was nothing to read; otherwise how
    /// long the channel must wait before it may be read again (its rate
    /// limit).
    fn pump(&mut self, scratch: &mut Scratch) -> Result<Option<Duration>, Closed> {
        let len = self.read_len(scratch.buf.len());
        let read = match self.stream.try_read(&mut scratch.buf[..len]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            read => read.map(Some),
        };
        self.serve_read(scratch, read)
    }

    /// Serves what a read into `scratch.buf` got (`Ok(None)`: nothing
    /// there; `Ok(Some(0))`: the peer closed).
    fn serve_read(
        &mut self,
        scratch: &mut Scratch,
        read: io::Result<Option<usize>>,
    ) -> Result<Option<Duration>, Closed> {
        match read {
            Ok(Some(0)) => Err(Closed::Eof),
            Ok(Some(n)) => self.serve(scratch, n).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(Closed::Error(e)),
        }
    }

    /// Bytes to read at most: the records the rate limit allows, or the
    /// buffer.
    fn read_len(&self, buf: usize) -> usize {
        let record = self.layout.record_len();
        self.allowance.max(1).saturating_mul(record).min(buf)
    }

    /// [`Link::pump`] by busy polling: reads the socket directly until
    /// bytes come or `window` passes (`None`), yielding to the runtime
    /// between tries. The runtime polls epoll (without blocking) before it
    /// comes back, so the thread's other channels are served meanwhile.
    async fn spin(&mut self, window: Duration) -> Result<Option<Duration>, Closed> {
        let start = Instant::now();
        loop {
            let served = SCRATCH.with_borrow_mut(|scratch| {
                let len = self.read_len(scratch.buf.len());
                let read = super::spin::recv_now(self.stream, &mut scratch.buf[..len]);
                self.serve_read(scratch, read)
            });
            if !matches!(served, Ok(None)) {
                return served;
            }
            let now = Instant::now();
            // A task that became runnable meanwhile may be the guest.
            if now.saturating_duration_since(start) >= window
                || !SCRATCH.with_borrow_mut(|scratch| scratch.spare.spare(now))
            {
                return Ok(None);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Decides on the `n` bytes read into `scratch.buf` and sends the
    /// replies, then the decisions' bookkeeping.
    fn serve(&mut self, scratch: &mut Scratch, n: usize) -> Result<Duration, Closed> {
        let mut input = &scratch.buf[..n];
        scratch.replies.clear();
        scratch.lens.clear();
        let (wait, deferred) = {
            let mut core = crate::lock(self.core);
            core.begin_batch();
            while let Some(frame) = self.records.next_frame(&mut input) {
                let before = scratch.replies.len();
                core.handle_frame(self.channel, self.layout, &frame, &mut scratch.replies);
                if scratch.replies.len() > before {
                    scratch.lens.push(scratch.replies.len() - before);
                }
            }
            let now = core.now();
            self.allowance = usize::try_from(core.engine.channel_allowance(self.channel, now))
                .unwrap_or(usize::MAX);
            let wait = core.engine.channel_wait(self.channel, now);
            if !wait.is_zero() {
                core.stats.channel_throttled(self.channel);
            }
            (wait, core.has_deferred())
        };
        // Replies first: the decisions' log lines and history entries wait
        // until the guest has its answers.
        let sent = self
            .outbox
            .send(self.stream, &scratch.replies, &scratch.lens);
        let dropped = *sent.as_ref().unwrap_or(&0);
        if deferred || dropped > 0 {
            let mut core = crate::lock(self.core);
            core.stats.replies_dropped += dropped;
            core.flush_decisions();
        }
        match sent {
            Ok(_) => Ok(wait),
            Err(e) => Err(Closed::Error(e)),
        }
    }
}

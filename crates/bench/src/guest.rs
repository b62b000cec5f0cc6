//! The bench plays QEMU and the guests: it listens at
//! `<channel-dir>/<vm>.<n>` (the daemon connects as a client), then speaks
//! the guest's side of the protocol on the accepted streams.
//!
//! ## Behavior
//! - [`accept_all`] drops each listener once its connection is accepted,
//!   so the bench holds about one descriptor per channel.
//! - [`Flood`] writes one record over and over, in big writes, on every
//!   stream from one thread (a current-thread tokio runtime) and drains
//!   whatever comes back, counting bytes both ways.
//! - Every blocking read has a timeout.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vmpower_proto::layout::{decode_verdict, encode_request_record};
use vmpower_proto::{CoreType, Layout, Request, RequestBody, ScalingUnit, Verdict, VmName};

/// Bytes of one request or reply record (current layout).
pub const RECORD: usize = 464;
/// How long a reply may take before the bench gives up.
pub const REPLY_WAIT: Duration = Duration::from_secs(10);

/// A CPU_POWER record for `vm`'s vCPU `vcpu`, current layout.
pub fn power_record(vm: &str, vcpu: u64, unit: ScalingUnit) -> anyhow::Result<Vec<u8>> {
    let req = Request {
        vm_name: VmName::new(vm).with_context(|| format!("bad VM name {vm}"))?,
        body: RequestBody::Power {
            resource_id: vcpu,
            core_type: CoreType::Virtual,
            unit,
        },
    };
    Ok(encode_request_record(&req, Layout::Current)?
        .as_slice()
        .to_vec())
}

/// Listening sockets standing for QEMU's virtio-serial ports.
#[derive(Debug)]
pub struct Qemu {
    pending: Vec<(PathBuf, UnixListener)>,
}

impl Qemu {
    /// Binds `<dir>/<name>` for every name.
    pub fn bind(dir: &Path, names: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut pending = Vec::new();
        for name in names {
            let path = dir.join(name);
            let listener = UnixListener::bind(&path)
                .with_context(|| format!("cannot listen at {}", path.display()))?;
            listener.set_nonblocking(true)?;
            pending.push((path, listener));
        }
        Ok(Qemu { pending })
    }
}

/// Accepts one connection on every listener within `wait`, in bind
/// order; the streams are blocking, with a read timeout.
pub fn accept_all(qemu: Qemu, wait: Duration) -> anyhow::Result<Vec<UnixStream>> {
    let total = qemu.pending.len();
    let mut slots: Vec<Option<UnixStream>> = (0..total).map(|_| None).collect();
    let mut pending: Vec<(usize, PathBuf, UnixListener)> = qemu
        .pending
        .into_iter()
        .enumerate()
        .map(|(i, (p, l))| (i, p, l))
        .collect();
    let deadline = Instant::now() + wait;
    while !pending.is_empty() {
        let mut still = Vec::with_capacity(pending.len());
        for (i, path, listener) in pending {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    stream.set_read_timeout(Some(REPLY_WAIT))?;
                    slots[i] = Some(stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    still.push((i, path, listener));
                }
                Err(e) => return Err(e).context(format!("accept on {}", path.display())),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon connected to {} of {total} channels within {wait:?}",
                total - pending.len()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(slots.into_iter().flatten().collect())
}

/// How a guest waits for its reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestWait {
    /// Blocked in `read(2)`. The daemon's read of the request frees its
    /// buffer and wakes every sleeper on the guest's socket for "writable"
    /// — a reader blocked in `read(2)` too, for nothing.
    #[default]
    Read,
    /// `poll(2)` for input, then `read(2)`, as QEMU's event loop waits on
    /// the channel socket: only the reply wakes it.
    Poll,
}

impl GuestWait {
    /// The wait as reports name it.
    pub fn describe(self) -> &'static str {
        match self {
            GuestWait::Read => "guest waits in read(2)",
            GuestWait::Poll => "guest waits in poll(POLLIN), then reads (as QEMU)",
        }
    }
}

/// Sends one record and reads its verdict.
pub fn round_trip(
    stream: &mut UnixStream,
    record: &[u8],
    reply: &mut [u8; RECORD],
) -> anyhow::Result<Verdict> {
    exchange(stream, record, reply, GuestWait::Read)?;
    Ok(decode_verdict(reply, Layout::Current)?.verdict)
}

/// Sends one record and reads a whole reply of `reply.len()` bytes back,
/// waiting as `wait` says.
pub fn exchange(
    stream: &mut UnixStream,
    record: &[u8],
    reply: &mut [u8],
    wait: GuestWait,
) -> anyhow::Result<()> {
    stream.write_all(record).context("write to the daemon")?;
    if wait == GuestWait::Poll {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let timeout = Timespec::try_from(REPLY_WAIT).context("reply timeout")?;
        let mut fds = [PollFd::new(&*stream, PollFlags::IN)];
        let ready = poll(&mut fds, Some(&timeout)).context("poll for the reply")?;
        if ready == 0 {
            bail!("no reply within {REPLY_WAIT:?}");
        }
    }
    stream.read_exact(reply).context("read the reply")?;
    Ok(())
}

/// Byte counters of a flood.
#[derive(Debug, Default)]
pub struct FloodCounters {
    /// Request bytes written.
    pub written: AtomicU64,
    /// Reply bytes read back.
    pub read: AtomicU64,
}

/// Guests flooding their channels from one background thread.
#[derive(Debug)]
pub struct Flood {
    /// Shared counters.
    pub counters: Arc<FloodCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Flood {
    /// Starts writing, on every stream, `batch` copies of its record at a
    /// time.
    pub fn start(streams: Vec<(UnixStream, Vec<u8>)>, batch: usize) -> anyhow::Result<Self> {
        let mut jobs = Vec::with_capacity(streams.len());
        for (s, record) in streams {
            s.set_nonblocking(true)?;
            jobs.push((s, record.repeat(batch.max(1))));
        }
        let counters = Arc::new(FloodCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counters.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("flood".into())
            .spawn(move || flood_thread(jobs, &c, &s))?;
        Ok(Flood {
            counters,
            stop,
            thread: Some(thread),
        })
    }

    /// Request bytes written so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Stops flooding and waits for the thread.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the flood thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

fn flood_thread(
    jobs: Vec<(UnixStream, Vec<u8>)>,
    counters: &Arc<FloodCounters>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for (s, buf) in jobs {
            let (mut rd, mut wr) = tokio::net::UnixStream::from_std(s)?.into_split();
            let c = counters.clone();
            tokio::spawn(async move {
                while wr.write_all(&buf).await.is_ok() {
                    c.written.fetch_add(buf.len() as u64, Ordering::Relaxed);
                }
            });
            let c = counters.clone();
            tokio::spawn(async move {
                let mut sink = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = rd.read(&mut sink).await {
                    c.read.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(())
    })?;
    // Dropping the runtime cancels the tasks and closes the streams.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_current_layout() {
        let r = power_record("vm1", 0, ScalingUnit::ScaleMin).unwrap();
        assert_eq!(r.len(), RECORD);
        assert_ne!(r, power_record("vm1", 0, ScalingUnit::ScaleMax).unwrap());
    }

    #[test]
    fn accept_all_and_flood_over_real_sockets() {
        let dir = crate::host::Workdir::create("unit-guest").unwrap();
        let qemu = Qemu::bind(dir.path(), ["a.0".to_owned(), "b.0".to_owned()]).unwrap();
        // Play the daemon: connect to both, then echo what a flood sends.
        let clients: Vec<UnixStream> = ["a.0", "b.0"]
            .iter()
            .map(|n| UnixStream::connect(dir.path().join(n)).unwrap())
            .collect();
        let streams = accept_all(qemu, Duration::from_secs(5)).unwrap();
        assert_eq!(streams.len(), 2);
        let record = power_record("a", 0, ScalingUnit::ScaleMin).unwrap();
        let jobs = streams.into_iter().map(|s| (s, record.clone())).collect();
        let flood = Flood::start(jobs, 4).unwrap();
        let mut c = clients.into_iter().next().unwrap();
        let mut got = vec![0u8; RECORD * 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got[..RECORD], &record[..]);
        c.write_all(&got).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while flood.counters.read.load(Ordering::Relaxed) < got.len() as u64 {
            assert!(Instant::now() < deadline, "echo not read back");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(flood.written() >= got.len() as u64);
        flood.stop().unwrap();
    }

    #[test]
    fn accept_all_is_bounded() {
        let dir = crate::host::Workdir::create("unit-guest2").unwrap();
        let qemu = Qemu::bind(dir.path(), ["a.0".to_owned()]).unwrap();
        let err = accept_all(qemu, Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("0 of 1"), "{err}");
    }
}

//! Busy polling of a guest channel (`channel_busy_poll_us`): after a
//! request, the channel's task keeps reading its socket for a short
//! window instead of waiting for epoll to wake it, so that a guest that
//! sends its next request right after reading the reply finds the daemon
//! awake — one thread wakeup less per round trip.
//!
//! ## Behavior
//! - Reads go to the socket directly ([`recv_now`]), not through tokio's
//!   cached readiness (which stays "not readable" until the driver polls
//!   epoll again). Data read here still raised its epoll edge; the task
//!   may be woken once for nothing later, and then finds `WouldBlock`.
//! - Between reads the task yields to the channel thread's runtime
//!   ([`super::conn`]), which polls epoll without blocking and serves the
//!   other channels before it comes back: a polling channel delays no
//!   other. The thread uses its CPU for the window; it starts only after
//!   a request that came within two windows of the previous reply
//!   ([`BusyPoll`]): an idle channel never polls, and a guest that sends
//!   one request now and then (which no window would catch) costs no
//!   polling either. The rate limit bounds how long a guest can keep it
//!   polling: once its burst is spent, its requests come a token apart.
//! - It polls only while the host has a CPU to spare ([`SpareCpu`]: no
//!   more runnable tasks than CPUs). On a busy host the polling thread
//!   would hold a CPU that a runnable task waits for — maybe the guest
//!   whose next request it waits for: at nice -10
//!   (`channel_thread_nice`) that guest waited out the whole window, and
//!   the round trip's p50 went from 17 to 67 µs (BENCHMARKS.md, latency).
//!   There the thread sleeps on epoll instead, and its priority makes the
//!   next request's wakeup preempt whatever runs.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::net::UnixStream;

/// When a channel polls: only while its guest's requests follow each
/// other within the window.
#[derive(Debug, Clone)]
pub struct BusyPoll {
    window: Duration,
    /// When the last request was served.
    last_served: Option<Instant>,
}

impl BusyPoll {
    /// Polling for `window` (zero: never).
    pub fn new(window: Duration) -> Self {
        BusyPoll {
            window,
            last_served: None,
        }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether to poll after serving a request that woke the channel at
    /// `woke`: the previous reply went out at most two windows earlier
    /// (the wakeup that brought this request is part of that gap, and
    /// polling saves it), so the guest's next request is likely to come
    /// within the window.
    pub fn follows(&self, woke: Instant) -> bool {
        !self.window.is_zero()
            && self
                .last_served
                .is_some_and(|t| woke.saturating_duration_since(t) <= 2 * self.window)
    }

    /// A request was served (its reply sent) at `at`.
    pub fn served(&mut self, at: Instant) {
        self.last_served = Some(at);
    }
}

/// One non-blocking read straight from the socket, not through tokio's
/// cached readiness: `Some(n)` when bytes were there (`Some(0)`: the peer
/// closed), `None` when none were.
pub fn recv_now(stream: &UnixStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match rustix::net::recv(stream, buf, RecvFlags::DONTWAIT) {
        Ok((n, _)) => Ok(Some(n)),
        Err(Errno::AGAIN | Errno::INTR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The kernel's load file: the count it gives is the real scheduler's,
/// whatever `--proc-root` says about the VMs' processes.
pub const LOADAVG: &str = "/proc/loadavg";

/// How long an answer of [`SpareCpu::spare`] is kept before the file is
/// read again: one read per millisecond at most, however many requests.
const SPARE_REFRESH: Duration = Duration::from_millis(1);

/// Whether the host has a CPU to spare for busy polling: the kernel's
/// count of runnable tasks (the numerator of `/proc/loadavg`'s fourth
/// field, the polling thread included) is at most the CPUs. When it is
/// higher, some task waits for a CPU.
#[derive(Debug)]
pub struct SpareCpu {
    /// The open load file, read again from its start each time; `None`
    /// when it could not be opened (then polling is never refused).
    file: Option<File>,
    cpus: usize,
    /// The last answer and when it was read.
    last: Option<(Instant, bool)>,
}

impl SpareCpu {
    /// Counts from `loadavg` (the kernel's [`LOADAVG`]) against `cpus`
    /// CPUs.
    pub fn open(loadavg: &Path, cpus: usize) -> Self {
        SpareCpu {
            file: File::open(loadavg).ok(),
            cpus,
            last: None,
        }
    }

    /// Whether no task waited for a CPU at `now` (or within
    /// [`SPARE_REFRESH`] before); also when the count cannot be read.
    pub fn spare(&mut self, now: Instant) -> bool {
        if let Some((at, spare)) = self.last
            && now.saturating_duration_since(at) < SPARE_REFRESH
        {
            return spare;
        }
        let spare = self.read();
        self.last = Some((now, spare));
        spare
    }

    fn read(&self) -> bool {
        let Some(file) = &self.file else {
            return true;
        };
        let mut buf = [0u8; 128];
        let Ok(n) = file.read_at(&mut buf, 0) else {
            return true;
        };
        runnable_tasks(&buf[..n]).is_none_or(|runnable| runnable <= self.cpus)
    }
}

/// The runnable tasks in a `/proc/loadavg` text (`0.50 0.40 0.30 3/220
/// 12345`: 3); `None` when it does not read so.
pub fn runnable_tasks(text: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(text).ok()?;
    let field = text.split_ascii_whitespace().nth(3)?;
    field.split_once('/')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn the_runnable_count_is_the_fourth_fields_numerator() {
        assert_eq!(runnable_tasks(b"0.50 0.40 0.30 3/220 12345\n"), Some(3));
        assert_eq!(runnable_tasks(b"13.50 16.33 15.38 12/241 12444"), Some(12));
        for bad in [
            &b""[..],
            b"0.50 0.40 0.30",
            b"0.5 0.4 0.3 x/220 1",
            b"0.5 0.4 0.3 3 1",
        ] {
            assert_eq!(
                runnable_tasks(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_cpu_is_spare_while_runnable_tasks_fit_the_cpus() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loadavg");
        std::fs::write(&path, "1.00 1.00 1.00 3/200 99\n").unwrap();
        let mut gate = SpareCpu::open(&path, 2);
        let t0 = Instant::now();
        assert!(!gate.spare(t0), "3 runnable tasks on 2 CPUs");
        // Within the refresh the answer is kept; after it, read again.
        std::fs::write(&path, "1.00 1.00 1.00 2/200 99\n").unwrap();
        assert!(!gate.spare(t0 + SPARE_REFRESH / 2));
        assert!(gate.spare(t0 + SPARE_REFRESH));
        // No file, or one that does not read as a count: never refused.
        assert!(SpareCpu::open(&dir.path().join("none"), 2).spare(t0));
        std::fs::write(&path, "garbage").unwrap();
        assert!(SpareCpu::open(&path, 2).spare(t0));
    }

    #[test]
    fn polls_only_after_a_request_that_followed_the_previous_reply() {
        let window = Duration::from_micros(50);
        let t0 = Instant::now();
        let mut p = BusyPoll::new(window);
        // The first request of a channel: nothing to follow.
        assert!(!p.follows(t0));
        p.served(t0);
        assert!(p.follows(t0 + Duration::from_micros(30)));
        assert!(p.follows(t0 + 2 * window));
        assert!(!p.follows(t0 + 2 * window + Duration::from_micros(1)));
        // One request every 2 ms: no window would catch the next one.
        assert!(!p.follows(t0 + Duration::from_millis(2)));
        p.served(t0 + Duration::from_millis(2));
        assert!(p.follows(t0 + Duration::from_millis(2) + Duration::from_micros(10)));
        // Off: never.
        let mut off = BusyPoll::new(Duration::ZERO);
        off.served(t0);
        assert!(!off.follows(t0));
    }

    #[tokio::test]
    async fn bytes_there_are_read_and_none_is_not_an_error() {
        let (host, mut guest) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(recv_now(&host, &mut buf).unwrap(), None);
        guest.write_all(b"record").await.unwrap();
        assert_eq!(recv_now(&host, &mut buf).unwrap(), Some(6));
        assert_eq!(&buf[..6], b"record");
        assert_eq!(recv_now(&host, &mut buf).unwrap(), None);
    }

    #[tokio::test]
    async fn a_closed_peer_reads_as_zero_bytes() {
        let (host, guest) = UnixStream::pair().unwrap();
        drop(guest);
        let mut buf = [0u8; 64];
        assert_eq!(recv_now(&host, &mut buf).unwrap(), Some(0));
    }
}

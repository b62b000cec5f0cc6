//! Busy polling of a guest channel (`channel_busy_poll_us`): after a
//! request, the channel's task keeps reading its socket for a short
//! window instead of going back to epoll, so that a guest that sends its
//! next request right after reading the reply finds the daemon awake —
//! one thread wakeup less per round trip.
//!
//! ## Behavior
//! - Reads go to the socket directly, not through tokio's cached
//!   readiness (which stays "not readable" until the driver polls epoll
//!   again). Data read here still raised its epoll edge; the task may be
//!   woken once for nothing later, and then finds `WouldBlock`.
//! - The window is spent in non-blocking reads, one system call each:
//!   while it lasts, the worker thread uses its CPU and serves nothing
//!   else. It starts only after a request that came within two windows
//!   of the previous reply ([`BusyPoll`]): an idle channel never polls, and
//!   a guest that sends one request now and then (which no window would
//!   catch) costs no polling either.

use std::io;
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

/// Reads whatever comes on `stream` into `buf` within `window`:
/// `Some(n)` once bytes came (`Some(0)`: the peer closed), `None` when the
/// window passed without any.
pub fn read_within(
    stream: &UnixStream,
    buf: &mut [u8],
    window: Duration,
) -> io::Result<Option<usize>> {
    let start = Instant::now();
    loop {
        match rustix::net::recv(stream, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(Some(n)),
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if start.elapsed() >= window {
            return Ok(None);
        }
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

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
    async fn bytes_already_there_are_read_at_once() {
        let (host, mut guest) = UnixStream::pair().unwrap();
        guest.write_all(b"record").await.unwrap();
        let mut buf = [0u8; 64];
        // A window of an hour: only the bytes can end this call.
        let got = read_within(&host, &mut buf, Duration::from_secs(3600)).unwrap();
        assert_eq!(got, Some(6));
        assert_eq!(&buf[..6], b"record");
    }

    #[tokio::test]
    async fn a_quiet_socket_gives_up_after_the_window() {
        let (host, _guest) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 64];
        let got = read_within(&host, &mut buf, Duration::from_micros(50)).unwrap();
        assert_eq!(got, None);
    }

    #[tokio::test]
    async fn a_closed_peer_reads_as_zero_bytes() {
        let (host, guest) = UnixStream::pair().unwrap();
        drop(guest);
        let mut buf = [0u8; 64];
        let got = read_within(&host, &mut buf, Duration::from_secs(3600)).unwrap();
        assert_eq!(got, Some(0));
    }

    #[tokio::test]
    async fn bytes_sent_during_the_window_are_caught() {
        let (host, guest) = UnixStream::pair().unwrap();
        let mut guest = guest.into_std().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            std::io::Write::write_all(&mut guest, b"late").unwrap();
            guest
        });
        let mut buf = [0u8; 64];
        let got = read_within(&host, &mut buf, Duration::from_secs(3600)).unwrap();
        assert_eq!(got, Some(4));
        drop(writer.join().unwrap());
    }
}

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

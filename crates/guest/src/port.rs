//! The byte transport of a channel: the guest's virtio-serial port (or, in
//! tests, a unix socket or a pty), non-blocking, with deadlines.
//!
//! ## Behavior
//! - A path that is a unix socket is connected to; anything else (a
//!   character device, a pty, a FIFO) is opened read-write. Either way the
//!   descriptor is switched to `O_NONBLOCK` and every wait is a `poll(2)`
//!   bounded by the caller's deadline: nothing here can block forever, not
//!   even a write to a port whose host side is not connected (a blocking
//!   virtio port write would hang until the host connects).
//! - A read returning 0 bytes (EOF) is what a virtio port does while the
//!   host side is not connected: it means "retry later", not "closed". It is
//!   retried every [`EOF_RETRY`] until the deadline, and remembered so the
//!   timeout can say the host was not connected.
//!
//! ## Limitations
//! A write that times out halfway leaves a partial record on the host side;
//! the host drops it only when the port is disconnected.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};

/// How often a read is retried while the host side is not connected.
pub const EOF_RETRY: Duration = Duration::from_millis(20);

/// What a bounded read or write ran into.
#[derive(Debug)]
pub(crate) enum Wait {
    /// The deadline passed; `eof` if the port said the host is not connected.
    TimedOut {
        /// The last read returned EOF.
        eof: bool,
    },
    /// A system call failed.
    Failed(&'static str, io::Error),
}

/// An open, non-blocking port.
#[derive(Debug)]
pub(crate) struct Port {
    file: File,
    path: PathBuf,
}

impl Port {
    /// Opens (or connects to) `path`.
    pub(crate) fn open(path: &Path) -> io::Result<Port> {
        let is_socket = std::fs::metadata(path)?.file_type().is_socket();
        let file = if is_socket {
            File::from(OwnedFd::from(UnixStream::connect(path)?))
        } else {
            OpenOptions::new().read(true).write(true).open(path)?
        };
        Port::from_file(file, path.to_owned())
    }

    /// Wraps an already open descriptor (a socket pair end, a pty).
    pub(crate) fn from_file(file: File, path: PathBuf) -> io::Result<Port> {
        let flags = fcntl_getfl(&file)?;
        fcntl_setfl(&file, flags | OFlags::NONBLOCK)?;
        Ok(Port { file, path })
    }

    /// The path the port was opened at (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes all of `bytes` before `deadline`. A port that reports a
    /// hang-up (a virtio port whose host side is not connected) is retried
    /// every [`EOF_RETRY`], not spun on.
    pub(crate) fn write_all(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), Wait> {
        let mut done = 0;
        let mut hung_up = false;
        while done < bytes.len() {
            match self.file.write(&bytes[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.wait(PollFlags::OUT, deadline)? {
                        None => return Err(Wait::TimedOut { eof: hung_up }),
                        Some(ready) if ready.contains(PollFlags::OUT) => hung_up = false,
                        Some(_) => {
                            hung_up = true;
                            pause_until(deadline);
                        }
                    }
                }
                Err(e) => return Err(Wait::Failed("write", e)),
            }
        }
        Ok(())
    }

    /// Appends bytes to `buf` until it holds at least `want` bytes, before
    /// `deadline`. With `deadline` already past, takes only what is ready.
    pub(crate) fn fill(
        &mut self,
        buf: &mut Vec<u8>,
        want: usize,
        deadline: Instant,
    ) -> Result<(), Wait> {
        let mut chunk = [0u8; 512];
        let mut eof = false;
        while buf.len() < want {
            match self.file.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    if Instant::now() >= deadline {
                        return Err(Wait::TimedOut { eof });
                    }
                    pause_until(deadline);
                }
                Ok(n) => {
                    eof = false;
                    buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.wait(PollFlags::IN, deadline)?.is_none() {
                        return Err(Wait::TimedOut { eof });
                    }
                }
                Err(e) => return Err(Wait::Failed("read", e)),
            }
        }
        Ok(())
    }

    /// Appends to `buf` whatever is readable right now, without waiting.
    pub(crate) fn take_ready(&mut self, buf: &mut Vec<u8>) -> Result<(), Wait> {
        let mut chunk = [0u8; 512];
        loop {
            match self.file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(Wait::Failed("read", e)),
            }
        }
    }

    /// Polls for `flags` until `deadline`: the events that came (readiness,
    /// or a hang-up/error the next read or write will tell about), or
    /// `None` when the deadline passed first.
    fn wait(&self, flags: PollFlags, deadline: Instant) -> Result<Option<PollFlags>, Wait> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let timeout = Timespec::try_from(deadline - now)
                .map_err(|e| Wait::Failed("poll", io::Error::other(e)))?;
            let mut fds = [PollFd::new(&self.file, flags)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(n) if n > 0 => return Ok(Some(fds[0].revents())),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Wait::Failed("poll", e.into())),
            }
        }
    }
}

/// Sleeps [`EOF_RETRY`], or less if `deadline` comes first.
fn pause_until(deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::sleep(EOF_RETRY.min(left));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Port, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        let port = Port::from_file(File::from(OwnedFd::from(a)), "pair".into()).unwrap();
        (port, b)
    }

    #[test]
    fn fill_reassembles_split_writes() {
        let (mut port, mut peer) = pair();
        let writer = std::thread::spawn(move || {
            for b in 0..20u8 {
                peer.write_all(&[b]).unwrap();
            }
            peer
        });
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        port.fill(&mut buf, 20, deadline).unwrap();
        assert_eq!(buf, (0..20).collect::<Vec<u8>>());
        drop(writer.join().unwrap());
    }

    #[test]
    fn fill_times_out_when_nothing_comes() {
        let (mut port, _peer) = pair();
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(30);
        let err = port.fill(&mut buf, 1, deadline).unwrap_err();
        assert!(matches!(err, Wait::TimedOut { eof: false }), "{err:?}");
    }

    #[test]
    fn eof_is_retried_and_reported() {
        let (mut port, peer) = pair();
        drop(peer);
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(50);
        let err = port.fill(&mut buf, 1, deadline).unwrap_err();
        assert!(matches!(err, Wait::TimedOut { eof: true }), "{err:?}");
    }

    #[test]
    fn take_ready_does_not_wait() {
        let (mut port, mut peer) = pair();
        peer.write_all(b"abc").unwrap();
        let mut buf = Vec::new();
        // The bytes are in the socket buffer already.
        port.take_ready(&mut buf).unwrap();
        assert_eq!(buf, b"abc");
        port.take_ready(&mut buf).unwrap();
        assert_eq!(buf, b"abc");
    }
}

//! Writing replies to a guest without ever blocking.
//!
//! DPDK's guest library never reads its ACKs, so a guest's socket buffer
//! can fill. Replies are written with non-blocking writes; when the buffer
//! is full, whole replies are dropped and counted — never half a reply: a
//! reply cut by a short write is remembered and finished before anything
//! else is sent, so the guest's stream of records stays aligned.

use std::io;

use tokio::net::UnixStream;

/// Replies waiting to be written on one channel.
#[derive(Debug, Default)]
pub struct Outbox {
    /// The unwritten end of a reply cut by a short write.
    tail: Vec<u8>,
}

impl Outbox {
    /// Sends the replies in `bytes` (each `lens[i]` long, in order) and
    /// returns how many whole replies were dropped.
    pub fn send(&mut self, stream: &UnixStream, bytes: &[u8], lens: &[usize]) -> io::Result<u64> {
        self.flush_tail(stream)?;
        if !self.tail.is_empty() {
            return Ok(lens.len() as u64);
        }
        if bytes.is_empty() {
            return Ok(0);
        }
        let written = match stream.try_write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        let mut end = 0;
        for (i, len) in lens.iter().enumerate() {
            let start = end;
            end += len;
            if written >= end {
                continue;
            }
            if written > start {
                self.tail.extend_from_slice(&bytes[written..end]);
                return Ok((lens.len() - i - 1) as u64);
            }
            return Ok((lens.len() - i) as u64);
        }
        Ok(0)
    }

    /// Whether part of a reply is still waiting.
    pub fn has_tail(&self) -> bool {
        !self.tail.is_empty()
    }

    fn flush_tail(&mut self, stream: &UnixStream) -> io::Result<()> {
        if self.tail.is_empty() {
            return Ok(());
        }
        match stream.try_write(&self.tail) {
            Ok(n) => {
                self.tail.drain(..n);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_guest_that_never_reads_loses_whole_replies_only() {
        let (host, mut guest) = UnixStream::pair().unwrap();
        let mut outbox = Outbox::default();
        let reply = [7u8; 464];
        let mut dropped = 0;
        let mut sent = 0u64;
        // Far more than any socket buffer holds.
        for _ in 0..4000 {
            let d = outbox.send(&host, &reply, &[464]).unwrap();
            dropped += d;
            sent += 1 - d;
        }
        assert!(dropped > 0, "the buffer must have filled");
        // Reading everything now yields whole records only once the tail
        // is flushed.
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n =
                tokio::time::timeout(std::time::Duration::from_millis(50), guest.read(&mut buf))
                    .await
                    .map_or(0, |r| r.unwrap());
            if n == 0 {
                if outbox.has_tail() {
                    outbox.send(&host, &[], &[]).unwrap();
                    continue;
                }
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got.len() % 464, 0, "only whole replies reach the guest");
        assert_eq!(got.len() as u64, sent * 464);
    }

    #[tokio::test]
    async fn replies_are_sent_in_order_in_one_write() {
        let (host, mut guest) = UnixStream::pair().unwrap();
        let mut outbox = Outbox::default();
        let bytes: Vec<u8> = (0..(464 + 88)).map(|i: u32| (i % 251) as u8).collect();
        assert_eq!(outbox.send(&host, &bytes, &[464, 88]).unwrap(), 0);
        let mut got = vec![0u8; bytes.len()];
        guest.read_exact(&mut got).await.unwrap();
        assert_eq!(got, bytes);
    }
}

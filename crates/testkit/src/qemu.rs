//! A peer playing QEMU: the socket side of a virtio-serial channel.
//!
//! QEMU listens at `<channel-dir>/<vm>.<n>` and the daemon connects as a
//! client. [`Host::qemu`] is that listener, for a test that speaks the
//! guest's bytes itself; [`Host::middle`] plays QEMU *in the middle*: it
//! takes the daemon's connection, listens at a guest-side socket for the
//! guest library or CLI, relays bytes both ways and records what the
//! guest sent. Like a virtio port, bytes the daemon sends while no guest
//! is attached are held and delivered to the next guest.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use vmpower_proto::layout::decode_request;
use vmpower_proto::{Layout, Request};

use crate::daemon::Host;
use crate::wait::{WAIT, wait_within};

impl Host {
    /// Plays QEMU: listens at `<channel-dir>/<vm>.<index>`.
    pub fn qemu(&self, vm: &str, index: u32) -> UnixListener {
        UnixListener::bind(self.socket(vm, index)).unwrap()
    }

    /// Plays QEMU in the middle for channel `index` of `vm`; returns once
    /// the daemon has connected.
    pub async fn middle(&self, vm: &str, index: u32) -> Middle {
        let qemu = self.qemu(vm, index);
        let guest_socket = self.dir.path().join(format!("guest-{vm}.{index}.sock"));
        let guest_listener = UnixListener::bind(&guest_socket).unwrap();
        let daemon = accept(&qemu).await;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(relay(daemon, guest_listener, sent.clone()));
        Middle {
            guest_socket,
            sent,
            _qemu: qemu,
            task,
        }
    }
}

/// Waits for the daemon to connect to a QEMU-side listener.
pub async fn accept(listener: &UnixListener) -> UnixStream {
    tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("the daemon did not connect in time")
        .unwrap()
        .0
}

/// Plays QEMU from a plain thread: listens at `<channels>/<vm>.<index>`
/// and takes the daemon's connection.
pub fn accept_blocking(
    channels: &Path,
    vm: &str,
    index: u32,
) -> (
    std::os::unix::net::UnixListener,
    std::os::unix::net::UnixStream,
) {
    std::fs::create_dir_all(channels).unwrap();
    let listener =
        std::os::unix::net::UnixListener::bind(channels.join(format!("{vm}.{index}"))).unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut conn = None;
    wait_within(WAIT, "the daemon did not connect to the channel", || {
        conn = listener.accept().ok().map(|(s, _)| s);
        conn.is_some()
    });
    (listener, conn.unwrap())
}

/// The middle of a channel: where the guest connects, and what it sent.
pub struct Middle {
    /// The socket the library / CLI uses as its port.
    pub guest_socket: PathBuf,
    sent: Arc<Mutex<Vec<u8>>>,
    _qemu: UnixListener,
    task: JoinHandle<()>,
}

impl Middle {
    /// Every byte any guest sent so far.
    pub fn sent(&self) -> Vec<u8> {
        self.sent.lock().unwrap().clone()
    }

    /// The guest's bytes as records of `layout`.
    pub fn requests(&self, layout: Layout) -> Vec<Request> {
        let bytes = self.sent();
        assert_eq!(bytes.len() % layout.record_len(), 0, "whole records only");
        bytes
            .chunks(layout.record_len())
            .map(|r| decode_request(r, layout).unwrap())
            .collect()
    }
}

impl Drop for Middle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays between the daemon and one guest at a time.
async fn relay(mut daemon: UnixStream, guests: UnixListener, sent: Arc<Mutex<Vec<u8>>>) {
    let mut held: Vec<u8> = Vec::new();
    let mut guest: Option<UnixStream> = None;
    let mut from_daemon = [0u8; 4096];
    let mut from_guest = [0u8; 4096];
    loop {
        tokio::select! {
            accepted = guests.accept() => {
                let mut g = accepted.unwrap().0;
                g.write_all(&held).await.unwrap();
                held.clear();
                guest = Some(g);
            }
            n = daemon.read(&mut from_daemon) => {
                let n = n.unwrap();
                if n == 0 {
                    return;
                }
                let delivered = match guest.as_mut() {
                    Some(g) => g.write_all(&from_daemon[..n]).await.is_ok(),
                    None => false,
                };
                if !delivered {
                    held.extend_from_slice(&from_daemon[..n]);
                }
            }
            n = async {
                match guest.as_mut() {
                    Some(g) => g.read(&mut from_guest).await,
                    None => std::future::pending().await,
                }
            } => {
                match n {
                    Ok(0) | Err(_) => guest = None,
                    Ok(n) => {
                        sent.lock().unwrap().extend_from_slice(&from_guest[..n]);
                        daemon.write_all(&from_guest[..n]).await.unwrap();
                    }
                }
            }
        }
    }
}

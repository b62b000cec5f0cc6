//! A thread that sends UDP datagrams at a rate, from inside a network
//! namespace or from the caller's, for tests, the demo and benchmarks that
//! need real packets on a link.
//!
//! ## Behavior
//! - [`Sender::start`] opens the namespace, and the thread enters it and
//!   binds its socket before `start` returns: a setup failure is
//!   [`start`](Sender::start)'s error, not a silent thread.
//! - Every step (2 ms by default) the thread asks its [`Rate`] for the
//!   current rate and sends what the [`Pacer`] says is due: rates below the
//!   step rate are paced exactly, and a stall never turns into a burst
//!   above the rate (at most `backlog`, 10 ms by default, is caught up).
//! - A refused send (a full queue) ends the step; the packets left are
//!   tried at the next step, within the backlog. [`Sender::sent`] counts
//!   the datagrams the kernel took.
//! - Dropping the sender stops the thread and joins it; so does
//!   [`Sender::stop`], which also reports a panicked thread.
//!
//! ## Limitations
//! Entering a namespace needs root. Pacing granularity is the step: a
//! step late by the scheduler sends a little later, never more.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::{self, NetnsError};
use crate::pacing::Pacer;

/// Why a sender could not start, or failed.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The namespace could not be opened or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The socket could not be made, bound to `addr`, or set to broadcast.
    #[error("a UDP socket bound to {addr}")]
    Socket {
        /// The address it was to be bound to.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The thread could not be started.
    #[error("starting the sender thread")]
    Spawn(#[source] std::io::Error),
    /// The thread panicked.
    #[error("the sender thread panicked")]
    Panicked,
}

/// Where the rate comes from.
pub enum Rate {
    /// Set with [`Sender::set_rate`] (starts at this many pps).
    Set(u64),
    /// A function of the time since the start, asked at every step.
    Script(Box<dyn FnMut(Duration) -> u64 + Send>),
}

impl std::fmt::Debug for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Set(pps) => f.debug_tuple("Set").field(pps).finish(),
            Rate::Script(_) => f.write_str("Script(..)"),
        }
    }
}

/// What to send, from where, to where, and how.
#[derive(Debug, Clone)]
pub struct SenderSpec {
    /// The namespace to send from (`None`: the caller's).
    pub netns: Option<String>,
    /// The local address (port 0 for any).
    pub bind: SocketAddr,
    /// The destination.
    pub to: SocketAddr,
    /// Sets SO_BROADCAST (to send to a broadcast address).
    pub broadcast: bool,
    /// Each datagram's payload.
    pub payload: Vec<u8>,
    /// How often the thread wakes to send what is due.
    pub step: Duration,
    /// The most caught up after a stall, as time at the current rate.
    pub backlog: Duration,
    /// An extra stop flag shared with others (the sender also stops on
    /// [`Sender::stop`] and drop).
    pub stop: Option<Arc<AtomicBool>>,
}

impl SenderSpec {
    /// Sends from `bind` to `to` in the caller's namespace, every 2 ms,
    /// with 10 ms of backlog.
    pub fn new(bind: SocketAddr, to: SocketAddr) -> SenderSpec {
        SenderSpec {
            netns: None,
            bind,
            to,
            broadcast: false,
            payload: b"vmpower traffic".to_vec(),
            step: Duration::from_millis(2),
            backlog: Duration::from_millis(10),
            stop: None,
        }
    }

    /// Sends from inside namespace `name`.
    pub fn in_netns(mut self, name: &str) -> SenderSpec {
        self.netns = Some(name.to_owned());
        self
    }

    /// Sets the payload.
    pub fn payload(mut self, payload: &[u8]) -> SenderSpec {
        self.payload = payload.to_vec();
        self
    }
}

/// A running sender; dropping it stops the thread.
#[derive(Debug)]
pub struct Sender {
    rate: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sender {
    /// Starts sending along `spec` at `rate`; returns once the thread has
    /// entered the namespace and bound its socket.
    pub fn start(spec: SenderSpec, rate: Rate) -> Result<Sender, SenderError> {
        let ns_file = spec
            .netns
            .as_deref()
            .map(|n| netns::open(n).map(|f| (f, n.to_owned())))
            .transpose()?;
        let (initial, script) = match rate {
            Rate::Set(pps) => (pps, None),
            Rate::Script(f) => (0, Some(f)),
        };
        let meters = Meters {
            rate: Arc::new(AtomicU64::new(initial)),
            sent: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let mut sender = Sender {
            rate: meters.rate.clone(),
            sent: meters.sent.clone(),
            stop: meters.stop.clone(),
            thread: None,
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let name = match &spec.netns {
            Some(ns) => format!("send {ns}"),
            None => format!("send {}", spec.to),
        };
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let setup = ns_file
                    .map_or(Ok(()), |(file, name)| netns::enter_file(&file, &name))
                    .map_err(SenderError::from)
                    .and_then(|()| socket(&spec));
                match setup {
                    Ok(socket) => {
                        let _ = ready_tx.send(Ok(()));
                        run(&spec, &socket, script, &meters);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(SenderError::Spawn)?;
        sender.thread = Some(thread);
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(sender),
            Ok(Err(e)) => {
                let _ = sender.join();
                Err(e)
            }
            Err(mpsc::RecvError) => Err(sender.join().err().unwrap_or(SenderError::Panicked)),
        }
    }

    /// Changes the rate, in packets per second (a [`Rate::Script`]
    /// overrides it at the next step).
    pub fn set_rate(&self, pps: u64) {
        self.rate.store(pps, Ordering::Relaxed);
    }

    /// The rate being sent now, in packets per second.
    pub fn rate_pps(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// The datagrams sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Shared meters for a live view: (rate in pps, datagrams sent).
    pub fn meters(&self) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
        (self.rate.clone(), self.sent.clone())
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) -> Result<(), SenderError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), SenderError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(SenderError::Panicked),
            _ => Ok(()),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// What the thread shares with its [`Sender`].
struct Meters {
    rate: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// The socket of `spec`, bound (in the thread's namespace).
fn socket(spec: &SenderSpec) -> Result<UdpSocket, SenderError> {
    let error = |source| SenderError::Socket {
        addr: spec.bind,
        source,
    };
    let socket = UdpSocket::bind(spec.bind).map_err(error)?;
    if spec.broadcast {
        socket.set_broadcast(true).map_err(error)?;
    }
    Ok(socket)
}

/// The sending loop, until either stop flag.
fn run(
    spec: &SenderSpec,
    socket: &UdpSocket,
    mut script: Option<Box<dyn FnMut(Duration) -> u64 + Send>>,
    meters: &Meters,
) {
    let stopped = || {
        meters.stop.load(Ordering::Relaxed)
            || spec
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
    };
    let mut pacer = Pacer::new(spec.backlog);
    let start = Instant::now();
    let mut last = start;
    while !stopped() {
        std::thread::sleep(spec.step);
        let now = Instant::now();
        let rate = match script.as_mut() {
            Some(f) => {
                let rate = f(now - start);
                meters.rate.store(rate, Ordering::Relaxed);
                rate
            }
            None => meters.rate.load(Ordering::Relaxed),
        };
        let due = pacer.due(rate, now - last);
        last = now;
        let mut done = 0;
        while done < due && socket.send_to(&spec.payload, spec.to).is_ok() {
            done += 1;
        }
        pacer.unsent(due - done);
        meters.sent.fetch_add(done, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    /// Receives on loopback until `n` datagrams arrived (bounded).
    fn receive(socket: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        (0..n)
            .map_while(|_| socket.recv(&mut buf).ok().map(|len| buf[..len].to_vec()))
            .collect()
    }

    #[test]
    fn a_set_rate_sends_the_payload_and_counts_it() {
        let sink = UdpSocket::bind(loopback(0)).unwrap();
        let spec = SenderSpec::new(loopback(0), sink.local_addr().unwrap()).payload(b"hello");
        let sender = Sender::start(spec, Rate::Set(0)).unwrap();
        assert_eq!(sender.rate_pps(), 0);
        sender.set_rate(500);
        assert_eq!(sender.rate_pps(), 500);
        let got = receive(&sink, 5);
        assert_eq!(got.len(), 5, "five datagrams within 10 s at 500 pps");
        assert!(got.iter().all(|d| d == b"hello"));
        sender.set_rate(0);
        sender.stop().unwrap();
    }

    #[test]
    fn a_script_sets_the_rate_and_a_shared_flag_stops_it() {
        let sink = UdpSocket::bind(loopback(0)).unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let mut spec = SenderSpec::new(loopback(0), sink.local_addr().unwrap());
        spec.stop = Some(flag.clone());
        let sender = Sender::start(spec, Rate::Script(Box::new(|_| 40))).unwrap();
        assert_eq!(receive(&sink, 2).len(), 2, "a rate below the step rate");
        let (rate, sent) = sender.meters();
        flag.store(true, Ordering::Relaxed);
        // The thread ends on the shared flag alone: join returns.
        let mut sender = sender;
        let thread = sender.thread.take().unwrap();
        thread.join().unwrap();
        assert_eq!(rate.load(Ordering::Relaxed), 40);
        assert!(sent.load(Ordering::Relaxed) >= 2);
    }

    #[test]
    fn setup_failures_are_start_errors() {
        let taken = UdpSocket::bind(loopback(0)).unwrap();
        let spec = SenderSpec::new(taken.local_addr().unwrap(), loopback(9));
        let err = Sender::start(spec, Rate::Set(1)).unwrap_err();
        assert!(
            matches!(err, SenderError::Socket { addr, .. } if addr == taken.local_addr().unwrap()),
            "{err:?}"
        );
        let spec = SenderSpec::new(loopback(0), loopback(9)).in_netns("vmpnl-nosuch");
        let err = Sender::start(spec, Rate::Set(1)).unwrap_err();
        assert!(
            matches!(err, SenderError::Netns(NetnsError::Open { .. })),
            "{err:?}"
        );
    }
}

//! Real packets for the TRAFFIC scenario: a host tap that QEMU attaches
//! the guest's virtio-net NIC to, named and addressed the way libvirt does
//! it (the tap's MAC is the guest's with the first byte `fe`, which is how
//! the daemon finds a guest's tap), and a paced UDP sender on the host
//! whose packets leave through the tap towards the guest.
//!
//! ## Behavior
//! - The tap gets 169.254.N.1/30 and a permanent neighbour entry for the
//!   guest's 169.254.N.2 with the guest's MAC: no ARP, every datagram goes
//!   into the tap. The guest has no address and drops them; what counts is
//!   the tap's transmit counter (the guest's receive side).
//! - The sender ([`vmpower_netlab::Sender`]) never catches up more than
//!   10 ms of backlog, so a stall on a loaded machine lowers the rate seen
//!   for a moment, never turns into a burst above the rate; rates below
//!   the sender's step rate (60 pps) are still sent, evenly.
//! - The tap is listed in `WORK/links` before it is made and deleted when
//!   the guard drops.

use std::net::SocketAddr;

use anyhow::Context;
pub use vmpower_netlab::mac_text;
use vmpower_netlab::{LinkNet, Rate, SenderSpec};

use crate::work::Work;

/// A host tap for one guest NIC; deleted on drop.
#[derive(Debug)]
pub struct Tap {
    /// Interface name.
    pub name: String,
    /// The host's address on it.
    pub host_addr: String,
    /// The address the packets are sent to (the guest's side).
    pub guest_addr: String,
    /// Deletes the tap when dropped.
    _tap: vmpower_netlab::Tap,
}

impl Tap {
    /// Creates the tap for a guest NIC with MAC `guest_mac`.
    pub fn create(work: &Work, guest_mac: [u8; 6]) -> anyhow::Result<Tap> {
        let pid = std::process::id();
        let name = format!("vme2e{}", pid % 100_000);
        let net = LinkNet::new(pid, 0);
        work.record("links", &name)?;
        let mut tap_mac = guest_mac;
        tap_mac[0] = 0xfe;
        let tap = vmpower_netlab::Tap::create(&name, Some(tap_mac))
            .and_then(|tap| tap.address(&net, guest_mac).map(|()| tap))
            .context("setting up the guest's tap")?;
        Ok(Tap {
            name,
            host_addr: net.host.to_string(),
            guest_addr: net.peer.to_string(),
            _tap: tap,
        })
    }
}

/// A UDP sender whose rate can be changed; dropping it stops the thread.
#[derive(Debug)]
pub struct Sender(vmpower_netlab::Sender);

impl Sender {
    /// Starts sending (at 0 pps) from `src` to `dst`, both `addr:port`.
    pub fn start(src: &str, dst: &str) -> anyhow::Result<Sender> {
        let parse = |a: &str| {
            a.parse::<SocketAddr>()
                .with_context(|| format!("bad address {a}"))
        };
        let spec = SenderSpec::new(parse(src)?, parse(dst)?).payload(b"vmpower e2e traffic");
        let sender = vmpower_netlab::Sender::start(spec, Rate::Set(0))
            .with_context(|| format!("sending from {src}"))?;
        Ok(Sender(sender))
    }

    /// Changes the rate, in packets per second.
    pub fn set_rate(&self, pps: u64) {
        self.0.set_rate(pps);
    }
}

/// The transmit packet counter of a network device.
pub fn tx_packets(dev: &str) -> anyhow::Result<u64> {
    let path = format!("/sys/class/net/{dev}/statistics/tx_packets");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.trim()
        .parse()
        .with_context(|| format!("{path}: {text:?}"))
}

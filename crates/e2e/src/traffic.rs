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
//! - The sender never catches up more than 10 ms of backlog, so a stall on
//!   a loaded machine lowers the rate seen for a moment, never turns into a
//!   burst above the rate.
//! - The tap is listed in `WORK/links` before it is made and deleted when
//!   the guard drops.

use std::net::UdpSocket;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::work::Work;

/// Runs `ip ARGS`; the error says what ip said.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {args:?}"))?;
    if !out.status.success() {
        bail!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A host tap for one guest NIC; deleted on drop.
#[derive(Debug)]
pub struct Tap {
    /// Interface name.
    pub name: String,
    /// The host's address on it.
    pub host_addr: String,
    /// The address the packets are sent to (the guest's side).
    pub guest_addr: String,
}

impl Tap {
    /// Creates the tap for a guest NIC with MAC `guest_mac`.
    pub fn create(work: &Work, guest_mac: [u8; 6]) -> anyhow::Result<Tap> {
        let pid = std::process::id();
        let octet = 1 + pid % 250;
        let tap = Tap {
            name: format!("vme2e{}", pid % 100_000),
            host_addr: format!("169.254.{octet}.1"),
            guest_addr: format!("169.254.{octet}.2"),
        };
        work.record("links", &tap.name)?;
        let mut tap_mac = guest_mac;
        tap_mac[0] = 0xfe;
        let (tap_mac, guest_mac) = (mac_text(tap_mac), mac_text(guest_mac));
        let cidr = format!("{}/30", tap.host_addr);
        let name = tap.name.as_str();
        let steps: [&[&str]; 5] = [
            &["tuntap", "add", "dev", name, "mode", "tap"],
            &["link", "set", name, "address", &tap_mac],
            &["addr", "add", &cidr, "dev", name],
            &["link", "set", name, "up"],
            &[
                "neigh",
                "replace",
                &tap.guest_addr,
                "lladdr",
                &guest_mac,
                "dev",
                name,
                "nud",
                "permanent",
            ],
        ];
        for step in steps {
            ip(step).context("setting up the guest's tap")?;
        }
        Ok(tap)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.name]);
    }
}

/// `xx:xx:xx:xx:xx:xx`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A UDP sender whose rate can be changed; dropping it stops the thread.
#[derive(Debug)]
pub struct Sender {
    rate: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sender {
    /// Starts sending (at 0 pps) from `src` to `dst`, both `addr:port`.
    pub fn start(src: &str, dst: &str) -> anyhow::Result<Sender> {
        let socket = UdpSocket::bind(src).with_context(|| format!("binding {src}"))?;
        let dst = dst.to_owned();
        let rate = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (rate.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut current = 0;
            let mut start = Instant::now();
            let mut count = 0u64;
            while !s.load(Ordering::Relaxed) {
                let want = r.load(Ordering::Relaxed);
                if want != current {
                    (current, start, count) = (want, Instant::now(), 0);
                }
                let elapsed = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                let due = elapsed.saturating_mul(current) / 1_000_000;
                // At least one packet of backlog, or a rate below 100 pps
                // would skip every packet.
                count = count.max(due.saturating_sub(current / 100 + 1));
                while count < due {
                    // A failed send is not retried: the rate only drops.
                    let _ = socket.send_to(b"vmpower e2e traffic", &dst);
                    count += 1;
                }
                thread::sleep(Duration::from_millis(2));
            }
        });
        Ok(Sender {
            rate,
            stop,
            thread: Some(thread),
        })
    }

    /// Changes the rate, in packets per second.
    pub fn set_rate(&self, pps: u64) {
        self.rate.store(pps, Ordering::Relaxed);
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_is_lower_hex_with_colons() {
        assert_eq!(
            mac_text([0xfe, 0x54, 0, 0xe2, 0x0a, 5]),
            "fe:54:00:e2:0a:05"
        );
    }
}

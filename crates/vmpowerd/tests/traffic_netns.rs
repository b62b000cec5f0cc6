//! The netlink traffic source against real packets: a network namespace
//! and a veth pair whose host end carries the policy's MAC; a sender
//! thread inside the namespace (entered with `setns`) sends UDP to the host
//! end's link-local address at a known rate, while the test samples the
//! counters through `NetlinkTrafficCounters` every 100 ms.
//!
//! Traffic stays on the veth pair: the destination address exists only on
//! its host end (a /30 of 169.254.0.0/16 chosen from the pid). Everything
//! is removed by a guard's `Drop`, even when an assertion fails. Needs root
//! and `ip` (iproute2); without them each test prints
//! "skipped: needs root and ip netns" and returns.

mod netns;

use netns::{can_run, ip};
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use vmpowerd::traffic::{
    ConfiguredMap, MacAddr, MacRates, MacReading, MissingReason, NetlinkTrafficCounters,
    NetlinkVfControl, SourceKind, TrafficCounters, TrafficError, VfControl, libvirt_tap_mac,
};

/// Deletes the namespace (and with it the veth pair) and any links made.
struct Cleanup {
    netns: Option<String>,
    links: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for link in &self.links {
            let _ = ip(&["link", "del", link]);
        }
        if let Some(netns) = &self.netns {
            let _ = ip(&["netns", "del", netns]);
        }
    }
}

/// A namespace + veth pair; the host end has `mac` and 169.254.N.1/30, the
/// namespace end 169.254.N.2/30. `tag` keeps names unique per test.
struct Pair {
    /// Removes everything when the pair is dropped.
    _cleanup: Cleanup,
    netns: String,
    host: String,
    host_addr: String,
    peer_addr: String,
}

fn pair(tag: &str, mac: MacAddr) -> Pair {
    let pid = std::process::id();
    let netns = format!("vmpt{tag}{pid}");
    let host = format!("vt{tag}h{pid}");
    let peer = format!("vt{tag}p{pid}");
    let cleanup = Cleanup {
        netns: Some(netns.clone()),
        links: vec![host.clone()],
    };
    let octet = 1 + (pid % 250);
    let base = if tag == "a" { 4 } else { 8 };
    let host_addr = format!("169.254.{octet}.{}", base + 1);
    let peer_addr = format!("169.254.{octet}.{}", base + 2);
    let steps: Vec<Vec<String>> = vec![
        vec!["netns".into(), "add".into(), netns.clone()],
        vec![
            "link", "add", &host, "type", "veth", "peer", "name", &peer, "netns", &netns,
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "link".into(),
            "set".into(),
            host.clone(),
            "address".into(),
            mac.to_string(),
        ],
        vec![
            "addr".into(),
            "add".into(),
            format!("{host_addr}/30"),
            "dev".into(),
            host.clone(),
        ],
        vec!["link".into(), "set".into(), host.clone(), "up".into()],
        vec![
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{peer_addr}/30"),
            "dev",
            &peer,
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "-n".into(),
            netns.clone(),
            "link".into(),
            "set".into(),
            peer.clone(),
            "up".into(),
        ],
        // A permanent neighbour entry: no ARP, so every datagram sent is
        // on the wire at once and none waits in (or drops from) the ARP queue.
        vec![
            "-n",
            &netns,
            "neigh",
            "replace",
            &host_addr,
            "lladdr",
            &mac.to_string(),
            "dev",
            &peer,
            "nud",
            "permanent",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    ];
    for step in &steps {
        let args: Vec<&str> = step.iter().map(String::as_str).collect();
        ip(&args).expect("set up namespace and veth pair");
    }
    Pair {
        _cleanup: cleanup,
        netns,
        host,
        host_addr,
        peer_addr,
    }
}

/// Sends UDP datagrams from inside `netns` to `dst` at `rate_pps` until
/// `stop`, counting them in `sent`. Pacing catches up after oversleeping.
fn spawn_sender(
    netns: &str,
    src: &str,
    dst: &str,
    rate_pps: u64,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> thread::JoinHandle<()> {
    let ns_file = std::fs::File::open(format!("/run/netns/{netns}")).expect("open netns file");
    let (src, dst) = (format!("{src}:0"), format!("{dst}:9"));
    thread::spawn(move || {
        rustix::thread::move_into_link_name_space(
            ns_file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns into the test namespace");
        let socket = UdpSocket::bind(&src).expect("bind in namespace");
        let start = Instant::now();
        let mut count = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = u64::try_from(start.elapsed().as_millis()).expect("test runs for seconds")
                * rate_pps
                / 1000;
            while count < due {
                // ICMP port-unreachable replies may fail a send: not counted.
                if socket.send_to(b"vmpower traffic test", &dst).is_ok() {
                    count += 1;
                    sent.store(count, Ordering::Relaxed);
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
    })
}

fn rx_of(counters: &mut NetlinkTrafficCounters, mac: MacAddr) -> u64 {
    let samples = counters.sample(&[mac]).expect("sample");
    match &samples[0].reading {
        MacReading::Found { rx_packets, .. } => *rx_packets,
        other => panic!("MAC {mac} not found: {other:?}"),
    }
}

#[test]
fn veth_rate_is_measured_at_100ms() {
    if !can_run() {
        return;
    }
    let pid = std::process::id().to_be_bytes();
    let mac = MacAddr([0x02, 0x76, pid[0], pid[1], pid[2], pid[3]]);
    let pair = pair("a", mac);
    let mut counters = NetlinkTrafficCounters::new(ConfiguredMap::new()).expect("netlink");

    let first = counters.sample(&[mac]).expect("sample");
    assert!(
        matches!(&first[0].reading, MacReading::Found { source: SourceKind::Netdev { ifname }, .. } if *ifname == pair.host),
        "the host end carries the MAC and is found as a netdev: {first:?}"
    );

    const RATE_PPS: u64 = 2_000;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let before = rx_of(&mut counters, mac);
    let sender = spawn_sender(
        &pair.netns,
        &pair.peer_addr,
        &pair.host_addr,
        RATE_PPS,
        stop.clone(),
        sent.clone(),
    );
    let mut rates = MacRates::default();
    let mut measured = Vec::new();
    let mut ticker = Instant::now();
    for _ in 0..12 {
        let samples = counters.sample(&[mac]).expect("sample");
        rates.update(&samples, Instant::now());
        if let Some(r) = rates.rate_pps(mac) {
            measured.push(r);
        }
        ticker += Duration::from_millis(100);
        thread::sleep(ticker.saturating_duration_since(Instant::now()));
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender thread");
    let sent = sent.load(Ordering::Relaxed);
    // Let the last datagrams land, then compare totals: every datagram sent
    // crossed the pair and was counted (plus a few ARP/IPv6 packets).
    thread::sleep(Duration::from_millis(100));
    let delta = rx_of(&mut counters, mac) - before;
    eprintln!("sent {sent}, counted {delta}, per-tick rates {measured:?}");
    assert!(sent >= 200, "sender sent only {sent} datagrams");
    assert!(
        delta >= sent && delta <= sent + 50,
        "counted {delta}, sent {sent}"
    );

    // The median per-tick rate is near the sender's rate (generous bounds:
    // the sender and sampler share two busy cores).
    measured.sort_by(f64::total_cmp);
    assert!(measured.len() >= 8, "too few rates: {measured:?}");
    let median = measured[measured.len() / 2];
    #[allow(clippy::cast_precision_loss)]
    let target = RATE_PPS as f64;
    assert!(
        median > target * 0.4 && median < target * 2.5,
        "median {median} pps, rates {measured:?}"
    );
}

#[test]
fn real_tap_is_found_by_libvirt_convention_and_vf_calls_fail_cleanly() {
    if !can_run() {
        return;
    }
    let pid = std::process::id().to_be_bytes();
    let guest = MacAddr([0x52, 0x54, pid[0], pid[1], pid[2], pid[3]]);
    let tap = format!("vttap{}", std::process::id());
    let _cleanup = Cleanup {
        netns: None,
        links: vec![tap.clone()],
    };
    // Sampling starts before the tap exists: the policy would wait. The
    // topology refresh period is long, so only the change in the set of
    // links can make the next tick find the new tap.
    let mut counters = NetlinkTrafficCounters::new(ConfiguredMap::new())
        .expect("netlink")
        .with_topology_refresh(Duration::from_secs(3600));
    let samples = counters.sample(&[guest]).expect("sample");
    assert_eq!(
        samples[0].reading,
        MacReading::Missing(MissingReason::NotFound)
    );
    ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]).expect("create tap");
    ip(&[
        "link",
        "set",
        &tap,
        "address",
        &libvirt_tap_mac(guest).to_string(),
    ])
    .expect("tap MAC");

    let samples = counters.sample(&[guest]).expect("sample");
    assert!(
        matches!(&samples[0].reading, MacReading::Found { source: SourceKind::Tap { ifname }, .. } if *ifname == tap),
        "{samples:?}"
    );
    let table = counters.dump().expect("dump");
    let link = table.by_name(&tap).expect("tap in dump");
    assert!(link.is_tun);
    assert!(link.vfs.is_empty());
    let mut vfs = NetlinkVfControl::new().expect("netlink");
    assert_eq!(vfs.list_vfs(&tap).expect("list VFs of a tap"), vec![]);
    assert!(matches!(
        vfs.set_vf_mac(&tap, 0, guest),
        Err(TrafficError::NoSuchVf { vf: 0, .. })
    ));
    let missing = format!("vtno{}", std::process::id());
    assert!(matches!(
        vfs.list_vfs(&missing),
        Err(TrafficError::NoSuchDevice { ifname }) if ifname == missing
    ));
    ip(&["link", "del", &tap]).expect("delete tap");
    let samples = counters.sample(&[guest]).expect("sample");
    assert_eq!(
        samples[0].reading,
        MacReading::Missing(MissingReason::NotFound)
    );
}

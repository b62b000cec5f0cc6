//! The netlink traffic source against real packets: a network namespace
//! and a veth pair whose host end carries the policy's MAC; a sender
//! thread inside the namespace (entered with `setns`) sends UDP to the host
//! end's link-local address at a known rate, while the test samples the
//! counters through `NetlinkTrafficCounters` every 100 ms.
//!
//! Traffic stays on the veth pair: the destination address exists only on
//! its host end (a /30 of 169.254.0.0/16 chosen from the pid). The
//! namespace, pair, tap and sender come from `vmpower_netlab`; everything
//! is removed by their guards' `Drop`, even when an assertion fails. Needs
//! root and `ip` (iproute2); without them each test prints
//! "skipped: needs root and ip netns (why)" and returns.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use vmpower_netlab::{AddressedPair, Rate, Sender, Tap, can_run, unique_name};
use vmpowerd::traffic::{
    ConfiguredMap, MacAddr, MacRates, MacReading, MissingReason, NetlinkTrafficCounters,
    NetlinkVfControl, SourceKind, TrafficCounters, TrafficError, VfControl, libvirt_tap_mac,
};

/// Sends UDP datagrams from inside the pair's namespace to its host end at
/// `rate_pps`; dropping or stopping it joins the thread.
fn spawn_sender(pair: &AddressedPair, rate_pps: u64) -> Sender {
    let spec = pair.sender_spec().payload(b"vmpower traffic test");
    Sender::start(spec, Rate::Set(rate_pps)).expect("sender in the namespace")
}

/// A MAC of this test process: `first` then the pid's four bytes (tests
/// running at once on one host do not collide).
fn pid_mac(first: [u8; 2]) -> MacAddr {
    let pid = std::process::id().to_be_bytes();
    MacAddr([first[0], first[1], pid[0], pid[1], pid[2], pid[3]])
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
    let mac = pid_mac([0x02, 0x76]);
    let pair = AddressedPair::create(mac.0).expect("namespace and addressed veth pair");
    let mut counters = NetlinkTrafficCounters::new(ConfiguredMap::new()).expect("netlink");

    let first = counters.sample(&[mac]).expect("sample");
    assert!(
        matches!(&first[0].reading, MacReading::Found { source: SourceKind::Netdev { ifname }, .. } if *ifname == pair.veth.host),
        "the host end carries the MAC and is found as a netdev: {first:?}"
    );

    const RATE_PPS: u64 = 2_000;
    let before = rx_of(&mut counters, mac);
    let sender = spawn_sender(&pair, RATE_PPS);
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
    let (_, sent) = sender.meters();
    sender.stop().expect("sender thread");
    let sent = sent.load(Ordering::Relaxed);
    // Once the last datagrams landed (every one sent counted), compare
    // totals: nothing more than a few ARP/IPv6 packets besides.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut delta = rx_of(&mut counters, mac) - before;
    while delta < sent && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        delta = rx_of(&mut counters, mac) - before;
    }
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
    let guest = pid_mac([0x52, 0x54]);
    let tap = unique_name("vttap").expect("a name");
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
    let made = Tap::create(&tap, Some(libvirt_tap_mac(guest).0)).expect("create tap");

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
    let missing = unique_name("vtno").expect("a name");
    assert!(matches!(
        vfs.list_vfs(&missing),
        Err(TrafficError::NoSuchDevice { ifname }) if ifname == missing
    ));
    made.remove().expect("delete tap");
    let samples = counters.sample(&[guest]).expect("sample");
    assert_eq!(
        samples[0].reading,
        MacReading::Missing(MissingReason::NotFound)
    );
}

#[test]
fn a_mac_set_on_an_existing_device_is_found_at_the_next_tick() {
    if !can_run() {
        return;
    }
    let guest = pid_mac([0x52, 0x55]);
    let other = pid_mac([0xfe, 0x56]).0;
    let tap = unique_name("vtmac").expect("a name");
    let made = Tap::create(&tap, Some(other)).expect("create tap");
    // The periodic re-read is an hour away and the set of links does not
    // change: only the kernel's link notification can make the next tick
    // see the MAC that is set on the existing tap.
    let mut counters = NetlinkTrafficCounters::new(ConfiguredMap::new())
        .expect("netlink")
        .with_topology_refresh(Duration::from_secs(3600));
    assert!(counters.follows_link_events());
    let samples = counters.sample(&[guest]).expect("sample");
    assert_eq!(
        samples[0].reading,
        MacReading::Missing(MissingReason::NotFound)
    );
    vmpower_netlab::ip(&[
        "link",
        "set",
        "dev",
        &tap,
        "address",
        &vmpower_netlab::mac_text(libvirt_tap_mac(guest).0),
    ])
    .expect("set the tap's MAC");
    let samples = counters.sample(&[guest]).expect("sample");
    assert!(
        matches!(&samples[0].reading, MacReading::Found { source: SourceKind::Tap { ifname }, .. } if *ifname == tap),
        "{samples:?}"
    );
    made.remove().expect("delete tap");
}

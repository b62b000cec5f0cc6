//! The lab against the real kernel: namespaces, veth pairs and taps made,
//! packets sent and counted, everything removed. Needs root and `ip`
//! (iproute2); without them each test prints why it is skipped and returns.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use vmpower_netlab::ip::leftovers;
use vmpower_netlab::names::{run_prefix, unique_name};
use vmpower_netlab::netns::sweep_stale;
use vmpower_netlab::{AddressedPair, LinkNet, Netns, Rate, Sender, Tap, VethSpec, can_run, ip};

fn rx_packets(dev: &str) -> u64 {
    let path = format!("/sys/class/net/{dev}/statistics/rx_packets");
    std::fs::read_to_string(&path)
        .expect("read rx_packets")
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn packets_sent_from_a_namespace_arrive_on_the_host_end() {
    if !can_run() {
        return;
    }
    let pair = AddressedPair::create([0x02, 0x6e, 0, 0, 0, 1]).unwrap();
    let veth = &pair.veth;
    assert!(
        pair.netns
            .ip(&["link", "show", "eth0"])
            .unwrap()
            .contains("UP")
    );
    let before = rx_packets(pair.host());
    let spec = pair.sender_spec();
    let sender = Sender::start(spec, Rate::Set(1_000)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sender.sent() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (_, sent) = sender.meters();
    sender.stop().unwrap();
    let sender_sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sender_sent >= 100, "sent only {sender_sent}");
    // Every datagram sent crossed the pair (plus a few IPv6 packets); the
    // counters of a veth are updated as the packet crosses.
    let deadline = Instant::now() + Duration::from_secs(5);
    while rx_packets(&veth.host) - before < sender_sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let counted = rx_packets(&veth.host) - before;
    assert!(
        counted >= sender_sent && counted <= sender_sent + 50,
        "sent {sender_sent}, counted {counted}"
    );
}

#[test]
fn namespaces_and_pairs_are_removed_explicitly_and_by_drop() {
    if !can_run() {
        return;
    }
    let name = unique_name("vnlr").unwrap();
    let mut ns = Netns::create(&name).unwrap();
    let host = format!("{name}h");
    let spec = VethSpec {
        host: host.clone(),
        peer: "eth0".into(),
        mac: None,
    };
    ns.add_veth(&spec).unwrap();
    assert_eq!(ns.hosts(), std::slice::from_ref(&host));
    assert_eq!(
        leftovers(&name, Duration::ZERO).unwrap(),
        [format!("netns {name}"), format!("link {host}")]
    );
    assert!(ns.ip(&["link", "show", "eth0"]).unwrap().contains("eth0"));
    ns.remove().unwrap();
    assert!(leftovers(&name, Duration::from_secs(2)).unwrap().is_empty());

    // A failing step (the host end's name taken) is cleaned up by drop.
    let mut ns = Netns::create(&name).unwrap();
    ns.add_veth(&spec).unwrap();
    let err = ns.add_veth(&spec).unwrap_err();
    assert!(
        err.to_string().contains(&format!("link add {host}")),
        "{err}"
    );
    drop(ns);
    assert!(leftovers(&name, Duration::from_secs(2)).unwrap().is_empty());
}

#[test]
fn a_tap_is_addressed_and_removed() {
    if !can_run() {
        return;
    }
    let name = unique_name("vnlt").unwrap();
    let tap = Tap::create(&name, Some([0xfe, 0x54, 0, 1, 2, 3])).unwrap();
    tap.address(&LinkNet::next(), [0x52, 0x54, 0, 1, 2, 3])
        .unwrap();
    let shown = ip(&["link", "show", &name]).unwrap();
    assert!(shown.contains("fe:54:00:01:02:03"), "{shown}");
    let neigh = ip(&["neigh", "show", "dev", &name]).unwrap();
    assert!(
        neigh.contains("52:54:00:01:02:03") && neigh.contains("PERMANENT"),
        "{neigh}"
    );
    tap.remove().unwrap();
    assert!(ip(&["link", "show", &name]).is_err());
    let tap = Tap::create(&name, None).unwrap();
    drop(tap);
    assert!(ip(&["link", "show", &name]).is_err());
}

#[test]
fn the_sweep_removes_only_namespaces_of_runs_that_are_gone() {
    if !can_run() {
        return;
    }
    // A pid that ran and was reaped: gone (unless reused at once).
    let gone = std::process::Command::new("true")
        .spawn()
        .and_then(|mut c| c.wait().map(|_| c.id()))
        .unwrap();
    // pid 1 runs as long as the machine does.
    let prefix = format!("vs{}x", std::process::id() % 100);
    let stale = format!("{}0", run_prefix(&prefix, gone));
    let live = format!("{}0", run_prefix(&prefix, 1));
    let stale_ns = Netns::create(&stale).unwrap();
    let live_ns = Netns::create(&live).unwrap();
    let removed = sweep_stale(&prefix, Path::new("/proc"));
    assert_eq!(removed, std::slice::from_ref(&stale));
    assert_eq!(
        leftovers(&prefix, Duration::ZERO).unwrap(),
        [format!("netns {live}")]
    );
    drop(stale_ns);
    drop(live_ns);
    assert!(
        leftovers(&prefix, Duration::from_secs(2))
            .unwrap()
            .is_empty()
    );
}

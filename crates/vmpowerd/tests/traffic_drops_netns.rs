//! Drop-aware TRAFFIC with real packets and a real kernel drop counter:
//! the daemon runs on a fake sysfs host with its real rtnetlink counters;
//! a tap carries the policy MAC's libvirt host-side MAC (the tap source:
//! the guest receives what the host transmits into the tap); a thread
//! attached to the tap as its queue plays a guest that does not keep up,
//! reading 200 frames per second; a sender on the host sends UDP into the
//! tap at 3,000 packets per second. The tap's queue (`txqueuelen`, 1,000
//! frames) fills within a second and the kernel drops the rest in
//! `tun_net_xmit`, counting them in the tap's **`tx_dropped`** — the
//! counter the tap source reads as the guest's drops.
//!
//! The thresholds (avg 100,000 / max 200,000 pps) sit far above anything
//! sent, so only the drops can raise the cores: the test waits for min
//! first (the rate alone calls for min), then for max, and for the drop
//! rate, the learned capacity and the history's reason that prove drops
//! did it; then restarts the daemon and finds the learned capacity
//! restored from the store. Bounded by [`WAIT`] per step. Needs root, `/dev/net/tun` and
//! `ip`; without them it prints "skipped: needs root and ip netns (why)"
//! and returns.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vmpower_api::{CtlRequest, CtlResponse};
use vmpower_cpufreq::Driver;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_netlab::{LinkNet, Rate, Sender, SenderSpec, SlowReader, Tap, can_run, unique_name};
use vmpower_proto::{
    MacAddr, MacList, Policy, PolicyKind, RequestBody, TrafficThresholds, VcpuList, Verdict,
};
use vmpower_testkit::prelude::*;
use vmpowerd::traffic::libvirt_tap_mac;

/// What the host sends into the tap.
const SEND_PPS: u64 = 3_000;
/// What the slow guest reads.
const READ_PPS: u32 = 200;
/// Bound on each wait (generous: a loaded CI machine).
const WAIT: Duration = Duration::from_secs(20);

fn policy_record(mac: MacAddr) -> Vec<u8> {
    let policy = Policy {
        macs: MacList::from_slice(&[mac]).unwrap(),
        traffic: TrafficThresholds {
            min_pps: 0,
            avg_pps: 100_000,
            max_pps: 200_000,
        },
        ..Policy::new(PolicyKind::Traffic, VcpuList::from_slice(&[0, 1]).unwrap())
    };
    vmpower_testkit::records::named("vm1", RequestBody::SetPolicy(policy))
}

fn ok(host: &Host, req: &CtlRequest) -> Value {
    match tokio::task::block_in_place(|| host.ctl(req)) {
        CtlResponse::Ok(v) => v,
        CtlResponse::Error(e) => panic!("{req:?}: {e:?}"),
    }
}

/// Polls `check` on `policy show vm1` until it holds (bounded by [`WAIT`]).
async fn wait_shown(host: &Host, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let shown = ok(host, &CtlRequest::PolicyShow { vm: "vm1".into() });
        if check(&shown) {
            return shown;
        }
        assert!(Instant::now() < deadline, "{what}: {shown}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pcpus_at(host: &Host, freq: &str) -> bool {
    [1, 2]
        .iter()
        .all(|&c| host.cpu_file(c, "scaling_setspeed") == freq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_at_a_slow_tap_reader_raise_the_cores_and_are_learned() {
    if !can_run() {
        return;
    }
    let pid = std::process::id().to_be_bytes();
    let mac = MacAddr([0x52, 0x78, pid[0], pid[1], pid[2], pid[3]]);
    let name = unique_name("vtdr").expect("a name");
    let tap = Tap::create(&name, Some(libvirt_tap_mac(mac).0)).expect("create tap");
    let net = LinkNet::next();
    tap.address(&net, mac.0).expect("address the tap");
    let reader = SlowReader::start(&name, READ_PPS).expect("attach a reader to the tap");
    let spec = SenderSpec::new(
        SocketAddr::from((net.host, 0)),
        SocketAddr::from((net.peer, 9)),
    );
    let sender = Sender::start(spec, Rate::Set(0)).expect("sender");

    let fake = Arc::new(
        FakeSysfs::builder(4)
            .driver(Driver::AcpiCpufreq)
            .build()
            .unwrap(),
    );
    let mut host = Host::start_real_traffic(fake, &[("vm1", vm(&[1, 2]))], |c| {
        c.traffic_interval_ms = 50;
    })
    .await;
    let table: Vec<String> = host
        .cpu_file(1, "scaling_available_frequencies")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let (max, min) = (table[0].clone(), table[table.len() - 1].clone());
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    assert_eq!(call(&mut guest, &policy_record(mac)).await, Verdict::Ack);

    // The tap is found, no drops yet: the rate calls for min.
    let source = format!("tap {name} tx");
    wait_shown(&host, "min without drops", |s| {
        s["macs"][0]["source"] == source.as_str() && s["drops_pps"] == 0.0 && pcpus_at(&host, &min)
    })
    .await;

    // The slow guest falls behind: the kernel drops into tx_dropped, and
    // the cores go to max on drops alone.
    sender.set_rate(SEND_PPS);
    let shown = wait_shown(&host, "max on drops", |s| {
        s["learned"]["min"]["rate_pps"].is_number()
            && s["drops_pps"].as_f64().is_some_and(|d| d > 0.0)
            && pcpus_at(&host, &max)
    })
    .await;
    let learned = shown["learned"]["min"]["rate_pps"].as_f64().unwrap();
    // What the guest served while dropping: about its read rate.
    assert!(
        learned < f64::from(READ_PPS) * 3.0,
        "capacity learned at min: {learned} pps ({shown})"
    );
    // The kernel's own count agrees that the tap dropped.
    let tx_dropped: u64 =
        std::fs::read_to_string(format!("/sys/class/net/{name}/statistics/tx_dropped"))
            .expect("the tap's tx_dropped")
            .trim()
            .parse()
            .expect("a number");
    assert!(tx_dropped > 0, "tx_dropped {tx_dropped}");
    // The learned capacity moved the threshold down below the rate sent.
    let avg = shown["thresholds_pps"]["avg"].as_f64().unwrap();
    assert!(avg < 100_000.0, "{shown}");
    let history = ok(
        &host,
        &CtlRequest::History {
            vm: Some("vm1".into()),
            since: None,
            limit: None,
        },
    );
    let reasons: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("drops:") && r.contains("at level Min")),
        "{reasons:?}"
    );
    let drops = shown["drops_pps"].as_f64().unwrap_or(0.0);
    println!(
        "tap {name}: tx_dropped rose to {tx_dropped} ({drops:.0} drops/s at the last \
         sample), the reader read {} frames; capacity learned at min {learned:.0} pps",
        reader.frames()
    );
    drop(sender);
    drop(reader);
    // What was learned is kept with the policy: a restarted daemon knows it.
    host.stop().await.unwrap();
    host.launch().await;
    let restored = wait_shown(&host, "learned capacity restored", |s| {
        s["learned"]["min"]["rate_pps"].is_number()
    })
    .await;
    assert_eq!(
        restored["learned"]["min"]["rate_pps"].as_f64(),
        Some(learned),
        "{restored}"
    );
    host.stop().await.unwrap();
    tap.remove().expect("delete tap");
}

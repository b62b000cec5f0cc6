//! The metrics endpoint of a real daemon on a fake host: scraped over
//! HTTP, parsed with the strict OpenMetrics parser, values checked after
//! guests' requests; and a scenario that moves every family of
//! `FAMILIES` (the one list the docs and the dashboard are checked
//! against) off its default.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vmpower_api::{CtlRequest, CtlResponse};
use vmpower_cpufreq::fake::{FailKind, FakeSysfs};
use vmpower_proto::{
    CoreType, MacAddr, MacList, Policy, PolicyKind, RequestBody, ScalingUnit, TrafficThresholds,
    VcpuList, Verdict,
};
use vmpower_testkit::prelude::*;
use vmpower_testkit::records::named as record;
use vmpowerd::metrics::families::{FAMILIES, Kind};
use vmpowerd::metrics::parse::{Exposition, parse};
use vmpowerd::metrics::process::PROCESS_FAMILIES;

async fn start(vms: &[(&str, vmpowerd::config::VmConfig)]) -> (Host, SocketAddr) {
    let fake = Arc::new(
        FakeSysfs::builder(4)
            .driver(vmpower_cpufreq::Driver::AcpiCpufreq)
            .build()
            .unwrap(),
    );
    let host = Host::start_with(fake, vms, |c| {
        c.metrics_address = Some("127.0.0.1:0".parse().unwrap());
        c.traffic_interval_ms = 20;
        // A foreign write yields its pCPU (vmpower_pcpu_yielded moves),
        // found within 100 ms.
        c.foreign_writer = vmpowerd::config::ForeignWriter::Yield;
        c.foreign_check_interval_ms = 100;
        // The process_* families read <proc_root>/self: the test's own
        // process (the VMs' placement is static, from `pcpus`).
        c.proc_root = "/proc".into();
        // A limit high enough that a flood is answered fast, so the
        // replies of a guest that does not read them overflow, and low
        // enough that the flood pauses its channel (the limit has its own
        // tests in rate_limit.rs).
        c.rate_limit = vmpower_engine::RateLimit {
            burst: 500,
            per_second: 50_000,
        };
    })
    .await;
    let CtlResponse::Ok(status) = host.ctl(&CtlRequest::Status) else {
        panic!("status refused")
    };
    let addr = status["metrics_address"].as_str().unwrap().parse().unwrap();
    (host, addr)
}

/// One HTTP request; returns the status line, the head and the body.
async fn http(addr: SocketAddr, request: &str) -> (String, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut raw))
        .await
        .expect("no answer in time")
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, head.to_owned(), body.to_owned())
}

async fn scrape(addr: SocketAddr) -> Exposition {
    let (status, head, body) = http(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        head.contains("Content-Type: application/openmetrics-text"),
        "{head}"
    );
    parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn traffic_policy(mac: MacAddr) -> RequestBody {
    RequestBody::SetPolicy(Policy {
        macs: MacList::from_slice(&[mac]).unwrap(),
        traffic: TrafficThresholds {
            min_pps: 0,
            avg_pps: 100_000,
            max_pps: 200_000,
        },
        ..Policy::new(PolicyKind::Traffic, VcpuList::from_slice(&[0]).unwrap())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_requests_frequencies_and_channels() {
    let (mut host, addr) = start(&[("vm1", vm(&[1, 2]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    // pCPU 1 (vCPU 0): max then one step down; pCPU 2 (vCPU 1): max.
    for (vcpu, unit) in [
        (0, ScalingUnit::ScaleMax),
        (0, ScalingUnit::ScaleDown),
        (1, ScalingUnit::ScaleMax),
    ] {
        assert_eq!(call(&mut guest, &power(vcpu, unit)).await, Verdict::Ack);
    }
    assert_eq!(
        call(&mut guest, &power(7, ScalingUnit::ScaleMax)).await,
        Verdict::Nack
    );
    let m = scrape(addr).await;
    let vm1 = [("vm", "vm1"), ("kind", "power")];
    let ok = [vm1[0], vm1[1], ("result", "ok")];
    let nack = [vm1[0], vm1[1], ("result", "nack")];
    assert_eq!(m.value("vmpower_requests_total", &ok), Some(3.0));
    assert_eq!(m.value("vmpower_requests_total", &nack), Some(1.0));
    assert_eq!(
        m.value(
            "vmpower_rejections_total",
            &[("reason", "vcpu_out_of_range")]
        ),
        Some(1.0)
    );
    // The frequencies are those in sysfs, in Hz; pCPU 1 is one level
    // below pCPU 2.
    for cpu in [1, 2] {
        let khz: f64 = host.cpu_file(cpu, "scaling_setspeed").parse().unwrap();
        let label = cpu.to_string();
        let hz = m.value("vmpower_pcpu_frequency_hertz", &[("pcpu", &label)]);
        assert_eq!(hz, Some(khz * 1000.0), "pCPU {cpu}");
        assert_eq!(
            m.value("vmpower_pcpu_managed", &[("pcpu", &label)]),
            Some(1.0)
        );
    }
    let level = |cpu: &str| m.value("vmpower_pcpu_level", &[("pcpu", cpu)]).unwrap();
    assert_eq!(level("1"), level("2") + 1.0);
    assert!(
        m.value("vmpower_pcpu_frequency_hertz", &[("pcpu", "1")])
            < m.value("vmpower_pcpu_frequency_hertz", &[("pcpu", "2")])
    );
    assert_eq!(m.value("vmpower_pcpu_managed", &[("pcpu", "3")]), Some(0.0));
    assert_eq!(m.value("vmpower_sysfs_writes_total", &[]), Some(3.0));
    assert_eq!(m.value("vmpower_sysfs_failures_total", &[]), Some(0.0));
    assert_eq!(
        m.value("vmpower_channel_up", &[("vm", "vm1"), ("channel", "0")]),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "vmpower_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    // The guest goes away: its channel is down.
    drop(guest);
    drop(qemu);
    std::fs::remove_file(host.socket("vm1", 0)).unwrap();
    let mut down = None;
    for _ in 0..1000 {
        let m = scrape(addr).await;
        down = m.value("vmpower_channel_up", &[("vm", "vm1"), ("channel", "0")]);
        if down == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(down, Some(0.0));
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_for_curl_and_errors_for_other_paths() {
    let (mut host, addr) = start(&[("vm1", vm(&[1]))]).await;
    let (status, head, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        body.contains("# TYPE vmpower_sysfs_writes_total counter"),
        "{body}"
    );
    assert!(!body.contains("# EOF"));
    let (status, _, body) = http(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.is_empty());
    let (status, _, _) = http(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _, _) = http(addr, "DELETE /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let (status, _, _) = http(addr, &big).await;
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_family_is_exported_and_moves() {
    let (mut host, addr) =
        start(&[("vm1", vm(&[1, 2])), ("vm2", vm(&[3])), ("vm3", vm(&[0]))]).await;
    let mac1: MacAddr = "02:00:00:00:00:01".parse().unwrap();
    let mac2: MacAddr = "02:00:00:00:00:02".parse().unwrap();
    let qemu1 = host.qemu("vm1", 0);
    let mut g1 = accept(&qemu1).await;
    let qemu2 = host.qemu("vm2", 0);
    let mut g2 = accept(&qemu2).await;

    // vm1: a direct request on vCPU 1 whose write fails, one that works,
    // a record naming another VM, a rejection.
    let setspeed = "devices/system/cpu/cpu2/cpufreq/scaling_setspeed";
    host.fake.fail_next_write(setspeed, FailKind::Busy);
    assert_eq!(
        call(&mut g1, &power(1, ScalingUnit::ScaleMax)).await,
        Verdict::Nack
    );
    assert_eq!(
        call(&mut g1, &power(1, ScalingUnit::ScaleMax)).await,
        Verdict::Ack
    );
    let mismatch = record(
        "vm2",
        RequestBody::Power {
            resource_id: 1,
            core_type: CoreType::Virtual,
            unit: ScalingUnit::ScaleDown,
        },
    );
    // Served as vm1's (whatever the verdict): counted as a mismatch.
    let _ = call(&mut g1, &mismatch).await;
    assert_eq!(
        call(&mut g1, &power(9, ScalingUnit::ScaleMax)).await,
        Verdict::Nack
    );
    // vm1: a TRAFFIC policy whose MAC carries traffic (active, a rate);
    // vm2: one whose MAC has no counter (waiting).
    let traffic = host.traffic.clone();
    assert_eq!(
        call(&mut g1, &record("vm1", traffic_policy(mac1))).await,
        Verdict::Ack
    );
    assert_eq!(
        call(&mut g2, &record("vm2", traffic_policy(mac2))).await,
        Verdict::Ack
    );
    let pump = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tick.tick().await;
            traffic.advance(mac1, 5_000);
            // The guest also drops some (its drop counter moves).
            traffic.drop_packets(mac1, 3);
        }
    });
    // vm2 reboots: half a record, then its socket is re-created.
    g2.write_all(&power(0, ScalingUnit::ScaleMax)[..100])
        .await
        .unwrap();
    drop(g2);
    drop(qemu2);
    std::fs::remove_file(host.socket("vm2", 0)).unwrap();
    // Re-created once the daemon has seen the channel close.
    wait_for(|| {
        host.ok(&CtlRequest::Status)["stats"]["channels"]["vm2.0"]["up"].as_bool() == Some(false)
    })
    .await;
    let qemu2 = host.qemu("vm2", 0);
    let _g2 = accept(&qemu2).await;
    // vm1 floods without reading its replies.
    let flood: Vec<u8> = (0..3000)
        .flat_map(|_| power(9, ScalingUnit::ScaleMax))
        .collect();
    let (_read, mut write) = g1.into_split();
    let flooding = tokio::spawn(async move {
        let _ = write.write_all(&flood).await;
        write
    });

    // tuned takes pCPU 2 (held for vm1's vCPU 1) back.
    host.fake
        .external_kernel_write(
            "devices/system/cpu/cpu2/cpufreq/scaling_governor",
            "performance",
        )
        .unwrap();

    // vm3: one busyness report every 10 ms, then silence (stale at 30 ms).
    let qemu3 = host.qemu("vm3", 0);
    let mut g3 = accept(&qemu3).await;
    let hello = RequestBody::Hello {
        version: vmpower_proto::contract::NATIVE_VERSION,
    };
    assert_eq!(call(&mut g3, &record("vm3", hello)).await, Verdict::Ack);
    let entry = vmpower_proto::BusyEntry {
        vcpu: 0,
        permille: 950,
    };
    let report = vmpower_proto::BusynessReport::new(1, &[entry], 10, None).unwrap();
    g3.write_all(&record("vm3", RequestBody::Busyness(report)))
        .await
        .unwrap();

    // Every family has a sample off its default (for the rate: measured).
    let mut last = String::new();
    let mut done = false;
    for _ in 0..1000 {
        let m = scrape(addr).await;
        let missing = families_at_default(&m);
        if missing.is_empty() {
            done = true;
            break;
        }
        last = missing.join(", ");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(done, "families never updated: {last}");
    pump.abort();
    flooding.abort();
    host.stop().await.unwrap();
}

/// The families of `FAMILIES` with no sample off the default (0), or
/// whose type or labels differ from the list; also any family the
/// endpoint writes that the list lacks.
fn families_at_default(m: &Exposition) -> Vec<String> {
    let mut missing = Vec::new();
    let all = || FAMILIES.iter().chain(PROCESS_FAMILIES);
    let listed: BTreeSet<&str> = all().map(|f| f.name).collect();
    for name in m.families.keys() {
        assert!(listed.contains(name.as_str()), "{name} is not in FAMILIES");
    }
    for f in all() {
        let Some(got) = m.families.get(f.name) else {
            panic!("{} not exported", f.name)
        };
        assert_eq!(got.kind, f.kind.as_str(), "{}", f.name);
        assert_eq!(got.help.as_deref(), Some(f.help), "{}", f.name);
        let labels: BTreeSet<&str> = f.labels.iter().copied().collect();
        for s in &got.samples {
            let have: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
            assert_eq!(have, labels, "labels of {}", s.name);
        }
        let moved = got.samples.iter().any(|s| match f.kind {
            Kind::Info => s.value == 1.0,
            Kind::Counter | Kind::Gauge => s.value > 0.0,
        });
        if !moved {
            missing.push(f.name.to_owned());
        }
    }
    missing
}

/// `vmpower_vm_traffic_packets_total{vm}`, if exported.
async fn vm_packets(addr: SocketAddr, vm: &str) -> Option<f64> {
    scrape(addr)
        .await
        .value("vmpower_vm_traffic_packets_total", &[("vm", vm)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_counter_counts_each_packet_once() {
    let (mut host, addr) = start(&[("vm1", vm(&[1]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    let mac: MacAddr = "52:54:00:00:00:07".parse().unwrap();
    let traffic = host.traffic.clone();
    // Packets before the first sample are the baseline, not counted.
    traffic.advance(mac, 1_000);
    assert_eq!(
        call(&mut guest, &record("vm1", traffic_policy(mac))).await,
        Verdict::Ack
    );
    let after = |n: u64| {
        let traffic = traffic.clone();
        let target = traffic.samples_taken() + n;
        wait_for(move || traffic.samples_taken() >= target)
    };
    after(2).await;
    for _ in 0..3 {
        traffic.advance(mac, 700);
        after(2).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while vm_packets(addr, "vm1").await != Some(2100.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "counter at {:?}",
            vm_packets(addr, "vm1").await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Two more samples with no new packet: nothing more counted.
    after(2).await;
    assert_eq!(vm_packets(addr, "vm1").await, Some(2100.0));
    host.stop().await.unwrap();
}

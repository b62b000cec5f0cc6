//! Policies end to end through the daemon: a guest sends PKT_POLICY over
//! its channel, the daemon samples the inputs and drives the pCPUs.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{
    HourSchedule, HourSet, Layout, MacAddr, MacList, Policy, PolicyKind, Request, RequestBody,
    ScalingUnit, TrafficThresholds, VcpuList, Verdict, VmName, WorkloadLevel,
};
use vmpower_testkit::prelude::*;

fn policy_record(policy: Policy) -> Vec<u8> {
    let req = Request {
        vm_name: VmName::new("vm1").unwrap(),
        body: RequestBody::SetPolicy(policy),
    };
    encode_request_record(&req, Layout::Current)
        .unwrap()
        .as_slice()
        .to_vec()
}

fn base(kind: PolicyKind) -> Policy {
    Policy::new(kind, VcpuList::from_slice(&[0, 1]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_policy_follows_the_packet_rate() {
    let mut host = Host::start_with(
        std::sync::Arc::new(
            vmpower_cpufreq::fake::FakeSysfs::builder(4)
                .driver(vmpower_cpufreq::Driver::AcpiCpufreq)
                .build()
                .unwrap(),
        ),
        &[("vm1", vm(&[1, 2]))],
        |c| c.traffic_interval_ms = 20,
    )
    .await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
    let policy = Policy {
        macs: MacList::from_slice(&[mac]).unwrap(),
        traffic: TrafficThresholds {
            min_pps: 0,
            avg_pps: 100_000,
            max_pps: 200_000,
        },
        ..base(PolicyKind::Traffic)
    };
    assert_eq!(call(&mut guest, &policy_record(policy)).await, Verdict::Ack);
    // The MAC has no counter yet: the policy waits and the cores are
    // untouched, once the sampler has evaluated it (two ticks after the
    // ACK: one begun after it, which saw the policy).
    let before = host.cpu_file(1, "scaling_governor");
    let evaluated = traffic_evaluations(&host);
    wait_for(|| traffic_evaluations(&host) >= evaluated + 2).await;
    assert_eq!(host.cpu_file(1, "scaling_governor"), before);
    // The policy owns vCPU 0: a direct request is refused.
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMax)).await,
        Verdict::Nack
    );

    // Traffic at ~1 Mpps (well above max): both pCPUs go to max.
    let traffic = host.traffic.clone();
    let pump = |rate_pps: u64| {
        let t = traffic.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tick.tick().await;
                t.advance(mac, rate_pps / 200);
            }
        })
    };
    let fast = pump(1_000_000);
    // Both pCPUs change in one decision, written one after the other.
    wait_for(|| {
        host.cpu_file(1, "scaling_setspeed") == "2301000"
            && host.cpu_file(2, "scaling_setspeed") == "2301000"
    })
    .await;
    fast.abort();
    // Silence (the counter stops): after the dwell, min.
    let slow = pump(0);
    wait_for(|| {
        host.cpu_file(1, "scaling_setspeed") == "800000"
            && host.cpu_file(2, "scaling_setspeed") == "800000"
    })
    .await;
    slow.abort();
    host.stop().await.unwrap();
    assert_eq!(
        host.cpu_file(1, "scaling_governor"),
        before,
        "given back at stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_and_workload_policies_replace_each_other_and_are_removed() {
    let mut host = Host::start(&[("vm1", vm(&[1, 2]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    // The native contract: the removal is ACKed once it is done.
    native(&mut guest).await;
    let before = host.cpu_file(1, "scaling_governor");
    // Every hour quiet: min whatever the clock says.
    let all: Vec<u8> = (0..24).collect();
    let quiet = Policy {
        hours: HourSchedule {
            busy: HourSet::EMPTY,
            quiet: HourSet::from_hours(all).unwrap(),
            traffic: HourSet::EMPTY,
        },
        ..base(PolicyKind::Time)
    };
    assert_eq!(call(&mut guest, &policy_record(quiet)).await, Verdict::Ack);
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "800000");
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "800000");
    // Replaced by WORKLOAD MEDIUM on vCPU 1 only: pCPU 1 is given back.
    let medium = Policy {
        cores: VcpuList::from_slice(&[1]).unwrap(),
        workload: WorkloadLevel::Medium,
        ..base(PolicyKind::Workload)
    };
    assert_eq!(call(&mut guest, &policy_record(medium)).await, Verdict::Ack);
    assert_eq!(host.cpu_file(1, "scaling_governor"), before);
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "1600000");
    // PKT_POLICY_REMOVE: everything given back.
    let remove = Request {
        vm_name: VmName::new("vm1").unwrap(),
        body: RequestBody::RemovePolicy,
    };
    let record = encode_request_record(&remove, Layout::Current).unwrap();
    guest.write_all(record.as_slice()).await.unwrap();
    assert_eq!(read_verdict(&mut guest, 464).await, Verdict::Ack);
    assert_eq!(host.cpu_file(2, "scaling_governor"), before);
    host.stop().await.unwrap();
}

/// How many traffic-policy inputs the daemon has handed to its engine
/// (`status`'s `policy_evaluations.traffic`).
fn traffic_evaluations(host: &Host) -> u64 {
    host.ok(&vmpower_api::CtlRequest::Status)["stats"]["policy_evaluations"]["traffic"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_policies_follow_the_injected_clock() {
    // The quiet hour is twelve hours from the real one, and the daemon's
    // clock reads 1.5 s before it: only the injected clock can make the
    // hour begin.
    let this_hour = jiff::Timestamp::now().as_second() / 3600;
    let quiet_hour = u8::try_from((this_hour + 12) % 24).unwrap();
    let hour_start = jiff::Timestamp::from_second((this_hour + 12) * 3600).unwrap();
    let clock =
        vmpowerd::backends::FakeClock::at(hour_start - jiff::SignedDuration::from_millis(1500));
    let fake_host = vmpower_testkit::FakeHost::new();
    let mut host =
        Host::prepare(fake_host, &[("vm1", vm(&[1, 2]))], |_| {}).with_clock(clock.clone());
    host.launch().await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    let before = host.cpu_file(1, "scaling_setspeed");
    let quiet = Policy {
        hours: HourSchedule {
            busy: HourSet::EMPTY,
            quiet: HourSet::from_hours([quiet_hour]).unwrap(),
            traffic: HourSet::EMPTY,
        },
        ..base(PolicyKind::Time)
    };
    assert_eq!(call(&mut guest, &policy_record(quiet)).await, Verdict::Ack);
    assert_ne!(before, "800000");
    wait_for(|| host.cpu_file(1, "scaling_setspeed") == "800000").await;
    assert!(
        vmpowerd::backends::Clock::wall(&clock) >= hour_start,
        "min before the quiet hour"
    );
    host.stop().await.unwrap();
}

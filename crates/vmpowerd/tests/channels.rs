//! The real daemon over real unix sockets, the test playing QEMU: direct
//! requests land in the fake sysfs, each record gets exactly the reply of
//! its channel's contract (DPDK's, or the native one after HELLO), the daemon
//! reconnects when QEMU re-creates its socket, garbage does not stop it, a
//! guest that never reads is contained, and every CPU is given back at
//! shutdown.

#![allow(clippy::unwrap_used)]

use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use vmpower_api::{CtlRequest, CtlResponse};
use vmpower_proto::contract::NackReason;
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{
    CoreType, Layout, QueryKind, Request, RequestBody, ScalingUnit, Verdict, VmName,
};
use vmpower_testkit::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_requests_change_the_mapped_pcpu_and_are_acked() {
    let mut host = Host::start(&[("vm1", vm(&[2, 3]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    let before = host.cpu_file(2, "scaling_governor");

    // (unit, vCPU, expected setspeed of its pCPU); table 2301000 (turbo),
    // 2300000 ... 800000 in 100 MHz steps.
    let steps = [
        (ScalingUnit::ScaleMin, 0, 2, "800000"),
        (ScalingUnit::ScaleUp, 0, 2, "900000"),
        (ScalingUnit::ScaleMax, 1, 3, "2301000"),
        (ScalingUnit::DisableTurbo, 1, 3, "2300000"),
        (ScalingUnit::ScaleDown, 1, 3, "2200000"),
        // acpi-cpufreq: enabling turbo moves to max, as DPDK's backend.
        (ScalingUnit::EnableTurbo, 1, 3, "2301000"),
        (ScalingUnit::ScaleDown, 1, 3, "2300000"),
        (ScalingUnit::ScaleMax, 1, 3, "2301000"),
    ];
    for (unit, vcpu, pcpu, khz) in steps {
        assert_eq!(
            call(&mut guest, &power(vcpu, unit)).await,
            Verdict::Ack,
            "{unit:?}"
        );
        assert_eq!(host.cpu_file(pcpu, "scaling_governor"), "userspace");
        assert_eq!(host.cpu_file(pcpu, "scaling_setspeed"), khz, "{unit:?}");
    }
    // Untouched CPUs stay untouched.
    assert_eq!(host.cpu_file(0, "scaling_governor"), before);

    // Refusals: vCPU out of range, a physical core without the grant.
    assert_eq!(
        call(&mut guest, &power(2, ScalingUnit::ScaleMin)).await,
        Verdict::Nack
    );
    let physical = Request {
        vm_name: VmName::default(),
        body: RequestBody::Power {
            resource_id: 0,
            core_type: CoreType::Physical,
            unit: ScalingUnit::ScaleMin,
        },
    };
    let record = encode_request_record(&physical, Layout::Current).unwrap();
    assert_eq!(call(&mut guest, record.as_slice()).await, Verdict::Nack);
    assert_eq!(host.cpu_file(0, "scaling_governor"), before);

    host.stop().await.unwrap();
    for cpu in [2, 3] {
        assert_eq!(
            host.cpu_file(cpu, "scaling_governor"),
            before,
            "cpu{cpu} restored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpdk_connect_then_garbage_then_valid_records() {
    let mut host = Host::start(&[("vm1", vm(&[1]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    // DPDK's CONNECT, from an uninitialised struct: no reply.
    let mut connect = vec![0xA5u8; 464];
    connect[12..16].copy_from_slice(&2u32.to_le_bytes());
    guest.write_all(&connect).await.unwrap();
    // Records DPDK's host answers nothing: an unknown command, CPU_POWER
    // with an unknown unit, a removal, a query not granted.
    let garbage = vec![0xA5u8; 464];
    let mut bad_unit = power(0, ScalingUnit::ScaleMin);
    bad_unit[8] = 9;
    let remove = record(RequestBody::RemovePolicy);
    let query = record(RequestBody::Query {
        kind: QueryKind::FreqList,
        resource_id: 0,
    });
    for silent in [&garbage, &bad_unit, &remove, &query] {
        guest.write_all(silent).await.unwrap();
    }
    // CPU_POWER with a valid unit is always answered, even undecodable.
    let mut bad_core_type = power(0, ScalingUnit::ScaleMin);
    bad_core_type[444] = 7;
    assert_eq!(call(&mut guest, &bad_core_type).await, Verdict::Nack);
    // Replies come in order: this ACK being the next reply proves none of
    // the records above was answered.
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "800000");
    // Split across writes, one byte at a time.
    let record = power(0, ScalingUnit::ScaleUp);
    for b in &record {
        guest.write_all(std::slice::from_ref(b)).await.unwrap();
    }
    assert_eq!(read_verdict(&mut guest, 464).await, Verdict::Ack);
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "900000");
    // Unanswered refusals are still counted by reason.
    let CtlResponse::Ok(status) = host.ctl(&CtlRequest::Status) else {
        panic!("status refused")
    };
    let rejections = &status["stats"]["rejections"];
    assert_eq!(rejections["queries_not_allowed"], 1, "{status}");
    assert_eq!(rejections["malformed"], 3, "{status}");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_says_hello_gets_the_native_contract() {
    let mut host = Host::start(&[("vm1", vm(&[1]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    let hello = record(RequestBody::Hello { version: 1 });
    guest.write_all(&hello).await.unwrap();
    let mut reply = vec![0u8; 464];
    tokio::time::timeout(WAIT, guest.read_exact(&mut reply))
        .await
        .expect("HELLO answered")
        .unwrap();
    assert_eq!(&reply[12..16], &1u32.to_le_bytes(), "ACK");
    assert_eq!(&reply[8..12], &1u32.to_le_bytes(), "version 1 granted");
    // A refused query: a NACK naming its reason.
    let query = record(RequestBody::Query {
        kind: QueryKind::FreqList,
        resource_id: 0,
    });
    guest.write_all(&query).await.unwrap();
    tokio::time::timeout(WAIT, guest.read_exact(&mut reply))
        .await
        .expect("NACK")
        .unwrap();
    assert_eq!(&reply[12..16], &2u32.to_le_bytes(), "NACK");
    assert_eq!(reply[153], NackReason::QueriesNotAllowed.code());
    assert_eq!(
        call(&mut guest, &record(RequestBody::RemovePolicy)).await,
        Verdict::Ack
    );
    // A CONNECT (a DPDK program opened the port) goes back to DPDK's.
    guest
        .write_all(&record(RequestBody::Connect { resource_id: 0 }))
        .await
        .unwrap();
    guest
        .write_all(&record(RequestBody::RemovePolicy))
        .await
        .unwrap();
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_qemu_recreates_the_socket_and_counts_partial_records() {
    let mut host = Host::start(&[("vm1", vm(&[1]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    // Half a record, then QEMU goes away (VM reboot).
    guest
        .write_all(&power(0, ScalingUnit::ScaleMax)[..100])
        .await
        .unwrap();
    drop(guest);
    drop(qemu);
    std::fs::remove_file(host.socket("vm1", 0)).unwrap();
    // The half record was dropped, not applied.
    wait_for(|| stat(&host, "partial_bytes_dropped") == 100).await;
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "800000");
    // QEMU comes back; the daemon finds the new socket by itself.
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleUp)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "900000");
    assert_eq!(stat(&host, "connects"), 2);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_never_reads_does_not_block_the_daemon() {
    // No rate limit here: every request is read and answered at once, so
    // the replies overflow the deaf guest's socket (the rate limit has its
    // own tests and would only pace the flood).
    let fake = std::sync::Arc::new(
        vmpower_cpufreq::fake::FakeSysfs::builder(4)
            .driver(vmpower_cpufreq::Driver::AcpiCpufreq)
            .build()
            .unwrap(),
    );
    let mut host = Host::start_with(fake, &[("deaf", vm(&[1])), ("vm2", vm(&[2]))], |c| {
        c.rate_limit = vmpower_engine::RateLimit {
            burst: 1_000_000,
            per_second: 1_000_000,
        };
    })
    .await;
    let deaf_qemu = host.qemu("deaf", 0);
    let mut deaf = accept(&deaf_qemu).await;
    let qemu2 = host.qemu("vm2", 0);
    let mut guest2 = accept(&qemu2).await;
    // Thousands of requests whose ACKs are never read.
    let mut burst = Vec::new();
    for i in 0..2000u64 {
        let unit = if i % 2 == 0 {
            ScalingUnit::ScaleMin
        } else {
            ScalingUnit::ScaleMax
        };
        burst.extend_from_slice(&power(0, unit));
    }
    deaf.write_all(&burst).await.unwrap();
    wait_for(|| stat(&host, "replies_dropped") > 0).await;
    // The other guest is still served at once.
    assert_eq!(
        call(&mut guest2, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "800000");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vms_sharing_a_pcpu_get_the_higher_want() {
    let mut host = Host::start(&[("a", vm(&[1])), ("b", vm(&[1]))]).await;
    let qa = host.qemu("a", 0);
    let mut a = accept(&qa).await;
    let qb = host.qemu("b", 0);
    let mut b = accept(&qb).await;
    // a wants min; b asked nothing and counts as max (turbo).
    assert_eq!(
        call(&mut a, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "2301000");
    assert_eq!(
        call(&mut b, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "800000");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dpdk_1711_layout_is_served_per_vm() {
    let old = vmpowerd::config::VmConfig {
        layout: Layout::Dpdk1711,
        ..vm(&[3])
    };
    let mut host = Host::start(&[("old", old)]).await;
    let qemu = host.qemu("old", 0);
    let mut guest = accept(&qemu).await;
    let req = Request {
        vm_name: VmName::new("old").unwrap(),
        body: RequestBody::Power {
            resource_id: 0,
            core_type: CoreType::Virtual,
            unit: ScalingUnit::ScaleMin,
        },
    };
    let record = encode_request_record(&req, Layout::Dpdk1711).unwrap();
    assert_eq!(record.len(), 456);
    assert_eq!(call(&mut guest, record.as_slice()).await, Verdict::Ack);
    assert_eq!(host.cpu_file(3, "scaling_setspeed"), "800000");
    host.stop().await.unwrap();
}

fn stat(host: &Host, key: &str) -> u64 {
    let CtlResponse::Ok(v) = host.ctl(&CtlRequest::Status) else {
        panic!("status refused")
    };
    v["stats"][key].as_u64().unwrap()
}

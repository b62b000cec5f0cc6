//! The guest library against the real vmpowerd over real unix sockets, the
//! test playing QEMU in the middle: direct requests change the fake sysfs
//! and are ACKed, refusals come back as `HostRefused`, queries return what
//! sysfs holds, policies are encoded exactly (decoded back from the bytes
//! the host received) and the daemon's verdict on them (NACK "unsupported"
//! until vmpowerd has policies) is what the library reports, a silent host
//! times out; both layouts.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use vmpower_guest::{Channel, ChannelConfig, ChannelError, QueryTarget};
use vmpower_proto::{
    CoreType, HourSchedule, HourSet, Layout, MacList, Policy, PolicyKind, RequestBody, ScalingUnit,
    TrafficThresholds, VcpuList, VmName, WorkloadLevel,
};
use vmpower_testkit::prelude::*;
use vmpowerd::config::VmConfig;

fn config(layout: Layout) -> ChannelConfig {
    ChannelConfig {
        layout,
        timeout: WAIT,
        vm_name: VmName::new("vm1").unwrap(),
        connect: true,
        native: ChannelConfig::default().native,
    }
}

fn policy() -> Policy {
    Policy {
        kind: PolicyKind::Traffic,
        cores: VcpuList::from_slice(&[1, 0]).unwrap(),
        core_type: CoreType::Virtual,
        macs: MacList::from_slice(&["52:54:00:ab:cd:ef".parse().unwrap()]).unwrap(),
        traffic: TrafficThresholds {
            min_pps: 1,
            avg_pps: 1_800_000,
            max_pps: 2_000_000,
        },
        hours: HourSchedule {
            busy: HourSet::from_hours([0, 17, 23]).unwrap(),
            quiet: HourSet::from_hours([2, 3]).unwrap(),
            traffic: HourSet::EMPTY,
        },
        workload: WorkloadLevel::Medium,
        turbo_boost: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unit_changes_the_pinned_pcpu_and_refusals_are_typed() {
    let mut host = Host::start(&[("vm1", vm(&[2, 3]))]).await;
    let middle = host.middle("vm1", 0).await;
    let port = middle.guest_socket.clone();
    let mut ch =
        blocking(move || Channel::open_path(&port, 0, config(Layout::Current)).unwrap()).await;
    // (unit, vCPU, pCPU, expected setspeed); table 2301000 (turbo), 2300000 … 800000.
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
        ch = blocking(move || {
            ch.set_cpu_freq(vcpu, unit).unwrap();
            ch
        })
        .await;
        assert_eq!(host.cpu_file(pcpu, "scaling_setspeed"), khz, "{unit:?}");
    }
    // vCPU 2 does not exist; pCPU 0 is not granted.
    let (mut ch, err) = blocking(move || {
        let e = ch.set_cpu_freq(2, ScalingUnit::ScaleMin).unwrap_err();
        (ch, e)
    })
    .await;
    assert!(matches!(err, ChannelError::HostRefused { .. }), "{err}");
    let err = blocking(move || {
        ch.power(0, CoreType::Physical, ScalingUnit::ScaleMin)
            .unwrap_err()
    })
    .await;
    assert!(matches!(err, ChannelError::HostRefused { .. }), "{err}");
    // On the wire: CONNECT for channel 0 (its name is never read, as
    // DPDK's is garbage), then HELLO for the native contract.
    let reqs = middle.requests(Layout::Current);
    assert_eq!(reqs[0].body, RequestBody::Connect { resource_id: 0 });
    assert_eq!(reqs[1].body, RequestBody::Hello { version: 1 });
    assert_eq!(reqs[1].vm_name.as_str(), "vm1");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_report_sysfs_once_allowed() {
    let mut host = Host::start(&[("vm1", vm(&[1, 2]))]).await;
    let middle = host.middle("vm1", 0).await;
    let port = middle.guest_socket.clone();
    // Not allowed yet: vmpowerd NACKs (DPDK's host would stay silent).
    let (ch, err) = blocking(move || {
        let mut ch = Channel::open_path(&port, 0, config(Layout::Current)).unwrap();
        let e = ch.query_freq(QueryTarget::All).unwrap_err();
        (ch, e)
    })
    .await;
    assert!(matches!(err, ChannelError::HostRefused { .. }), "{err}");
    host.set_query("vm1", true);
    let (freqs, one, caps) = blocking(move || {
        let mut ch = ch;
        ch.set_cpu_freq(1, ScalingUnit::ScaleMin).unwrap();
        let all = ch.query_freq(QueryTarget::All).unwrap();
        let one = ch.query_freq(QueryTarget::Vcpu(1)).unwrap();
        let caps = ch.query_caps(QueryTarget::All).unwrap();
        (all, one, caps)
    })
    .await;
    assert_eq!(freqs.num_vcpu, 2);
    let khz = |cpu| {
        host.cpu_file(cpu, "scaling_cur_freq")
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(freqs.freqs_khz[1], 800_000);
    assert_eq!(freqs.freqs_khz[1], khz(2));
    assert_eq!(one.freqs_khz[1], 800_000);
    assert_eq!(one.resource_id, 1);
    assert_eq!(caps.num_vcpu, 2);
    assert_eq!(caps.turbo[..2], [true, true], "acpi-cpufreq with turbo");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_encoded_exactly_and_the_nack_is_reported() {
    for layout in [Layout::Current, Layout::Dpdk1711] {
        let old = VmConfig {
            layout,
            ..vm(&[1, 2])
        };
        let mut host = Host::start(&[("vm1", old)]).await;
        let middle = host.middle("vm1", 0).await;
        let port = middle.guest_socket.clone();
        let (r1, r2) = blocking(move || {
            let mut ch = Channel::open_path(&port, 0, config(layout)).unwrap();
            let r1 = ch.send_policy(&policy());
            let r2 = ch.remove_policy();
            (r1, r2)
        })
        .await;
        // Today's vmpowerd NACKs policies ("unsupported"); the library must
        // report exactly the daemon's verdict, whichever it is.
        for ((result, kind), what) in [(r1, "policy"), (r2, "policy_remove")]
            .into_iter()
            .zip(["PKT_POLICY", "PKT_POLICY_REMOVE"])
        {
            match host.verdicts("vm1", kind) {
                (0, 1) => assert!(
                    matches!(result, Err(ChannelError::HostRefused { .. })),
                    "{what}: {result:?}"
                ),
                (1, 0) => assert!(result.is_ok(), "{what}: {result:?}"),
                other => panic!("{what}: daemon counted {other:?}"),
            }
        }
        let reqs = middle.requests(layout);
        assert_eq!(
            reqs.len(),
            4,
            "CONNECT, HELLO, PKT_POLICY, PKT_POLICY_REMOVE"
        );
        assert_eq!(reqs[1].body, RequestBody::Hello { version: 1 });
        assert_eq!(reqs[2].body, RequestBody::SetPolicy(policy()), "{layout:?}");
        assert_eq!(reqs[2].vm_name.as_str(), "vm1");
        assert_eq!(reqs[3].body, RequestBody::RemovePolicy);
        host.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dpdk_1711_layout_changes_frequency() {
    let old = VmConfig {
        layout: Layout::Dpdk1711,
        queries: true,
        ..vm(&[3])
    };
    let mut host = Host::start(&[("old", old)]).await;
    let middle = host.middle("old", 0).await;
    let port = middle.guest_socket.clone();
    let freqs = blocking(move || {
        let mut ch = Channel::open_path(&port, 0, config(Layout::Dpdk1711)).unwrap();
        ch.set_cpu_freq(0, ScalingUnit::ScaleMin).unwrap();
        ch.set_cpu_freq(0, ScalingUnit::ScaleUp).unwrap();
        ch.query_freq(QueryTarget::All).unwrap()
    })
    .await;
    assert_eq!(host.cpu_file(3, "scaling_setspeed"), "900000");
    assert_eq!(freqs.freqs_khz[0], 900_000);
    assert_eq!(middle.sent().len() % 456, 0);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_host_times_out_and_stale_acks_do_not_confuse_the_next_request() {
    let mut host = Host::start(&[("vm1", vm(&[1]))]).await;
    let middle = host.middle("vm1", 0).await;
    let port = middle.guest_socket.clone();
    // DPDK style: requests whose ACKs are never read pile up in the port.
    let ch = blocking(move || {
        let mut ch = Channel::open_path(&port, 0, config(Layout::Current)).unwrap();
        for unit in [
            ScalingUnit::ScaleMax,
            ScalingUnit::ScaleMin,
            ScalingUnit::ScaleUp,
        ] {
            ch.send_only(RequestBody::Power {
                resource_id: 0,
                core_type: CoreType::Virtual,
                unit,
            })
            .unwrap();
        }
        ch
    })
    .await;
    wait_for(|| host.cpu_file(1, "scaling_setspeed") == "900000").await;
    let ch = blocking(move || {
        let mut ch = ch;
        // Waits for its own ACK, skipping the three stale ones (already
        // buffered: rule 1; still in flight: they do not echo this request).
        ch.set_cpu_freq(0, ScalingUnit::ScaleDown).unwrap();
        assert_eq!(ch.skipped_replies(), 3);
        ch
    })
    .await;
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "800000");
    // The operator disables the channel: the daemon reads and ignores it.
    host.disable_channels("vm1");
    let err = blocking(move || {
        let mut ch = ch;
        let quick = ChannelConfig {
            timeout: Duration::from_millis(300),
            ..config(Layout::Current)
        };
        let port = ch.path().to_owned();
        drop(ch);
        ch = Channel::open_path(&port, 0, quick).unwrap();
        ch.set_cpu_freq(0, ScalingUnit::ScaleMax).unwrap_err()
    })
    .await;
    assert!(matches!(err, ChannelError::HostSilent { .. }), "{err}");
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "800000");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_port_is_no_such_port() {
    let dir = tempfile::tempdir().unwrap();
    let roots = vmpower_guest::PortRoots {
        dev: dir.path().join("dev"),
        sys: dir.path().join("sys"),
    };
    let err = Channel::open(4, &roots, ChannelConfig::default()).unwrap_err();
    assert!(
        matches!(err, ChannelError::NoSuchPort { index: 4, .. }),
        "{err}"
    );
    // Found through /sys/class/virtio-ports/*/name but not openable.
    let d = roots.sys.join("class/virtio-ports/vport0p1");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("name"), "virtio.serial.port.poweragent.4\n").unwrap();
    let err = Channel::open(4, &roots, ChannelConfig::default()).unwrap_err();
    let ChannelError::Open { path, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(path, &roots.dev.join("vport0p1"));
}

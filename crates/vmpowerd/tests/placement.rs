//! The daemon finds a VM's vCPUs by itself (a fake /proc with QEMU's
//! `CPU n/KVM` threads), follows a re-pin, and lets the operator map vCPUs
//! through the control API.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vmpower_api::{CtlRequest, CtlResponse, ErrorKind};
use vmpower_cpufreq::Driver;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_proto::{ScalingUnit, Verdict};
use vmpower_testkit::prelude::*;
use vmpowerd::inventory::fake_proc::{FakeProc, FakeProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_comes_from_proc_and_follows_a_re_pin() {
    let proc_dir = tempfile::tempdir().unwrap();
    let proc = FakeProc::builder()
        .process(
            FakeProcess::new(4242)
                .cmdline(&["qemu-system-x86_64", "-name", "guest=vm1,debug-threads=on"])
                .thread(4243, "CPU 0/KVM", "2")
                .thread(4244, "CPU 1/KVM", "3"),
        )
        .in_dir(proc_dir.path())
        .build()
        .unwrap();
    let fake = Arc::new(
        FakeSysfs::builder(4)
            .driver(Driver::AcpiCpufreq)
            .build()
            .unwrap(),
    );
    let governor = fake_governor(&fake, 2);
    // No pcpus in the config: the VM is not even declared.
    let mut host = Host::start_with(fake, &[], |c| {
        c.proc_root = proc.path().to_owned();
        c.placement_refresh_ms = 100;
    })
    .await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    // The placement is read when the socket appears; wait for it.
    wait_for(|| vcpus(&host, "vm1") == 2).await;
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "800000");

    // taskset moves vCPU 0 to pCPU 1: the periodic refresh follows, the
    // level moves with the vCPU and pCPU 2 is given back.
    proc.set_affinity(4242, 4243, "CPU 0/KVM", "1").unwrap();
    wait_for(|| host.cpu_file(2, "scaling_governor") == governor).await;
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "800000");
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleUp)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "900000");

    // A vCPU the threads do not have is refused.
    assert_eq!(
        call(&mut guest, &power(2, ScalingUnit::ScaleUp)).await,
        Verdict::Nack
    );
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_maps_vcpus_and_drives_cpus_through_the_control_api() {
    let mut host = Host::start(&[]).await;
    let add = CtlRequest::AddVm { vm: "vm9".into() };
    assert!(matches!(host.ctl(&add), CtlResponse::Ok(_)));
    let again = host.ctl(&add);
    assert!(
        matches!(again, CtlResponse::Error(ref e) if e.kind == ErrorKind::Refused),
        "{again:?}"
    );
    let set = CtlRequest::SetPcpu {
        vm: "vm9".into(),
        vcpu: 0,
        pcpu: 3,
    };
    assert!(matches!(host.ctl(&set), CtlResponse::Ok(_)));
    assert_eq!(vcpus(&host, "vm9"), 1);
    let bad = CtlRequest::SetPcpu {
        vm: "vm9".into(),
        vcpu: 0,
        pcpu: 99,
    };
    assert!(matches!(host.ctl(&bad), CtlResponse::Error(ref e) if e.kind == ErrorKind::NotFound));
    let unknown = CtlRequest::ShowVm { vm: "nope".into() };
    assert!(
        matches!(host.ctl(&unknown), CtlResponse::Error(ref e) if e.kind == ErrorKind::NotFound)
    );

    let qemu = host.qemu("vm9", 0);
    let mut guest = accept(&qemu).await;
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(3, "scaling_setspeed"), "800000");

    // The operator overrides pCPU 3, the guest is refused, then released.
    let max = CtlRequest::SetCpuFreq {
        cpus: vec![3],
        op: vmpower_api::FreqOp::Max,
    };
    assert!(matches!(host.ctl(&max), CtlResponse::Ok(_)));
    assert_eq!(host.cpu_file(3, "scaling_setspeed"), "2301000");
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Nack
    );
    let release = CtlRequest::SetCpuFreq {
        cpus: vec![3],
        op: vmpower_api::FreqOp::Release,
    };
    assert!(matches!(host.ctl(&release), CtlResponse::Ok(_)));
    assert_eq!(host.cpu_file(3, "scaling_setspeed"), "800000");

    // Disabled channels are read and ignored: no reply, no change.
    let disable = CtlRequest::SetChannelStatus {
        vm: "vm9".into(),
        channels: vmpower_api::ChannelSel::All,
        enabled: false,
    };
    assert!(matches!(host.ctl(&disable), CtlResponse::Ok(_)));
    let enable = CtlRequest::SetChannelStatus {
        vm: "vm9".into(),
        channels: vmpower_api::ChannelSel::All,
        enabled: true,
    };
    use tokio::io::AsyncWriteExt;
    guest
        .write_all(&power(0, ScalingUnit::ScaleUp))
        .await
        .unwrap();
    // Read (counted as ignored), then nothing changed.
    wait_for(|| {
        host.ok(&CtlRequest::Status)["stats"]["requests"]["vm9/power/ignored"].as_u64() == Some(1)
    })
    .await;
    assert_eq!(host.cpu_file(3, "scaling_setspeed"), "800000");
    assert!(matches!(host.ctl(&enable), CtlResponse::Ok(_)));
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleUp)).await,
        Verdict::Ack
    );
    assert_eq!(host.cpu_file(3, "scaling_setspeed"), "900000");

    // rm-vm gives the CPU back.
    let rm = CtlRequest::RmVm { vm: "vm9".into() };
    assert!(matches!(host.ctl(&rm), CtlResponse::Ok(_)));
    let before = host.cpu_file(0, "scaling_governor");
    assert_eq!(host.cpu_file(3, "scaling_governor"), before);
    host.stop().await.unwrap();
}

fn fake_governor(fake: &FakeSysfs, cpu: u32) -> String {
    use vmpower_cpufreq::SysfsIo;
    let rel = format!("devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
    fake.read(std::path::Path::new(&rel)).unwrap()
}

fn vcpus(host: &Host, vm: &str) -> usize {
    match host.ctl(&CtlRequest::ShowVm { vm: vm.into() }) {
        CtlResponse::Ok(v) => v["vcpus"].as_array().map_or(0, Vec::len),
        CtlResponse::Error(_) => 0,
    }
}

//! `set-pcpu` never makes a VM wider than it is: a vCPU past the size the
//! config's `pcpus` or a live source (/proc) gives is refused as not found,
//! naming the VM, the vCPU and the count; a VM nothing sizes takes vCPUs up
//! to 4095, and a larger one is a usage error. A failed sysfs write for a
//! guest's request names the guest's VM among the last errors.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use vmpower_api::{CtlRequest, CtlResponse, ErrorKind};
use vmpower_cpufreq::Driver;
use vmpower_cpufreq::fake::{FailKind, FakeSysfs};
use vmpower_proto::{ScalingUnit, Verdict};
use vmpower_testkit::prelude::*;
use vmpowerd::config::VmConfig;
use vmpowerd::inventory::fake_proc::{FakeProc, FakeProcess};

fn set_pcpu(host: &Host, vm: &str, vcpu: u32, pcpu: u32) -> CtlResponse {
    host.ctl(&CtlRequest::SetPcpu {
        vm: vm.into(),
        vcpu,
        pcpu,
    })
}

fn vcpus(host: &Host, vm: &str) -> usize {
    match host.ctl(&CtlRequest::ShowVm { vm: vm.into() }) {
        CtlResponse::Ok(v) => v["vcpus"].as_array().map_or(0, Vec::len),
        CtlResponse::Error(e) => panic!("{e:?}"),
    }
}

/// Asserts that `response` is an error of `kind` whose message names every
/// one of `parts`.
fn assert_refused(response: CtlResponse, kind: ErrorKind, parts: &[&str]) {
    let CtlResponse::Error(e) = response else {
        panic!("accepted: {response:?}")
    };
    assert_eq!(e.kind, kind, "{}", e.message);
    for part in parts {
        assert!(e.message.contains(part), "{part:?} not in {:?}", e.message);
    }
}

/// `set-pcpu VM too_far 1` is refused as `kind` naming `parts`, and
/// changes nothing; `set-pcpu VM within 0` is taken; the VM then has
/// `vcpus` vCPUs.
fn refuses_then_takes(
    host: &Host,
    vm: &str,
    too_far: (u32, ErrorKind, &[&str]),
    within: u32,
    vcpus_after: usize,
) {
    let (vcpu, kind, parts) = too_far;
    assert_refused(set_pcpu(host, vm, vcpu, 1), kind, parts);
    let set = set_pcpu(host, vm, within, 0);
    assert!(matches!(set, CtlResponse::Ok(_)), "{set:?}");
    assert_eq!(vcpus(host, vm), vcpus_after);
}

/// A fake /proc holding one QEMU for `vm` with `vcpus` named vCPU threads.
fn qemu_in_proc(dir: &std::path::Path, vm: &str, vcpus: u32) -> FakeProc {
    let name = format!("guest={vm},debug-threads=on");
    let mut qemu = FakeProcess::new(5000).cmdline(&["qemu-system-x86_64", "-name", &name]);
    for v in 0..vcpus {
        qemu = qemu.thread(5001 + v, &format!("CPU {v}/KVM"), "1");
    }
    FakeProc::builder()
        .process(qemu)
        .in_dir(dir)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vcpu_past_the_configured_pcpus_is_refused_and_changes_nothing() {
    let mut host = Host::start(&[("vm1", vm(&[2, 3]))]).await;
    let parts = ["VM vm1", "vCPU 500", "2 vCPU", "pcpus"];
    refuses_then_takes(&host, "vm1", (500, ErrorKind::NotFound, &parts), 1, 2);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vcpu_past_what_proc_reports_is_refused() {
    let proc_dir = tempfile::tempdir().unwrap();
    let proc = qemu_in_proc(proc_dir.path(), "vm3", 2);
    let fake = FakeSysfs::builder(4).driver(Driver::AcpiCpufreq).build();
    // Declared with one pCPU, but QEMU runs two vCPUs: /proc wins.
    let mut host = Host::start_with(Arc::new(fake.unwrap()), &[("vm3", vm(&[2]))], |c| {
        c.proc_root = proc.path().to_owned();
    })
    .await;
    let parts = ["VM vm3", "vCPU 2", "2 vCPU", "QEMU"];
    refuses_then_takes(&host, "vm3", (2, ErrorKind::NotFound, &parts), 1, 2);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_nothing_sizes_takes_vcpus_up_to_the_kvm_limit() {
    // Declared without pcpus, and no QEMU in /proc.
    let mut host = Host::start(&[("vm9", VmConfig::default())]).await;
    // Nothing sizes vm9: any vCPU below the limit is taken.
    let parts = ["vm9", "4096", "4095"];
    refuses_then_takes(&host, "vm9", (4096, ErrorKind::Invalid, &parts), 3, 4);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_for_a_guest_names_its_vm_in_the_last_errors() {
    let mut host = Host::start(&[("vm1", vm(&[2, 3]))]).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    // A first request takes pCPU 2 over (governor, then speed).
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMax)).await,
        Verdict::Ack
    );
    let setspeed = Path::new("devices/system/cpu/cpu2/cpufreq/scaling_setspeed");
    host.fake
        .fail_next_write(setspeed, FailKind::PermissionDenied);
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Nack
    );
    let CtlResponse::Ok(status) = host.ctl(&CtlRequest::Status) else {
        panic!("status failed")
    };
    let last = &status["stats"]["last_errors"][0];
    assert_eq!(last["kind"], "sysfs", "{last}");
    assert_eq!(last["vm"], "vm1", "{last}");
    host.stop().await.unwrap();
}

//! Another writer of a held pCPU's cpufreq files (tuned, an operator's
//! `echo`), on the fake sysfs tree: the daemon notices it — at its
//! periodic check or at its next write — counts it, shows it in status,
//! and takes the pCPU back (`foreign_writer = "retake"`: the guest's next
//! request succeeds, and the stop restores the originals recorded first)
//! or gives it up (`"yield"`: the guest's next request is refused naming
//! why, and the other writer's settings stay, at stop too).

#![allow(clippy::unwrap_used)]

use vmpower_api::CtlRequest;
use vmpower_api::answers::{ForeignWrites, Status};
use vmpower_proto::{ScalingUnit, Verdict};
use vmpower_testkit::prelude::*;
use vmpowerd::config::ForeignWriter;

const GOVERNOR: &str = "devices/system/cpu/cpu1/cpufreq/scaling_governor";
const SETSPEED: &str = "devices/system/cpu/cpu1/cpufreq/scaling_setspeed";

async fn host(writer: ForeignWriter, check_ms: u64) -> Host {
    Host::start_adjusted(&[("vm1", vm(&[1]))], |c| {
        c.foreign_writer = writer;
        c.foreign_check_interval_ms = check_ms;
        c.fifos = false;
    })
    .await
}

/// A daemon whose vm1 (vCPU 0 on pCPU 1) asked for its minimum: pCPU 1
/// is held. Returns the QEMU-side listener (kept open) and the guest.
async fn held(
    writer: ForeignWriter,
    check_ms: u64,
) -> (Host, tokio::net::UnixListener, tokio::net::UnixStream) {
    let host = host(writer, check_ms).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    native(&mut guest).await;
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    (host, qemu, guest)
}

/// The daemon's status.
fn status(host: &Host) -> Status {
    serde_json::from_value(host.ok(&CtlRequest::Status)).unwrap()
}

/// pCPU 1's entry in status's `foreign_writes`, if any.
fn foreign(host: &Host) -> Option<ForeignWrites> {
    status(host)
        .stats
        .foreign_writes
        .into_iter()
        .find(|f| f.pcpu == 1)
}

/// Waits until status shows `n` foreign writes on pCPU 1.
async fn wait_foreign(host: &Host, n: u64) -> ForeignWrites {
    wait_for(|| foreign(host).is_some_and(|f| f.count == n)).await;
    foreign(host).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retake_sets_our_governor_and_level_again_and_restores_the_first_originals() {
    let (mut host, _qemu, mut guest) = held(ForeignWriter::Retake, 100).await;
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "800000");
    // tuned switches its profile.
    host.fake
        .external_kernel_write(GOVERNOR, "performance")
        .unwrap();
    let seen = wait_foreign(&host, 1).await;
    assert_eq!(seen.handled, "retaken", "{seen:?}");
    assert!(!seen.yielded, "{seen:?}");
    let detail = &seen.detail;
    assert!(
        detail.contains("scaling_governor") && detail.contains("performance"),
        "{detail}"
    );
    assert_eq!(host.cpu_file(1, "scaling_governor"), "userspace");
    assert_eq!(host.cpu_file(1, "scaling_setspeed"), "800000");
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMax)).await,
        Verdict::Ack
    );
    assert_ne!(host.cpu_file(1, "scaling_setspeed"), "800000");
    host.stop().await.unwrap();
    // The fake acpi-cpufreq host boots with schedutil, as a real one.
    assert_eq!(host.cpu_file(1, "scaling_governor"), "schedutil");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_finds_another_writers_value_retakes_and_succeeds() {
    // No periodic check within the test: only the write can notice.
    let (mut host, _qemu, mut guest) = held(ForeignWriter::Retake, 3_600_000).await;
    // cpupower frequency-set -f, behind our back.
    host.fake
        .external_kernel_write(SETSPEED, "2000000")
        .unwrap();
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMax)).await,
        Verdict::Ack
    );
    let seen = wait_foreign(&host, 1).await;
    assert_eq!(seen.handled, "retaken", "{seen:?}");
    assert!(seen.detail.contains("scaling_setspeed"), "{seen:?}");
    assert_ne!(host.cpu_file(1, "scaling_setspeed"), "2000000");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yield_gives_the_pcpu_up_and_refuses_requests_for_it_naming_why() {
    let (mut host, _qemu, mut guest) = held(ForeignWriter::Yield, 100).await;
    host.fake
        .external_kernel_write(GOVERNOR, "performance")
        .unwrap();
    let seen = wait_foreign(&host, 1).await;
    assert_eq!(seen.handled, "yielded", "{seen:?}");
    assert!(seen.yielded, "{seen:?}");
    let now = status(&host);
    assert!(!now.pcpus_managed.contains(&1), "{now:?}");
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMax)).await,
        Verdict::Nack
    );
    let now = status(&host);
    assert_eq!(
        now.stats.rejections.get("yielded_to_foreign_writer"),
        Some(&1),
        "{now:?}"
    );
    let refused = now
        .stats
        .last_errors
        .iter()
        .find(|e| e.label == "yielded_to_foreign_writer")
        .unwrap_or_else(|| panic!("{now:?}"));
    assert!(refused.detail.contains("another writer"), "{refused:?}");
    // The other writer's setting is left alone, now and at stop.
    assert_eq!(host.cpu_file(1, "scaling_governor"), "performance");
    host.stop().await.unwrap();
    assert_eq!(host.cpu_file(1, "scaling_governor"), "performance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_set_cpu_freq_takes_a_yielded_pcpu_back_recording_it_afresh() {
    let (mut host, _qemu, mut guest) = held(ForeignWriter::Yield, 100).await;
    host.fake
        .external_kernel_write(GOVERNOR, "performance")
        .unwrap();
    wait_foreign(&host, 1).await;
    let set = |op| CtlRequest::SetCpuFreq { cpus: vec![1], op };
    host.ok(&set(vmpower_api::FreqOp::Min));
    assert_eq!(host.cpu_file(1, "scaling_governor"), "userspace");
    assert!(!foreign(&host).unwrap().yielded);
    host.ok(&set(vmpower_api::FreqOp::Release));
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMax)).await,
        Verdict::Ack
    );
    // Taken over afresh: what the other writer left is what comes back.
    host.stop().await.unwrap();
    assert_eq!(host.cpu_file(1, "scaling_governor"), "performance");
}

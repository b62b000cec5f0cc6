//! The daemon runs on the backends it is given, not on the machine the
//! test runs on: branch counters (present or not), the VF control. Each
//! test gives fake hardware whose answer differs from any real host's.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use vmpower_api::{CtlRequest, CtlResponse, ErrorKind};
use vmpower_cpufreq::CpuId;
use vmpower_proto::{Policy, PolicyKind, RequestBody, VcpuList, Verdict};
use vmpower_testkit::prelude::*;
use vmpower_testkit::records::named;
use vmpowerd::backends::FakeVfControl;
use vmpowerd::branch::fake::FakeBranchCounters;
use vmpowerd::traffic::VfEntry;

/// A daemon on fake hardware with vm1's vCPUs 0 and 1 on pCPUs 1 and 2.
async fn fake_hardware(adjust: impl FnOnce(Host) -> Host) -> Host {
    let host = Host::prepare(
        vmpower_testkit::FakeHost::new(),
        &[("vm1", vm(&[1, 2]))],
        |_| {},
    );
    let mut host = adjust(host.with_fake_hardware());
    host.launch().await;
    host
}

/// vm1's BRANCH_RATIO policy on vCPUs 0 and 1.
fn branch_policy() -> Vec<u8> {
    let policy = Policy::new(
        PolicyKind::BranchRatio,
        VcpuList::from_slice(&[0, 1]).unwrap(),
    );
    named("vm1", RequestBody::SetPolicy(policy))
}

fn rejections(host: &Host, label: &str) -> u64 {
    host.ok(&CtlRequest::Status)["stats"]["rejections"][label]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_branch_counters_a_branch_policy_is_served_and_sampled() {
    let counters = FakeBranchCounters::new();
    let given = Box::new(counters.clone());
    let mut host = fake_hardware(|h| h.with_branch(given)).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    assert_eq!(call(&mut guest, &branch_policy()).await, Verdict::Ack);
    wait_for(|| counters.last_asked() == BTreeSet::from([CpuId(1), CpuId(2)])).await;
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_no_branch_counters_a_branch_policy_is_refused() {
    let mut host = fake_hardware(|h| h).await;
    let qemu = host.qemu("vm1", 0);
    let mut guest = accept(&qemu).await;
    assert_eq!(call(&mut guest, &branch_policy()).await, Verdict::Nack);
    assert_eq!(rejections(&host, "no_branch_counters"), 1);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vf_control_is_the_one_given() {
    let vfs = FakeVfControl::new();
    let vf = |n: u32| VfEntry {
        vf: n,
        ..VfEntry::default()
    };
    vfs.add_pf("fakepf0", vec![vf(0), vf(1)]);
    let mut host = fake_hardware(|h| h.with_vfs(&vfs)).await;
    let listed = host.ok(&CtlRequest::ShowVfs {
        pf: "fakepf0".into(),
    });
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    host.ok(&CtlRequest::SetVfMac {
        pf: "fakepf0".into(),
        vf: 1,
        mac: "02:00:00:00:00:07".into(),
    });
    assert_eq!(vfs.vfs("fakepf0")[1].mac.to_string(), "02:00:00:00:00:07");
    let request = CtlRequest::ShowVfs { pf: "eth9".into() };
    let CtlResponse::Error(e) = host.ctl(&request) else {
        panic!("a PF the fake lacks was listed")
    };
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    host.stop().await.unwrap();
}

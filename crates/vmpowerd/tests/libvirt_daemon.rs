//! The daemon with `libvirt_uri` learns a VM, its pins and its channel
//! socket from libvirt alone (libvirt's test driver; the test plays QEMU
//! at the socket path the domain XML names, outside the channel dir).

#![cfg(feature = "libvirt")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tokio::net::UnixListener;
use vmpower_cpufreq::Driver;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_proto::{ScalingUnit, Verdict};
use vmpower_testkit::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_pins_and_channel_come_from_libvirt_alone() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("domain-1-vmlv-agent.0");
    // QEMU (played by the test) listens where libvirt put the channel.
    let qemu = UnixListener::bind(&socket).unwrap();
    let xml = format!(
        "<node><cpu><mhz>2000</mhz><model>x86_64</model><active>4</active>\
         <nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>\
         <memory>8388608</memory>\
         <domain type='test'><name>vmlv</name><memory>262144</memory>\
         <vcpu placement='static'>2</vcpu><cputune><vcpupin vcpu='0' cpuset='3'/>\
         <vcpupin vcpu='1' cpuset='1'/></cputune><os><type arch='x86_64'>hvm</type></os>\
         <devices><controller type='virtio-serial' index='0'/>\
         <channel type='unix'><source mode='bind' path='{}'/>\
         <target type='virtio' name='virtio.serial.port.poweragent.0'/></channel>\
         </devices></domain></node>",
        socket.display()
    );
    let node = dir.path().join("node.xml");
    std::fs::write(&node, xml).unwrap();
    let uri = format!("test://{}", node.display());

    let fake = Arc::new(
        FakeSysfs::builder(4)
            .driver(Driver::AcpiCpufreq)
            .build()
            .unwrap(),
    );
    let mut host = Host::start_with(fake, &[], |c| c.libvirt_uri = Some(uri)).await;
    let mut guest = accept(&qemu).await;
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(
        host.cpu_file(3, "scaling_setspeed"),
        "800000",
        "vCPU 0 is pinned to 3"
    );
    assert_eq!(
        call(&mut guest, &power(1, ScalingUnit::ScaleMin)).await,
        Verdict::Ack
    );
    assert_eq!(
        host.cpu_file(1, "scaling_setspeed"),
        "800000",
        "vCPU 1 is pinned to 1"
    );
    // set-pcpu on a libvirt VM re-pins through libvirt.
    let moved = host.ctl(&vmpower_api::CtlRequest::SetPcpu {
        vm: "vmlv".into(),
        vcpu: 0,
        pcpu: 2,
    });
    let vmpower_api::CtlResponse::Ok(v) = moved else {
        panic!("{moved:?}")
    };
    assert_eq!(v["repinned_by_libvirt"], true, "{v}");
    assert_eq!(
        call(&mut guest, &power(0, ScalingUnit::ScaleMax)).await,
        Verdict::Ack
    );
    assert_eq!(
        host.cpu_file(2, "scaling_setspeed"),
        "2301000",
        "vCPU 0 now on 2"
    );
    host.stop().await.unwrap();
}

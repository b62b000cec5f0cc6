//! The libvirt inventory source against libvirt's test driver: no daemon,
//! each test its own node XML in a temp dir (`test:///ABS/node.xml`; every
//! connection to such a URI gets a private copy of the node).
//!
//! libvirt's test driver sends no TUNABLE events; the TUNABLE callback is
//! tested by calling it directly in the crate's unit tests
//! (`inventory::libvirt::sys`).

#![cfg(feature = "libvirt")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use virt::domain::Domain;
use vmpower_cpufreq::CpuId;
use vmpower_engine::VmId;
use vmpowerd::inventory::libvirt::{
    LibvirtError, LibvirtEvent, LibvirtPlacement, LibvirtWatcher, Lifecycle,
};
use vmpowerd::inventory::{PlacementSourceError, SourceKind, VcpuPlacement, VmTarget};

/// A domain for the node file: name, pins (vCPU → cpuset), channel sockets.
fn domain(name: &str, vcpus: u32, pins: &[(u32, &str)], channels: &[(&Path, &str)]) -> String {
    let pins: String = pins
        .iter()
        .map(|(v, c)| format!("<vcpupin vcpu='{v}' cpuset='{c}'/>"))
        .collect();
    let channels: String = channels
        .iter()
        .map(|(path, target)| {
            format!(
                "<channel type='unix'><source mode='bind' path='{}'/>\
                 <target type='virtio' name='{target}'/></channel>",
                path.display()
            )
        })
        .collect();
    format!(
        "<domain type='test'><name>{name}</name><memory>262144</memory>\
         <vcpu placement='static'>{vcpus}</vcpu><cputune>{pins}</cputune>\
         <os><type arch='x86_64'>hvm</type></os>\
         <devices><controller type='virtio-serial' index='0'/>{channels}</devices></domain>"
    )
}

/// Writes a node with 16 CPUs and `domains`; returns the dir and the URI.
fn node(domains: &[String]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let xml = format!(
        "<node><cpu><mhz>2000</mhz><model>x86_64</model><active>16</active>\
         <nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>2</threads></cpu>\
         <memory>8388608</memory>{}</node>",
        domains.concat()
    );
    let path = dir.path().join("node.xml");
    std::fs::write(&path, xml).expect("write node.xml");
    let uri = format!("test://{}", path.display());
    (dir, uri)
}

fn cpus(c: &[u32]) -> BTreeSet<CpuId> {
    c.iter().map(|c| CpuId(*c)).collect()
}

#[tokio::test]
async fn placement_comes_from_vcpu_pins() {
    let (_dir, uri) = node(&[domain("vm1", 3, &[(0, "1"), (1, "2-3"), (2, "12")], &[])]);
    let source = LibvirtPlacement::connect(&uri).expect("connect");
    assert_eq!(source.kind(), SourceKind::Libvirt);
    let found = source
        .placement(&VmTarget::new(VmId::new("vm1")))
        .await
        .expect("libvirt answers")
        .expect("vm1 runs");
    assert_eq!(found.placement.vcpus, 3);
    assert_eq!(
        found.placement.affinity,
        BTreeMap::from([(0, cpus(&[1])), (1, cpus(&[2, 3])), (2, cpus(&[12]))])
    );
    assert!(found.threads.is_empty());
    assert_eq!(found.pid, None);
}

#[tokio::test]
async fn pinning_through_libvirt_moves_the_vcpu() {
    let (_dir, uri) = node(&[domain("vm1", 2, &[(0, "0"), (1, "1")], &[])]);
    let source = LibvirtPlacement::connect(&uri).expect("connect");
    let vm = VmId::new("vm1");
    source.pin_vcpu(&vm, 1, &cpus(&[4, 5])).await.expect("pin");
    let d = source.domain(&vm).await.expect("ok").expect("vm1");
    assert_eq!(
        d.placement.affinity,
        BTreeMap::from([(0, cpus(&[0])), (1, cpus(&[4, 5]))])
    );

    let err = source
        .pin_vcpu(&vm, 0, &cpus(&[16]))
        .await
        .expect_err("the host has 16 CPUs");
    assert!(
        matches!(
            err,
            LibvirtError::BadPin {
                vcpu: 0,
                host_cpus: 16,
                ..
            }
        ),
        "{err:?}"
    );
    let (_dir2, uri2) = node(&[domain("vm-off", 1, &[(0, "0")], &[]).replace(
        "<domain type='test'>",
        "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\
         <test:runstate>5</test:runstate>",
    )]);
    let off = LibvirtPlacement::connect(&uri2).expect("connect");
    let err = off
        .pin_vcpu(&VmId::new("vm-off"), 0, &cpus(&[1]))
        .await
        .expect_err("shut off");
    assert!(
        matches!(&err, LibvirtError::NotRunning { domain, .. } if domain == "vm-off"),
        "{err:?}"
    );
    let err = source
        .pin_vcpu(&VmId::new("nope"), 0, &cpus(&[1]))
        .await
        .expect_err("no such domain");
    assert!(
        matches!(&err, LibvirtError::Domain { domain, .. } if domain == "nope"),
        "{err:?}"
    );
}

#[tokio::test]
async fn channel_paths_come_from_the_live_xml() {
    let (dir, _) = node(&[]);
    let ch0 = dir.path().join("vm1.0");
    let ch1 = dir.path().join("vm1.1");
    let ga = dir.path().join("ga");
    let (_dir2, uri) = node(&[domain(
        "vm1",
        2,
        &[(0, "0"), (1, "1")],
        &[
            (&ch0, "virtio.serial.port.poweragent.0"),
            (&ga, "org.qemu.guest_agent.0"),
            (&ch1, "virtio.serial.port.poweragent.1"),
        ],
    )]);
    let source = LibvirtPlacement::connect(&uri).expect("connect");
    let d = source
        .domain(&VmId::new("vm1"))
        .await
        .expect("libvirt answers")
        .expect("vm1 exists");
    assert!(d.active);
    let agents: Vec<(u32, PathBuf)> = d
        .agent_channels()
        .map(|(n, c)| (n, c.path.clone()))
        .collect();
    assert_eq!(agents, vec![(0, ch0.clone()), (1, ch1.clone())]);
    assert_eq!(d.channels.len(), 3);
    let target = d.target();
    assert_eq!(target.vm, VmId::new("vm1"));
    assert_eq!(target.channel_sockets, vec![ch0, ch1]);
}

#[tokio::test]
async fn domains_are_listed_and_unknown_or_stopped_ones_are_not_placed() {
    let (_dir, uri) = node(&[
        domain("vm-b", 1, &[(0, "0")], &[]),
        domain("vm-a", 1, &[(0, "5")], &[]),
        domain("vm-c", 1, &[(0, "5")], &[]).replace(
            "<domain type='test'>",
            "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\
             <test:runstate>5</test:runstate>",
        ),
    ]);
    let source = LibvirtPlacement::connect(&uri).expect("connect");
    let names = source.list_domains().await.expect("list");
    assert_eq!(
        names,
        vec![VmId::new("vm-a"), VmId::new("vm-b"), VmId::new("vm-c")]
    );

    let unknown = VmTarget::new(VmId::new("nope"));
    assert!(
        source
            .placement(&unknown)
            .await
            .expect("no error")
            .is_none()
    );
    assert!(
        source
            .domain(&VmId::new("nope"))
            .await
            .expect("ok")
            .is_none()
    );

    // vm-c is defined but shut off: known, not placed.
    let off = source
        .domain(&VmId::new("vm-c"))
        .await
        .expect("ok")
        .expect("known");
    assert!(!off.active);
    assert_eq!(off.placement.vcpus, 0);
    let target = VmTarget::new(VmId::new("vm-c"));
    assert!(source.placement(&target).await.expect("no error").is_none());
}

#[test]
fn a_bad_uri_is_a_typed_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = format!("test://{}/missing.xml", dir.path().display());
    let err = LibvirtPlacement::connect(&uri).expect_err("no such node file");
    assert!(matches!(&err, LibvirtError::Connect { uri: u, .. } if *u == uri));
    assert!(err.to_string().contains(&uri));
}

/// The next event, failing the test if none comes within a generous bound.
async fn next(rx: &mut mpsc::Receiver<LibvirtEvent>) -> LibvirtEvent {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an event within 30 s")
        .expect("the watcher is alive")
}

async fn expect_lifecycle(rx: &mut mpsc::Receiver<LibvirtEvent>, vm: &str, want: Lifecycle) {
    match next(rx).await {
        LibvirtEvent::Lifecycle { vm: got, event, .. } => {
            assert_eq!((got.as_str(), event), (vm, want));
        }
        other => panic!("expected {want:?} for {vm}, got {other:?}"),
    }
}

#[tokio::test]
async fn lifecycle_events_arrive_on_the_channel() {
    let (dir, uri) = node(&[domain("vm1", 1, &[(0, "0")], &[])]);
    let (watcher, mut rx) = LibvirtWatcher::start_async(&uri).await.expect("watch");
    assert_eq!(watcher.uri(), uri);
    assert!(watcher.is_alive());
    let conn = watcher.connect();

    let vm1 = Domain::lookup_by_name(conn, "vm1").expect("vm1");
    vm1.suspend().expect("suspend");
    expect_lifecycle(&mut rx, "vm1", Lifecycle::Suspended).await;
    vm1.resume().expect("resume");
    expect_lifecycle(&mut rx, "vm1", Lifecycle::Resumed).await;
    vm1.destroy().expect("destroy");
    expect_lifecycle(&mut rx, "vm1", Lifecycle::Stopped).await;
    vm1.create().expect("start");
    expect_lifecycle(&mut rx, "vm1", Lifecycle::Started).await;
    drop(vm1);

    let xml = domain("vm2", 1, &[(0, "3")], &[(&dir.path().join("vm2.0"), "x")]);
    let vm2 = Domain::define_xml(conn, &xml).expect("define vm2");
    expect_lifecycle(&mut rx, "vm2", Lifecycle::Defined).await;
    vm2.undefine().expect("undefine vm2");
    expect_lifecycle(&mut rx, "vm2", Lifecycle::Undefined).await;
    drop(vm2);
    assert_eq!(watcher.dropped(), 0);

    // Dropping the watcher deregisters: the channel then ends.
    drop(watcher);
    let end = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the channel ends within 30 s");
    assert_eq!(end, None);
}

#[tokio::test]
async fn a_libvirt_error_names_the_source_in_the_inventory() {
    // A placement error converts into the inventory's error with its kind.
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = format!("test://{}/missing.xml", dir.path().display());
    let source = LibvirtPlacement::connect(&uri).expect_err("no node file");
    let e = PlacementSourceError::Libvirt {
        vm: VmId::new("vm1"),
        source,
    };
    assert_eq!(e.kind(), SourceKind::Libvirt);
    assert!(e.to_string().contains("vm1"));
}

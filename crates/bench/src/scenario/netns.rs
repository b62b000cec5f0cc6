//! Real traffic for the policy benchmarks: a network namespace with veth
//! pairs whose host ends (in the bench's namespace, where the daemon
//! samples) carry the policies' MACs, and TRAFFIC policy records.
//!
//! ## Behavior
//! - The namespace and pairs come from [`vmpower_netlab`]: links are made
//!   with one `ip -batch` per namespace side, and the guard deletes the
//!   pairs and the namespace when dropped, also on error. Needs root and
//!   iproute2.
//! - Host ends are named `vb<pid>-<n>` (unique per run, within IFNAMSIZ);
//!   peer ends `p<i>` inside the namespace.
//! - Traffic goes from the namespace end to the host end's link-local
//!   address with a permanent neighbour entry (no ARP).

use anyhow::Context;
pub use vmpower_netlab::enter;
use vmpower_netlab::{LinkNet, VethSpec, unique_name};
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{
    Layout, MacAddr, MacList, Policy, PolicyKind, Request, RequestBody, TrafficThresholds,
    VcpuList, VmName,
};

/// A namespace holding the peer ends of `pairs` veth pairs; removed (with
/// the pairs) on drop.
#[derive(Debug)]
pub struct Netns {
    /// The namespace's name.
    pub name: String,
    /// The host ends' MACs, pair by pair.
    pub macs: Vec<MacAddr>,
    /// The host end's address of pair 0.
    pub host_addr: String,
    /// The peer end's address of pair 0.
    pub peer_addr: String,
    /// Deletes the pairs and the namespace when dropped.
    _guard: vmpower_netlab::Netns,
}

impl Netns {
    /// Creates the namespace and `pairs` veth pairs; pair 0 gets
    /// addresses (a /30 of 169.254.0.0/16: host .1, peer .2).
    pub fn create(tag: &str, pairs: usize) -> anyhow::Result<Self> {
        vmpower_netlab::available().context("network namespace and veth pairs")?;
        let pid = std::process::id();
        let mut guard = vmpower_netlab::Netns::create(&unique_name(&format!("nb{tag}"))?)?;
        let [_, _, p2, p3] = pid.to_be_bytes();
        let mut specs = Vec::with_capacity(pairs);
        for i in 0..pairs {
            let [_, _, a, b] = u32::try_from(i)?.to_be_bytes();
            specs.push(VethSpec {
                host: unique_name("vb")?,
                peer: format!("p{i}"),
                mac: Some([0x02, p2 ^ 0x5a, p3, a, b, 0x01]),
            });
        }
        guard.add_veths(&specs)?;
        let net = LinkNet::next();
        if let Some(first) = specs.first() {
            guard.address(first, &net)?;
        }
        Ok(Netns {
            name: guard.name().to_owned(),
            macs: specs.iter().filter_map(|s| s.mac.map(MacAddr)).collect(),
            host_addr: net.host.to_string(),
            peer_addr: net.peer.to_string(),
            _guard: guard,
        })
    }
}

/// A PKT_POLICY record: TRAFFIC on vCPU 0 of `vm` for `mac`.
pub fn traffic_policy(
    vm: &str,
    mac: MacAddr,
    avg_pps: u32,
    max_pps: u32,
) -> anyhow::Result<Vec<u8>> {
    let policy = Policy {
        macs: MacList::from_slice(&[mac])?,
        traffic: TrafficThresholds {
            min_pps: 0,
            avg_pps,
            max_pps,
        },
        ..Policy::new(PolicyKind::Traffic, VcpuList::from_slice(&[0])?)
    };
    let req = Request {
        vm_name: VmName::new(vm).with_context(|| format!("bad VM name {vm}"))?,
        body: RequestBody::SetPolicy(policy),
    };
    Ok(encode_request_record(&req, Layout::Current)?
        .as_slice()
        .to_vec())
}

/// The daemon's config for `vms` VMs (VM i on pCPU `pcpu(i)`) sampling
/// traffic every `interval_ms`.
pub fn config(vms: usize, interval_ms: u64, pcpu: impl Fn(usize) -> u32) -> String {
    let mut text = format!("fifos = false\ntraffic_interval_ms = {interval_ms}\n");
    for i in 0..vms {
        let pcpu = pcpu(i);
        text.push_str(&format!(
            "[vm.{}]\npcpus = [{pcpu}]\n",
            crate::host::vm_name(i)
        ));
    }
    text
}

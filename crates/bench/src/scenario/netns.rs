//! Real traffic for the policy benchmarks: a network namespace with veth
//! pairs whose host ends (in the bench's namespace, where the daemon
//! samples) carry the policies' MACs, and TRAFFIC policy records.
//!
//! ## Behavior
//! - Links are made with one `ip -batch` per namespace side; the guard
//!   deletes the namespace (and with it every pair) when dropped, also on
//!   error. Needs root and iproute2.
//! - Traffic goes from the namespace end to the host end's link-local
//!   address with a permanent neighbour entry (no ARP).

use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{
    CoreType, HourSchedule, Layout, MacAddr, MacList, Policy, PolicyKind, Request, RequestBody,
    TrafficThresholds, VcpuList, VmName, WorkloadLevel,
};

/// A namespace holding the peer ends of `pairs` veth pairs.
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
}

fn ip_batch(args: &[&str], lines: &str) -> anyhow::Result<()> {
    let mut child = Command::new("ip")
        .args(args)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run ip (iproute2 needed)")?;
    child
        .stdin
        .take()
        .context("ip's stdin")?
        .write_all(lines.as_bytes())
        .context("write to ip -batch")?;
    let out = child.wait_with_output().context("wait for ip")?;
    if !out.status.success() {
        bail!(
            "ip -batch failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Netns {
    /// Creates the namespace and `pairs` veth pairs; pair 0 gets
    /// addresses (169.254.N.1/30 host, .2 peer) and is up.
    pub fn create(tag: &str, pairs: usize) -> anyhow::Result<Self> {
        if !rustix::process::geteuid().is_root() {
            bail!("needs root (network namespace and veth pairs)");
        }
        let pid = std::process::id();
        let name = format!("vmpb{tag}{pid}");
        let [_, _, p2, p3] = pid.to_be_bytes();
        let mut ns = Netns {
            name: name.clone(),
            macs: Vec::new(),
            host_addr: format!("169.254.{}.1", 1 + pid % 250),
            peer_addr: format!("169.254.{}.2", 1 + pid % 250),
        };
        ip_batch(&[], &format!("netns add {name}\n"))?;
        let mut lines = String::new();
        for i in 0..pairs {
            let [_, _, a, b] = u32::try_from(i)?.to_be_bytes();
            let mac = MacAddr([0x02, p2 ^ 0x5a, p3, a, b, 0x01]);
            ns.macs.push(mac);
            lines.push_str(&format!(
                "link add vpb{tag}{i}h address {mac} type veth peer name vpb{tag}{i}p netns {name}\nlink set vpb{tag}{i}h up\n"
            ));
        }
        lines.push_str(&format!("addr add {}/30 dev vpb{tag}0h\n", ns.host_addr));
        ip_batch(&[], &lines)?;
        let mut inner = String::new();
        for i in 0..pairs {
            inner.push_str(&format!("link set vpb{tag}{i}p up\n"));
        }
        inner.push_str(&format!(
            "addr add {}/30 dev vpb{tag}0p\nneigh replace {} lladdr {} dev vpb{tag}0p nud permanent\n",
            ns.peer_addr, ns.host_addr, ns.macs[0]
        ));
        ip_batch(&["-n", &name], &inner)?;
        Ok(ns)
    }
}

/// Moves the calling thread into namespace `name` (for a sender thread).
pub fn enter(name: &str) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(format!("/run/netns/{name}")).context("open the namespace file")?;
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .context("setns into the bench namespace")?;
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the peers, and with them the pairs.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
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
        kind: PolicyKind::Traffic,
        cores: VcpuList::from_slice(&[0])?,
        core_type: CoreType::Virtual,
        macs: MacList::from_slice(&[mac])?,
        traffic: TrafficThresholds {
            min_pps: 0,
            avg_pps,
            max_pps,
        },
        hours: HourSchedule::default(),
        workload: WorkloadLevel::High,
        turbo_boost: false,
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

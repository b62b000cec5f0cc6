//! One domain as libvirt describes it: state, vCPU pinning and count, and
//! channel sockets, read in one go ([`query`]). Blocking calls only: the
//! async wrappers live in the parent module.
//!
//! ## Behavior
//! - Pinning comes from virDomainGetVcpuPinInfo on the live domain, with CPU
//!   maps sized for the larger of virNodeGetCPUMap's and virNodeGetInfo's
//!   CPU counts (libvirt's test driver reports fewer in the first).
//! - A domain that does not run has an empty placement; its channels come
//!   from its persistent XML then.

use std::ffi::c_int;

use virt::domain::Domain;
use virt::error::ErrorNumber;
use vmpower_engine::{Placement, VmId};

use super::xml::{self, DomainChannel};
use super::{Conn, LibvirtError, MAX_CPUS, sys};
use crate::inventory::VmTarget;

/// What libvirt says about one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibvirtDomain {
    /// The domain name (the VM's name in the daemon).
    pub vm: VmId,
    /// Whether it runs (a defined, stopped domain has no placement).
    pub active: bool,
    /// Its pinning and current vCPU count; empty when not active.
    pub placement: Placement,
    /// Its unix virtio channels, from the live XML when active.
    pub channels: Vec<DomainChannel>,
}

impl LibvirtDomain {
    /// The power agent's channel sockets (`virtio.serial.port.poweragent.N`),
    /// by `N`.
    pub fn agent_channels(&self) -> impl Iterator<Item = (u32, &DomainChannel)> {
        self.channels
            .iter()
            .filter_map(|c| c.agent_index.map(|n| (n, c)))
    }

    /// A [`VmTarget`] naming the VM and its power agent channel sockets.
    pub fn target(&self) -> VmTarget {
        self.agent_channels()
            .fold(VmTarget::new(self.vm.clone()), |t, (_, c)| {
                t.with_channel_socket(&c.path)
            })
    }
}

/// Reads one domain (blocking).
pub(super) fn query(conn: &Conn, vm: &VmId) -> Result<Option<LibvirtDomain>, LibvirtError> {
    let name = vm.as_str();
    let dom = match Domain::lookup_by_name(conn.raw(), name) {
        Ok(d) => d,
        Err(e) if e.code() == ErrorNumber::NoDomain => return Ok(None),
        Err(e) => return Err(conn.domain_error(name, "looking it up", e)),
    };
    let active = dom
        .is_active()
        .map_err(|e| conn.domain_error(name, "asking whether it runs", e))?;
    let xml = dom
        .get_xml_desc(0)
        .map_err(|e| conn.domain_error(name, "reading its XML", e))?;
    let channels = xml::channels(&xml).map_err(|source| LibvirtError::Xml {
        uri: conn.uri().to_owned(),
        domain: name.to_owned(),
        source,
    })?;
    let mut placement = Placement::default();
    if active {
        let vcpus = dom
            .get_vcpus_flags(virt::sys::VIR_DOMAIN_AFFECT_LIVE)
            .map_err(|e| conn.domain_error(name, "counting its vCPUs", e))?;
        let host_cpus = host_cpus(conn, name)?;
        let too_many = |what, value: u32| LibvirtError::TooMany {
            uri: conn.uri().to_owned(),
            domain: name.to_owned(),
            what,
            value: value.into(),
        };
        let vcpus_c = bounded(vcpus).ok_or_else(|| too_many("its vCPU count", vcpus))?;
        let pins = sys::vcpu_pin_info(&dom, vcpus_c, host_cpus)
            .map_err(|e| conn.domain_error(name, "reading its vCPU pinning", e))?;
        placement.vcpus = usize::try_from(vcpus).map_err(|_| too_many("its vCPU count", vcpus))?;
        placement.affinity = (0..).zip(pins).filter(|(_, s)| !s.is_empty()).collect();
    }
    Ok(Some(LibvirtDomain {
        vm: vm.clone(),
        active,
        placement,
        channels,
    }))
}

/// The host's CPU count for CPU maps: the larger of virNodeGetCPUMap's and
/// virNodeGetInfo's.
pub(super) fn host_cpus(conn: &Conn, domain: &str) -> Result<c_int, LibvirtError> {
    let map = sys::node_cpu_map_len(conn.raw())
        .map_err(|e| conn.error("counting host CPUs (virNodeGetCPUMap)", e))?;
    let info = conn
        .raw()
        .get_node_info()
        .map_err(|e| conn.error("reading node info", e))?;
    let cpus = bounded(info.cpus).ok_or_else(|| LibvirtError::TooMany {
        uri: conn.uri().to_owned(),
        domain: domain.to_owned(),
        what: "the host CPU count",
        value: info.cpus.into(),
    })?;
    Ok(map.max(cpus))
}

/// `n` as a C int when at most [`MAX_CPUS`].
fn bounded(n: u32) -> Option<c_int> {
    (n <= MAX_CPUS).then(|| c_int::try_from(n).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded() {
        assert_eq!(bounded(0), Some(0));
        assert_eq!(bounded(MAX_CPUS), Some(1 << 16));
        assert_eq!(bounded(MAX_CPUS + 1), None);
        assert_eq!(bounded(u32::MAX), None);
    }

    #[test]
    fn target_lists_only_agent_channels() {
        let d = LibvirtDomain {
            vm: VmId::new("vm1"),
            active: true,
            placement: Placement::default(),
            channels: xml::channels(
                "<domain><devices>\
                 <channel type='unix'><source mode='bind' path='/c/vm1.1'/>\
                 <target type='virtio' name='virtio.serial.port.poweragent.1'/></channel>\
                 <channel type='unix'><source mode='bind' path='/c/ga'/>\
                 <target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
                 </devices></domain>",
            )
            .expect("well-formed"),
        };
        let t = d.target();
        assert_eq!(t.vm, VmId::new("vm1"));
        assert_eq!(
            t.channel_sockets,
            vec![std::path::PathBuf::from("/c/vm1.1")]
        );
        assert_eq!(d.agent_channels().map(|(n, _)| n).collect::<Vec<_>>(), [1]);
    }
}

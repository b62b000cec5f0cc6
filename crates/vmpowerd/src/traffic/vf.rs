//! SR-IOV VFs: source (1) of the traffic counters, and the VF management
//! behind `vmpowerctl set-vf-mac PF VF MAC` and `vmpowerctl show-vfs PF`.
//!
//! A PF reports its VFs in `IFLA_VFINFO_LIST` when the request carries
//! `IFLA_EXT_MASK = RTEXT_FILTER_VF`: per VF an `IFLA_VF_INFO` nest with
//! `IFLA_VF_MAC` (`struct ifla_vf_mac { u32 vf; u8 mac[32]; }`) and, from
//! drivers that implement `ndo_get_vf_stats`, an `IFLA_VF_STATS` nest with
//! `IFLA_VF_STATS_RX_PACKETS`. This works for every such driver, unlike
//! DPDK's i40e-only call. Setting a MAC is an `RTM_SETLINK` on the PF with
//! `IFLA_VFINFO_LIST { IFLA_VF_INFO { IFLA_VF_MAC } }`.
//!
//! ## Behavior
//! The VF source counts the VF's *received* packets as seen by the PF
//! (the guest's receive side), and its drops as
//! `IFLA_VF_STATS_RX_DROPPED`: packets the PF had for the VF but could not
//! place in its receive ring, i.e. the guest did not post buffers fast
//! enough (drivers that do not report it give no drop counter). A VF that has the MAC but no statistics is
//! not a match; the caller tries the other sources and, if none finds the
//! MAC, reports [`MissingReason::VfWithoutStats`].
//!
//! ## Limitations
//! No SR-IOV hardware was available: the messages are tested against
//! bytes built from `if_link.h`'s layout and constructed replies, not a PF.

use super::links::{LinkEntry, MacIndex, VfEntry};
use super::netlink::{REQUEST_ACK, RtSocket, encode};
use super::{LinkTable, MacAddr, MacReading, MissingReason, SourceKind, TrafficError};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage, LinkVfInfo, VfInfo, VfInfoMac};

/// The VF carrying `mac`: `Found` for the first (by PF ifindex, then VF
/// index) with statistics, else `Missing(VfWithoutStats)` for the first
/// without, else `None`.
pub(super) fn find(table: &LinkTable, index: &MacIndex, mac: MacAddr) -> Option<MacReading> {
    let candidates = index.vfs.get(&mac)?;
    let with_stats = candidates.iter().find_map(|&(li, vi)| {
        let (pf, vf) = (&table.links[li], &table.links[li].vfs[vi]);
        vf.rx_packets.map(|rx_packets| MacReading::Found {
            source: SourceKind::Vf {
                pf: pf.ifname.clone(),
                vf: vf.vf,
            },
            rx_packets,
            drops: vf.rx_drops,
        })
    });
    with_stats.or_else(|| {
        let &(li, vi) = candidates.first()?;
        let (pf, vf) = (&table.links[li], &table.links[li].vfs[vi]);
        Some(MacReading::Missing(MissingReason::VfWithoutStats {
            pf: pf.ifname.clone(),
            vf: vf.vf,
        }))
    })
}

/// The `RTM_SETLINK` request setting VF `vf` of the PF with interface
/// index `pf_index` to `mac`, asking for an ACK.
pub fn set_vf_mac_request(pf_index: u32, vf: u32, mac: MacAddr, seq: u32) -> Vec<u8> {
    let mut msg = LinkMessage::default();
    msg.header.index = pf_index;
    let info = LinkVfInfo(vec![VfInfo::Mac(VfInfoMac::new(vf, &mac.0))]);
    msg.attributes.push(LinkAttribute::VfInfoList(vec![info]));
    encode(RouteNetlinkMessage::SetLink(msg), REQUEST_ACK, seq)
}

/// Listing and configuring a PF's VFs.
pub trait VfControl {
    /// Every VF of `pf` with its MAC and packet counters, by VF index.
    fn list_vfs(&mut self, pf: &str) -> Result<Vec<VfEntry>, TrafficError>;
    /// Sets the MAC of VF `vf` of `pf`.
    fn set_vf_mac(&mut self, pf: &str, vf: u32, mac: MacAddr) -> Result<(), TrafficError>;
}

/// [`VfControl`] over the host's rtnetlink.
pub struct NetlinkVfControl {
    socket: RtSocket,
}

impl NetlinkVfControl {
    /// Opens an rtnetlink socket in the current network namespace.
    pub fn new() -> Result<Self, TrafficError> {
        Ok(Self {
            socket: RtSocket::open()?,
        })
    }

    fn pf(&mut self, pf: &str) -> Result<LinkEntry, TrafficError> {
        self.socket.get_link(pf)
    }
}

impl VfControl for NetlinkVfControl {
    fn list_vfs(&mut self, pf: &str) -> Result<Vec<VfEntry>, TrafficError> {
        let mut vfs = self.pf(pf)?.vfs;
        vfs.sort_by_key(|v| v.vf);
        Ok(vfs)
    }

    fn set_vf_mac(&mut self, pf: &str, vf: u32, mac: MacAddr) -> Result<(), TrafficError> {
        let link = self.pf(pf)?;
        if !link.vfs.iter().any(|v| v.vf == vf) {
            return Err(TrafficError::NoSuchVf {
                pf: pf.to_owned(),
                vf,
            });
        }
        self.socket.request_ack("RTM_SETLINK (IFLA_VF_MAC)", |seq| {
            set_vf_mac_request(link.index, vf, mac, seq)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 1, 2, 3]);

    fn pf(index: u32, name: &str, vfs: Vec<VfEntry>) -> LinkEntry {
        LinkEntry {
            index,
            ifname: name.into(),
            vfs,
            ..LinkEntry::default()
        }
    }

    fn vf(vf: u32, rx: Option<u64>) -> VfEntry {
        VfEntry {
            vf,
            mac: MAC,
            rx_packets: rx,
            tx_packets: rx,
            rx_drops: None,
        }
    }

    #[test]
    fn first_vf_with_stats_wins() {
        let table = LinkTable {
            links: vec![
                pf(8, "pf8", vec![vf(0, Some(5))]),
                pf(3, "pf3", vec![vf(2, None), vf(4, Some(7))]),
            ],
        };
        let index = MacIndex::new(&table);
        assert_eq!(
            find(&table, &index, MAC),
            Some(MacReading::Found {
                source: SourceKind::Vf {
                    pf: "pf3".into(),
                    vf: 4
                },
                rx_packets: 7,
                drops: None,
            })
        );
    }

    #[test]
    fn vf_without_stats_is_reported_as_such() {
        let table = LinkTable {
            links: vec![pf(3, "pf3", vec![vf(2, None)])],
        };
        let index = MacIndex::new(&table);
        assert_eq!(
            find(&table, &index, MAC),
            Some(MacReading::Missing(MissingReason::VfWithoutStats {
                pf: "pf3".into(),
                vf: 2
            }))
        );
        assert_eq!(find(&table, &index, MacAddr([2, 2, 2, 2, 2, 2])), None);
    }
}

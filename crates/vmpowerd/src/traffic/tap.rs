//! Source (3): the host tap of a libvirt/QEMU virtio-net interface.
//!
//! libvirt gives the host side of a guest's tap the guest's MAC with the
//! first byte replaced by `0xfe` (so the host bridge never learns the
//! guest's own address on the tap). A tun/tap device whose MAC is
//! `fe:` + the guest MAC's last five bytes is taken as that guest's tap.
//!
//! ## Direction
//! A tap's *transmit* counter counts what the host pushed into the tap,
//! which is what the guest receives; its receive counter is what the guest
//! sent. So the guest's received packets are the tap's `tx_packets`.
//!
//! ## Limitations
//! Taps named otherwise (or non-libvirt setups using the guest MAC on a
//! tap) need a configured entry. Only tun/tap devices (`IFLA_INFO_KIND`
//! "tun") are matched, so an unrelated device with an `fe:` address is not
//! mistaken for a tap.
//!
//! No I/O here.

use super::links::MacIndex;
use super::{LinkTable, MacAddr, MacReading, SourceKind};

/// The MAC libvirt gives the host tap of a guest interface with `guest` MAC.
pub fn libvirt_tap_mac(guest: MacAddr) -> MacAddr {
    let mut mac = guest.0;
    mac[0] = 0xfe;
    MacAddr(mac)
}

/// The tap of the guest interface with MAC `mac`, if any.
pub(super) fn find(table: &LinkTable, index: &MacIndex, mac: MacAddr) -> Option<MacReading> {
    let tap_mac = libvirt_tap_mac(mac);
    index.netdevs.get(&tap_mac)?.iter().find_map(|&li| {
        let link = &table.links[li];
        if !link.is_tun {
            return None;
        }
        link.tx_packets.map(|tx_packets| MacReading::Found {
            source: SourceKind::Tap {
                ifname: link.ifname.clone(),
            },
            rx_packets: tx_packets,
            drops: link.tx_drops,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::LinkEntry;

    const GUEST: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

    fn link(index: u32, ifname: &str, mac: MacAddr, is_tun: bool) -> LinkEntry {
        LinkEntry {
            index,
            ifname: ifname.into(),
            mac: Some(mac),
            rx_packets: Some(111),
            tx_packets: Some(222),
            is_tun,
            vfs: vec![],
            rx_drops: None,
            tx_drops: None,
        }
    }

    #[test]
    fn tap_mac_replaces_only_the_first_byte() {
        assert_eq!(
            libvirt_tap_mac(GUEST),
            MacAddr([0xfe, 0x54, 0x00, 0xab, 0xcd, 0xef])
        );
    }

    #[test]
    fn counts_the_taps_tx_as_the_guests_rx() {
        let table = LinkTable {
            links: vec![link(5, "vnet0", libvirt_tap_mac(GUEST), true)],
        };
        let index = MacIndex::new(&table);
        assert_eq!(
            find(&table, &index, GUEST),
            Some(MacReading::Found {
                source: SourceKind::Tap {
                    ifname: "vnet0".into()
                },
                rx_packets: 222,
                drops: None,
            })
        );
    }

    #[test]
    fn ignores_non_tun_devices_with_an_fe_address() {
        let table = LinkTable {
            links: vec![link(5, "dummy0", libvirt_tap_mac(GUEST), false)],
        };
        let index = MacIndex::new(&table);
        assert_eq!(find(&table, &index, GUEST), None);
    }

    #[test]
    fn does_not_match_the_guest_mac_itself() {
        let table = LinkTable {
            links: vec![link(5, "vnet0", GUEST, true)],
        };
        let index = MacIndex::new(&table);
        assert_eq!(find(&table, &index, GUEST), None);
    }
}

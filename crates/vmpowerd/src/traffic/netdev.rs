//! Source (2): a host netdev whose own MAC (`IFLA_ADDRESS`) is the policy's
//! MAC — a veth end, a macvtap, a VF bound to a host driver — counting the
//! packets it received. Its drops are `rx_dropped + rx_missed_errors`: a
//! macvtap counts in rx_dropped what it could not queue to the guest's
//! full queue, a veth what its peer's backlog refused, a NIC (a VF bound
//! on the host) in rx_missed_errors what found no receive buffer.
//!
//! ## Behavior
//! Several netdevs can share a MAC (VLAN devices inherit their parent's, a
//! bond's ports share the bond's); the lowest interface index wins, which
//! is the parent of VLAN devices. Netdevs without statistics are skipped.
//!
//! No I/O here.

use super::links::MacIndex;
use super::{LinkTable, MacAddr, MacReading, SourceKind};

/// The netdev carrying `mac` with received-packet statistics, if any.
pub(super) fn find(table: &LinkTable, index: &MacIndex, mac: MacAddr) -> Option<MacReading> {
    index.netdevs.get(&mac)?.iter().find_map(|&li| {
        let link = &table.links[li];
        link.rx_packets.map(|rx_packets| MacReading::Found {
            source: SourceKind::Netdev {
                ifname: link.ifname.clone(),
            },
            rx_packets,
            drops: link.rx_drops,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::LinkEntry;

    #[test]
    fn lowest_ifindex_with_stats_wins() {
        let mac = MacAddr([2, 1, 2, 3, 4, 5]);
        let link = |index, ifname: &str, rx| LinkEntry {
            index,
            ifname: ifname.into(),
            mac: Some(mac),
            rx_packets: rx,
            tx_packets: rx,
            ..LinkEntry::default()
        };
        let table = LinkTable {
            links: vec![
                link(7, "eth0.10", Some(5)),
                link(2, "nostats", None),
                link(3, "eth0", Some(9)),
            ],
        };
        let index = MacIndex::new(&table);
        assert_eq!(
            find(&table, &index, mac),
            Some(MacReading::Found {
                source: SourceKind::Netdev {
                    ifname: "eth0".into()
                },
                rx_packets: 9,
                drops: None,
            })
        );
        assert_eq!(find(&table, &index, MacAddr([2, 0, 0, 0, 0, 0])), None);
    }
}

//! A snapshot of the host's links as one `RTM_GETLINK` dump reports them:
//! only what the traffic sources need (name, MAC, packet counters, tun/tap
//! or not, VF MACs and VF counters), decoded from `RTM_NEWLINK` payloads.
//!
//! Decoding picks the few attributes it needs out of each message and lets
//! `netlink-packet-route` parse only those: a host with a thousand taps is
//! dumped ten times a second, so the rest of each message is skipped.
//! A link whose message cannot be decoded is reported as an error for that
//! message; the caller decides whether to skip it.
//!
//! No I/O here.

use std::collections::HashMap;

use netlink_packet_core::{NlaBuffer, NlasIterator, ParseableParametrized};
use netlink_packet_route::link::{LinkAttribute, LinkHeader, VfInfo, VfStats};

use super::MacAddr;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_STATS: u16 = 7;
const IFLA_LINKINFO: u16 = 18;
const IFLA_VFINFO_LIST: u16 = 22;
const IFLA_STATS64: u16 = 23;
const IFLA_INFO_KIND: u16 = 1;
/// Length of `struct ifinfomsg`, the header before the attributes.
const IFINFOMSG_LEN: usize = 16;

/// One link of the snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkEntry {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub ifname: String,
    /// Its hardware address, if it has a 6-byte one.
    pub mac: Option<MacAddr>,
    /// Received packets (IFLA_STATS64, else the 32-bit IFLA_STATS widened).
    pub rx_packets: Option<u64>,
    /// Transmitted packets (same sources as `rx_packets`).
    pub tx_packets: Option<u64>,
    /// Packets dropped on receive: `rx_dropped + rx_missed_errors` (same
    /// sources as `rx_packets`).
    pub rx_drops: Option<u64>,
    /// Packets dropped on transmit: `tx_dropped` (same sources).
    pub tx_drops: Option<u64>,
    /// True for tun/tap devices (`IFLA_INFO_KIND` "tun").
    pub is_tun: bool,
    /// Its VFs, when it is an SR-IOV PF and the dump asked for VF info.
    pub vfs: Vec<VfEntry>,
}

/// One VF of a PF, from `IFLA_VFINFO_LIST`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VfEntry {
    /// VF index on its PF.
    pub vf: u32,
    /// The VF's MAC (all zero when unset).
    pub mac: MacAddr,
    /// `IFLA_VF_STATS_RX_PACKETS`, if the driver reports VF stats.
    pub rx_packets: Option<u64>,
    /// `IFLA_VF_STATS_TX_PACKETS`, if the driver reports VF stats.
    pub tx_packets: Option<u64>,
    /// `IFLA_VF_STATS_RX_DROPPED`, if the driver reports it.
    pub rx_drops: Option<u64>,
}

/// All links of one dump, in the order the kernel sent them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkTable {
    /// The links.
    pub links: Vec<LinkEntry>,
}

impl LinkTable {
    /// The link named `ifname`, if any.
    pub fn by_name(&self, ifname: &str) -> Option<&LinkEntry> {
        self.links.iter().find(|l| l.ifname == ifname)
    }
}

/// One link's counters from an `RTM_GETSTATS` dump.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Interface index.
    pub index: u32,
    /// Received packets.
    pub rx_packets: u64,
    /// Transmitted packets.
    pub tx_packets: u64,
    /// `rx_dropped + rx_missed_errors` (`None` from a stats attribute
    /// too short to hold them).
    pub rx_drops: Option<u64>,
    /// `tx_dropped` (same).
    pub tx_drops: Option<u64>,
}

/// Length of `struct if_stats_msg`, the header of `RTM_NEWSTATS`.
const IF_STATS_MSG_LEN: usize = 12;
const IFLA_STATS_LINK_64: u16 = 1;

/// Decodes the payload of one `RTM_NEWSTATS` message carrying
/// `IFLA_STATS_LINK_64`.
///
/// A hand walk of the attributes (4-byte header, 4-byte aligned, as
/// `NlasIterator` would do) that allocates nothing unless it fails: it
/// runs 1,024 times a tick with 1,024 links.
pub fn parse_newstats(payload: &[u8]) -> Result<LinkCounters, String> {
    let header = payload
        .get(..IF_STATS_MSG_LEN)
        .ok_or_else(|| format!("if_stats_msg: {} bytes", payload.len()))?;
    let index = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
    let mut attrs = &payload[IF_STATS_MSG_LEN..];
    while !attrs.is_empty() {
        let (len, kind) = match attrs {
            [l0, l1, k0, k1, ..] => (
                usize::from(u16::from_ne_bytes([*l0, *l1])),
                u16::from_ne_bytes([*k0, *k1]) & NLA_TYPE_MASK,
            ),
            _ => return Err(format!("link {index}: truncated stats attribute header")),
        };
        let Some(value) = attrs.get(NLA_HEADER_LEN..len) else {
            return Err(format!(
                "link {index}: stats attribute {kind} of length {len} in {} bytes",
                attrs.len()
            ));
        };
        if kind == IFLA_STATS_LINK_64 {
            // `struct rtnl_link_stats64` (native-endian u64s): rx_packets
            // and tx_packets first, rx_dropped and tx_dropped 7th and 8th,
            // rx_missed_errors 16th; the others are not read.
            let at = |i: usize| {
                value
                    .get(i * 8..i * 8 + 8)
                    .map(|b| u64::from_ne_bytes(word(b)))
            };
            let rx_drops = at(6).zip(at(15)).map(|(d, m)| d.wrapping_add(m));
            return match (at(0), at(1)) {
                (Some(rx), Some(tx)) => Ok(LinkCounters {
                    index,
                    rx_packets: rx,
                    tx_packets: tx,
                    rx_drops,
                    tx_drops: rx_drops.and(at(7)),
                }),
                _ => Err(format!(
                    "link {index}: IFLA_STATS_LINK_64 of {} bytes",
                    value.len()
                )),
            };
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Err(format!("link {index}: no IFLA_STATS_LINK_64"))
}

/// Length of a netlink attribute header (`struct nlattr`).
const NLA_HEADER_LEN: usize = 4;
/// The attribute type without the nested and byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The 8 bytes of `bytes` (callers pass exactly 8).
fn word(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(bytes);
    out
}

/// Per-snapshot index from MAC to candidates, each list sorted so the
/// first entry is the one the precedence rules pick.
pub(super) struct MacIndex {
    /// MAC → (link position, VF position), by (ifindex, VF index).
    pub vfs: HashMap<MacAddr, Vec<(usize, usize)>>,
    /// MAC → link positions, by ifindex.
    pub netdevs: HashMap<MacAddr, Vec<usize>>,
}

impl MacIndex {
    pub fn new(table: &LinkTable) -> Self {
        let mut vfs: HashMap<MacAddr, Vec<(usize, usize)>> = HashMap::new();
        let mut netdevs: HashMap<MacAddr, Vec<usize>> = HashMap::new();
        for (li, link) in table.links.iter().enumerate() {
            if let Some(mac) = link.mac {
                netdevs.entry(mac).or_default().push(li);
            }
            for (vi, vf) in link.vfs.iter().enumerate() {
                if vf.mac != MacAddr::default() {
                    vfs.entry(vf.mac).or_default().push((li, vi));
                }
            }
        }
        let links = &table.links;
        for list in vfs.values_mut() {
            list.sort_by_key(|&(li, vi)| (links[li].index, links[li].vfs[vi].vf));
        }
        for list in netdevs.values_mut() {
            list.sort_by_key(|&li| links[li].index);
        }
        Self { vfs, netdevs }
    }
}

/// Decodes the payload of one `RTM_NEWLINK` message (the `ifinfomsg`
/// header and its attributes).
pub fn parse_newlink(payload: &[u8]) -> Result<LinkEntry, String> {
    let header = LinkHeader::parse(payload).map_err(|e| format!("ifinfomsg: {e}"))?;
    let family = header.interface_family;
    let mut entry = LinkEntry {
        index: header.index,
        ..LinkEntry::default()
    };
    // [rx_packets, tx_packets, rx_drops, tx_drops]
    let mut stats32: Option<[u64; 4]> = None;
    let mut stats64: Option<[u64; 4]> = None;
    // Whether the stats carried the drop counters (the crate zero-fills
    // a short attribute): through rx_missed_errors, the 16th counter.
    let mut drops_known = true;
    let attrs = payload.get(IFINFOMSG_LEN..).unwrap_or_default();
    for nla in NlasIterator::new(attrs) {
        let nla = nla.map_err(|e| format!("link {}: attribute: {e}", header.index))?;
        match nla.kind() {
            IFLA_ADDRESS => entry.mac = <[u8; 6]>::try_from(nla.value()).ok().map(MacAddr),
            IFLA_IFNAME => {
                let raw = nla.value();
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                entry.ifname = String::from_utf8_lossy(&raw[..end]).into_owned();
            }
            // Shorter than rx_packets + tx_packets: the crate would zero-fill.
            IFLA_STATS if nla.value().len() < 8 => return Err(short(&header, &nla)),
            IFLA_STATS64 if nla.value().len() < 16 => return Err(short(&header, &nla)),
            IFLA_STATS | IFLA_STATS64 | IFLA_VFINFO_LIST => {
                let width = if nla.kind() == IFLA_STATS64 { 8 } else { 4 };
                if nla.kind() != IFLA_VFINFO_LIST && nla.value().len() < 16 * width {
                    drops_known = false;
                }
                match LinkAttribute::parse_with_param(&nla, family)
                    .map_err(|e| format!("link {}: attribute {}: {e}", header.index, nla.kind()))?
                {
                    LinkAttribute::Stats(s) => {
                        stats32 = Some([
                            u64::from(s.rx_packets),
                            u64::from(s.tx_packets),
                            u64::from(s.rx_dropped) + u64::from(s.rx_missed_errors),
                            u64::from(s.tx_dropped),
                        ]);
                    }
                    LinkAttribute::Stats64(s) => {
                        stats64 = Some([
                            s.rx_packets,
                            s.tx_packets,
                            s.rx_dropped.wrapping_add(s.rx_missed_errors),
                            s.tx_dropped,
                        ]);
                    }
                    LinkAttribute::VfInfoList(list) => {
                        entry.vfs = list.iter().filter_map(|info| vf_entry(&info.0)).collect();
                    }
                    _ => {}
                }
            }
            IFLA_LINKINFO => entry.is_tun = info_kind(&nla).as_deref() == Some("tun"),
            _ => {}
        }
    }
    if let Some([rx, tx, rx_drops, tx_drops]) = stats64.or(stats32) {
        entry.rx_packets = Some(rx);
        entry.tx_packets = Some(tx);
        if drops_known {
            entry.rx_drops = Some(rx_drops);
            entry.tx_drops = Some(tx_drops);
        }
    }
    Ok(entry)
}

fn short(header: &LinkHeader, nla: &NlaBuffer<&[u8]>) -> String {
    format!(
        "link {}: attribute {} too short ({} bytes)",
        header.index,
        nla.kind(),
        nla.value().len()
    )
}

/// The `IFLA_INFO_KIND` string nested in an `IFLA_LINKINFO` attribute.
fn info_kind(linkinfo: &NlaBuffer<&[u8]>) -> Option<String> {
    NlasIterator::new(linkinfo.value())
        .filter_map(Result::ok)
        .find_map(|nla| {
            (nla.kind() == IFLA_INFO_KIND).then(|| {
                let raw = nla.value();
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                String::from_utf8_lossy(&raw[..end]).into_owned()
            })
        })
}

/// One VF from the attributes of an `IFLA_VF_INFO`; `None` without a MAC
/// attribute (the VF index is carried there).
fn vf_entry(info: &[VfInfo]) -> Option<VfEntry> {
    let mut entry = None;
    let (mut rx, mut tx, mut dropped) = (None, None, None);
    for attr in info {
        match attr {
            VfInfo::Mac(m) => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&m.mac[..6]);
                entry = Some(VfEntry {
                    vf: m.vf_id,
                    mac: MacAddr(mac),
                    ..VfEntry::default()
                });
            }
            VfInfo::Stats(stats) => {
                for s in stats {
                    match s {
                        VfStats::RxPackets(v) => rx = Some(*v),
                        VfStats::TxPackets(v) => tx = Some(*v),
                        VfStats::RxDropped(v) => dropped = Some(*v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    entry.map(|e| VfEntry {
        rx_packets: rx,
        tx_packets: tx,
        rx_drops: dropped,
        ..e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_orders_candidates_by_ifindex_then_vf() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let vf = |vf| VfEntry {
            vf,
            mac,
            rx_packets: Some(1),
            tx_packets: None,
            rx_drops: None,
        };
        let table = LinkTable {
            links: vec![
                LinkEntry {
                    index: 9,
                    ifname: "pf9".into(),
                    vfs: vec![vf(3), vf(1)],
                    ..LinkEntry::default()
                },
                LinkEntry {
                    index: 4,
                    ifname: "pf4".into(),
                    vfs: vec![vf(7)],
                    mac: Some(mac),
                    ..LinkEntry::default()
                },
                LinkEntry {
                    index: 2,
                    ifname: "n2".into(),
                    mac: Some(mac),
                    ..LinkEntry::default()
                },
            ],
        };
        let index = MacIndex::new(&table);
        assert_eq!(index.vfs[&mac], vec![(1, 0), (0, 1), (0, 0)]);
        assert_eq!(index.netdevs[&mac], vec![2, 1]);
    }

    #[test]
    fn unset_vf_macs_are_not_indexed() {
        let table = LinkTable {
            links: vec![LinkEntry {
                vfs: vec![VfEntry::default()],
                ..LinkEntry::default()
            }],
        };
        assert!(MacIndex::new(&table).vfs.is_empty());
    }

    #[test]
    fn short_header_is_an_error_not_a_panic() {
        assert!(parse_newlink(&[0u8; 8]).is_err());
        assert!(parse_newlink(&[]).is_err());
    }

    /// An `RTM_NEWSTATS` payload: `if_stats_msg` for `ifindex`, then one
    /// attribute of `kind` holding `words` native-endian u64s.
    fn newstats(ifindex: u32, kind: u16, words: &[u64]) -> Vec<u8> {
        let mut p = vec![0u8; IF_STATS_MSG_LEN];
        p[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        let len = u16::try_from(4 + words.len() * 8).unwrap();
        p.extend_from_slice(&len.to_ne_bytes());
        p.extend_from_slice(&kind.to_ne_bytes());
        for w in words {
            p.extend_from_slice(&w.to_ne_bytes());
        }
        p
    }

    #[test]
    fn newstats_reads_rx_and_tx_packets_of_link64() {
        // rx_packets, tx_packets, rx_bytes, tx_bytes, then the rest.
        let mut words = vec![7, 9, 7_000, 9_000];
        words.extend(std::iter::repeat_n(u64::MAX, 20));
        let c = parse_newstats(&newstats(42, IFLA_STATS_LINK_64, &words)).unwrap();
        assert_eq!((c.index, c.rx_packets, c.tx_packets), (42, 7, 9));
        let big = parse_newstats(&newstats(3, IFLA_STATS_LINK_64, &[1 << 40, 5])).unwrap();
        assert_eq!((big.rx_packets, big.tx_packets), (1 << 40, 5));
    }

    #[test]
    fn newstats_without_link64_or_too_short_is_an_error() {
        assert!(parse_newstats(&newstats(1, IFLA_STATS_LINK_64, &[7])).is_err());
        assert!(parse_newstats(&newstats(1, 2, &[7, 9])).is_err());
        assert!(parse_newstats(&[0u8; 4]).is_err());
    }

    #[test]
    fn newstats_skips_other_attributes_with_their_padding() {
        // A 5-byte attribute (padded to 8) before IFLA_STATS_LINK_64.
        let mut p = newstats(9, 0x8000 | 4, &[]);
        p[IF_STATS_MSG_LEN..IF_STATS_MSG_LEN + 2].copy_from_slice(&5u16.to_ne_bytes());
        p.extend_from_slice(&[0xee, 0, 0, 0]);
        p.extend_from_slice(&newstats(9, IFLA_STATS_LINK_64, &[11, 13])[IF_STATS_MSG_LEN..]);
        let c = parse_newstats(&p).unwrap();
        assert_eq!((c.index, c.rx_packets, c.tx_packets), (9, 11, 13));
        // The nested flag on the wanted attribute does not hide it.
        let nested = newstats(9, 0x8000 | IFLA_STATS_LINK_64, &[1, 2]);
        assert_eq!(parse_newstats(&nested).unwrap().tx_packets, 2);
    }

    #[test]
    fn newstats_with_a_truncated_or_zero_length_attribute_is_an_error() {
        let mut p = newstats(9, IFLA_STATS_LINK_64, &[11, 13]);
        p.truncate(p.len() - 1);
        assert!(parse_newstats(&p).is_err());
        let mut zero = newstats(9, 2, &[]);
        zero[IF_STATS_MSG_LEN..IF_STATS_MSG_LEN + 2].copy_from_slice(&0u16.to_ne_bytes());
        assert!(parse_newstats(&zero).is_err());
        let mut short = newstats(9, 2, &[]);
        short.truncate(short.len() - 2);
        assert!(parse_newstats(&short).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn newstats_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..96)) {
            let _ = parse_newstats(&bytes);
        }
    }
}

//! The rtnetlink messages of the traffic layer against bytes built here,
//! field by field, from the kernel's layouts (`linux/netlink.h`,
//! `linux/rtnetlink.h`, `linux/if_link.h`), not from the code under test.
//!
//! No SR-IOV hardware exists on the test machines: the VF request
//! (`RTM_SETLINK` with `IFLA_VF_MAC`) and VF replies (`IFLA_VFINFO_LIST`
//! with `IFLA_VF_STATS`) are checked only this way. Integers are in host
//! byte order, as netlink carries them.

use proptest::prelude::*;
use vmpowerd::traffic::{
    ConfiguredMap, LinkCounters, LinkTable, MacAddr, MacReading, MissingReason, SourceKind,
    TrafficError, VfEntry, dump_links_request, dump_stats_request, get_link_by_index_request,
    get_link_request, libvirt_tap_mac, parse_replies, parse_stats_replies, resolve,
    set_vf_mac_request,
};

// linux/netlink.h
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_ROOT: u16 = 0x100;
const NLM_F_MATCH: u16 = 0x200;
// linux/rtnetlink.h
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWSTATS: u16 = 92;
const RTM_GETSTATS: u16 = 94;
// IFLA_STATS_LINK_64 = 1; filter_mask bit = 1 << (IFLA_STATS_LINK_64 - 1)
const IFLA_STATS_LINK_64: u16 = 1;
const STATS_FILTER_LINK_64: u32 = 1 << (IFLA_STATS_LINK_64 - 1);
const RTEXT_FILTER_VF: u32 = 1;
// linux/if_link.h
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_STATS: u16 = 7;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_VFINFO_LIST: u16 = 22;
const IFLA_STATS64: u16 = 23;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_VF_INFO: u16 = 1;
const IFLA_VF_MAC: u16 = 1;
const IFLA_VF_VLAN: u16 = 2;
const IFLA_VF_STATS: u16 = 8;
const IFLA_VF_STATS_RX_PACKETS: u16 = 0;
const IFLA_VF_STATS_TX_PACKETS: u16 = 1;
const IFLA_VF_STATS_RX_BYTES: u16 = 2;
const IFLA_VF_STATS_PAD: u16 = 6;
const IFLA_VF_STATS_RX_DROPPED: u16 = 7;
const ARPHRD_ETHER: u16 = 1;

/// `struct nlmsghdr` followed by `body`; `nlmsg_len` covers both.
fn nlmsg(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(16 + body.len()).expect("test message fits");
    let mut out = Vec::new();
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    out.extend_from_slice(body);
    out
}

/// `struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change; }`
fn ifinfomsg(kind: u16, index: i32) -> Vec<u8> {
    let mut out = vec![0u8, 0u8];
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&index.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out
}

/// `struct nlattr { u16 nla_len; u16 nla_type; }`, payload, padding to 4.
fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(4 + payload.len()).expect("test attribute fits");
    let mut out = Vec::new();
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

/// `struct ifla_vf_mac { u32 vf; u8 mac[32]; }`
fn ifla_vf_mac(vf: u32, mac: [u8; 6]) -> Vec<u8> {
    let mut out = vf.to_ne_bytes().to_vec();
    out.extend_from_slice(&mac);
    out.extend_from_slice(&[0u8; 26]);
    out
}

/// `struct rtnl_link_stats64`: 24 u64 fields, rx_packets then tx_packets first.
fn stats64(rx: u64, tx: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for field in [rx, tx].into_iter().chain((0..22).map(|i| 1000 + i)) {
        out.extend_from_slice(&field.to_ne_bytes());
    }
    out
}

/// `struct rtnl_link_stats`: 24 u32 fields (the 32-bit counters).
fn stats32(rx: u32, tx: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for field in [rx, tx].into_iter().chain(7..29) {
        out.extend_from_slice(&field.to_ne_bytes());
    }
    out
}

fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

const GUEST: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0x01];
const OTHER: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0x02];

#[test]
fn dump_request_is_getlink_dump_with_vf_ext_mask() {
    let body = concat(&[
        ifinfomsg(0, 0),
        nla(IFLA_EXT_MASK, &RTEXT_FILTER_VF.to_ne_bytes()),
    ]);
    let expected = nlmsg(
        RTM_GETLINK,
        NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH,
        42,
        &body,
    );
    assert_eq!(dump_links_request(42), expected);
}

#[test]
fn get_link_request_names_the_link_and_asks_for_vfs() {
    let body = concat(&[
        ifinfomsg(0, 0),
        nla(IFLA_IFNAME, &cstr("enp1s0f0")),
        nla(IFLA_EXT_MASK, &RTEXT_FILTER_VF.to_ne_bytes()),
    ]);
    assert_eq!(
        get_link_request("enp1s0f0", 7),
        nlmsg(RTM_GETLINK, NLM_F_REQUEST, 7, &body)
    );
}

#[test]
fn get_link_by_index_request_puts_the_index_in_ifinfomsg() {
    let body = concat(&[
        ifinfomsg(0, 12),
        nla(IFLA_EXT_MASK, &RTEXT_FILTER_VF.to_ne_bytes()),
    ]);
    assert_eq!(
        get_link_by_index_request(12, 8),
        nlmsg(RTM_GETLINK, NLM_F_REQUEST, 8, &body)
    );
}

/// `struct if_stats_msg { u8 family; u8 pad1; u16 pad2; u32 ifindex; u32 filter_mask; }`
fn if_stats_msg(ifindex: u32, filter_mask: u32) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    out.extend_from_slice(&ifindex.to_ne_bytes());
    out.extend_from_slice(&filter_mask.to_ne_bytes());
    out
}

#[test]
fn stats_dump_request_asks_for_link_64_only() {
    let body = if_stats_msg(0, STATS_FILTER_LINK_64);
    let expected = nlmsg(
        RTM_GETSTATS,
        NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH,
        3,
        &body,
    );
    assert_eq!(dump_stats_request(3), expected);
}

#[test]
fn stats_dump_reply_gives_each_links_counters() {
    let msg = |index, rx, tx| {
        let body = concat(&[
            if_stats_msg(index, STATS_FILTER_LINK_64),
            nla(IFLA_STATS_LINK_64, &stats64(rx, tx)),
        ]);
        nlmsg(RTM_NEWSTATS, NLM_F_MULTI, 4, &body)
    };
    // A link whose stats attribute is too short to hold rx/tx is skipped.
    let short = nlmsg(
        RTM_NEWSTATS,
        NLM_F_MULTI,
        4,
        &concat(&[
            if_stats_msg(9, STATS_FILTER_LINK_64),
            nla(IFLA_STATS_LINK_64, &[1, 2, 3, 4]),
        ]),
    );
    let buf = concat(&[msg(1, 5, 6), short, msg(7, u64::MAX, 1 << 40), done(4)]);
    let (stats, complete) = parse_stats_replies(&buf, 4).unwrap();
    assert!(complete);
    assert_eq!(
        stats,
        vec![
            // rx_dropped (1004) + rx_missed_errors (1013); tx_dropped.
            LinkCounters {
                index: 1,
                rx_packets: 5,
                tx_packets: 6,
                rx_drops: Some(2017),
                tx_drops: Some(1005),
            },
            LinkCounters {
                index: 7,
                rx_packets: u64::MAX,
                tx_packets: 1 << 40,
                rx_drops: Some(2017),
                tx_drops: Some(1005),
            },
        ]
    );
}

#[test]
fn set_vf_mac_request_matches_if_link_layout() {
    let vf_info = nla(IFLA_VF_INFO, &nla(IFLA_VF_MAC, &ifla_vf_mac(3, GUEST)));
    let body = concat(&[ifinfomsg(0, 9), nla(IFLA_VFINFO_LIST, &vf_info)]);
    let expected = nlmsg(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 5, &body);
    assert_eq!(expected.len(), 16 + 16 + 4 + 4 + 4 + 36);
    assert_eq!(set_vf_mac_request(9, 3, MacAddr(GUEST), 5), expected);
}

/// A PF with two VFs: VF 0 with stats (and the pad attribute some
/// architectures emit), VF 1 without stats (driver without ndo_get_vf_stats).
fn pf_newlink(seq: u32) -> Vec<u8> {
    let vf0_stats = concat(&[
        nla(IFLA_VF_STATS_RX_PACKETS, &123_456_789_012u64.to_ne_bytes()),
        nla(IFLA_VF_STATS_PAD, &[]),
        nla(IFLA_VF_STATS_TX_PACKETS, &55u64.to_ne_bytes()),
        nla(IFLA_VF_STATS_RX_BYTES, &999u64.to_ne_bytes()),
        nla(IFLA_VF_STATS_RX_DROPPED, &31u64.to_ne_bytes()),
    ]);
    let vlan = concat(&[
        0u32.to_ne_bytes().to_vec(),
        0u32.to_ne_bytes().to_vec(),
        0u32.to_ne_bytes().to_vec(),
    ]);
    let vf0 = concat(&[
        nla(IFLA_VF_MAC, &ifla_vf_mac(0, GUEST)),
        nla(IFLA_VF_VLAN, &vlan),
        nla(IFLA_VF_STATS, &vf0_stats),
    ]);
    let vf1 = nla(IFLA_VF_MAC, &ifla_vf_mac(1, OTHER));
    let vfs = concat(&[nla(IFLA_VF_INFO, &vf0), nla(IFLA_VF_INFO, &vf1)]);
    let body = concat(&[
        ifinfomsg(ARPHRD_ETHER, 4),
        nla(IFLA_IFNAME, &cstr("pf0")),
        nla(IFLA_ADDRESS, &[0x02, 0, 0, 0, 0, 0x10]),
        nla(IFLA_STATS64, &stats64(10, 20)),
        nla(IFLA_VFINFO_LIST, &vfs),
    ]);
    nlmsg(RTM_NEWLINK, NLM_F_MULTI, seq, &body)
}

fn tap_newlink(seq: u32) -> Vec<u8> {
    let body = concat(&[
        ifinfomsg(ARPHRD_ETHER, 11),
        nla(IFLA_IFNAME, &cstr("vnet7")),
        nla(IFLA_ADDRESS, &libvirt_tap_mac(MacAddr(OTHER)).0),
        // 32-bit stats only: the 64-bit ones are preferred when both exist.
        nla(IFLA_STATS, &stats32(70, 80)),
        nla(IFLA_LINKINFO, &nla(IFLA_INFO_KIND, &cstr("tun"))),
    ]);
    nlmsg(RTM_NEWLINK, NLM_F_MULTI, seq, &body)
}

fn done(seq: u32) -> Vec<u8> {
    nlmsg(NLMSG_DONE, NLM_F_MULTI, seq, &0i32.to_ne_bytes())
}

fn error(seq: u32, errno: i32) -> Vec<u8> {
    let original = nlmsg(RTM_GETLINK, NLM_F_REQUEST, seq, &[]);
    nlmsg(
        NLMSG_ERROR,
        0,
        seq,
        &concat(&[(-errno).to_ne_bytes().to_vec(), original]),
    )
}

#[test]
fn dump_reply_with_vf_info_is_decoded() {
    let buf = concat(&[pf_newlink(3), tap_newlink(3), done(3)]);
    let (links, complete) = parse_replies(&buf, 3).unwrap();
    assert!(complete);
    assert_eq!(links.len(), 2);
    let pf = &links[0];
    assert_eq!((pf.index, pf.ifname.as_str()), (4, "pf0"));
    assert_eq!(pf.mac, Some(MacAddr([0x02, 0, 0, 0, 0, 0x10])));
    assert_eq!(
        (pf.rx_packets, pf.tx_packets, pf.is_tun),
        (Some(10), Some(20), false)
    );
    assert_eq!(
        pf.vfs,
        vec![
            VfEntry {
                vf: 0,
                mac: MacAddr(GUEST),
                rx_packets: Some(123_456_789_012),
                tx_packets: Some(55),
                rx_drops: Some(31),
            },
            VfEntry {
                vf: 1,
                mac: MacAddr(OTHER),
                rx_packets: None,
                tx_packets: None,
                rx_drops: None,
            },
        ]
    );
    let tap = &links[1];
    assert_eq!((tap.ifname.as_str(), tap.is_tun), ("vnet7", true));
    assert_eq!((tap.rx_packets, tap.tx_packets), (Some(70), Some(80)));
    // 32-bit stats: rx_dropped (11) + rx_missed_errors (20); tx_dropped.
    assert_eq!((tap.rx_drops, tap.tx_drops), (Some(31), Some(12)));
    assert_eq!((pf.rx_drops, pf.tx_drops), (Some(2017), Some(1005)));
}

#[test]
fn decoded_dump_resolves_vf_and_tap_sources() {
    let buf = concat(&[pf_newlink(3), tap_newlink(3), done(3)]);
    let (links, _) = parse_replies(&buf, 3).unwrap();
    let table = LinkTable { links };
    let samples = resolve(
        &table,
        &ConfiguredMap::new(),
        &[MacAddr(GUEST), MacAddr(OTHER), MacAddr([2, 3, 4, 5, 6, 7])],
    );
    assert_eq!(
        samples[0].reading,
        MacReading::Found {
            source: SourceKind::Vf {
                pf: "pf0".into(),
                vf: 0
            },
            rx_packets: 123_456_789_012,
            drops: Some(31),
        }
    );
    // VF 1 has OTHER but no stats; the libvirt tap for OTHER counts instead (its TX).
    assert_eq!(
        samples[1].reading,
        MacReading::Found {
            source: SourceKind::Tap {
                ifname: "vnet7".into()
            },
            rx_packets: 80,
            drops: Some(12),
        }
    );
    assert_eq!(
        samples[2].reading,
        MacReading::Missing(MissingReason::NotFound)
    );
}

#[test]
fn dump_split_over_buffers_completes_only_at_done() {
    let (links, complete) = parse_replies(&pf_newlink(8), 8).unwrap();
    assert_eq!((links.len(), complete), (1, false));
    let (links, complete) = parse_replies(&done(8), 8).unwrap();
    assert_eq!((links.len(), complete), (0, true));
}

#[test]
fn replies_to_other_requests_are_ignored() {
    let buf = concat(&[pf_newlink(99), done(99)]);
    assert_eq!(parse_replies(&buf, 4).unwrap(), (vec![], false));
}

#[test]
fn single_reply_without_multi_flag_completes() {
    let mut msg = pf_newlink(6);
    msg[6..8].copy_from_slice(&0u16.to_ne_bytes()); // nlmsg_flags: no NLM_F_MULTI
    let (links, complete) = parse_replies(&msg, 6).unwrap();
    assert_eq!((links.len(), complete), (1, true));
}

#[test]
fn kernel_error_carries_errno_and_ack_completes() {
    match parse_replies(&error(2, 19), 2) {
        Err(TrafficError::Kernel { source, .. }) => assert_eq!(source.raw_os_error(), Some(19)),
        other => panic!("expected a kernel error, got {other:?}"),
    }
    assert_eq!(parse_replies(&error(2, 0), 2).unwrap(), (vec![], true));
}

#[test]
fn truncated_header_is_malformed() {
    let buf = pf_newlink(1);
    assert!(matches!(
        parse_replies(&buf[..10], 1),
        Err(TrafficError::Malformed { .. })
    ));
    // nlmsg_len larger than what arrived.
    assert!(matches!(
        parse_replies(&buf[..40], 1),
        Err(TrafficError::Malformed { .. })
    ));
}

#[test]
fn an_undecodable_link_is_skipped_not_fatal() {
    // A link whose IFLA_VFINFO_LIST holds a truncated IFLA_VF_MAC.
    let bad_vf = nla(IFLA_VF_INFO, &nla(IFLA_VF_MAC, &[1, 2, 3]));
    let body = concat(&[
        ifinfomsg(ARPHRD_ETHER, 5),
        nla(IFLA_IFNAME, &cstr("bad0")),
        nla(IFLA_VFINFO_LIST, &bad_vf),
    ]);
    let buf = concat(&[
        nlmsg(RTM_NEWLINK, NLM_F_MULTI, 1, &body),
        tap_newlink(1),
        done(1),
    ]);
    let (links, complete) = parse_replies(&buf, 1).unwrap();
    assert!(complete);
    assert_eq!(
        links.iter().map(|l| l.ifname.as_str()).collect::<Vec<_>>(),
        vec!["vnet7"]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, and valid replies with arbitrary corruption, never
    /// panic the decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_replies(&bytes, 1);
        let _ = parse_stats_replies(&bytes, 1);
    }

    #[test]
    fn corrupted_replies_never_panic(pos in 0usize..2000, value in any::<u8>(), cut in 0usize..2000) {
        let mut buf = concat(&[pf_newlink(1), tap_newlink(1), done(1)]);
        let pos = pos % buf.len();
        buf[pos] = value;
        buf.truncate(cut.max(1).min(buf.len()));
        let _ = parse_replies(&buf, 1);
    }
}

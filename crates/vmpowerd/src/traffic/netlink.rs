//! The rtnetlink exchange: requests built with `netlink-packet-route`,
//! sent and answered over a blocking `netlink-sys` socket.
//!
//! Requests: `RTM_GETLINK` dump with `IFLA_EXT_MASK = RTEXT_FILTER_VF`
//! (every link with its VFs), `RTM_GETLINK` for one link by name or index,
//! `RTM_GETSTATS` dump of `IFLA_STATS_LINK_64` (counters only, about a
//! twentieth of the kernel's work for a full link dump), and requests that
//! only want an ACK (`RTM_SETLINK`).
//!
//! ## Behavior
//! The socket has a receive timeout ([`REPLY_TIMEOUT`]). Replies are read
//! into one reusable buffer of at least 64 KiB, grown when a peek says a
//! message is larger; a large buffer also lets the kernel pack a dump into
//! 32 KiB messages instead of page-sized ones (ten times fewer `recv`s).
//! Replies with another sequence number are skipped. In a dump, a link
//! whose message cannot be decoded is skipped (logged at debug); an error
//! reply, a malformed netlink header or a socket error fails the request.
//!
//! ## Limitations
//! The socket sees the network namespace it was opened in.

use std::time::Duration;

use netlink_packet_core::{
    ErrorBuffer, NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkMessage};
use netlink_packet_route::stats::{StatsFilterMask, StatsMessage};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use rustix::net::RecvFlags;

use super::TrafficError;
use super::links::{LinkCounters, LinkEntry, parse_newlink, parse_newstats};

/// How long a reply may take before the request fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

const RTM_NEWLINK: u16 = 16;
const RTM_NEWSTATS: u16 = 92;
const MIN_RECV_BUFFER: usize = 64 * 1024;

/// Flags of a request that wants an ACK.
pub(super) const REQUEST_ACK: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// Serialises `msg` as one netlink request with `flags` and `seq`.
pub(super) fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

fn get_link(msg: LinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    encode(RouteNetlinkMessage::GetLink(msg), flags, seq)
}

fn vf_mask() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::Vf])
}

/// Dump every link, with VF info (`RTM_GETLINK`, `NLM_F_DUMP`).
pub fn dump_links_request(seq: u32) -> Vec<u8> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(vf_mask());
    get_link(msg, NLM_F_REQUEST | NLM_F_DUMP, seq)
}

/// One link by name, with VF info.
pub fn get_link_request(ifname: &str, seq: u32) -> Vec<u8> {
    let mut msg = LinkMessage::default();
    msg.attributes
        .push(LinkAttribute::IfName(ifname.to_owned()));
    msg.attributes.push(vf_mask());
    get_link(msg, NLM_F_REQUEST, seq)
}

/// One link by interface index, with VF info.
pub fn get_link_by_index_request(index: u32, seq: u32) -> Vec<u8> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(vf_mask());
    get_link(msg, NLM_F_REQUEST, seq)
}

/// Dump every link's 64-bit counters (`RTM_GETSTATS`, `IFLA_STATS_LINK_64`).
pub fn dump_stats_request(seq: u32) -> Vec<u8> {
    let mut msg = StatsMessage::default();
    msg.header.filter_mask = StatsFilterMask::Link64;
    encode(
        RouteNetlinkMessage::GetStats(msg),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    )
}

/// A blocking rtnetlink socket, its sequence numbers and receive buffer.
pub(super) struct RtSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl RtSocket {
    /// Opens and binds a `NETLINK_ROUTE` socket in the current namespace.
    pub fn open() -> Result<Self, TrafficError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(TrafficError::Socket)?;
        socket.bind_auto().map_err(TrafficError::Socket)?;
        rustix::net::sockopt::set_socket_timeout(
            &socket,
            rustix::net::sockopt::Timeout::Recv,
            Some(REPLY_TIMEOUT),
        )
        .map_err(|e| TrafficError::Socket(e.into()))?;
        Ok(Self {
            socket,
            seq: 0,
            buf: vec![0; MIN_RECV_BUFFER],
        })
    }

    /// The next sequence number (never 0, which the kernel uses for events).
    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends the request `build(seq)` and feeds every reply message
    /// (type, payload) to `on_msg` until the exchange is complete.
    fn exchange(
        &mut self,
        name: &'static str,
        build: impl FnOnce(u32) -> Vec<u8>,
        on_msg: &mut dyn FnMut(u16, &[u8]),
    ) -> Result<(), TrafficError> {
        let seq = self.next_seq();
        let request = build(seq);
        self.socket
            .send(&request, 0)
            .map_err(|source| TrafficError::Send {
                request: name,
                source,
            })?;
        let receive = |source: rustix::io::Errno| TrafficError::Receive {
            request: name,
            source: source.into(),
        };
        loop {
            let (_, size) = rustix::net::recv(
                &self.socket,
                &mut [0u8; 0][..],
                RecvFlags::PEEK | RecvFlags::TRUNC,
            )
            .map_err(receive)?;
            if size > self.buf.len() {
                self.buf.resize(size, 0);
            }
            let (_, got) = rustix::net::recv(&self.socket, &mut self.buf[..], RecvFlags::empty())
                .map_err(receive)?;
            let got = got.min(self.buf.len());
            if read_replies(name, &self.buf[..got], seq, on_msg)? {
                return Ok(());
            }
        }
    }

    /// Dumps every link with VF info.
    pub fn dump_links(&mut self) -> Result<Vec<LinkEntry>, TrafficError> {
        let mut links = Vec::new();
        self.exchange(
            "RTM_GETLINK dump",
            dump_links_request,
            &mut |kind, payload| {
                collect_link(kind, payload, &mut links);
            },
        )?;
        Ok(links)
    }

    /// Dumps every link's counters into `stats` (cleared first, so one
    /// buffer serves every tick).
    pub fn dump_stats(&mut self, stats: &mut Vec<LinkCounters>) -> Result<(), TrafficError> {
        stats.clear();
        self.exchange(
            "RTM_GETSTATS dump",
            dump_stats_request,
            &mut |kind, payload| {
                if kind == RTM_NEWSTATS {
                    match parse_newstats(payload) {
                        Ok(s) => stats.push(s),
                        Err(detail) => tracing::debug!(%detail, "skipped link counters"),
                    }
                }
            },
        )
    }

    /// One link, by index: `None` if it no longer exists.
    pub fn get_link_by_index(&mut self, index: u32) -> Result<Option<LinkEntry>, TrafficError> {
        let mut links = Vec::new();
        let result = self.exchange(
            "RTM_GETLINK by index",
            |seq| get_link_by_index_request(index, seq),
            &mut |kind, payload| collect_link(kind, payload, &mut links),
        );
        match result {
            Err(e) if is_enodev(&e) => Ok(None),
            Err(e) => Err(e),
            Ok(()) => Ok(links.pop()),
        }
    }

    /// The link named `ifname`, with VF info.
    pub fn get_link(&mut self, ifname: &str) -> Result<LinkEntry, TrafficError> {
        let mut links = Vec::new();
        let result = self.exchange(
            "RTM_GETLINK",
            |seq| get_link_request(ifname, seq),
            &mut |kind, payload| collect_link(kind, payload, &mut links),
        );
        let absent = || TrafficError::NoSuchDevice {
            ifname: ifname.to_owned(),
        };
        match result {
            Err(e) if is_enodev(&e) => Err(absent()),
            Err(e) => Err(e),
            Ok(()) => links.pop().ok_or_else(absent),
        }
    }

    /// Sends a request that expects only an ACK (e.g. `RTM_SETLINK`).
    pub fn request_ack(
        &mut self,
        name: &'static str,
        build: impl FnOnce(u32) -> Vec<u8>,
    ) -> Result<(), TrafficError> {
        self.exchange(name, build, &mut |_, _| {})
    }
}

fn is_enodev(e: &TrafficError) -> bool {
    matches!(e, TrafficError::Kernel { source, .. }
        if source.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()))
}

fn collect_link(kind: u16, payload: &[u8], links: &mut Vec<LinkEntry>) {
    if kind == RTM_NEWLINK {
        match parse_newlink(payload) {
            Ok(link) => links.push(link),
            Err(detail) => tracing::debug!(%detail, "skipped link"),
        }
    }
}

/// Walks the netlink messages in one received buffer, feeding the replies
/// to `seq` to `on_msg`. Returns true when the exchange is complete (DONE,
/// ACK, or a reply that is not part of a multipart dump).
fn read_replies(
    name: &'static str,
    mut buf: &[u8],
    seq: u32,
    on_msg: &mut dyn FnMut(u16, &[u8]),
) -> Result<bool, TrafficError> {
    let malformed = |detail: String| TrafficError::Malformed {
        request: name,
        detail,
    };
    while !buf.is_empty() {
        let msg = Header::read(buf).map_err(malformed)?;
        let len = msg.len;
        if msg.seq == seq {
            match msg.kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let err = ErrorBuffer::new_checked(msg.payload)
                        .map_err(|e| malformed(e.to_string()))?;
                    return match err.code() {
                        None => Ok(true),
                        Some(code) => Err(TrafficError::Kernel {
                            request: name,
                            source: std::io::Error::from_raw_os_error(-code.get()),
                        }),
                    };
                }
                kind => {
                    on_msg(kind, msg.payload);
                    if msg.flags & NLM_F_MULTIPART == 0 {
                        return Ok(true);
                    }
                }
            }
        }
        // Messages are 4-byte aligned; the last one may end the buffer.
        let next = len.next_multiple_of(4).min(buf.len());
        buf = &buf[next..];
    }
    Ok(false)
}

/// The fields of one `struct nlmsghdr` that the exchange uses, and the
/// message's payload.
struct Header<'a> {
    len: usize,
    kind: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

/// Length of `struct nlmsghdr`.
const NLMSG_HDR_LEN: usize = 16;

impl<'a> Header<'a> {
    /// The first message of `buf`: checks `16 <= nlmsg_len <= buf.len()`
    /// (what `NetlinkBuffer::new_checked` checks, without its per-field
    /// parsers: this runs for each of 1,024 messages a tick).
    fn read(buf: &'a [u8]) -> Result<Self, String> {
        let Some(h) = buf.first_chunk::<NLMSG_HDR_LEN>() else {
            return Err(format!("netlink header in {} bytes", buf.len()));
        };
        let raw_len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]);
        let len = usize::try_from(raw_len).map_err(|e| e.to_string())?;
        let payload = buf
            .get(NLMSG_HDR_LEN..len)
            .ok_or_else(|| format!("netlink message of length {len} in {} bytes", buf.len()))?;
        Ok(Self {
            len,
            kind: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            payload,
        })
    }
}

/// Decodes one received buffer of replies to request `seq`: the links it
/// carries, and whether the exchange is complete. Links that cannot be
/// decoded are skipped, as in a live dump.
pub fn parse_replies(buf: &[u8], seq: u32) -> Result<(Vec<LinkEntry>, bool), TrafficError> {
    let mut links = Vec::new();
    let done = read_replies("reply", buf, seq, &mut |kind, payload| {
        collect_link(kind, payload, &mut links);
    })?;
    Ok((links, done))
}

/// Like [`parse_replies`] for an `RTM_GETSTATS` dump: each link's counters.
pub fn parse_stats_replies(
    buf: &[u8],
    seq: u32,
) -> Result<(Vec<LinkCounters>, bool), TrafficError> {
    let mut stats = Vec::new();
    let done = read_replies("reply", buf, seq, &mut |kind, payload| {
        if kind == RTM_NEWSTATS
            && let Ok(s) = parse_newstats(payload)
        {
            stats.push(s);
        }
    })?;
    Ok((stats, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&len.to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&7u32.to_ne_bytes());
        b
    }

    #[test]
    fn header_reads_its_fields_and_payload() {
        let mut b = header(20, RTM_NEWSTATS, NLM_F_MULTIPART, 9);
        b.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let h = Header::read(&b).unwrap();
        assert_eq!(
            (h.len, h.kind, h.flags, h.seq),
            (20, RTM_NEWSTATS, NLM_F_MULTIPART, 9)
        );
        assert_eq!(h.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn header_length_outside_16_to_buffer_is_an_error() {
        assert!(Header::read(&header(15, 1, 0, 1)).is_err());
        assert!(Header::read(&header(17, 1, 0, 1)).is_err());
        assert!(Header::read(&header(16, 1, 0, 1)[..15]).is_err());
        assert_eq!(
            Header::read(&header(16, 1, 0, 1)).unwrap().payload,
            &[] as &[u8]
        );
    }
}

//! The rtnetlink side: building `RTM_GETLINK`/`RTM_SETLINK` requests with
//! `netlink-packet-route`, exchanging them over a `netlink-sys` socket, and
//! [`NetlinkTrafficCounters`], which answers each sampling tick from one
//! `RTM_GETLINK` dump with `IFLA_EXT_MASK = RTEXT_FILTER_VF`.
//!
//! ## Behavior
//! The socket is blocking with a receive timeout ([`REPLY_TIMEOUT`]). The
//! kernel builds a dump inside the `send`/`recv` calls themselves, so a
//! tick's dump costs CPU time proportional to the number of links (and
//! VFs) rather than waiting; it can wait behind the RTNL lock while another
//! process reconfigures links. Callers on an async runtime should run the
//! sampler on its own thread or in `spawn_blocking`.
//! A link whose message cannot be decoded is skipped (logged at debug) so
//! one odd device cannot stop every policy; an error reply, a malformed
//! netlink header or a socket error fails the whole tick.
//!
//! ## Limitations
//! The socket sees the network namespace it was opened in.

use std::time::Duration;

use netlink_packet_core::{
    ErrorBuffer, NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkMessage};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

use super::links::{LinkEntry, LinkTable, parse_newlink};
use super::{ConfiguredMap, MacAddr, MacSample, TrafficCounters, TrafficError, resolve};

/// How long a reply may take before the request fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

const RTM_NEWLINK: u16 = 16;

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

/// The per-tick request: dump every link, with VF info.
pub fn dump_links_request(seq: u32) -> Vec<u8> {
    let mut msg = LinkMessage::default();
    msg.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
    encode(
        RouteNetlinkMessage::GetLink(msg),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    )
}

/// A request for one link by name, with VF info.
pub fn get_link_request(ifname: &str, seq: u32) -> Vec<u8> {
    let mut msg = LinkMessage::default();
    msg.attributes
        .push(LinkAttribute::IfName(ifname.to_owned()));
    msg.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
    encode(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST, seq)
}

/// A blocking rtnetlink socket with its request sequence numbers.
pub(super) struct RtSocket {
    socket: Socket,
    seq: u32,
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
        Ok(Self { socket, seq: 0 })
    }

    /// The next sequence number (never 0, which the kernel uses for events).
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends `request` (numbered `seq`) and feeds every link in the reply
    /// to `on_link`, until the dump's DONE, an ACK, or a single reply.
    pub fn exchange(
        &mut self,
        name: &'static str,
        request: &[u8],
        seq: u32,
        on_link: &mut dyn FnMut(LinkEntry),
    ) -> Result<(), TrafficError> {
        self.socket
            .send(request, 0)
            .map_err(|source| TrafficError::Send {
                request: name,
                source,
            })?;
        loop {
            let (buf, _) =
                self.socket
                    .recv_from_full()
                    .map_err(|source| TrafficError::Receive {
                        request: name,
                        source,
                    })?;
            if read_replies(name, &buf, seq, on_link)? {
                return Ok(());
            }
        }
    }

    /// Dumps every link with VF info.
    pub fn dump_links(&mut self) -> Result<LinkTable, TrafficError> {
        let seq = self.next_seq();
        let mut table = LinkTable::default();
        self.exchange(
            "RTM_GETLINK dump",
            &dump_links_request(seq),
            seq,
            &mut |l| {
                table.links.push(l);
            },
        )?;
        Ok(table)
    }

    /// The link named `ifname`, with VF info.
    pub fn get_link(&mut self, ifname: &str) -> Result<LinkEntry, TrafficError> {
        let seq = self.next_seq();
        let mut found = None;
        let result = self.exchange(
            "RTM_GETLINK",
            &get_link_request(ifname, seq),
            seq,
            &mut |l| {
                found = Some(l);
            },
        );
        match result {
            Err(TrafficError::Kernel { source, .. })
                if source.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) =>
            {
                Err(TrafficError::NoSuchDevice {
                    ifname: ifname.to_owned(),
                })
            }
            Err(e) => Err(e),
            Ok(()) => found.ok_or_else(|| TrafficError::NoSuchDevice {
                ifname: ifname.to_owned(),
            }),
        }
    }
}

/// Walks the netlink messages in one received buffer. Returns true when
/// the exchange is complete (DONE, ACK, or a reply that is not part of a
/// multipart dump). Messages of other sequence numbers are ignored.
pub(super) fn read_replies(
    name: &'static str,
    mut buf: &[u8],
    seq: u32,
    on_link: &mut dyn FnMut(LinkEntry),
) -> Result<bool, TrafficError> {
    let malformed = |detail: String| TrafficError::Malformed {
        request: name,
        detail,
    };
    while !buf.is_empty() {
        let msg = NetlinkBuffer::new_checked(buf).map_err(|e| malformed(e.to_string()))?;
        let len = usize::try_from(msg.length()).map_err(|e| malformed(e.to_string()))?;
        if msg.sequence_number() == seq {
            match msg.message_type() {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let err = ErrorBuffer::new_checked(msg.payload())
                        .map_err(|e| malformed(e.to_string()))?;
                    return match err.code() {
                        None => Ok(true),
                        Some(code) => Err(TrafficError::Kernel {
                            request: name,
                            source: std::io::Error::from_raw_os_error(-code.get()),
                        }),
                    };
                }
                RTM_NEWLINK => {
                    match parse_newlink(msg.payload()) {
                        Ok(link) => on_link(link),
                        Err(detail) => tracing::debug!(request = name, %detail, "skipped link"),
                    }
                    if msg.flags() & NLM_F_MULTIPART == 0 {
                        return Ok(true);
                    }
                }
                _ => {}
            }
        }
        // Messages are 4-byte aligned; the last one may end the buffer.
        let next = len.next_multiple_of(4).min(buf.len());
        buf = &buf[next..];
    }
    Ok(false)
}

/// Traffic counters read from the host's rtnetlink: one link dump per
/// [`TrafficCounters::sample`] call, resolved by the precedence in the
/// module docs of [`crate::traffic`].
pub struct NetlinkTrafficCounters {
    socket: RtSocket,
    configured: ConfiguredMap,
}

impl NetlinkTrafficCounters {
    /// Opens an rtnetlink socket in the current network namespace.
    pub fn new(configured: ConfiguredMap) -> Result<Self, TrafficError> {
        Ok(Self {
            socket: RtSocket::open()?,
            configured,
        })
    }

    /// Replaces the configured MAC → device map (on config reload).
    pub fn set_configured(&mut self, configured: ConfiguredMap) {
        self.configured = configured;
    }

    /// One raw snapshot of every link (for `show` commands and tests).
    pub fn dump(&mut self) -> Result<LinkTable, TrafficError> {
        self.socket.dump_links()
    }
}

impl TrafficCounters for NetlinkTrafficCounters {
    fn sample(&mut self, macs: &[MacAddr]) -> Result<Vec<MacSample>, TrafficError> {
        let table = self.socket.dump_links()?;
        Ok(resolve(&table, &self.configured, macs))
    }
}

/// Sends a request that expects only an ACK (e.g. `RTM_SETLINK`).
pub(super) fn request_ack(
    socket: &mut RtSocket,
    name: &'static str,
    build: impl FnOnce(u32) -> Vec<u8>,
) -> Result<(), TrafficError> {
    let seq = socket.next_seq();
    let request = build(seq);
    socket.exchange(name, &request, seq, &mut |_| {})
}

/// Decodes one received buffer of replies to request `seq`: the links it
/// carries, and whether the exchange is complete. Links that cannot be
/// decoded are skipped, as in a live dump.
pub fn parse_replies(buf: &[u8], seq: u32) -> Result<(Vec<LinkEntry>, bool), TrafficError> {
    let mut links = Vec::new();
    let done = read_replies("reply", buf, seq, &mut |l| links.push(l))?;
    Ok((links, done))
}

/// Flags of a request that wants an ACK.
pub(super) const REQUEST_ACK: u16 = NLM_F_REQUEST | NLM_F_ACK;

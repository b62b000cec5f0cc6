//! [`LinkEvents`]: the kernel's link notifications (`RTNLGRP_LINK`), so the
//! traffic counters dump the link topology again when a link changes
//! instead of on a short timer.
//!
//! With 1,024 links a full `RTM_GETLINK` dump (with VF info) costs the
//! kernel about as much as seven counters dumps, and user space parses
//! 1,024 link messages and resolves every MAC again; doing it every 5 s
//! was a tenth of the daemon's CPU at 1,024 TRAFFIC policies.
//!
//! ## Behavior
//! A non-blocking `NETLINK_ROUTE` socket joined to `RTNLGRP_LINK` (no
//! privilege needed) receives an `RTM_NEWLINK` or `RTM_DELLINK` whenever a
//! link is added, removed or changed (MAC, name, flags, a VF's MAC set
//! through the PF). [`LinkEvents::changed`] drains whatever arrived
//! (one `recv` returning `EAGAIN` when nothing did) and says whether
//! anything did. The messages are not decoded: any of them means "dump
//! again". A queue overflow (`ENOBUFS`: events were lost) or any other
//! socket error also counts as a change, so a lost event can only cost a
//! dump, never a stale topology.
//!
//! ## Limitations
//! The socket sees the network namespace it was opened in. Some changes
//! reach no notification (e.g. a VF's MAC set by the guest's VF driver
//! through the PF driver): the caller keeps a slow periodic dump for those.

use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use rustix::io::Errno;
use rustix::net::RecvFlags;

use super::TrafficError;

/// `RTNLGRP_LINK`: the multicast group of link notifications.
const RTNLGRP_LINK: u32 = 1;

/// Bytes read of each notification (they are counted, not decoded; a
/// longer one is truncated, which drops only its tail).
const EVENT_PEEK: usize = 64;

/// A subscription to the kernel's link notifications (see module docs).
pub struct LinkEvents {
    socket: Socket,
}

impl LinkEvents {
    /// Opens a non-blocking socket joined to `RTNLGRP_LINK` in the current
    /// network namespace.
    pub fn open() -> Result<Self, TrafficError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(TrafficError::Socket)?;
        socket.bind_auto().map_err(TrafficError::Socket)?;
        socket
            .add_membership(RTNLGRP_LINK)
            .map_err(TrafficError::Socket)?;
        socket
            .set_non_blocking(true)
            .map_err(TrafficError::Socket)?;
        Ok(Self { socket })
    }

    /// Drains the notifications received since the last call: true when
    /// there was any (or some were lost, or the socket failed).
    pub fn changed(&mut self) -> bool {
        let mut buf = [0u8; EVENT_PEEK];
        let mut changed = false;
        loop {
            match rustix::net::recv(&self.socket, &mut buf[..], RecvFlags::DONTWAIT) {
                Ok(_) => changed = true,
                Err(Errno::AGAIN) => return changed,
                Err(Errno::INTR) => {}
                Err(Errno::NOBUFS) => {
                    tracing::debug!("link notifications overflowed: dumping the links again");
                    changed = true;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "link notification socket failed");
                    return true;
                }
            }
        }
    }
}

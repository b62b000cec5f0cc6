//! The common case in one call: a namespace with one veth pair, addressed
//! with a /30 and a permanent neighbour entry, and the sender that sends
//! across it.
//!
//! ## Behavior
//! - Names come from [`unique_name`] (`vln<pid>-<n>` for the namespace,
//!   `vlh<pid>-<n>` for the host end, `eth0` inside), the /30 from
//!   [`LinkNet::next`]: pairs of one process never clash.
//! - The host end carries the given MAC (so a daemon can find it) and the
//!   /30's host address; datagrams from [`AddressedPair::sender_spec`] go
//!   from the peer to the host end's discard port and stay on the pair.
//! - Dropping the pair removes it and the namespace.

use std::net::{SocketAddr, SocketAddrV4};

use crate::names::{LinkNet, unique_name};
use crate::netns::{Netns, NetnsError, VethSpec};
use crate::sender::SenderSpec;

/// A namespace with one addressed veth pair; removed on drop.
#[derive(Debug)]
pub struct AddressedPair {
    /// The namespace (holding the peer end, `eth0`).
    pub netns: Netns,
    /// The pair's names and the host end's MAC.
    pub veth: VethSpec,
    /// The pair's addresses.
    pub net: LinkNet,
}

impl AddressedPair {
    /// Makes the namespace and the pair, the host end with `mac`.
    pub fn create(mac: [u8; 6]) -> Result<AddressedPair, NetnsError> {
        let mut netns = Netns::create(&unique_name("vln")?)?;
        let veth = VethSpec {
            host: unique_name("vlh")?,
            peer: "eth0".into(),
            mac: Some(mac),
        };
        netns.add_veth(&veth)?;
        let net = LinkNet::next();
        netns.address(&veth, &net)?;
        Ok(AddressedPair { netns, veth, net })
    }

    /// The host end's name.
    pub fn host(&self) -> &str {
        &self.veth.host
    }

    /// A sender from inside the namespace (the peer's address) to the host
    /// end's discard port (9).
    pub fn sender_spec(&self) -> SenderSpec {
        SenderSpec::new(
            SocketAddr::V4(SocketAddrV4::new(self.net.peer, 0)),
            SocketAddr::V4(SocketAddrV4::new(self.net.host, 9)),
        )
        .in_netns(self.netns.name())
    }
}

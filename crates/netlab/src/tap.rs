//! A host tap (what QEMU attaches a guest NIC to), behind a guard that
//! deletes it.
//!
//! ## Behavior
//! - [`Tap::create`] makes the tap with the given MAC; [`Tap::address`]
//!   gives it the host end of a /30, brings it up and adds a permanent
//!   neighbour entry for the guest's address (no ARP: every datagram sent
//!   to the guest goes into the tap at once).
//! - Dropping a [`Tap`] deletes it; [`Tap::remove`] does so and reports a
//!   failure. The name is recorded before the tap is made, so a failed
//!   step is cleaned up too.
//!
//! Errors are [`NetnsError`]s (a bad name, or a failed `ip`).
//!
//! ## Limitations
//! Needs root and iproute2.

use crate::ip::{ip, ip_batch};
use crate::names::{LinkNet, check_ifname, mac_text};
use crate::netns::NetnsError;

/// A tap in the caller's namespace; deleted on drop.
#[derive(Debug)]
pub struct Tap {
    name: String,
    removed: bool,
}

impl Tap {
    /// Makes tap `name` with MAC `mac` (the kernel picks one when `None`).
    pub fn create(name: &str, mac: Option<[u8; 6]>) -> Result<Tap, NetnsError> {
        check_ifname(name)?;
        let mut tap = Tap {
            name: name.to_owned(),
            removed: false,
        };
        if let Err(e) = ip(&["tuntap", "add", "dev", name, "mode", "tap"]) {
            // Nothing made: nothing to delete (the name may be another's).
            tap.removed = true;
            return Err(e.into());
        }
        if let Some(mac) = mac {
            ip(&["link", "set", name, "address", &mac_text(mac)])?;
        }
        Ok(tap)
    }

    /// The tap's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives the tap `net`'s host address, brings it up, and adds a
    /// permanent neighbour entry: `net`'s peer address at `peer_mac`.
    pub fn address(&self, net: &LinkNet, peer_mac: [u8; 6]) -> Result<(), NetnsError> {
        let name = &self.name;
        let lines = format!(
            "addr add {} dev {name}\nlink set {name} up\n\
             neigh replace {} lladdr {} dev {name} nud permanent\n",
            net.host_cidr(),
            net.peer,
            mac_text(peer_mac),
        );
        ip_batch(&[], &lines)?;
        Ok(())
    }

    /// Deletes the tap.
    pub fn remove(mut self) -> Result<(), NetnsError> {
        self.removed = true;
        ip(&["link", "del", &self.name])?;
        Ok(())
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if !self.removed {
            let _ = ip(&["link", "del", &self.name]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::NameError;

    #[test]
    fn bad_names_are_refused_before_ip_runs() {
        assert!(matches!(
            Tap::create("tap-name-far-too-long", None),
            Err(NetnsError::Name(NameError::TooLong { len: 21, .. }))
        ));
        assert!(matches!(
            Tap::create("a b", None),
            Err(NetnsError::Name(NameError::Invalid { .. }))
        ));
    }
}

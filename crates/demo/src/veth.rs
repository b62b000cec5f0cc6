//! Real traffic's plumbing: for each traffic VM, a network namespace and a
//! veth pair (made and removed by [`vmpower_netlab`]).
//!
//! Pair `n` of run `pid` is named `vmpd-<pid>-<n>` on both sides of the
//! naming: the namespace and the pair's end in the demo's own namespace
//! (where the in-process daemon's rtnetlink counters look). That end
//! carries the policy's MAC, so the daemon finds it as a netdev and counts
//! what it receives. The other end, `eth0` inside the namespace, has
//! 192.0.2.2/24 (TEST-NET-1, only inside the namespace) and a default
//! route, for the sender (see [`crate::feed`]).
//!
//! ## Behavior
//! - Nothing is added to the demo's own namespace but the pair's end: no
//!   address, no route. The sender's frames are UDP to the limited
//!   broadcast address, which the kernel never forwards and never answers
//!   with ICMP; they go no further than the pair.
//! - [`Pairs::create`] removes what it made if a step fails; dropping
//!   [`Pairs`] removes everything (also on error or panic);
//!   [`Pairs::remove`] does it explicitly and then checks that no
//!   namespace or link with the run's prefix is left.
//! - [`sweep_stale`] removes the namespaces of runs whose process is gone
//!   (a demo killed with SIGKILL cannot clean up after itself).
//!
//! ## Limitations
//! Needs root and `ip` (iproute2). Names fit IFNAMSIZ for pids up to
//! 4,194,304 (Linux's maximum) and up to 100 pairs.

use std::path::Path;
use std::time::Duration;

use vmpower_netlab::ip::{IpError, leftovers};
use vmpower_netlab::names::run_prefix;
use vmpower_netlab::{Netns, NetnsError, VethSpec};
use vmpower_proto::MacAddr;

/// The prefix of every name the demo makes.
pub const PREFIX: &str = "vmpd-";

/// Why the pairs could not be made, or not removed.
#[derive(Debug, thiserror::Error)]
pub enum VethError {
    /// Not root, or no working `ip`.
    #[error(transparent)]
    Unavailable(#[from] IpError),
    /// A namespace or pair could not be made.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Something with the prefix is still there after removal.
    #[error("still present after removal: {0}")]
    Left(String),
    /// More pairs than the names allow.
    #[error("{0} traffic VMs: real traffic supports at most 100")]
    TooMany(usize),
}

/// Whether pairs can be made here: root and a working `ip`.
pub fn available() -> Result<(), VethError> {
    Ok(vmpower_netlab::available()?)
}

/// The name of pair `n` of run `pid` (namespace and host end alike).
pub fn name(pid: u32, n: usize) -> String {
    format!("{}{n}", run_prefix(PREFIX, pid))
}

/// One pair made for a traffic VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The namespace, and the pair's end in the demo's namespace.
    pub name: String,
    /// The MAC on that end (the policy's MAC).
    pub mac: MacAddr,
}

/// The pairs of one run; dropping removes them.
#[derive(Debug)]
pub struct Pairs {
    pid: u32,
    pairs: Vec<Pair>,
    /// The namespaces, each holding its pair (their guards).
    netns: Vec<Netns>,
}

impl Pairs {
    /// Makes one namespace and pair per entry of `macs`, `(n, mac)` giving
    /// pair `n` of this process.
    pub fn create(macs: &[(usize, MacAddr)]) -> Result<Pairs, VethError> {
        if macs.len() > 100 {
            return Err(VethError::TooMany(macs.len()));
        }
        let mut pairs = Pairs {
            pid: std::process::id(),
            pairs: Vec::new(),
            netns: Vec::new(),
        };
        for &(n, mac) in macs {
            let name = name(pairs.pid, n);
            let mut netns = Netns::create(&name)?;
            let spec = VethSpec {
                host: name.clone(),
                peer: "eth0".into(),
                mac: Some(mac.0),
            };
            // The guard is kept first: a failed step below is cleaned up.
            let netns = {
                let made = netns.add_veth(&spec);
                pairs.netns.push(netns);
                made?;
                pairs.netns.last().expect("just pushed")
            };
            netns.batch(
                "addr add 192.0.2.2/24 dev eth0\n\
                 route add default dev eth0\n",
            )?;
            pairs.pairs.push(Pair { name, mac });
        }
        Ok(pairs)
    }

    /// The pairs.
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// Every name with this run's prefix.
    pub fn prefix(&self) -> String {
        run_prefix(PREFIX, self.pid)
    }

    /// Deletes every pair and namespace, then checks that nothing with the
    /// run's prefix is left; returns the names removed.
    pub fn remove(&mut self) -> Result<Vec<String>, VethError> {
        for netns in self.netns.drain(..) {
            // A failed delete (e.g. of something removed by hand) is not an
            // error in itself: what counts is that nothing is left.
            let _ = netns.remove();
        }
        let left = leftovers(&self.prefix(), Duration::from_secs(2))?;
        if !left.is_empty() {
            return Err(VethError::Left(left.join(", ")));
        }
        Ok(self.pairs.iter().map(|p| p.name.clone()).collect())
    }
}

/// Removes the namespaces (and with them the pairs) of demo runs whose
/// process no longer runs under `proc`, and any left with this process's
/// own pid (from an earlier process that had it): call before
/// [`Pairs::create`]. Returns the names removed.
pub fn sweep_stale(proc: &Path) -> Vec<String> {
    vmpower_netlab::netns::sweep_stale(PREFIX, proc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmpower_netlab::names::{check_ifname, parse_name};

    #[test]
    fn names_fit_ifnamsiz_and_parse_back() {
        let longest = name(4_194_304, 99);
        assert_eq!(longest, "vmpd-4194304-99");
        assert_eq!(check_ifname(&longest), Ok(()));
        assert_eq!(parse_name(PREFIX, &longest), Some((4_194_304, 99)));
        assert!(name(12, 3).starts_with(&run_prefix(PREFIX, 12)));
    }

    #[test]
    fn pairs_are_removed_explicitly_and_by_drop() {
        if available().is_err() {
            eprintln!("skipped: needs root and ip");
            return;
        }
        let prefix = run_prefix(PREFIX, std::process::id());
        let macs = [(0, MacAddr([2, 0x77, 0, 0, 0, 1]))];
        let mut pairs = match Pairs::create(&macs) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("skipped: network namespaces unavailable: {e}");
                return;
            }
        };
        let made = leftovers(&prefix, Duration::ZERO).unwrap();
        assert_eq!(
            made,
            [format!("netns {prefix}0"), format!("link {prefix}0")]
        );
        let inside = pairs.netns[0].ip(&["route", "show"]).unwrap();
        assert!(inside.contains("default dev eth0"), "{inside}");
        assert_eq!(pairs.remove().unwrap(), [format!("{prefix}0")]);
        assert!(leftovers(&prefix, Duration::ZERO).unwrap().is_empty());
        // Dropped without remove (an error path): gone all the same.
        let pairs = Pairs::create(&macs).unwrap();
        assert_eq!(leftovers(&prefix, Duration::ZERO).unwrap().len(), 2);
        drop(pairs);
        assert!(
            leftovers(&prefix, Duration::from_secs(2))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn too_many_pairs_are_refused_before_anything_is_made() {
        let macs: Vec<(usize, MacAddr)> = (0..101).map(|n| (n, MacAddr::default())).collect();
        assert!(matches!(Pairs::create(&macs), Err(VethError::TooMany(101))));
    }
}

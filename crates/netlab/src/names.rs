//! Names and addresses for what the lab makes: interface and namespace
//! names within IFNAMSIZ that carry the pid of the run that made them, /30
//! link-local networks, and MAC text.
//!
//! ## Behavior
//! - [`name`] is `PREFIX<pid>-<n>`; it is refused ([`NameError`]) rather
//!   than cut when longer than 15 bytes (IFNAMSIZ less the NUL), so two
//!   runs can never end up with the same truncated name.
//! - [`unique_name`] takes `n` from a process-wide counter: two tests of
//!   one process (threads under `cargo test`) never share a name, and two
//!   processes differ by pid.
//! - [`parse_name`] gives back the pid, so a run can sweep what runs that
//!   were killed left behind.
//! - [`LinkNet`] picks a /30 in 169.254.1.0–169.254.254.255 from the pid
//!   and an index; the first 64 of a process are distinct.
//!
//! Pure: no I/O here.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The longest interface (or namespace) name: IFNAMSIZ (16) less the NUL.
pub const IFNAME_MAX: usize = 15;

/// Why a name cannot be an interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Longer than [`IFNAME_MAX`] bytes.
    #[error("interface name {name:?} is {len} bytes, at most {IFNAME_MAX} fit")]
    TooLong {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// Empty, `.`, `..`, or with a `/`, `:` or white space.
    #[error("{name:?} is not a valid interface name")]
    Invalid {
        /// The name.
        name: String,
    },
}

/// Checks that `name` is a valid interface (and namespace) name.
pub fn check_ifname(name: &str) -> Result<(), NameError> {
    let bad_char = |c: char| c == '/' || c == ':' || c.is_whitespace();
    if name.is_empty() || name == "." || name == ".." || name.contains(bad_char) {
        return Err(NameError::Invalid {
            name: name.to_owned(),
        });
    }
    if name.len() > IFNAME_MAX {
        return Err(NameError::TooLong {
            name: name.to_owned(),
            len: name.len(),
        });
    }
    Ok(())
}

/// `PREFIX<pid>-<n>`, checked to fit.
pub fn name(prefix: &str, pid: u32, n: usize) -> Result<String, NameError> {
    let name = format!("{}{n}", run_prefix(prefix, pid));
    check_ifname(&name)?;
    Ok(name)
}

/// `PREFIX<pid>-`: every name of run `pid` starts with it.
pub fn run_prefix(prefix: &str, pid: u32) -> String {
    format!("{prefix}{pid}-")
}

/// The next name of this process: `PREFIX<pid>-<n>`, `n` counted for the
/// whole process (shared by every prefix).
pub fn unique_name(prefix: &str) -> Result<String, NameError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    name(
        prefix,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
    )
}

/// The pid and index of a name made by [`name`] with `prefix`.
pub fn parse_name(prefix: &str, name: &str) -> Option<(u32, usize)> {
    let (pid, n) = name.strip_prefix(prefix)?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    Some((pid.parse().ok()?, n.parse().ok()?))
}

/// A /30 link-local network: the host end's address and the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkNet {
    /// The host end's address (`.1` of the /30).
    pub host: Ipv4Addr,
    /// The peer end's address (`.2` of the /30).
    pub peer: Ipv4Addr,
}

impl LinkNet {
    /// The /30 of index `n` (taken modulo 64) for run `pid`.
    pub fn new(pid: u32, n: usize) -> LinkNet {
        let third = u8::try_from(1 + pid % 254).expect("1..=254 fits a byte");
        let fourth = u8::try_from(4 * (n % 64)).expect("0..=252 fits a byte");
        LinkNet {
            host: Ipv4Addr::new(169, 254, third, fourth + 1),
            peer: Ipv4Addr::new(169, 254, third, fourth + 2),
        }
    }

    /// The next /30 of this process (distinct for its first 64).
    pub fn next() -> LinkNet {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        LinkNet::new(std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// `HOST/30`.
    pub fn host_cidr(&self) -> String {
        format!("{}/30", self.host)
    }

    /// `PEER/30`.
    pub fn peer_cidr(&self) -> String {
        format!("{}/30", self.peer)
    }
}

/// `xx:xx:xx:xx:xx:xx`, lower-case hex.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's largest pid (`/proc/sys/kernel/pid_max` at most 2^22).
    const PID_MAX: u32 = 4_194_304;

    #[test]
    fn names_fit_ifnamsiz_or_are_refused() {
        assert_eq!(name("vmpd-", PID_MAX, 99).unwrap(), "vmpd-4194304-99");
        assert!(name("vmpd-", PID_MAX, 100).is_err(), "16 bytes");
        assert_eq!(
            name("vmpd-", PID_MAX, 100),
            Err(NameError::TooLong {
                name: "vmpd-4194304-100".into(),
                len: 16
            })
        );
        for bad in ["", ".", "..", "a/b", "a:b", "a b"] {
            assert!(
                matches!(check_ifname(bad), Err(NameError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(check_ifname("eth0"), Ok(()));
    }

    #[test]
    fn names_parse_back_to_pid_and_index() {
        assert_eq!(parse_name("vmpd-", "vmpd-4194304-99"), Some((PID_MAX, 99)));
        assert_eq!(parse_name("vmpd-", "vmpd-12-0"), Some((12, 0)));
        for other in [
            "vmpd-12",
            "vmpd-x-1",
            "vmpd-12-x",
            "vmpd--1",
            "vmpd-12-",
            "vmpd-+1-2",
            "vmpp12-1",
            "eth0",
        ] {
            assert_eq!(parse_name("vmpd-", other), None, "{other}");
        }
        let own = name("vt", 12, 3).unwrap();
        assert!(own.starts_with(&run_prefix("vt", 12)));
        assert!(
            !name("vt", 123, 3)
                .unwrap()
                .starts_with(&run_prefix("vt", 12))
        );
    }

    #[test]
    fn unique_names_never_repeat_within_a_process() {
        let names: Vec<String> = (0..50).map(|_| unique_name("nl").unwrap()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        let own = run_prefix("nl", std::process::id());
        assert!(names.iter().all(|n| n.starts_with(&own)), "{names:?}");
    }

    #[test]
    fn link_nets_are_link_local_30s_distinct_per_index() {
        let nets: Vec<LinkNet> = (0..64).map(|n| LinkNet::new(PID_MAX, n)).collect();
        for net in &nets {
            assert!(net.host.is_link_local() && net.peer.is_link_local());
            let [_, _, third, host] = net.host.octets();
            assert!((1..=254).contains(&third), "{net:?}");
            assert_eq!(host % 4, 1, "host is .1 of its /30");
            assert_eq!(u32::from(net.peer), u32::from(net.host) + 1);
        }
        let mut hosts: Vec<Ipv4Addr> = nets.iter().map(|n| n.host).collect();
        hosts.dedup();
        assert_eq!(hosts.len(), 64);
        assert_eq!(LinkNet::new(7, 2).host_cidr(), "169.254.8.9/30");
        assert_eq!(LinkNet::new(7, 2).peer_cidr(), "169.254.8.10/30");
        assert_ne!(LinkNet::next(), LinkNet::next());
    }

    #[test]
    fn mac_text_is_lower_hex_with_colons() {
        assert_eq!(
            mac_text([0xfe, 0x54, 0, 0xe2, 0x0a, 5]),
            "fe:54:00:e2:0a:05"
        );
    }
}

//! Text formats libvirt hands us: a domain's XML (its virtio-serial channel
//! sockets) and libvirt's cpuset lists (`0-3,^2`, as in `<vcpupin cpuset>`
//! and the TUNABLE event's `cputune.vcpupinN` values).
//!
//! Pure: no I/O and no libvirt calls here; the callers fetch the text.
//!
//! ## Behavior
//! - [`channels`] lists every `<channel type='unix'>` under `<devices>`
//!   whose `<target type='virtio'>` has a name, with the `<source path>`.
//!   Channels without a path (libvirt fills it in only in the *live* XML)
//!   are skipped, so pass the live XML.
//! - [`DomainChannel::agent_index`] is `N` for targets named
//!   `virtio.serial.port.poweragent.N`, the name DPDK's guest library opens.
//!
//! ## Limitations
//! - The XML is parsed with roxmltree, which refuses DTDs with entity
//!   expansion beyond its limits; libvirt never emits those.

use std::collections::BTreeSet;
use std::path::PathBuf;

use vmpower_cpufreq::CpuId;

/// The virtio-serial port name prefix of the power agent's channels.
pub const AGENT_PORT_PREFIX: &str = "virtio.serial.port.poweragent.";

/// The largest CPU number a cpuset list may name (guards against `0-4000000000`).
pub const MAX_CPU: u32 = 1 << 16;

/// A domain's XML or a cpuset list could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum DomainXmlError {
    /// The text is not well-formed XML.
    #[error("domain XML is not well-formed")]
    Xml(#[from] roxmltree::Error),
    /// A cpuset list is malformed.
    #[error("cpuset {text:?}: {why}")]
    Cpuset {
        /// The list as given.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// One unix-socket virtio-serial channel of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainChannel {
    /// The socket QEMU listens on (`<source mode='bind' path=…>`).
    pub path: PathBuf,
    /// The port name the guest sees (`<target name=…>`).
    pub target: String,
    /// `N` when the target is `virtio.serial.port.poweragent.N`.
    pub agent_index: Option<u32>,
}

/// The unix virtio channels named in a domain's XML, in document order.
pub fn channels(xml: &str) -> Result<Vec<DomainChannel>, DomainXmlError> {
    let doc = roxmltree::Document::parse(xml)?;
    let devices = doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("devices"));
    let mut out = Vec::new();
    for channel in devices.flat_map(|d| d.children().filter(|n| n.has_tag_name("channel"))) {
        if channel.attribute("type") != Some("unix") {
            continue;
        }
        let child = |tag: &str| channel.children().find(|n| n.has_tag_name(tag));
        let Some(target) = child("target") else {
            continue;
        };
        let (Some("virtio"), Some(name)) = (target.attribute("type"), target.attribute("name"))
        else {
            continue;
        };
        let Some(path) = child("source").and_then(|s| s.attribute("path")) else {
            continue;
        };
        out.push(DomainChannel {
            path: PathBuf::from(path),
            target: name.to_owned(),
            agent_index: agent_index(name),
        });
    }
    Ok(out)
}

/// `N` of `virtio.serial.port.poweragent.N`, if `name` is one.
pub fn agent_index(name: &str) -> Option<u32> {
    let n = name.strip_prefix(AGENT_PORT_PREFIX)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Parses a libvirt cpuset list: comma-separated CPUs (`3`), ranges
/// (`0-3`) and exclusions (`^2`), applied left to right after all
/// inclusions, as libvirt does. Whitespace around items is allowed.
pub fn parse_cpuset(text: &str) -> Result<BTreeSet<CpuId>, DomainXmlError> {
    let bad = |why| DomainXmlError::Cpuset {
        text: text.to_owned(),
        why,
    };
    let num = |s: &str| -> Result<u32, DomainXmlError> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not a CPU number"));
        }
        match s.parse::<u32>() {
            Ok(n) if n <= MAX_CPU => Ok(n),
            _ => Err(bad("CPU number too large")),
        }
    };
    let mut set = BTreeSet::new();
    let mut excluded = BTreeSet::new();
    for item in text.split(',') {
        let item = item.trim();
        if let Some(cpu) = item.strip_prefix('^') {
            excluded.insert(num(cpu)?);
        } else if let Some((lo, hi)) = item.split_once('-') {
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi {
                return Err(bad("range runs backwards"));
            }
            set.extend(lo..=hi);
        } else {
            set.insert(num(item)?);
        }
    }
    Ok(set
        .difference(&excluded)
        .map(|c| CpuId(*c))
        .collect::<BTreeSet<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<domain type='kvm'><name>vm1</name>
      <devices>
        <channel type='unix'>
          <source mode='bind' path='/run/ch/vm1.0'/>
          <target type='virtio' name='virtio.serial.port.poweragent.0'/>
        </channel>
        <channel type='unix'>
          <source mode='bind' path='/run/ch/agent'/>
          <target type='virtio' name='org.qemu.guest_agent.0'/>
        </channel>
        <channel type='unix'>
          <target type='virtio' name='virtio.serial.port.poweragent.1'/>
        </channel>
        <channel type='pty'>
          <target type='virtio' name='virtio.serial.port.poweragent.2'/>
        </channel>
        <channel type='unix'>
          <source mode='bind' path='/run/ch/guestfwd'/>
          <target type='guestfwd' address='10.0.2.1' port='4600'/>
        </channel>
      </devices></domain>"#;

    #[test]
    fn unix_virtio_channels_with_a_path_are_listed() {
        let got = channels(XML).expect("well-formed");
        assert_eq!(
            got,
            vec![
                DomainChannel {
                    path: "/run/ch/vm1.0".into(),
                    target: "virtio.serial.port.poweragent.0".into(),
                    agent_index: Some(0),
                },
                DomainChannel {
                    path: "/run/ch/agent".into(),
                    target: "org.qemu.guest_agent.0".into(),
                    agent_index: None,
                },
            ]
        );
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(matches!(
            channels("<domain><devices>"),
            Err(DomainXmlError::Xml(_))
        ));
    }

    #[test]
    fn agent_index_wants_digits_only() {
        assert_eq!(agent_index("virtio.serial.port.poweragent.12"), Some(12));
        assert_eq!(agent_index("virtio.serial.port.poweragent."), None);
        assert_eq!(agent_index("virtio.serial.port.poweragent.+1"), None);
        assert_eq!(agent_index("virtio.serial.port.poweragent.1x"), None);
        assert_eq!(agent_index("org.qemu.guest_agent.0"), None);
    }

    fn cpus(c: &[u32]) -> BTreeSet<CpuId> {
        c.iter().map(|c| CpuId(*c)).collect()
    }

    #[test]
    fn cpuset_lists_ranges_and_exclusions() {
        assert_eq!(parse_cpuset("1").expect("valid"), cpus(&[1]));
        assert_eq!(parse_cpuset("0-3,^2").expect("valid"), cpus(&[0, 1, 3]));
        assert_eq!(parse_cpuset("^2,0-3").expect("valid"), cpus(&[0, 1, 3]));
        assert_eq!(parse_cpuset(" 5 , 7-8 ").expect("valid"), cpus(&[5, 7, 8]));
    }

    #[test]
    fn bad_cpusets_are_refused() {
        for bad in ["", "a", "3-1", "1,,2", "-1", "99999999999", "0-70000"] {
            assert!(
                matches!(parse_cpuset(bad), Err(DomainXmlError::Cpuset { .. })),
                "{bad:?}"
            );
        }
    }
}

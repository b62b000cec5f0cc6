//! Traffic counters for TRAFFIC policies: where a MAC's received packets
//! are counted on this host, and the packet rate computed from them.
//!
//! The sampler asks a [`TrafficCounters`] once per tick for every MAC of
//! every TRAFFIC policy ([`TrafficCounters::sample_into`], into the
//! [`SampleBatch`] it keeps); the real implementation
//! ([`NetlinkTrafficCounters`]) answers the whole batch from one
//! counters-only `RTM_GETSTATS` dump over a cached `RTM_GETLINK` topology
//! (with VF info, dumped again on link notifications), resolving the MACs only when that topology changes and
//! otherwise refreshing the batch's counters in place, which is what keeps
//! 1,024 policies at a 100 ms interval cheap. Each answer names the source
//! that found the MAC ([`SourceKind`], for `policy show`) or why none did
//! ([`MissingReason`]: the policy waits). [`rate`] turns successive counter
//! readings into packets per second.
//!
//! ## Sources and precedence
//! For each MAC, the first rule that matches wins:
//! 1. **Configured** ([`ConfiguredMap`], from the config): an explicit
//!    MAC → device map always wins. If the named device does not exist, the
//!    MAC is missing (the other rules are not tried: the operator said where
//!    to look).
//! 2. **VF**: a VF in some PF's `IFLA_VFINFO_LIST` whose `IFLA_VF_MAC` is the
//!    MAC and that reports `IFLA_VF_STATS_RX_PACKETS`. A VF without stats is
//!    skipped (the next rules may still find the MAC, e.g. the VF's own
//!    netdev bound on the host).
//! 3. **Netdev**: a host netdev whose `IFLA_ADDRESS` is the MAC (veth,
//!    macvtap, a VF bound on the host), counting its received packets.
//! 4. **Tap**: a tun/tap device whose MAC is the guest MAC with its first
//!    byte replaced by `0xfe` (libvirt's convention for the host side of a
//!    virtio-net interface), counting its *transmitted* packets: what the
//!    host sends into the tap is what the guest receives.
//!
//! ## Drops
//! Beside each MAC's packet counter, the counter of what the guest did not
//! keep up with, from the same source and dump:
//! - VF: `IFLA_VF_STATS_RX_DROPPED` (the VF's receive ring was full);
//! - netdev: `rx_dropped + rx_missed_errors` (a macvtap's full guest
//!   queue, a veth's full backlog, a NIC's missing receive buffers);
//! - tap: `tx_dropped` (host → guest: the kernel drops what it cannot put
//!   in the tap's queue when the guest's virtio queue is not emptied);
//! - configured: the drops of the chosen direction (rx: as a netdev, tx:
//!   as a tap).
//!
//! Ties within a rule go to the lowest interface index (then the lowest VF
//! index), so the choice is stable from tick to tick; `policy show` names
//! the device, and a configured entry overrides a wrong guess.
//!
//! ## Limitations
//! Only the current network namespace is seen. A tap that does not follow
//! libvirt's `fe:` convention needs a configured entry.

mod batch;
mod configured;
mod counters;
mod events;
#[cfg(any(test, feature = "test-utils"))]
mod fake;
mod links;
mod netdev;
mod netlink;
pub mod rate;
pub mod record;
mod tap;
pub mod vf;

use std::fmt;

pub use batch::SampleBatch;
pub use configured::{ConfiguredDevice, ConfiguredMap, Direction};
pub use counters::{DEFAULT_TOPOLOGY_REFRESH, NetlinkTrafficCounters, SAFETY_TOPOLOGY_REFRESH};
#[cfg(any(test, feature = "test-utils"))]
pub use fake::FakeTrafficCounters;
pub use links::parse_newlink;
pub use links::{LinkCounters, LinkEntry, LinkTable, VfEntry, parse_newstats};
pub use netlink::{
    REPLY_TIMEOUT, dump_links_request, dump_stats_request, get_link_by_index_request,
    get_link_request, parse_replies, parse_stats_replies,
};
pub use rate::{MacRates, RateMeter, RateOutcome};
pub use tap::libvirt_tap_mac;
pub use vf::{NetlinkVfControl, VfControl, set_vf_mac_request};
pub use vmpower_proto::MacAddr;

/// Where a MAC's receive counter was found (shown by `policy show`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// An SR-IOV VF's statistics, from its PF's VF info list.
    Vf {
        /// The PF's interface name.
        pf: String,
        /// The VF index on that PF.
        vf: u32,
    },
    /// A host netdev carrying the MAC itself (its received packets).
    Netdev {
        /// The device's interface name.
        ifname: String,
    },
    /// The host tap of a virtio-net interface (its transmitted packets).
    Tap {
        /// The tap's interface name.
        ifname: String,
    },
    /// A device named for this MAC in the configuration.
    Configured {
        /// The configured interface name.
        ifname: String,
        /// Which of its counters is the guest's receive counter.
        direction: Direction,
    },
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vf { pf, vf } => write!(f, "vf {pf}/{vf} rx"),
            Self::Netdev { ifname } => write!(f, "netdev {ifname} rx"),
            Self::Tap { ifname } => write!(f, "tap {ifname} tx"),
            Self::Configured { ifname, direction } => {
                write!(f, "configured {ifname} {direction}")
            }
        }
    }
}

/// Why no counter was found for a MAC (the policy waits, showing this).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissingReason {
    /// No VF, netdev or tap on this host carries the MAC.
    NotFound,
    /// The configured device for this MAC does not exist.
    ConfiguredDeviceAbsent {
        /// The configured interface name.
        ifname: String,
    },
    /// A VF has the MAC but its PF's driver reports no VF statistics, and
    /// no other source has it.
    VfWithoutStats {
        /// The PF's interface name.
        pf: String,
        /// The VF index.
        vf: u32,
    },
    /// The all-zero MAC is never looked up (unset VFs carry it).
    ZeroMac,
}

impl fmt::Display for MissingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("no VF, netdev or tap carries this MAC"),
            Self::ConfiguredDeviceAbsent { ifname } => {
                write!(f, "configured device {ifname} does not exist")
            }
            Self::VfWithoutStats { pf, vf } => {
                write!(
                    f,
                    "VF {pf}/{vf} has this MAC but its driver reports no VF statistics"
                )
            }
            Self::ZeroMac => f.write_str("the all-zero MAC is not a valid policy MAC"),
        }
    }
}

/// The answer for one MAC in one sampling tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MacReading {
    /// The MAC's receive-packet counter, and where it was read.
    Found {
        /// The source that found the MAC.
        source: SourceKind,
        /// The guest's received packets so far (a free-running counter).
        rx_packets: u64,
        /// The packets dropped because the guest did not keep up (a
        /// free-running counter; which one depends on the source, see the
        /// module docs), when the source reports it.
        drops: Option<u64>,
    },
    /// No counter: the policy waits, showing the reason.
    Missing(MissingReason),
}

/// One MAC's result in a [`TrafficCounters::sample`] batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacSample {
    /// The MAC asked for.
    pub mac: MacAddr,
    /// What was found for it.
    pub reading: MacReading,
}

/// Errors of the traffic-counter layer.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// Opening or binding the rtnetlink socket failed.
    #[error("cannot open rtnetlink socket")]
    Socket(#[source] std::io::Error),
    /// Sending a request failed.
    #[error("cannot send rtnetlink {request}")]
    Send {
        /// The request, e.g. `RTM_GETLINK dump`.
        request: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Receiving a reply failed.
    #[error("cannot receive rtnetlink reply to {request}")]
    Receive {
        /// The request being answered.
        request: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered with an error.
    #[error("kernel refused {request}")]
    Kernel {
        /// The refused request.
        request: &'static str,
        /// The kernel's errno as an I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A reply could not be decoded.
    #[error("malformed rtnetlink reply to {request}: {detail}")]
    Malformed {
        /// The request being answered.
        request: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The named device does not exist.
    #[error("no network device named {ifname}")]
    NoSuchDevice {
        /// The interface name looked for.
        ifname: String,
    },
    /// The PF has no VF with that index.
    #[error("{pf} has no VF {vf}")]
    NoSuchVf {
        /// The PF's interface name.
        pf: String,
        /// The VF index asked for.
        vf: u32,
    },
}

/// A source of per-MAC received-packet counters.
///
/// Implementations: [`NetlinkTrafficCounters`] (the host's rtnetlink) and
/// `FakeTrafficCounters` (scripted, feature `test-utils`).
pub trait TrafficCounters: Send {
    /// Reads the receive counter of every MAC in `macs` at once, returning
    /// one [`MacSample`] per MAC in the same order (duplicates answered
    /// alike). An error means the whole tick failed (e.g. the netlink
    /// socket), not that a MAC is missing: missing MACs are
    /// [`MacReading::Missing`].
    fn sample(&mut self, macs: &[MacAddr]) -> Result<Vec<MacSample>, TrafficError>;

    /// [`TrafficCounters::sample`] into `batch` (the previous tick's, or
    /// a new one), returning true when a MAC, a source or a missing reason
    /// differs from what `batch` held. On an error `batch` is unchanged.
    /// An implementation may refresh the counters of a batch it answered
    /// before in place (no allocation); the default replaces the batch.
    fn sample_into(
        &mut self,
        macs: &[MacAddr],
        batch: &mut SampleBatch,
    ) -> Result<bool, TrafficError> {
        Ok(batch.replace(self.sample(macs)?))
    }
}

/// Answers a batch from one link snapshot, applying the precedence in the
/// module docs. Pure: this is what [`NetlinkTrafficCounters`] runs on each
/// dump, exposed so tests and tools can resolve constructed tables.
pub fn resolve(table: &LinkTable, configured: &ConfiguredMap, macs: &[MacAddr]) -> Vec<MacSample> {
    resolve_indexed(table, &links::MacIndex::new(table), configured, macs)
}

/// [`resolve`] with the table's MAC index already built (it changes only
/// with the topology, not with the counters).
fn resolve_indexed(
    table: &LinkTable,
    index: &links::MacIndex,
    configured: &ConfiguredMap,
    macs: &[MacAddr],
) -> Vec<MacSample> {
    macs.iter()
        .map(|&mac| MacSample {
            mac,
            reading: resolve_one(table, index, configured, mac),
        })
        .collect()
}

fn resolve_one(
    table: &LinkTable,
    index: &links::MacIndex,
    configured: &ConfiguredMap,
    mac: MacAddr,
) -> MacReading {
    if let Some(entry) = configured.get(mac) {
        return configured::read(table, entry);
    }
    if mac == MacAddr::default() {
        return MacReading::Missing(MissingReason::ZeroMac);
    }
    let vf = vf::find(table, index, mac);
    if let Some(found @ MacReading::Found { .. }) = &vf {
        return found.clone();
    }
    if let Some(found) = netdev::find(table, index, mac).or_else(|| tap::find(table, index, mac)) {
        return found;
    }
    vf.unwrap_or(MacReading::Missing(MissingReason::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    fn link(index: u32, ifname: &str, mac: MacAddr) -> LinkEntry {
        LinkEntry {
            index,
            ifname: ifname.into(),
            mac: Some(mac),
            rx_packets: Some(u64::from(index) * 10),
            tx_packets: Some(u64::from(index) * 10 + 1),
            ..LinkEntry::default()
        }
    }

    fn pf_with_vf(index: u32, rx: Option<u64>) -> LinkEntry {
        LinkEntry {
            vfs: vec![VfEntry {
                vf: 1,
                mac: MAC,
                rx_packets: rx,
                tx_packets: rx,
                rx_drops: None,
            }],
            ..link(index, "pf0", MacAddr([2, 9, 9, 9, 9, 9]))
        }
    }

    fn tap(index: u32) -> LinkEntry {
        LinkEntry {
            is_tun: true,
            ..link(index, "vnet0", tap::libvirt_tap_mac(MAC))
        }
    }

    fn source(table: &LinkTable, configured: &ConfiguredMap) -> MacReading {
        let samples = resolve(table, configured, &[MAC]);
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].mac, MAC);
        samples[0].reading.clone()
    }

    #[test]
    fn precedence_configured_then_vf_then_netdev_then_tap() {
        let mut table = LinkTable {
            links: vec![tap(4), link(3, "veth0", MAC), pf_with_vf(2, Some(77))],
        };
        let configured: ConfiguredMap = [(
            MAC,
            ConfiguredDevice {
                ifname: "veth0".into(),
                direction: Direction::Tx,
            },
        )]
        .into_iter()
        .collect();
        assert_eq!(
            source(&table, &configured),
            MacReading::Found {
                source: SourceKind::Configured {
                    ifname: "veth0".into(),
                    direction: Direction::Tx
                },
                rx_packets: 31,
                drops: None,
            }
        );
        let none = ConfiguredMap::new();
        assert_eq!(
            source(&table, &none),
            MacReading::Found {
                source: SourceKind::Vf {
                    pf: "pf0".into(),
                    vf: 1
                },
                rx_packets: 77,
                drops: None,
            }
        );
        table.links.pop();
        assert_eq!(
            source(&table, &none),
            MacReading::Found {
                source: SourceKind::Netdev {
                    ifname: "veth0".into()
                },
                rx_packets: 30,
                drops: None,
            }
        );
        table.links.pop();
        assert_eq!(
            source(&table, &none),
            MacReading::Found {
                source: SourceKind::Tap {
                    ifname: "vnet0".into()
                },
                rx_packets: 41,
                drops: None,
            }
        );
        table.links.pop();
        assert_eq!(
            source(&table, &none),
            MacReading::Missing(MissingReason::NotFound)
        );
    }

    #[test]
    fn vf_without_stats_falls_through_then_is_the_reason() {
        let table = LinkTable {
            links: vec![pf_with_vf(2, None), tap(4)],
        };
        let none = ConfiguredMap::new();
        assert!(matches!(
            source(&table, &none),
            MacReading::Found {
                source: SourceKind::Tap { .. },
                ..
            }
        ));
        let table = LinkTable {
            links: vec![pf_with_vf(2, None)],
        };
        assert_eq!(
            source(&table, &none),
            MacReading::Missing(MissingReason::VfWithoutStats {
                pf: "pf0".into(),
                vf: 1
            })
        );
    }

    #[test]
    fn configured_device_absent_does_not_fall_back() {
        let table = LinkTable {
            links: vec![link(3, "veth0", MAC)],
        };
        let configured: ConfiguredMap = [(
            MAC,
            ConfiguredDevice {
                ifname: "gone0".into(),
                direction: Direction::Auto,
            },
        )]
        .into_iter()
        .collect();
        assert_eq!(
            source(&table, &configured),
            MacReading::Missing(MissingReason::ConfiguredDeviceAbsent {
                ifname: "gone0".into()
            })
        );
    }

    #[test]
    fn zero_mac_is_never_matched_and_order_is_kept() {
        let zero = MacAddr::default();
        let table = LinkTable {
            links: vec![link(3, "lo", zero), link(4, "veth0", MAC)],
        };
        let samples = resolve(&table, &ConfiguredMap::new(), &[zero, MAC, zero]);
        let readings: Vec<_> = samples.iter().map(|s| (s.mac, s.reading.clone())).collect();
        assert_eq!(
            readings[0],
            (zero, MacReading::Missing(MissingReason::ZeroMac))
        );
        assert!(matches!(
            readings[1].1,
            MacReading::Found { rx_packets: 40, .. }
        ));
        assert_eq!(readings[2].0, zero);
    }

    #[test]
    fn sources_and_reasons_display_for_policy_show() {
        assert_eq!(
            SourceKind::Vf {
                pf: "enp1s0f0".into(),
                vf: 3
            }
            .to_string(),
            "vf enp1s0f0/3 rx"
        );
        assert_eq!(
            SourceKind::Tap {
                ifname: "vnet2".into()
            }
            .to_string(),
            "tap vnet2 tx"
        );
        assert!(
            MissingReason::ConfiguredDeviceAbsent {
                ifname: "x9".into()
            }
            .to_string()
            .contains("x9")
        );
    }
}

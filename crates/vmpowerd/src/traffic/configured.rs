//! Source (4), which always wins: an explicit MAC → device map from the
//! configuration, for devices the automatic rules cannot find or would
//! pick wrongly (a tap not named by libvirt's `fe:` convention, a bond).
//!
//! ## Behavior
//! The configured device's counter is read in the configured
//! [`Direction`]; [`Direction::Auto`] reads a tun/tap's transmitted packets
//! (the guest's receive side) and any other device's received packets. A
//! configured device that does not exist makes the MAC missing: the
//! automatic rules are not tried, since the operator said where to look.
//!
//! No I/O here.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{LinkTable, MacAddr, MacReading, MissingReason, SourceKind};

/// Which counter of a configured device counts the guest's received packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The device's received packets (a netdev carrying the guest's traffic).
    Rx,
    /// The device's transmitted packets (a tap: host TX is guest RX).
    Tx,
    /// Tx for tun/tap devices, Rx otherwise.
    #[default]
    Auto,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rx => "rx",
            Self::Tx => "tx",
            Self::Auto => "auto",
        })
    }
}

/// One configured device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredDevice {
    /// The interface name.
    pub ifname: String,
    /// Which counter to read (default: auto).
    #[serde(default)]
    pub direction: Direction,
}

/// The explicit MAC → device map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfiguredMap {
    map: HashMap<MacAddr, ConfiguredDevice>,
}

impl ConfiguredMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `mac` to `device`, returning the device it replaced.
    pub fn insert(&mut self, mac: MacAddr, device: ConfiguredDevice) -> Option<ConfiguredDevice> {
        self.map.insert(mac, device)
    }

    /// The device configured for `mac`.
    pub fn get(&self, mac: MacAddr) -> Option<&ConfiguredDevice> {
        self.map.get(&mac)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl FromIterator<(MacAddr, ConfiguredDevice)> for ConfiguredMap {
    fn from_iter<I: IntoIterator<Item = (MacAddr, ConfiguredDevice)>>(iter: I) -> Self {
        Self {
            map: iter.into_iter().collect(),
        }
    }
}

/// Reads the configured device's counter from the snapshot.
pub(super) fn read(table: &LinkTable, device: &ConfiguredDevice) -> MacReading {
    let absent = || {
        MacReading::Missing(MissingReason::ConfiguredDeviceAbsent {
            ifname: device.ifname.clone(),
        })
    };
    let Some(link) = table.by_name(&device.ifname) else {
        return absent();
    };
    let direction = match device.direction {
        Direction::Auto if link.is_tun => Direction::Tx,
        Direction::Auto => Direction::Rx,
        fixed => fixed,
    };
    let (counter, drops) = if direction == Direction::Tx {
        (link.tx_packets, link.tx_drops)
    } else {
        (link.rx_packets, link.rx_drops)
    };
    match counter {
        Some(rx_packets) => MacReading::Found {
            source: SourceKind::Configured {
                ifname: link.ifname.clone(),
                direction,
            },
            rx_packets,
            drops,
        },
        // A link without statistics cannot be sampled; say it is absent
        // rather than invent a zero counter.
        None => absent(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::LinkEntry;

    fn table() -> LinkTable {
        LinkTable {
            links: vec![
                LinkEntry {
                    index: 3,
                    ifname: "vnet0".into(),
                    rx_packets: Some(10),
                    tx_packets: Some(20),
                    is_tun: true,
                    ..LinkEntry::default()
                },
                LinkEntry {
                    index: 4,
                    ifname: "eth1".into(),
                    rx_packets: Some(30),
                    tx_packets: Some(40),
                    ..LinkEntry::default()
                },
            ],
        }
    }

    fn dev(ifname: &str, direction: Direction) -> ConfiguredDevice {
        ConfiguredDevice {
            ifname: ifname.into(),
            direction,
        }
    }

    #[test]
    fn auto_reads_tx_of_a_tap_and_rx_of_anything_else() {
        let tap = read(&table(), &dev("vnet0", Direction::Auto));
        let expected_tap = MacReading::Found {
            source: SourceKind::Configured {
                ifname: "vnet0".into(),
                direction: Direction::Tx,
            },
            rx_packets: 20,
            drops: None,
        };
        assert_eq!(tap, expected_tap);
        let eth = read(&table(), &dev("eth1", Direction::Auto));
        let expected_eth = MacReading::Found {
            source: SourceKind::Configured {
                ifname: "eth1".into(),
                direction: Direction::Rx,
            },
            rx_packets: 30,
            drops: None,
        };
        assert_eq!(eth, expected_eth);
    }

    #[test]
    fn explicit_direction_overrides_auto() {
        let reading = read(&table(), &dev("vnet0", Direction::Rx));
        assert!(matches!(reading, MacReading::Found { rx_packets: 10, .. }));
        let reading = read(&table(), &dev("eth1", Direction::Tx));
        assert!(matches!(reading, MacReading::Found { rx_packets: 40, .. }));
    }

    #[test]
    fn absent_device_is_missing_with_its_name() {
        let reading = read(&table(), &dev("nope0", Direction::Auto));
        assert_eq!(
            reading,
            MacReading::Missing(MissingReason::ConfiguredDeviceAbsent {
                ifname: "nope0".into()
            })
        );
    }

    #[test]
    fn direction_parses_from_config_text() {
        let device: ConfiguredDevice =
            serde_json::from_str(r#"{"ifname":"vnet3","direction":"tx"}"#).unwrap();
        assert_eq!(device, dev("vnet3", Direction::Tx));
        let device: ConfiguredDevice = serde_json::from_str(r#"{"ifname":"vnet3"}"#).unwrap();
        assert_eq!(device.direction, Direction::Auto);
    }
}

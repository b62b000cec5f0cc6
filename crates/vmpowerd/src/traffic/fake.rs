//! [`FakeTrafficCounters`]: scripted per-MAC counters for tests of the
//! sampler, the engine wiring and the daemon, without netlink.
//!
//! Clones share state, so a test keeps one handle to script counters while
//! the daemon owns another. Only built for tests and feature `test-utils`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{
    MacAddr, MacReading, MacSample, MissingReason, SourceKind, TrafficCounters, TrafficError,
};

#[derive(Debug, Default)]
struct State {
    readings: HashMap<MacAddr, MacReading>,
    fail_next: bool,
    samples: u64,
}

/// Scripted traffic counters: unknown MACs are [`MissingReason::NotFound`].
#[derive(Clone, Debug, Default)]
pub struct FakeTrafficCounters {
    state: Arc<Mutex<State>>,
}

impl FakeTrafficCounters {
    /// No MAC known.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes `mac` found at `source` with counter `rx_packets` (and a
    /// drop counter at 0).
    pub fn set(&self, mac: MacAddr, source: SourceKind, rx_packets: u64) {
        self.with(|s| {
            s.readings.insert(
                mac,
                MacReading::Found {
                    source,
                    rx_packets,
                    drops: Some(0),
                },
            )
        });
    }

    /// Adds `packets` to `mac`'s drop counter, if it is found.
    pub fn drop_packets(&self, mac: MacAddr, packets: u64) {
        self.with(|s| {
            if let Some(MacReading::Found { drops, .. }) = s.readings.get_mut(&mac) {
                *drops = Some(drops.unwrap_or(0).wrapping_add(packets));
            }
        });
    }

    /// Adds `packets` to `mac`'s counter (wrapping like a u64 counter);
    /// a MAC not found is first found as `netdev fake0` at 0.
    pub fn advance(&self, mac: MacAddr, packets: u64) {
        self.with(|s| {
            let reading = s
                .readings
                .entry(mac)
                .or_insert(MacReading::Missing(MissingReason::NotFound));
            match reading {
                MacReading::Found { rx_packets, .. } => {
                    *rx_packets = rx_packets.wrapping_add(packets)
                }
                MacReading::Missing(_) => {
                    *reading = MacReading::Found {
                        source: SourceKind::Netdev {
                            ifname: "fake0".into(),
                        },
                        rx_packets: packets,
                        drops: Some(0),
                    };
                }
            }
        });
    }

    /// Makes `mac` missing for `reason`.
    pub fn set_missing(&self, mac: MacAddr, reason: MissingReason) {
        self.with(|s| s.readings.insert(mac, MacReading::Missing(reason)));
    }

    /// Makes the next [`TrafficCounters::sample`] fail as a socket error would.
    pub fn fail_next(&self) {
        self.with(|s| s.fail_next = true);
    }

    /// How many batches were sampled (including failed ones).
    pub fn samples_taken(&self) -> u64 {
        self.with(|s| s.samples)
    }
}

impl TrafficCounters for FakeTrafficCounters {
    fn sample(&mut self, macs: &[MacAddr]) -> Result<Vec<MacSample>, TrafficError> {
        self.with(|s| {
            s.samples += 1;
            if std::mem::take(&mut s.fail_next) {
                return Err(TrafficError::Receive {
                    request: "fake",
                    source: std::io::Error::other("scripted failure"),
                });
            }
            Ok(macs
                .iter()
                .map(|&mac| MacSample {
                    mac,
                    reading: s
                        .readings
                        .get(&mac)
                        .cloned()
                        .unwrap_or(MacReading::Missing(MissingReason::NotFound)),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);

    #[test]
    fn scripted_counters_are_seen_through_a_clone() {
        let handle = FakeTrafficCounters::new();
        let mut counters = handle.clone();
        let got = counters.sample(&[MAC]).unwrap();
        assert_eq!(got[0].reading, MacReading::Missing(MissingReason::NotFound));
        handle.set(
            MAC,
            SourceKind::Tap {
                ifname: "vnet1".into(),
            },
            10,
        );
        handle.advance(MAC, 5);
        handle.drop_packets(MAC, 3);
        let got = counters.sample(&[MAC]).unwrap();
        assert_eq!(
            got[0].reading,
            MacReading::Found {
                source: SourceKind::Tap {
                    ifname: "vnet1".into()
                },
                rx_packets: 15,
                drops: Some(3),
            }
        );
        handle.fail_next();
        assert!(counters.sample(&[MAC]).is_err());
        assert!(counters.sample(&[MAC]).is_ok());
        assert_eq!(handle.samples_taken(), 4);
    }
}

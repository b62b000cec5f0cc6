//! The answers about SR-IOV VFs: `show-vfs` and `set-vf-mac`.

use serde::{Deserialize, Serialize};

/// One row of the answer to [`crate::CtlRequest::ShowVfs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfInfo {
    /// The VF index.
    pub vf: u32,
    /// Its MAC address.
    pub mac: String,
    /// Packets received, if the driver reports VF stats.
    pub rx_packets: Option<u64>,
    /// Packets sent, if the driver reports VF stats.
    pub tx_packets: Option<u64>,
}

/// The answer to [`crate::CtlRequest::SetVfMac`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfMacSet {
    /// The PF's interface name.
    pub pf: String,
    /// The VF index.
    pub vf: u32,
    /// Its MAC address now.
    pub mac: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::pin;

    #[test]
    fn vf_answers_keep_their_wire_form() {
        pin(
            &vec![
                VfInfo {
                    vf: 0,
                    mac: "02:00:00:00:00:01".into(),
                    rx_packets: Some(5),
                    tx_packets: Some(7),
                },
                VfInfo {
                    vf: 1,
                    mac: "00:00:00:00:00:00".into(),
                    rx_packets: None,
                    tx_packets: None,
                },
            ],
            concat!(
                r#"[{"mac":"02:00:00:00:00:01","rx_packets":5,"tx_packets":7,"vf":0},"#,
                r#"{"mac":"00:00:00:00:00:00","rx_packets":null,"tx_packets":null,"vf":1}]"#
            ),
        );
        pin(
            &VfMacSet {
                pf: "eth0".into(),
                vf: 1,
                mac: "02:00:00:00:00:02".into(),
            },
            r#"{"mac":"02:00:00:00:00:02","pf":"eth0","vf":1}"#,
        );
    }
}

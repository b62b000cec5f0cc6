//! The answer to `top`: one frame of the live view (each pCPU's frequency
//! and level, each VM's channels, requests, policy and last decision).

use serde::{Deserialize, Serialize};

use super::status::PolicyBrief;

/// The answer to [`crate::CtlRequest::Top`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopFrame {
    /// When the frame was taken, unix milliseconds.
    pub at_ms: i64,
    /// Each host CPU with frequency control.
    pub pcpus: Vec<TopPcpu>,
    /// Each VM.
    pub vms: Vec<TopVm>,
    /// Daemon-wide totals.
    pub totals: Totals,
}

/// One host CPU in a [`TopFrame`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopPcpu {
    /// The CPU.
    pub cpu: u32,
    /// Its frequency as the daemon knows it, in kHz.
    pub khz: Option<u32>,
    /// The index of that frequency in its table (0: the highest).
    pub level: Option<usize>,
    /// The number of frequencies in its table.
    pub levels: Option<usize>,
    /// The daemon holds it.
    pub managed: bool,
    /// The operator holds it.
    pub operator: bool,
}

/// One VM in a [`TopFrame`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopVm {
    /// The VM.
    pub vm: String,
    /// Its policy, when it has one.
    pub policy: Option<PolicyBrief>,
    /// Its channels connected.
    pub channels_up: usize,
    /// Its channels listed.
    pub channels: usize,
    /// Requests counted for it (all kinds and results).
    pub requests: u64,
    /// Its last frequency decision.
    pub last_decision: Option<LastDecision>,
}

/// Daemon-wide totals in a [`TopFrame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests counted.
    pub requests: u64,
    /// Rejections counted.
    pub rejections: u64,
    /// sysfs writes done.
    pub sysfs_writes: u64,
    /// sysfs writes failed.
    pub sysfs_failures: u64,
}

/// A VM's last frequency decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastDecision {
    /// Unix time in ms.
    pub at_ms: u64,
    /// The pCPU changed.
    pub pcpu: u32,
    /// Its frequency before, in kHz.
    pub old_khz: u32,
    /// Its frequency after, in kHz.
    pub new_khz: u32,
    /// Why (as the log line and the history say it).
    pub reason: String,
}

/// One guest channel's connection state (in `status`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// The daemon holds a connection to the channel's socket.
    pub up: bool,
    /// Connections made (the first and every reconnect).
    pub connects: u64,
    /// Unix time in ms of the last change of `up`.
    pub since_ms: u64,
    /// Times the channel spent its rate limit and was paused until its
    /// next token.
    pub throttled: u64,
}

impl ChannelState {
    /// Connections made after the first.
    pub fn reconnects(&self) -> u64 {
        self.connects.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::pin;
    use crate::answers::status::PolicyStateName;

    #[test]
    fn a_frame_keeps_its_wire_form() {
        let frame = TopFrame {
            at_ms: 12_000,
            pcpus: vec![
                TopPcpu {
                    cpu: 1,
                    khz: Some(2_301_000),
                    level: Some(0),
                    levels: Some(5),
                    managed: true,
                    operator: false,
                },
                TopPcpu {
                    cpu: 3,
                    khz: None,
                    level: None,
                    levels: None,
                    managed: false,
                    operator: true,
                },
            ],
            vms: vec![
                TopVm {
                    vm: "vm1".into(),
                    policy: Some(PolicyBrief {
                        vm: "vm1".into(),
                        kind: "traffic".into(),
                        state: PolicyStateName::Active,
                        waiting_for: None,
                        rate_pps: Some(0.0),
                    }),
                    channels_up: 1,
                    channels: 2,
                    requests: 30,
                    last_decision: Some(LastDecision {
                        at_ms: 9_000,
                        pcpu: 1,
                        old_khz: 800_000,
                        new_khz: 2_301_000,
                        reason: "request ScaleMax; decided by want of vm1".into(),
                    }),
                },
                TopVm {
                    vm: "vm2".into(),
                    policy: None,
                    channels_up: 0,
                    channels: 0,
                    requests: 0,
                    last_decision: None,
                },
            ],
            totals: Totals {
                requests: 30,
                rejections: 1,
                sysfs_writes: 2,
                sysfs_failures: 0,
            },
        };
        pin(
            &frame,
            concat!(
                r#"{"at_ms":12000,"pcpus":[{"cpu":1,"khz":2301000,"level":0,"levels":5,"#,
                r#""managed":true,"operator":false},{"cpu":3,"khz":null,"level":null,"#,
                r#""levels":null,"managed":false,"operator":true}],"#,
                r#""totals":{"rejections":1,"requests":30,"sysfs_failures":0,"sysfs_writes":2},"#,
                r#""vms":[{"channels":2,"channels_up":1,"last_decision":{"at_ms":9000,"#,
                r#""new_khz":2301000,"old_khz":800000,"pcpu":1,"#,
                r#""reason":"request ScaleMax; decided by want of vm1"},"#,
                r#""policy":{"kind":"traffic","rate_pps":0.0,"state":"active","vm":"vm1","#,
                r#""waiting_for":null},"requests":30,"vm":"vm1"},"#,
                r#"{"channels":0,"channels_up":0,"last_decision":null,"policy":null,"#,
                r#""requests":0,"vm":"vm2"}]}"#
            ),
        );
    }

    #[test]
    fn reconnects_are_the_connects_after_the_first() {
        let mut c = ChannelState::default();
        assert_eq!(c.reconnects(), 0);
        c.connects = 3;
        assert_eq!(c.reconnects(), 2);
    }
}

//! Which records get which reply: DPDK's contract, which every guest gets,
//! and vmpower's native contract, which only a guest that asks gets.
//!
//! ## DPDK's contract (the default on every channel)
//! As DPDK's host (`examples/vm_power_manager/channel_monitor.c`,
//! `process_request`) answers, record for record, so that DPDK's guest
//! programs, which read one reply per request they expect one for, stay
//! in step:
//! - CPU_POWER with a unit in 1..=6: an ACK or NACK of the record's size;
//! - PKT_POLICY: an ACK (DPDK always ACKs; vmpower NACKs a policy it
//!   refuses: same size, the guest stays in step and learns the truth);
//! - QUERY_*: the list reply when it is answered, nothing when refused;
//! - CPU_POWER with another unit, CONNECT, PKT_POLICY_REMOVE and any other
//!   command: nothing.
//!
//! ## The native contract (version 1)
//! A guest asks for it with a [`command::NATIVE_HELLO`] record whose
//! `unit` is the highest version it speaks; the host answers with an ACK
//! echoing the record, `unit` set to the version granted (the lower of
//! the guest's and [`NATIVE_VERSION`]). DPDK's host answers nothing, so a
//! guest that sees no answer within its timeout speaks DPDK's contract.
//! Under the native contract every record but CONNECT gets a reply: a NACK
//! for every refusal, with its [`NackReason`] code in byte
//! [`NACK_REASON`] (padding in both layouts), and an ACK for
//! PKT_POLICY_REMOVE. A CONNECT (a DPDK guest opening the port) or a new
//! connection puts the channel back on DPDK's contract.
//!
//! ## The native contract, version 2
//! Adds the guest's BUSYNESS report ([`command::BUSYNESS`],
//! [`crate::busyness`]), accepted only on a channel granted version 2 or
//! later, and never answered on any contract, accepted or refused
//! ([`never_answered`]): reports are periodic, and a write per report
//! would cost the host more than the report is worth. A refused report
//! is counted by reason and logged by the host. A guest learns whether its
//! reports are accepted from its HELLO's answer (granted version ≥ 2).

use crate::layout::RecordHead;
pub use crate::layout::offsets::NACK_REASON;
use crate::layout::offsets::command;

/// The highest native contract version this crate speaks.
pub const NATIVE_VERSION: u32 = 2;

/// The first native contract version that accepts BUSYNESS reports.
pub const BUSYNESS_VERSION: u32 = 2;

/// The reply contract a channel is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Contract {
    /// DPDK's host's replies, exactly.
    #[default]
    Dpdk,
    /// vmpower's native contract, at this version.
    Native(u32),
}

impl Contract {
    /// The contract a HELLO asking for `version` grants (version 0 asks
    /// for DPDK's).
    pub fn granted(version: u32) -> Contract {
        match version.min(NATIVE_VERSION) {
            0 => Contract::Dpdk,
            v => Contract::Native(v),
        }
    }

    /// A stable name for logs and status: `dpdk`, `native-v1` or
    /// `native-v2`.
    pub fn label(self) -> &'static str {
        match self {
            Contract::Dpdk => "dpdk",
            Contract::Native(1) => "native-v1",
            Contract::Native(_) => "native-v2",
        }
    }

    /// Whether a channel on this contract may send BUSYNESS reports.
    pub fn accepts_busyness(self) -> bool {
        matches!(self, Contract::Native(v) if v >= BUSYNESS_VERSION)
    }
}

/// What DPDK's host sends back for a record with this head, whatever the
/// record's fields hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpdkReply {
    /// An ACK or NACK of the record's size.
    Verdict,
    /// The list reply if the query is answered, else nothing.
    ListIfAnswered,
    /// Nothing at all.
    Nothing,
}

/// DPDK's reply rule for a record's head. The native HELLO is answered
/// on either contract (it is how a guest switches).
pub fn dpdk_reply(head: RecordHead) -> DpdkReply {
    match head.command {
        command::CPU_POWER if (1..=6).contains(&head.unit) => DpdkReply::Verdict,
        command::PKT_POLICY | command::NATIVE_HELLO => DpdkReply::Verdict,
        command::QUERY_FREQ_LIST
        | command::QUERY_FREQ
        | command::QUERY_CAPS_LIST
        | command::QUERY_CAPS => DpdkReply::ListIfAnswered,
        _ => DpdkReply::Nothing,
    }
}

/// Whether a record with this head gets no reply on any contract, even
/// when refused: BUSYNESS (periodic reports; a refusal is counted and
/// logged by the host, never answered).
pub fn never_answered(head: RecordHead) -> bool {
    head.command == command::BUSYNESS
}

/// Why the host refused a record, as a native-contract NACK carries it.
/// Codes are stable: a new reason gets a new code; 0 is "no reason given".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NackReason {
    /// The record could not be decoded.
    Malformed,
    /// The channel belongs to no VM the host serves.
    UnknownVm,
    /// The vCPU is beyond the VM's vCPUs.
    VcpuOutOfRange,
    /// Where the vCPU runs is not known yet.
    NoPlacement,
    /// The vCPU may run on several pCPUs.
    AffinitySpansPcpus,
    /// Physical-core requests are not allowed for the VM.
    PhysicalNotAllowed,
    /// The pCPU is not one of the VM's.
    PhysicalNotOwned,
    /// The pCPU has no frequency control.
    NotControllable,
    /// The operator holds the pCPU at a level.
    OperatorPinned,
    /// The operation does not apply to the core (turbo where none).
    NotApplicable,
    /// Queries are not allowed for the VM.
    QueriesNotAllowed,
    /// The VM's policy drives the core.
    PolicyOwnsCore,
    /// The policy cannot be carried out as sent.
    InvalidPolicy,
    /// BRANCH_RATIO needs branch counters the host lacks.
    NoBranchCounters,
    /// The request kind is not supported.
    Unsupported,
    /// A frequency write failed on the host.
    WriteFailed,
    /// Any other reason (a newer host's).
    Other,
}

impl NackReason {
    /// Every reason, in code order.
    pub const ALL: [NackReason; 17] = [
        NackReason::Malformed,
        NackReason::UnknownVm,
        NackReason::VcpuOutOfRange,
        NackReason::NoPlacement,
        NackReason::AffinitySpansPcpus,
        NackReason::PhysicalNotAllowed,
        NackReason::PhysicalNotOwned,
        NackReason::NotControllable,
        NackReason::OperatorPinned,
        NackReason::NotApplicable,
        NackReason::QueriesNotAllowed,
        NackReason::PolicyOwnsCore,
        NackReason::InvalidPolicy,
        NackReason::NoBranchCounters,
        NackReason::Unsupported,
        NackReason::WriteFailed,
        NackReason::Other,
    ];

    /// The wire code (1..=16; 255 for [`NackReason::Other`]).
    pub fn code(self) -> u8 {
        match self {
            NackReason::Other => 255,
            reason => {
                let index = NackReason::ALL
                    .iter()
                    .position(|r| *r == reason)
                    .expect("every reason is in ALL");
                u8::try_from(index + 1).expect("fewer than 255 reasons")
            }
        }
    }

    /// The reason a code stands for (`None` for 0, "no reason given").
    pub fn from_code(code: u8) -> Option<NackReason> {
        match code {
            0 => None,
            255 => Some(NackReason::Other),
            c => Some(
                NackReason::ALL
                    .get(usize::from(c) - 1)
                    .copied()
                    .filter(|r| *r != NackReason::Other)
                    .unwrap_or(NackReason::Other),
            ),
        }
    }

    /// The reason's stable label, as the host's metrics name it.
    pub fn label(self) -> &'static str {
        match self {
            NackReason::Malformed => "malformed",
            NackReason::UnknownVm => "unknown_vm",
            NackReason::VcpuOutOfRange => "vcpu_out_of_range",
            NackReason::NoPlacement => "no_placement",
            NackReason::AffinitySpansPcpus => "affinity_spans_pcpus",
            NackReason::PhysicalNotAllowed => "physical_not_allowed",
            NackReason::PhysicalNotOwned => "physical_not_owned",
            NackReason::NotControllable => "not_controllable",
            NackReason::OperatorPinned => "operator_pinned",
            NackReason::NotApplicable => "not_applicable",
            NackReason::QueriesNotAllowed => "queries_not_allowed",
            NackReason::PolicyOwnsCore => "policy_owns_core",
            NackReason::InvalidPolicy => "invalid_policy",
            NackReason::NoBranchCounters => "no_branch_counters",
            NackReason::Unsupported => "unsupported",
            NackReason::WriteFailed => "write_failed",
            NackReason::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(command: u32, unit: u32) -> RecordHead {
        RecordHead { command, unit }
    }

    #[test]
    fn dpdk_rule_matches_process_request() {
        for unit in 1..=6 {
            assert_eq!(dpdk_reply(head(1, unit)), DpdkReply::Verdict);
        }
        for unit in [0, 7, u32::MAX] {
            assert_eq!(dpdk_reply(head(1, unit)), DpdkReply::Nothing);
        }
        assert_eq!(dpdk_reply(head(3, 0)), DpdkReply::Verdict);
        for cmd in [7, 8, 9, 10] {
            assert_eq!(dpdk_reply(head(cmd, 0)), DpdkReply::ListIfAnswered);
        }
        for cmd in [0, 2, 4, 5, 6, 11, 0xdead_beef] {
            assert_eq!(dpdk_reply(head(cmd, 1)), DpdkReply::Nothing, "{cmd}");
        }
    }

    #[test]
    fn reason_codes_round_trip_and_are_stable() {
        for r in NackReason::ALL {
            assert_eq!(NackReason::from_code(r.code()), Some(r));
        }
        assert_eq!(NackReason::Malformed.code(), 1);
        assert_eq!(NackReason::QueriesNotAllowed.code(), 11);
        assert_eq!(NackReason::WriteFailed.code(), 16);
        assert_eq!(NackReason::from_code(0), None);
        assert_eq!(NackReason::from_code(200), Some(NackReason::Other));
    }

    #[test]
    fn hello_grants_at_most_ours() {
        assert_eq!(Contract::granted(0), Contract::Dpdk);
        assert_eq!(Contract::granted(1), Contract::Native(1));
        assert_eq!(Contract::granted(9), Contract::Native(NATIVE_VERSION));
        assert_eq!(Contract::granted(2), Contract::Native(2));
    }

    #[test]
    fn busyness_needs_v2_and_is_never_answered() {
        assert!(!Contract::Dpdk.accepts_busyness());
        assert!(!Contract::Native(1).accepts_busyness());
        assert!(Contract::Native(2).accepts_busyness());
        assert_eq!(Contract::Native(2).label(), "native-v2");
        assert_eq!(Contract::Native(1).label(), "native-v1");
        let busy = head(command::BUSYNESS, 3);
        assert!(never_answered(busy));
        assert!(!never_answered(head(command::CPU_POWER, 1)));
        assert_eq!(dpdk_reply(busy), DpdkReply::Nothing);
    }
}

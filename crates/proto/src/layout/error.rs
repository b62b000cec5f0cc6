//! The ways binary records can be wrong: one enum for guest requests, one
//! for host replies as the guest reads them, one for encoding.
//!
//! Every variant names the field (by DPDK's C name, so an operator can
//! compare with DPDK's headers) and carries the bad value. Messages are
//! written for an operator reading a log line about a guest.

use crate::Layout;

/// Why a request/policy record from a guest was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestDecodeError {
    /// The record is not exactly one record of the channel's layout.
    #[error("record is {got} bytes, the channel's layout needs exactly {expected}")]
    WrongLength {
        /// `layout.record_len()`.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// `command` is not one a guest may send (1, 2, 3, 4, 7, 8, 9, 10, or
    /// a native HELLO or BUSYNESS).
    #[error("unknown command {0} (guests send 1-4, 7-10, HELLO or BUSYNESS)")]
    UnknownCommand(u32),
    /// `vm_name` has no NUL within its 32 bytes.
    #[error("vm_name is not NUL-terminated within its 32 bytes")]
    NameNotTerminated,
    /// The bytes of `vm_name` before its NUL are not UTF-8.
    #[error("vm_name is not UTF-8 (invalid byte at index {valid_up_to})")]
    NameNotUtf8 {
        /// Index of the first byte that is not valid UTF-8.
        valid_up_to: usize,
    },
    /// CPU_POWER with a `unit` outside 1..=6.
    #[error("unknown scaling unit {0} for CPU_POWER (expected 1-6)")]
    UnknownUnit(u32),
    /// `policy_to_use` is not a policy of this layout.
    #[error("unknown policy_to_use {code} for the {layout:?} layout")]
    UnknownPolicyKind {
        /// The code sent.
        code: i32,
        /// The channel's layout (BRANCH_RATIO = 3 exists only in `Current`).
        layout: Layout,
    },
    /// `workload` outside 0..=2.
    #[error("unknown workload {0} (expected 0 HIGH, 1 MEDIUM or 2 LOW)")]
    UnknownWorkload(i32),
    /// `num_vcpu` above 8.
    #[error("num_vcpu is {0}, at most 8 cores per policy")]
    TooManyVcpus(u8),
    /// `nb_mac_to_monitor` outside 0..=10.
    #[error("nb_mac_to_monitor is {0}, expected 0-10")]
    MacCountOutOfRange(i32),
    /// An hour slot outside 0..=23.
    #[error("{array}[{index}] is {value}, not an hour 0-23")]
    HourOutOfRange {
        /// `busy_hours`, `quiet_hours` or `hours_to_use_traffic_profile`.
        array: &'static str,
        /// Slot index, 0..24.
        index: usize,
        /// The value in the slot.
        value: i32,
    },
    /// A C `bool` byte that is neither 0 nor 1.
    #[error("{field} is {value}, a bool must be 0 or 1")]
    BadBool {
        /// `core_type` or `t_boost_status`.
        field: &'static str,
        /// The byte sent.
        value: u8,
    },
    /// A BUSYNESS record whose entries are out of bounds.
    #[error("BUSYNESS: {0}")]
    Busyness(crate::BusynessError),
}

/// Why a host reply could not be read (guest side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyDecodeError {
    /// The bytes are not exactly one reply of the expected kind.
    #[error("reply is {got} bytes, expected {expected}")]
    WrongLength {
        /// The size of the expected reply.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// `command` is not the one this kind of reply carries.
    #[error("reply command is {got}, expected {expected}")]
    UnexpectedCommand {
        /// What was expected, e.g. "1 (ACK) or 2 (NACK)".
        expected: &'static str,
        /// The command found.
        got: u32,
    },
    /// `vm_name` has no NUL within its 32 bytes.
    #[error("vm_name is not NUL-terminated within its 32 bytes")]
    NameNotTerminated,
    /// The bytes of `vm_name` before its NUL are not UTF-8.
    #[error("vm_name is not UTF-8 (invalid byte at index {valid_up_to})")]
    NameNotUtf8 {
        /// Index of the first byte that is not valid UTF-8.
        valid_up_to: usize,
    },
    /// `num_vcpu` above 8.
    #[error("num_vcpu is {0}, at most 8")]
    TooManyVcpus(u8),
    /// A `turbo` or `priority` entry that is neither 0 nor 1.
    #[error("{field}[{index}] is {value}, expected 0 or 1")]
    BadFlag {
        /// `turbo` or `priority`.
        field: &'static str,
        /// vCPU index.
        index: usize,
        /// The value sent.
        value: u64,
    },
}

/// Why a value could not be written as a binary record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The output buffer (or the raw request to echo) has the wrong size.
    #[error("buffer is {got} bytes, the record needs exactly {expected}")]
    WrongLength {
        /// Size of the record.
        expected: usize,
        /// Size given.
        got: usize,
    },
    /// BRANCH_RATIO does not exist in the DPDK 17.11 layout.
    #[error("the DPDK 17.11 layout has no BRANCH_RATIO policy")]
    BranchRatioInDpdk1711,
    /// Physical cores cannot be named in the DPDK 17.11 layout.
    #[error("the DPDK 17.11 layout has no core_type: cores are always virtual")]
    PhysicalCoreInDpdk1711,
    /// An hour set that the zero-padded array cannot express: exactly {0}
    /// reads back as the empty set.
    #[error("{array} = {{0}} cannot be encoded: a lone hour 0 reads as an empty array")]
    LoneHourZero {
        /// `busy_hours`, `quiet_hours` or `hours_to_use_traffic_profile`.
        array: &'static str,
    },
    /// A reply's `num_vcpu` above 8.
    #[error("num_vcpu is {0}, at most 8")]
    TooManyVcpus(u8),
}

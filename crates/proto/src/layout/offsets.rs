//! Named byte offsets and sizes of every field of every binary record, as
//! measured with gcc on x86-64 from DPDK's public headers (PROTOCOL.md).
//!
//! All multi-byte fields are little-endian. These constants are the single
//! source of truth for the codec in [`crate::layout`]; the integration tests
//! pin each of them against hand-written byte fixtures, so changing one here
//! is a protocol change.
//!
//! Nothing here reads or writes bytes; see `wire.rs` for that.

use crate::Layout;

/// Wire codes of the `command` field.
pub mod command {
    /// Guest → host: change one core's frequency (`CPU_POWER`).
    pub const CPU_POWER: u32 = 1;
    /// Guest → host: sign of life when the port opens (`CPU_POWER_CONNECT`).
    pub const CONNECT: u32 = 2;
    /// Guest → host: install a policy (`PKT_POLICY`).
    pub const PKT_POLICY: u32 = 3;
    /// Guest → host: remove the VM's policy (`PKT_POLICY_REMOVE`).
    pub const PKT_POLICY_REMOVE: u32 = 4;
    /// Guest → host: frequencies of every vCPU (`CPU_POWER_QUERY_FREQ_LIST`).
    pub const QUERY_FREQ_LIST: u32 = 7;
    /// Guest → host: frequency of one vCPU (`CPU_POWER_QUERY_FREQ`).
    pub const QUERY_FREQ: u32 = 8;
    /// Guest → host: capabilities of every vCPU (`CPU_POWER_QUERY_CAPS_LIST`).
    pub const QUERY_CAPS_LIST: u32 = 9;
    /// Guest → host: capabilities of one vCPU (`CPU_POWER_QUERY_CAPS`).
    pub const QUERY_CAPS: u32 = 10;
    /// Guest → host: vmpower's native-contract handshake (`unit` carries
    /// the highest contract version the guest speaks). Not a DPDK code:
    /// DPDK's guests never send it and DPDK's host ignores it, so a
    /// vmpower guest that gets no answer speaks DPDK's contract.
    pub const NATIVE_HELLO: u32 = 0x564D_5057;
    /// Guest → host: a busyness report ("VMPB"), native contract version
    /// 2 and later only ([`crate::contract`]); never answered.
    pub const BUSYNESS: u32 = 0x564D_5042;

    /// Host → guest: the request took effect (`CPU_POWER_CMD_ACK`).
    pub const ACK: u32 = 1;
    /// Host → guest: the request was refused (`CPU_POWER_CMD_NACK`).
    pub const NACK: u32 = 2;
    /// Host → guest: an 88-byte frequency list (`CPU_POWER_FREQ_LIST`).
    pub const FREQ_LIST: u32 = 3;
    /// Host → guest: a 184-byte capabilities list (`CPU_POWER_CAPS_LIST`).
    pub const CAPS_LIST: u32 = 4;
}

/// The header shared by requests and every reply: `resource_id`, `unit`,
/// `command`, `vm_name` at the same offsets.
pub mod header {
    /// `resource_id`: u64.
    pub const RESOURCE_ID: usize = 0;
    /// `unit`: u32.
    pub const UNIT: usize = 8;
    /// `command`: u32.
    pub const COMMAND: usize = 12;
    /// `vm_name`: `char[32]`.
    pub const VM_NAME: usize = 16;
    /// Size of `vm_name` in bytes, including room for its NUL.
    pub const VM_NAME_LEN: usize = 32;
    /// Bytes needed to read `command`, i.e. to tell which reply follows.
    pub const LEN: usize = 48;
}

/// Where a native-contract NACK carries its reason code: the padding
/// byte after `num_vcpu`, present in both layouts and never read by DPDK.
pub const NACK_REASON: usize = 153;

/// Fields of the request/policy record up to offset 444, identical in the
/// current and the DPDK 17.11 layouts.
pub mod request {
    pub use super::header::{COMMAND, RESOURCE_ID, UNIT, VM_NAME, VM_NAME_LEN};

    /// `vfid`: `u64[10]`, one MAC in the low 6 bytes of each little-endian u64.
    pub const VFID: usize = 48;
    /// Number of `vfid` slots.
    pub const VFID_SLOTS: usize = 10;
    /// Size of one `vfid` slot.
    pub const VFID_SLOT_LEN: usize = 8;
    /// `nb_mac_to_monitor`: i32.
    pub const NB_MAC_TO_MONITOR: usize = 128;
    /// `traffic_policy.min_packet_thresh`: u32.
    pub const MIN_PACKET_THRESH: usize = 132;
    /// `traffic_policy.avg_max_packet_thresh`: u32.
    pub const AVG_MAX_PACKET_THRESH: usize = 136;
    /// `traffic_policy.max_max_packet_thresh`: u32.
    pub const MAX_MAX_PACKET_THRESH: usize = 140;
    /// `vcpu_to_control`: `u8[8]`.
    pub const VCPU_TO_CONTROL: usize = 144;
    /// Number of `vcpu_to_control` slots.
    pub const VCPU_SLOTS: usize = 8;
    /// `num_vcpu`: u8.
    pub const NUM_VCPU: usize = 152;
    /// `timer_policy.busy_hours`: `i32[24]`.
    pub const BUSY_HOURS: usize = 156;
    /// `timer_policy.quiet_hours`: `i32[24]`.
    pub const QUIET_HOURS: usize = 252;
    /// `timer_policy.hours_to_use_traffic_profile`: `i32[24]`.
    pub const TRAFFIC_HOURS: usize = 348;
    /// Number of slots in each hour array.
    pub const HOUR_SLOTS: usize = 24;
    /// Size of one hour slot.
    pub const HOUR_SLOT_LEN: usize = 4;
    /// First offset where the two layouts differ.
    pub const TAIL: usize = 444;
}

/// The tail of the current (DPDK 18.x and later) 464-byte record.
pub mod current {
    /// `core_type`: bool (0 virtual, 1 physical).
    pub const CORE_TYPE: usize = 444;
    /// `workload`: i32 enum.
    pub const WORKLOAD: usize = 448;
    /// `policy_to_use`: i32 enum.
    pub const POLICY_TO_USE: usize = 452;
    /// `t_boost_status.tbEnabled`: bool.
    pub const T_BOOST_STATUS: usize = 456;
    /// Size of the record.
    pub const LEN: usize = 464;
}

/// The tail of the DPDK 17.11 456-byte record (no `core_type`).
pub mod dpdk1711 {
    /// `workload`: i32 enum.
    pub const WORKLOAD: usize = 444;
    /// `policy_to_use`: i32 enum.
    pub const POLICY_TO_USE: usize = 448;
    /// `t_boost_status.tbEnabled`: bool.
    pub const T_BOOST_STATUS: usize = 452;
    /// Size of the record.
    pub const LEN: usize = 456;
}

/// The native v2 BUSYNESS record (in a record of the channel's layout's
/// size; bytes not named here are ignored, `vm_name` included).
pub mod busyness {
    pub use super::header::{COMMAND, RESOURCE_ID as SEQ, UNIT as COUNT};

    /// The first entry: vCPU (u16) then busyness in per mille (u16).
    pub const ENTRIES: usize = 48;
    /// Size of one entry.
    pub const ENTRY_LEN: usize = 4;
    /// Number of entry slots.
    pub const ENTRY_SLOTS: usize = 64;
    /// The guest's report interval in ms: u32.
    pub const INTERVAL_MS: usize = 304;
    /// The guest's rx-missed packets over its ports: u64 (`u64::MAX`:
    /// unknown).
    pub const RX_MISSED: usize = 308;
    /// The end of the last field: the record must be at least this long.
    pub const END: usize = 316;
}

/// The 88-byte FREQ_LIST reply.
pub mod freq_list {
    pub use super::header::{COMMAND, RESOURCE_ID, UNIT, VM_NAME, VM_NAME_LEN};

    /// `freq_list`: `u32[8]`, kHz indexed by vCPU.
    pub const FREQ_LIST: usize = 48;
    /// `num_vcpu`: u8.
    pub const NUM_VCPU: usize = 80;
    /// Size of the record.
    pub const LEN: usize = 88;
}

/// The 184-byte CAPS_LIST reply.
pub mod caps_list {
    pub use super::header::{COMMAND, RESOURCE_ID, UNIT, VM_NAME, VM_NAME_LEN};

    /// `turbo`: `u64[8]`, 0 or 1 per vCPU.
    pub const TURBO: usize = 48;
    /// `priority`: `u64[8]`, 0 or 1 per vCPU.
    pub const PRIORITY: usize = 112;
    /// `num_vcpu`: u8.
    pub const NUM_VCPU: usize = 176;
    /// Size of the record.
    pub const LEN: usize = 184;
}

/// The largest record of either request layout; the size of every
/// request-sized buffer in this crate.
pub const MAX_RECORD_LEN: usize = current::LEN;

/// Offsets of the fields after [`request::TAIL`], which depend on the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailOffsets {
    /// `core_type`, absent from the 17.11 layout.
    pub core_type: Option<usize>,
    /// `workload`.
    pub workload: usize,
    /// `policy_to_use`.
    pub policy_to_use: usize,
    /// `t_boost_status`.
    pub t_boost_status: usize,
}

impl TailOffsets {
    /// The tail offsets of `layout`.
    pub const fn of(layout: Layout) -> Self {
        match layout {
            Layout::Current => TailOffsets {
                core_type: Some(current::CORE_TYPE),
                workload: current::WORKLOAD,
                policy_to_use: current::POLICY_TO_USE,
                t_boost_status: current::T_BOOST_STATUS,
            },
            Layout::Dpdk1711 => TailOffsets {
                core_type: None,
                workload: dpdk1711::WORKLOAD,
                policy_to_use: dpdk1711::POLICY_TO_USE,
                t_boost_status: dpdk1711::T_BOOST_STATUS,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths_agree_with_the_model() {
        assert_eq!(current::LEN, Layout::Current.record_len());
        assert_eq!(dpdk1711::LEN, Layout::Dpdk1711.record_len());
    }

    #[test]
    fn fields_are_contiguous_where_the_c_struct_has_no_padding() {
        assert_eq!(
            request::VFID + request::VFID_SLOTS * 8,
            request::NB_MAC_TO_MONITOR
        );
        assert_eq!(
            request::VCPU_TO_CONTROL + request::VCPU_SLOTS,
            request::NUM_VCPU
        );
        assert_eq!(request::BUSY_HOURS + 24 * 4, request::QUIET_HOURS);
        assert_eq!(request::QUIET_HOURS + 24 * 4, request::TRAFFIC_HOURS);
        assert_eq!(request::TRAFFIC_HOURS + 24 * 4, request::TAIL);
        assert_eq!(freq_list::FREQ_LIST + 8 * 4, freq_list::NUM_VCPU);
        assert_eq!(caps_list::TURBO + 8 * 8, caps_list::PRIORITY);
        assert_eq!(caps_list::PRIORITY + 8 * 8, caps_list::NUM_VCPU);
        assert_eq!(
            busyness::ENTRIES + busyness::ENTRY_SLOTS * busyness::ENTRY_LEN,
            busyness::INTERVAL_MS
        );
        assert_eq!(busyness::INTERVAL_MS + 4, busyness::RX_MISSED);
        const { assert!(busyness::END <= dpdk1711::LEN) };
    }
}

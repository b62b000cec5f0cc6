//! The binary layouts of PROTOCOL.md: named offsets, and allocation-free,
//! panic-free decoders and encoders for guest requests and host replies.
//!
//! All fields are little-endian and read explicitly at named offsets
//! ([`offsets`]); no unsafe, no transmute. Every decoder checks the length
//! first and returns a typed error naming the field and the bad value.
//!
//! ## Request validation ([`decode_request`])
//! Checked in this order; the first fault is reported:
//! 1. The length equals `layout.record_len()` (464 current, 456 DPDK 17.11).
//! 2. `command` is a guest command: 1, 2, 3, 4, 7, 8, 9 or 10, or the
//!    native HELLO or BUSYNESS ([`crate::contract`]). CONNECT stops here: DPDK's guest
//!    library sends it from an uninitialised struct, so only `command`
//!    and `resource_id` are read (its name decodes as empty).
//! 3. `vm_name` has a NUL within its 32 bytes and the bytes before the first
//!    NUL are UTF-8. Bytes after the first NUL are ignored.
//! 4. The fields the command uses, and only those:
//!    - CPU_POWER: `unit` in 1..=6; `core_type` 0 or 1 (current layout; the
//!      17.11 layout has none and means a virtual core).
//!    - QUERY_*: `resource_id` only (no check). HELLO: `unit` (the
//!      version asked for, any value).
//!    - PKT_POLICY_REMOVE: the name only.
//!    - BUSYNESS (native v2): the name is not read (it decodes as empty);
//!      `unit` (the entry count) in 1..=64, each used entry's busyness at
//!      most 1000 and its vCPU not named twice ([`crate::busyness`]).
//!    - PKT_POLICY, in offset order: `nb_mac_to_monitor` in 0..=10 (only
//!      that many `vfid` slots are used); `num_vcpu` at most 8 (only that
//!      many `vcpu_to_control` entries are used); each of the 3×24 hour slots in
//!      0..=23; `core_type` 0/1 (current layout); `workload` 0..=2;
//!      `policy_to_use` 0..=3 in the current layout, 0..=2 in 17.11 (code 3,
//!      BRANCH_RATIO, does not exist there); `t_boost_status` 0/1. In each
//!      used `vfid` slot the MAC is the low 6 bytes of the little-endian
//!      u64; the high 2 bytes are ignored.
//!
//! ## Compatibility rule: unused fields are not validated
//! DPDK's own guest code builds query packets in an uninitialised stack
//! struct (only `command`, `resource_id` and `vm_name` set), fills `vfid`
//! through a union with an uninitialised u64, and sends CPU_POWER packets
//! whose policy fields are zero. Rejecting garbage in fields a command does
//! not use would refuse real guests, so those fields (and all padding) are
//! never read. The encoders write them as zero.
//!
//! ## Hours
//! Each hour array decodes as a set: the entries up to and including the
//! last non-zero entry; trailing zeros are padding; all zeros is the empty
//! set (`[0, 5]` → {0, 5}; `[5, 0]` → {5}; `[0, 0, …]` → {}). The encoder
//! writes the hours ascending, so hour 0 comes first and round-trips when
//! any other hour follows; a set of exactly {0} cannot be told from "empty"
//! and is refused with [`EncodeError::LoneHourZero`].
//!
//! ## Limitations
//! The layout of a channel must be known: a stream carries no length, and
//! this module never guesses it.

mod busyness;
mod error;
pub mod offsets;
mod reply;
mod request;
mod wire;

pub use error::{EncodeError, ReplyDecodeError, RequestDecodeError};
pub use reply::{
    Reply, ReplyKind, VerdictReply, decode_caps_list, decode_freq_list, decode_reply,
    decode_verdict, encode_caps_list, encode_freq_list, encode_hello_reply,
    encode_nack_with_reason, encode_verdict, peek_reply_kind,
};
pub use request::{
    RecordBytes, RecordHead, decode_request, encode_request, encode_request_record,
    is_guest_command,
};

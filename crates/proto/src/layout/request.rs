//! Decoding and encoding of the guest's request/policy record, in the
//! current (464-byte) and DPDK 17.11 (456-byte) layouts.
//!
//! See the [module documentation of `layout`](crate::layout) for the
//! validation rules; this file implements them. Decoding never panics and
//! never allocates; encoding writes into a caller's buffer or a
//! [`RecordBytes`] on the stack.

use std::fmt;
use std::ops::Deref;

use crate::{
    CoreType, HourSchedule, HourSet, Layout, MacAddr, MacList, Policy, PolicyKind, QueryKind,
    Request, RequestBody, ScalingUnit, TrafficThresholds, VcpuList, WorkloadLevel,
};

use super::error::{EncodeError, RequestDecodeError};
use super::offsets::{MAX_RECORD_LEN, TailOffsets, command, request as off};
use super::wire::{
    NameFault, i32_at, put_i32, put_name, put_u32, put_u64, read_name, u32_at, u64_at,
};

/// DPDK's names of the three hour arrays, with their offsets.
const HOUR_ARRAYS: [(&str, usize); 3] = [
    ("busy_hours", off::BUSY_HOURS),
    ("quiet_hours", off::QUIET_HOURS),
    ("hours_to_use_traffic_profile", off::TRAFFIC_HOURS),
];

/// One encoded request-size record (either layout), held inline: no heap.
/// Dereferences to exactly `layout.record_len()` bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordBytes {
    buf: [u8; MAX_RECORD_LEN],
    len: usize,
}

impl RecordBytes {
    /// A zeroed record of `layout`'s size.
    pub(crate) const fn zeroed(layout: Layout) -> Self {
        RecordBytes {
            buf: [0; MAX_RECORD_LEN],
            len: layout.record_len(),
        }
    }

    /// The record's bytes, mutable (crate-internal: encoders fill it).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The record's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Deref for RecordBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for RecordBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for RecordBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordBytes({} bytes)", self.len)
    }
}

/// Whether `code` is a command a guest may send.
pub const fn is_guest_command(code: u32) -> bool {
    matches!(
        code,
        1..=4 | 7..=10 | command::NATIVE_HELLO | command::BUSYNESS
    )
}

/// The two header fields that say which reply a record is due under
/// DPDK's contract, read from raw bytes whether or not the record
/// decodes: `command` and `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHead {
    /// `command`, as sent.
    pub command: u32,
    /// `unit`, as sent.
    pub unit: u32,
}

impl RecordHead {
    /// The head of a raw record (zeros where the bytes are too short).
    pub fn of(bytes: &[u8]) -> Self {
        let at = |offset: usize| {
            bytes
                .get(offset..offset + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        RecordHead {
            command: at(off::COMMAND),
            unit: at(off::UNIT),
        }
    }
}

/// Decodes one request/policy record of `layout`.
///
/// `bytes` must be exactly `layout.record_len()` long. Only the fields the
/// command uses are read and validated; see [`crate::layout`] for the rules.
pub fn decode_request(bytes: &[u8], layout: Layout) -> Result<Request, RequestDecodeError> {
    let expected = layout.record_len();
    if bytes.len() != expected {
        return Err(RequestDecodeError::WrongLength {
            expected,
            got: bytes.len(),
        });
    }
    let cmd = u32_at(bytes, off::COMMAND);
    if !is_guest_command(cmd) {
        return Err(RequestDecodeError::UnknownCommand(cmd));
    }
    // DPDK's guest library sends CONNECT from a struct it never
    // initialised: only `command` means anything.
    if cmd == command::CONNECT {
        return Ok(Request {
            vm_name: crate::VmName::default(),
            body: RequestBody::Connect {
                resource_id: u64_at(bytes, off::RESOURCE_ID),
            },
        });
    }
    // A busyness report's identity is its channel: its name is not read.
    if cmd == command::BUSYNESS {
        return Ok(Request {
            vm_name: crate::VmName::default(),
            body: RequestBody::Busyness(
                super::busyness::decode_busyness(bytes).map_err(RequestDecodeError::Busyness)?,
            ),
        });
    }
    let vm_name = read_name(bytes).map_err(|fault| match fault {
        NameFault::NotTerminated => RequestDecodeError::NameNotTerminated,
        NameFault::NotUtf8(valid_up_to) => RequestDecodeError::NameNotUtf8 { valid_up_to },
    })?;
    let resource_id = u64_at(bytes, off::RESOURCE_ID);
    let query = |kind| RequestBody::Query { kind, resource_id };
    let body = match cmd {
        command::CPU_POWER => {
            let code = u32_at(bytes, off::UNIT);
            let unit = ScalingUnit::from_code(code).ok_or(RequestDecodeError::UnknownUnit(code))?;
            let core_type = decode_core_type(bytes, layout)?;
            RequestBody::Power {
                resource_id,
                core_type,
                unit,
            }
        }
        command::CONNECT => RequestBody::Connect { resource_id },
        command::NATIVE_HELLO => RequestBody::Hello {
            version: u32_at(bytes, off::UNIT),
        },
        command::PKT_POLICY => RequestBody::SetPolicy(decode_policy(bytes, layout)?),
        command::PKT_POLICY_REMOVE => RequestBody::RemovePolicy,
        command::QUERY_FREQ_LIST => query(QueryKind::FreqList),
        command::QUERY_FREQ => query(QueryKind::Freq),
        command::QUERY_CAPS_LIST => query(QueryKind::CapsList),
        command::QUERY_CAPS => query(QueryKind::Caps),
        other => return Err(RequestDecodeError::UnknownCommand(other)),
    };
    Ok(Request { vm_name, body })
}

/// Reads a C `bool` byte.
fn decode_bool(bytes: &[u8], at: usize, field: &'static str) -> Result<bool, RequestDecodeError> {
    match bytes[at] {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(RequestDecodeError::BadBool { field, value }),
    }
}

/// Reads `core_type` (current layout) or returns `Virtual` (17.11).
fn decode_core_type(bytes: &[u8], layout: Layout) -> Result<CoreType, RequestDecodeError> {
    match TailOffsets::of(layout).core_type {
        None => Ok(CoreType::Virtual),
        Some(at) => Ok(if decode_bool(bytes, at, "core_type")? {
            CoreType::Physical
        } else {
            CoreType::Virtual
        }),
    }
}

/// Reads one hour array as a set: entries up to the last non-zero one.
fn decode_hours(
    bytes: &[u8],
    at: usize,
    array: &'static str,
) -> Result<HourSet, RequestDecodeError> {
    let mut slots = [0u8; off::HOUR_SLOTS];
    for (index, slot) in slots.iter_mut().enumerate() {
        let value = i32_at(bytes, at + index * off::HOUR_SLOT_LEN);
        *slot = u8::try_from(value).ok().filter(|h| *h <= 23).ok_or(
            RequestDecodeError::HourOutOfRange {
                array,
                index,
                value,
            },
        )?;
    }
    let used = slots
        .iter()
        .rposition(|h| *h != 0)
        .map_or(0, |last| last + 1);
    let mut set = HourSet::EMPTY;
    for hour in &slots[..used] {
        set.insert(*hour).expect("hour checked to be 0..=23");
    }
    Ok(set)
}

/// Reads and validates every policy field, in offset order.
fn decode_policy(bytes: &[u8], layout: Layout) -> Result<Policy, RequestDecodeError> {
    let tail = TailOffsets::of(layout);

    let nb_mac = i32_at(bytes, off::NB_MAC_TO_MONITOR);
    let mac_count = usize::try_from(nb_mac)
        .ok()
        .filter(|n| *n <= MacList::CAPACITY)
        .ok_or(RequestDecodeError::MacCountOutOfRange(nb_mac))?;
    let mut macs = [MacAddr::default(); MacList::CAPACITY];
    for (i, mac) in macs.iter_mut().take(mac_count).enumerate() {
        // The low 6 bytes of the little-endian u64; the high 2 are ignored
        // (DPDK's guest fills them from an uninitialised union).
        let at = off::VFID + i * off::VFID_SLOT_LEN;
        mac.0.copy_from_slice(&bytes[at..at + 6]);
    }
    let macs = MacList::from_slice(&macs[..mac_count]).expect("at most 10 checked above");

    let traffic = TrafficThresholds {
        min_pps: u32_at(bytes, off::MIN_PACKET_THRESH),
        avg_pps: u32_at(bytes, off::AVG_MAX_PACKET_THRESH),
        max_pps: u32_at(bytes, off::MAX_MAX_PACKET_THRESH),
    };

    let num_vcpu = bytes[off::NUM_VCPU];
    let vcpu_count = usize::from(num_vcpu);
    if vcpu_count > VcpuList::CAPACITY {
        return Err(RequestDecodeError::TooManyVcpus(num_vcpu));
    }
    let cores =
        VcpuList::from_slice(&bytes[off::VCPU_TO_CONTROL..off::VCPU_TO_CONTROL + vcpu_count])
            .expect("at most 8 checked above");

    let [busy, quiet, traffic_hours] = HOUR_ARRAYS;
    let hours = HourSchedule {
        busy: decode_hours(bytes, busy.1, busy.0)?,
        quiet: decode_hours(bytes, quiet.1, quiet.0)?,
        traffic: decode_hours(bytes, traffic_hours.1, traffic_hours.0)?,
    };

    let core_type = decode_core_type(bytes, layout)?;
    let code = i32_at(bytes, tail.workload);
    let workload =
        WorkloadLevel::from_code(code).ok_or(RequestDecodeError::UnknownWorkload(code))?;
    let code = i32_at(bytes, tail.policy_to_use);
    let kind = PolicyKind::from_code(code)
        .filter(|k| layout == Layout::Current || *k != PolicyKind::BranchRatio)
        .ok_or(RequestDecodeError::UnknownPolicyKind { code, layout })?;
    let turbo_boost = decode_bool(bytes, tail.t_boost_status, "t_boost_status")?;

    Ok(Policy {
        kind,
        cores,
        core_type,
        macs,
        traffic,
        hours,
        workload,
        turbo_boost,
    })
}

/// Checks that `request` can be expressed in `layout`, before any byte is
/// written.
fn check_encodable(request: &Request, layout: Layout) -> Result<(), EncodeError> {
    let core_type = match &request.body {
        RequestBody::Power { core_type, .. } => *core_type,
        RequestBody::SetPolicy(policy) => {
            if layout == Layout::Dpdk1711 && policy.kind == PolicyKind::BranchRatio {
                return Err(EncodeError::BranchRatioInDpdk1711);
            }
            let sets = [policy.hours.busy, policy.hours.quiet, policy.hours.traffic];
            for ((array, _), set) in HOUR_ARRAYS.iter().zip(sets) {
                if set == HourSet::from_hours([0]).expect("0 is an hour") {
                    return Err(EncodeError::LoneHourZero { array });
                }
            }
            policy.core_type
        }
        _ => CoreType::Virtual,
    };
    if layout == Layout::Dpdk1711 && core_type == CoreType::Physical {
        return Err(EncodeError::PhysicalCoreInDpdk1711);
    }
    Ok(())
}

/// Writes `core_type` where the layout has it.
fn put_core_type(out: &mut [u8], layout: Layout, core_type: CoreType) {
    if let Some(at) = TailOffsets::of(layout).core_type {
        out[at] = u8::from(core_type == CoreType::Physical);
    }
}

/// Writes the policy fields.
fn put_policy(out: &mut [u8], layout: Layout, policy: &Policy) {
    let tail = TailOffsets::of(layout);
    for (i, mac) in policy.macs.as_slice().iter().enumerate() {
        let at = off::VFID + i * off::VFID_SLOT_LEN;
        out[at..at + 6].copy_from_slice(&mac.0);
    }
    let nb_mac = i32::try_from(policy.macs.len()).expect("at most 10");
    put_i32(out, off::NB_MAC_TO_MONITOR, nb_mac);
    put_u32(out, off::MIN_PACKET_THRESH, policy.traffic.min_pps);
    put_u32(out, off::AVG_MAX_PACKET_THRESH, policy.traffic.avg_pps);
    put_u32(out, off::MAX_MAX_PACKET_THRESH, policy.traffic.max_pps);
    let cores = policy.cores.as_slice();
    out[off::VCPU_TO_CONTROL..off::VCPU_TO_CONTROL + cores.len()].copy_from_slice(cores);
    out[off::NUM_VCPU] = u8::try_from(cores.len()).expect("at most 8");
    let sets = [policy.hours.busy, policy.hours.quiet, policy.hours.traffic];
    for ((_, at), set) in HOUR_ARRAYS.iter().zip(sets) {
        // Ascending, so hour 0 (if any) comes first and a later non-zero
        // hour marks it as used.
        for (i, hour) in set.iter().enumerate() {
            put_i32(out, at + i * off::HOUR_SLOT_LEN, i32::from(hour));
        }
    }
    put_core_type(out, layout, policy.core_type);
    put_i32(out, tail.workload, policy.workload.code());
    put_i32(out, tail.policy_to_use, policy.kind.code());
    out[tail.t_boost_status] = u8::from(policy.turbo_boost);
}

/// Encodes `request` in `layout` into `out`, which must be exactly
/// `layout.record_len()` bytes. Fields the command does not use, and
/// padding, are written as zero. On error `out` is left untouched.
pub fn encode_request(
    request: &Request,
    layout: Layout,
    out: &mut [u8],
) -> Result<(), EncodeError> {
    let expected = layout.record_len();
    if out.len() != expected {
        return Err(EncodeError::WrongLength {
            expected,
            got: out.len(),
        });
    }
    check_encodable(request, layout)?;
    out.fill(0);
    put_name(out, &request.vm_name);
    let (cmd, resource_id) = match &request.body {
        RequestBody::Connect { resource_id } => (command::CONNECT, *resource_id),
        RequestBody::Power {
            resource_id,
            core_type,
            unit,
        } => {
            put_u32(out, off::UNIT, unit.code());
            put_core_type(out, layout, *core_type);
            (command::CPU_POWER, *resource_id)
        }
        RequestBody::SetPolicy(policy) => {
            put_policy(out, layout, policy);
            (command::PKT_POLICY, 0)
        }
        RequestBody::RemovePolicy => (command::PKT_POLICY_REMOVE, 0),
        RequestBody::Hello { version } => {
            put_u32(out, off::UNIT, *version);
            (command::NATIVE_HELLO, 0)
        }
        RequestBody::Busyness(report) => {
            super::busyness::put_busyness(out, report);
            (command::BUSYNESS, report.seq())
        }
        RequestBody::Query { kind, resource_id } => {
            let cmd = match kind {
                QueryKind::FreqList => command::QUERY_FREQ_LIST,
                QueryKind::Freq => command::QUERY_FREQ,
                QueryKind::CapsList => command::QUERY_CAPS_LIST,
                QueryKind::Caps => command::QUERY_CAPS,
            };
            (cmd, *resource_id)
        }
    };
    put_u64(out, off::RESOURCE_ID, resource_id);
    put_u32(out, off::COMMAND, cmd);
    Ok(())
}

/// Encodes `request` in `layout` into a new inline record (no heap).
pub fn encode_request_record(
    request: &Request,
    layout: Layout,
) -> Result<RecordBytes, EncodeError> {
    let mut record = RecordBytes::zeroed(layout);
    encode_request(request, layout, record.as_mut_slice())?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VmName;

    fn name() -> VmName {
        VmName::new("vm").expect("short name")
    }

    #[test]
    fn hours_decode_as_set_up_to_last_non_zero() {
        let mut rec = [0u8; 464];
        for (i, h) in [0i32, 5].iter().enumerate() {
            put_i32(&mut rec, off::BUSY_HOURS + 4 * i, *h);
        }
        put_i32(&mut rec, off::QUIET_HOURS, 5);
        let busy = decode_hours(&rec, off::BUSY_HOURS, "busy_hours").expect("valid");
        let quiet = decode_hours(&rec, off::QUIET_HOURS, "quiet_hours").expect("valid");
        let none = decode_hours(&rec, off::TRAFFIC_HOURS, "t").expect("valid");
        assert_eq!(busy.iter().collect::<Vec<_>>(), [0, 5]);
        assert_eq!(quiet.iter().collect::<Vec<_>>(), [5]);
        assert!(none.is_empty());
    }

    #[test]
    fn zero_then_more_hours_round_trips() {
        let policy_hours = HourSchedule {
            busy: HourSet::from_hours([0, 5, 23]).expect("hours"),
            ..HourSchedule::default()
        };
        let req = Request {
            vm_name: name(),
            body: RequestBody::SetPolicy(Policy {
                kind: PolicyKind::Time,
                cores: VcpuList::default(),
                core_type: CoreType::Virtual,
                macs: MacList::default(),
                traffic: TrafficThresholds::default(),
                hours: policy_hours,
                workload: WorkloadLevel::High,
                turbo_boost: false,
            }),
        };
        let rec = encode_request_record(&req, Layout::Current).expect("encodable");
        assert_eq!(i32_at(&rec, off::BUSY_HOURS), 0);
        assert_eq!(i32_at(&rec, off::BUSY_HOURS + 4), 5);
        assert_eq!(i32_at(&rec, off::BUSY_HOURS + 8), 23);
        assert_eq!(decode_request(&rec, Layout::Current), Ok(req));
    }

    #[test]
    fn encode_error_leaves_buffer_untouched() {
        let req = Request {
            vm_name: name(),
            body: RequestBody::Power {
                resource_id: 1,
                core_type: CoreType::Physical,
                unit: ScalingUnit::ScaleUp,
            },
        };
        let mut out = [0xaau8; 456];
        assert_eq!(
            encode_request(&req, Layout::Dpdk1711, &mut out),
            Err(EncodeError::PhysicalCoreInDpdk1711)
        );
        assert!(out.iter().all(|b| *b == 0xaa));
    }

    #[test]
    fn guest_commands() {
        let known: Vec<u32> = (0..=12).filter(|c| is_guest_command(*c)).collect();
        assert_eq!(known, [1, 2, 3, 4, 7, 8, 9, 10]);
    }
}

//! Host → guest replies: ACK/NACK (a request-size record echoing the
//! request), the 88-byte FREQ_LIST and the 184-byte CAPS_LIST.
//!
//! ## Behavior
//! - [`encode_verdict`] works on the raw request bytes, so the host can NACK
//!   a record it could not decode: the reply is those bytes with `command`
//!   replaced by 1 (ACK) or 2 (NACK).
//! - A verdict echoes the request but loses its command, so the guest side
//!   ([`decode_verdict`]) returns the verdict and the echoed header fields,
//!   with `vm_name` only where it is decodable.
//! - FREQ_LIST / CAPS_LIST: `num_vcpu` must be at most 8; only the first
//!   `num_vcpu` entries are read (and, for CAPS_LIST, checked to be 0 or 1);
//!   the rest decode as zero/false and are written as zero.
//! - Every reply carries `command` at offset 12, so a guest reading a port
//!   where replies of several kinds may queue up can read the first
//!   [`header::LEN`](super::offsets::header::LEN) bytes, call
//!   [`peek_reply_kind`], and then read [`ReplyKind::record_len`] bytes.
//!
//! Encoders are allocation-free; nothing here does I/O.

use crate::{CapsReply, FreqListReply, Layout, Verdict, VmName};

use super::error::{EncodeError, ReplyDecodeError};
use super::offsets::{caps_list, command, freq_list, header};
use super::request::RecordBytes;
use super::wire::{NameFault, put_name, put_u32, put_u64, read_name, u32_at, u64_at};

/// Which reply a host record is, from its `command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// ACK (1) or NACK (2): request-size.
    Verdict(Verdict),
    /// FREQ_LIST (3): 88 bytes.
    FreqList,
    /// CAPS_LIST (4): 184 bytes.
    CapsList,
}

impl ReplyKind {
    /// The reply kind a `command` value announces.
    pub const fn from_command(code: u32) -> Option<Self> {
        Some(match code {
            command::ACK => ReplyKind::Verdict(Verdict::Ack),
            command::NACK => ReplyKind::Verdict(Verdict::Nack),
            command::FREQ_LIST => ReplyKind::FreqList,
            command::CAPS_LIST => ReplyKind::CapsList,
            _ => return None,
        })
    }

    /// Size in bytes of this reply on a channel of `layout`.
    pub const fn record_len(self, layout: Layout) -> usize {
        match self {
            ReplyKind::Verdict(_) => layout.record_len(),
            ReplyKind::FreqList => freq_list::LEN,
            ReplyKind::CapsList => caps_list::LEN,
        }
    }
}

/// A decoded ACK/NACK: the verdict and the request fields it echoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerdictReply {
    /// ACK or NACK.
    pub verdict: Verdict,
    /// Echoed `resource_id`.
    pub resource_id: u64,
    /// Echoed `unit` (raw: the request's command is not echoed, so its
    /// meaning is unknown here).
    pub unit: u32,
    /// Echoed `vm_name`, if it is NUL-terminated UTF-8.
    pub vm_name: Option<VmName>,
}

/// Any host reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// ACK or NACK.
    Verdict(VerdictReply),
    /// Frequencies per vCPU.
    FreqList(FreqListReply),
    /// Capabilities per vCPU.
    CapsList(CapsReply),
}

/// Maps a `vm_name` fault to the reply error.
fn name_error(fault: NameFault) -> ReplyDecodeError {
    match fault {
        NameFault::NotTerminated => ReplyDecodeError::NameNotTerminated,
        NameFault::NotUtf8(valid_up_to) => ReplyDecodeError::NameNotUtf8 { valid_up_to },
    }
}

/// Checks a reply's length and command.
fn check_frame(
    bytes: &[u8],
    expected_len: usize,
    expected_cmd: &'static str,
    ok: impl Fn(u32) -> bool,
) -> Result<u32, ReplyDecodeError> {
    if bytes.len() != expected_len {
        return Err(ReplyDecodeError::WrongLength {
            expected: expected_len,
            got: bytes.len(),
        });
    }
    let got = u32_at(bytes, header::COMMAND);
    if !ok(got) {
        return Err(ReplyDecodeError::UnexpectedCommand {
            expected: expected_cmd,
            got,
        });
    }
    Ok(got)
}

/// Builds the ACK/NACK for a raw request record of `layout`: the same bytes
/// with `command` replaced by the verdict's code. Works on records that
/// did not decode.
pub fn encode_verdict(
    raw_request: &[u8],
    layout: Layout,
    verdict: Verdict,
) -> Result<RecordBytes, EncodeError> {
    let expected = layout.record_len();
    if raw_request.len() != expected {
        return Err(EncodeError::WrongLength {
            expected,
            got: raw_request.len(),
        });
    }
    let mut record = RecordBytes::zeroed(layout);
    let out = record.as_mut_slice();
    out.copy_from_slice(raw_request);
    put_u32(out, header::COMMAND, verdict.code());
    Ok(record)
}

/// A native-contract NACK: [`encode_verdict`]'s NACK with the reason's
/// code in byte [`super::offsets::NACK_REASON`] (padding in both layouts).
pub fn encode_nack_with_reason(
    raw_request: &[u8],
    layout: Layout,
    reason: crate::contract::NackReason,
) -> Result<RecordBytes, EncodeError> {
    let mut record = encode_verdict(raw_request, layout, Verdict::Nack)?;
    record.as_mut_slice()[super::offsets::NACK_REASON] = reason.code();
    Ok(record)
}

/// The answer to a native HELLO: an ACK echoing it with `unit` set to the
/// contract version granted.
pub fn encode_hello_reply(
    raw_request: &[u8],
    layout: Layout,
    version: u32,
) -> Result<RecordBytes, EncodeError> {
    let mut record = encode_verdict(raw_request, layout, Verdict::Ack)?;
    put_u32(record.as_mut_slice(), header::UNIT, version);
    Ok(record)
}

/// Reads an ACK/NACK of `layout` (guest side).
pub fn decode_verdict(bytes: &[u8], layout: Layout) -> Result<VerdictReply, ReplyDecodeError> {
    let cmd = check_frame(bytes, layout.record_len(), "1 (ACK) or 2 (NACK)", |c| {
        c == command::ACK || c == command::NACK
    })?;
    Ok(VerdictReply {
        verdict: if cmd == command::ACK {
            Verdict::Ack
        } else {
            Verdict::Nack
        },
        resource_id: u64_at(bytes, header::RESOURCE_ID),
        unit: u32_at(bytes, header::UNIT),
        vm_name: read_name(bytes).ok(),
    })
}

/// Encodes a FREQ_LIST reply. Entries past `num_vcpu` are written as zero.
pub fn encode_freq_list(reply: &FreqListReply) -> Result<[u8; freq_list::LEN], EncodeError> {
    let n = usize::from(reply.num_vcpu);
    if n > reply.freqs_khz.len() {
        return Err(EncodeError::TooManyVcpus(reply.num_vcpu));
    }
    let mut out = [0u8; freq_list::LEN];
    put_u64(&mut out, header::RESOURCE_ID, reply.resource_id);
    put_u32(&mut out, header::UNIT, reply.unit);
    put_u32(&mut out, header::COMMAND, command::FREQ_LIST);
    put_name(&mut out, &reply.vm_name);
    for (i, khz) in reply.freqs_khz.iter().take(n).enumerate() {
        put_u32(&mut out, freq_list::FREQ_LIST + 4 * i, *khz);
    }
    out[freq_list::NUM_VCPU] = reply.num_vcpu;
    Ok(out)
}

/// Reads a FREQ_LIST reply (guest side).
pub fn decode_freq_list(bytes: &[u8]) -> Result<FreqListReply, ReplyDecodeError> {
    check_frame(bytes, freq_list::LEN, "3 (FREQ_LIST)", |c| {
        c == command::FREQ_LIST
    })?;
    let vm_name = read_name(bytes).map_err(name_error)?;
    let num_vcpu = bytes[freq_list::NUM_VCPU];
    let n = usize::from(num_vcpu);
    let mut freqs_khz = [0; 8];
    if n > freqs_khz.len() {
        return Err(ReplyDecodeError::TooManyVcpus(num_vcpu));
    }
    for (i, khz) in freqs_khz.iter_mut().take(n).enumerate() {
        *khz = u32_at(bytes, freq_list::FREQ_LIST + 4 * i);
    }
    Ok(FreqListReply {
        resource_id: u64_at(bytes, header::RESOURCE_ID),
        unit: u32_at(bytes, header::UNIT),
        vm_name,
        freqs_khz,
        num_vcpu,
    })
}

/// Encodes a CAPS_LIST reply. Entries past `num_vcpu` are written as zero.
pub fn encode_caps_list(reply: &CapsReply) -> Result<[u8; caps_list::LEN], EncodeError> {
    let n = usize::from(reply.num_vcpu);
    if n > reply.turbo.len() {
        return Err(EncodeError::TooManyVcpus(reply.num_vcpu));
    }
    let mut out = [0u8; caps_list::LEN];
    put_u64(&mut out, header::RESOURCE_ID, reply.resource_id);
    put_u32(&mut out, header::UNIT, reply.unit);
    put_u32(&mut out, header::COMMAND, command::CAPS_LIST);
    put_name(&mut out, &reply.vm_name);
    for i in 0..n {
        put_u64(
            &mut out,
            caps_list::TURBO + 8 * i,
            u64::from(reply.turbo[i]),
        );
        put_u64(
            &mut out,
            caps_list::PRIORITY + 8 * i,
            u64::from(reply.priority[i]),
        );
    }
    out[caps_list::NUM_VCPU] = reply.num_vcpu;
    Ok(out)
}

/// Reads the first `n` 0/1 u64 flags of an array.
fn decode_flags(
    bytes: &[u8],
    at: usize,
    n: usize,
    field: &'static str,
) -> Result<[bool; 8], ReplyDecodeError> {
    let mut flags = [false; 8];
    for (index, flag) in flags.iter_mut().take(n).enumerate() {
        *flag = match u64_at(bytes, at + 8 * index) {
            0 => false,
            1 => true,
            value => {
                return Err(ReplyDecodeError::BadFlag {
                    field,
                    index,
                    value,
                });
            }
        };
    }
    Ok(flags)
}

/// Reads a CAPS_LIST reply (guest side).
pub fn decode_caps_list(bytes: &[u8]) -> Result<CapsReply, ReplyDecodeError> {
    check_frame(bytes, caps_list::LEN, "4 (CAPS_LIST)", |c| {
        c == command::CAPS_LIST
    })?;
    let vm_name = read_name(bytes).map_err(name_error)?;
    let num_vcpu = bytes[caps_list::NUM_VCPU];
    let n = usize::from(num_vcpu);
    if n > 8 {
        return Err(ReplyDecodeError::TooManyVcpus(num_vcpu));
    }
    Ok(CapsReply {
        resource_id: u64_at(bytes, header::RESOURCE_ID),
        unit: u32_at(bytes, header::UNIT),
        vm_name,
        turbo: decode_flags(bytes, caps_list::TURBO, n, "turbo")?,
        priority: decode_flags(bytes, caps_list::PRIORITY, n, "priority")?,
        num_vcpu,
    })
}

/// Tells which reply starts with `bytes` (at least the 16 bytes up to and
/// including `command`), so the reader knows how many bytes to read.
pub fn peek_reply_kind(bytes: &[u8]) -> Result<ReplyKind, ReplyDecodeError> {
    let need = header::COMMAND + 4;
    if bytes.len() < need {
        return Err(ReplyDecodeError::WrongLength {
            expected: need,
            got: bytes.len(),
        });
    }
    let got = u32_at(bytes, header::COMMAND);
    ReplyKind::from_command(got).ok_or(ReplyDecodeError::UnexpectedCommand {
        expected: "a reply command 1-4",
        got,
    })
}

/// Reads any reply on a channel of `layout`: dispatches on `command`, then
/// checks that `bytes` is exactly that reply's size.
pub fn decode_reply(bytes: &[u8], layout: Layout) -> Result<Reply, ReplyDecodeError> {
    match peek_reply_kind(bytes)? {
        ReplyKind::Verdict(_) => decode_verdict(bytes, layout).map(Reply::Verdict),
        ReplyKind::FreqList => decode_freq_list(bytes).map(Reply::FreqList),
        ReplyKind::CapsList => decode_caps_list(bytes).map(Reply::CapsList),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_echoes_everything_but_command() {
        let raw: Vec<u8> = (0..464u32)
            .map(|i| u8::try_from(i % 251).expect("< 251"))
            .collect();
        let nack = encode_verdict(&raw, Layout::Current, Verdict::Nack).expect("right length");
        assert_eq!(&nack[..12], &raw[..12]);
        assert_eq!(&nack[12..16], &[2, 0, 0, 0]);
        assert_eq!(&nack[16..], &raw[16..]);
        let reply = decode_verdict(&nack, Layout::Current).expect("a verdict");
        assert_eq!(reply.verdict, Verdict::Nack);
        assert_eq!(reply.vm_name, None, "garbage name is not decodable");
    }

    #[test]
    fn reply_kind_lengths() {
        assert_eq!(ReplyKind::FreqList.record_len(Layout::Current), 88);
        assert_eq!(ReplyKind::CapsList.record_len(Layout::Dpdk1711), 184);
        assert_eq!(
            ReplyKind::Verdict(Verdict::Ack).record_len(Layout::Dpdk1711),
            456
        );
        assert_eq!(ReplyKind::from_command(5), None);
    }
}

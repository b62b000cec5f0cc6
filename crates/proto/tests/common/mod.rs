//! Shared test helpers: the annotated-hex fixture parser and a table of
//! field offsets built from the crate's constants, to check fixtures
//! written by hand against them.
//!
//! Fixture format (`tests/fixtures/*.hex`): `#` starts a comment; a line
//! `len N` gives the record size; a line `@OFFSET NAME HEX...` writes the
//! bytes at OFFSET. Unlisted bytes are zero. NAME is a DPDK field name,
//! optionally indexed (`busy_hours[3]`).

#![allow(dead_code)]

use std::path::PathBuf;

use vmpower_proto::Layout;
use vmpower_proto::layout::offsets::{caps_list, current, dpdk1711, freq_list, request};

/// One `@OFFSET NAME HEX` line.
#[derive(Debug, Clone)]
pub struct FixtureField {
    /// Offset written in the fixture.
    pub offset: usize,
    /// Field name, possibly indexed.
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A parsed fixture.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// File name, for messages.
    pub file: String,
    /// The whole record.
    pub bytes: Vec<u8>,
    /// The lines that wrote it.
    pub fields: Vec<FixtureField>,
}

/// Reads and parses `tests/fixtures/<name>`; panics with the line on any
/// malformed, overlapping or out-of-range entry.
pub fn fixture(name: &str) -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut len = None;
    let mut fields = Vec::new();
    for (n, raw_line) in text.lines().enumerate() {
        let line = raw_line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let head = words.next().expect("non-empty line");
        if head == "len" {
            len = Some(
                words
                    .next()
                    .and_then(|w| w.parse::<usize>().ok())
                    .expect("len N"),
            );
            continue;
        }
        let offset: usize = head
            .strip_prefix('@')
            .and_then(|o| o.parse().ok())
            .unwrap_or_else(|| panic!("{name}:{}: expected @OFFSET, got {head:?}", n + 1));
        let field = words
            .next()
            .unwrap_or_else(|| panic!("{name}:{}: no field name", n + 1));
        let bytes: Vec<u8> = words
            .map(|w| {
                u8::from_str_radix(w, 16)
                    .unwrap_or_else(|_| panic!("{name}:{}: bad hex {w:?}", n + 1))
            })
            .collect();
        assert!(!bytes.is_empty(), "{name}:{}: no bytes", n + 1);
        fields.push(FixtureField {
            offset,
            name: field.to_owned(),
            bytes,
        });
    }
    let len = len.unwrap_or_else(|| panic!("{name}: no len line"));
    let mut bytes = vec![0u8; len];
    let mut written = vec![false; len];
    for f in &fields {
        let end = f.offset + f.bytes.len();
        assert!(
            end <= len,
            "{name}: {} at {} runs past {len}",
            f.name,
            f.offset
        );
        for (i, seen) in written.iter_mut().enumerate().take(end).skip(f.offset) {
            assert!(!*seen, "{name}: {} overlaps byte {i}", f.name);
            *seen = true;
        }
        bytes[f.offset..end].copy_from_slice(&f.bytes);
    }
    Fixture {
        file: name.to_owned(),
        bytes,
        fields,
    }
}

/// Which record a fixture holds, to pick its field table.
#[derive(Debug, Clone, Copy)]
pub enum RecordKind {
    /// A request/policy record (or a verdict, which has its layout).
    Request(Layout),
    /// The 88-byte FREQ_LIST reply.
    FreqList,
    /// The 184-byte CAPS_LIST reply.
    CapsList,
}

/// (name, offset, element size, element count) for every field of a record,
/// from the crate's constants.
pub fn field_table(kind: RecordKind) -> Vec<(&'static str, usize, usize, usize)> {
    let mut t = vec![
        ("resource_id", request::RESOURCE_ID, 8, 1),
        ("unit", request::UNIT, 4, 1),
        ("command", request::COMMAND, 4, 1),
        ("vm_name", request::VM_NAME, 1, request::VM_NAME_LEN),
    ];
    match kind {
        RecordKind::Request(layout) => {
            t.extend([
                ("vfid", request::VFID, 8, request::VFID_SLOTS),
                ("nb_mac_to_monitor", request::NB_MAC_TO_MONITOR, 4, 1),
                ("min_packet_thresh", request::MIN_PACKET_THRESH, 4, 1),
                (
                    "avg_max_packet_thresh",
                    request::AVG_MAX_PACKET_THRESH,
                    4,
                    1,
                ),
                (
                    "max_max_packet_thresh",
                    request::MAX_MAX_PACKET_THRESH,
                    4,
                    1,
                ),
                (
                    "vcpu_to_control",
                    request::VCPU_TO_CONTROL,
                    1,
                    request::VCPU_SLOTS,
                ),
                ("num_vcpu", request::NUM_VCPU, 1, 1),
                ("busy_hours", request::BUSY_HOURS, 4, 24),
                ("quiet_hours", request::QUIET_HOURS, 4, 24),
                (
                    "hours_to_use_traffic_profile",
                    request::TRAFFIC_HOURS,
                    4,
                    24,
                ),
            ]);
            match layout {
                Layout::Current => t.extend([
                    ("core_type", current::CORE_TYPE, 1, 1),
                    ("workload", current::WORKLOAD, 4, 1),
                    ("policy_to_use", current::POLICY_TO_USE, 4, 1),
                    ("t_boost_status", current::T_BOOST_STATUS, 1, 1),
                ]),
                Layout::Dpdk1711 => t.extend([
                    ("workload", dpdk1711::WORKLOAD, 4, 1),
                    ("policy_to_use", dpdk1711::POLICY_TO_USE, 4, 1),
                    ("t_boost_status", dpdk1711::T_BOOST_STATUS, 1, 1),
                ]),
            }
        }
        RecordKind::FreqList => t.extend([
            ("freq_list", freq_list::FREQ_LIST, 4, 8),
            ("num_vcpu", freq_list::NUM_VCPU, 1, 1),
        ]),
        RecordKind::CapsList => t.extend([
            ("turbo", caps_list::TURBO, 8, 8),
            ("priority", caps_list::PRIORITY, 8, 8),
            ("num_vcpu", caps_list::NUM_VCPU, 1, 1),
        ]),
    }
    t
}

/// Checks every line of `fx` against the crate's offsets: the named field
/// (and index) must start at the written offset and the bytes must fit it.
pub fn check_offsets(fx: &Fixture, kind: RecordKind) {
    let table = field_table(kind);
    for f in &fx.fields {
        let (base, index) = match f.name.split_once('[') {
            Some((base, rest)) => {
                let idx = rest
                    .trim_end_matches(']')
                    .parse::<usize>()
                    .expect("numeric index");
                (base, Some(idx))
            }
            None => (f.name.as_str(), None),
        };
        let &(_, off, elem, count) = table
            .iter()
            .find(|(n, ..)| *n == base)
            .unwrap_or_else(|| panic!("{}: unknown field {base}", fx.file));
        match index {
            Some(i) => {
                assert!(i < count, "{}: {} index out of range", fx.file, f.name);
                assert_eq!(
                    f.offset,
                    off + i * elem,
                    "{}: offset of {}",
                    fx.file,
                    f.name
                );
                assert!(
                    f.bytes.len() <= elem * (count - i),
                    "{}: {} too long",
                    fx.file,
                    f.name
                );
            }
            None => {
                assert_eq!(f.offset, off, "{}: offset of {}", fx.file, f.name);
                assert!(
                    f.bytes.len() <= elem * count,
                    "{}: {} too long",
                    fx.file,
                    f.name
                );
            }
        }
    }
}

//! Golden byte fixtures written by hand from PROTOCOL.md's offset tables
//! (tests/fixtures/*.hex): decoding them gives the expected typed values,
//! encoding those values gives the fixture bytes back, and every offset
//! and size of the crate is pinned. Changing a fixture is a protocol change.

mod common;

use common::{RecordKind, check_offsets, fixture};
use vmpower_proto::layout::offsets::{
    MAX_RECORD_LEN, TailOffsets, caps_list, command, current, dpdk1711, freq_list, header, request,
};
use vmpower_proto::layout::{
    Reply, ReplyKind, RequestDecodeError, VerdictReply, decode_caps_list, decode_freq_list,
    decode_reply, decode_request, decode_verdict, encode_caps_list, encode_freq_list,
    encode_request_record, encode_verdict, peek_reply_kind,
};
use vmpower_proto::*;

fn name(s: &str) -> VmName {
    VmName::new(s).expect("valid test name")
}

fn hours(h: &[u8]) -> HourSet {
    HourSet::from_hours(h.iter().copied()).expect("valid hours")
}

#[test]
fn offsets_and_sizes_are_pinned() {
    assert_eq!(
        (
            header::RESOURCE_ID,
            header::UNIT,
            header::COMMAND,
            header::VM_NAME,
            header::VM_NAME_LEN
        ),
        (0, 8, 12, 16, 32)
    );
    assert_eq!(
        (request::VFID, request::VFID_SLOTS, request::VFID_SLOT_LEN),
        (48, 10, 8)
    );
    assert_eq!(request::NB_MAC_TO_MONITOR, 128);
    assert_eq!(
        (
            request::MIN_PACKET_THRESH,
            request::AVG_MAX_PACKET_THRESH,
            request::MAX_MAX_PACKET_THRESH
        ),
        (132, 136, 140)
    );
    assert_eq!(
        (
            request::VCPU_TO_CONTROL,
            request::VCPU_SLOTS,
            request::NUM_VCPU
        ),
        (144, 8, 152)
    );
    assert_eq!(
        (
            request::BUSY_HOURS,
            request::QUIET_HOURS,
            request::TRAFFIC_HOURS
        ),
        (156, 252, 348)
    );
    assert_eq!(
        (request::HOUR_SLOTS, request::HOUR_SLOT_LEN, request::TAIL),
        (24, 4, 444)
    );
    assert_eq!(
        (
            current::CORE_TYPE,
            current::WORKLOAD,
            current::POLICY_TO_USE,
            current::T_BOOST_STATUS,
            current::LEN
        ),
        (444, 448, 452, 456, 464)
    );
    assert_eq!(
        (
            dpdk1711::WORKLOAD,
            dpdk1711::POLICY_TO_USE,
            dpdk1711::T_BOOST_STATUS,
            dpdk1711::LEN
        ),
        (444, 448, 452, 456)
    );
    assert_eq!(
        (freq_list::FREQ_LIST, freq_list::NUM_VCPU, freq_list::LEN),
        (48, 80, 88)
    );
    assert_eq!(
        (
            caps_list::TURBO,
            caps_list::PRIORITY,
            caps_list::NUM_VCPU,
            caps_list::LEN
        ),
        (48, 112, 176, 184)
    );
    assert_eq!(MAX_RECORD_LEN, 464);
    assert_eq!(Layout::Current.record_len(), 464);
    assert_eq!(Layout::Dpdk1711.record_len(), 456);
    assert_eq!(TailOffsets::of(Layout::Current).core_type, Some(444));
    assert_eq!(TailOffsets::of(Layout::Dpdk1711).core_type, None);
    assert_eq!(
        [
            command::CPU_POWER,
            command::CONNECT,
            command::PKT_POLICY,
            command::PKT_POLICY_REMOVE,
            command::QUERY_FREQ_LIST,
            command::QUERY_FREQ,
            command::QUERY_CAPS_LIST,
            command::QUERY_CAPS
        ],
        [1, 2, 3, 4, 7, 8, 9, 10]
    );
    assert_eq!(
        [
            command::ACK,
            command::NACK,
            command::FREQ_LIST,
            command::CAPS_LIST
        ],
        [1, 2, 3, 4]
    );
}

#[test]
fn fixtures_agree_with_the_offset_constants() {
    let cur = RecordKind::Request(Layout::Current);
    for f in [
        "current_cpu_power.hex",
        "current_ack.hex",
        "current_nack_query.hex",
        "current_time_policy.hex",
        "current_traffic_policy.hex",
        "current_query_uninit.hex",
    ] {
        let fx = fixture(f);
        assert_eq!(fx.bytes.len(), 464, "{f}");
        check_offsets(&fx, cur);
    }
    let fx = fixture("dpdk1711_policy.hex");
    assert_eq!(fx.bytes.len(), 456);
    check_offsets(&fx, RecordKind::Request(Layout::Dpdk1711));
    let fx = fixture("freq_list.hex");
    assert_eq!(fx.bytes.len(), 88);
    check_offsets(&fx, RecordKind::FreqList);
    let fx = fixture("caps_list.hex");
    assert_eq!(fx.bytes.len(), 184);
    check_offsets(&fx, RecordKind::CapsList);
}

/// Decodes the fixture, compares with `expected`, and encodes `expected`
/// back to the fixture's bytes.
fn assert_request_golden(file: &str, layout: Layout, expected: Request) {
    let fx = fixture(file);
    assert_eq!(decode_request(&fx.bytes, layout), Ok(expected), "{file}");
    let encoded = encode_request_record(&expected, layout).expect("encodable");
    assert_eq!(&encoded[..], &fx.bytes[..], "{file}");
}

#[test]
fn current_cpu_power() {
    assert_request_golden(
        "current_cpu_power.hex",
        Layout::Current,
        Request {
            vm_name: name("ubuntu"),
            body: RequestBody::Power {
                resource_id: 10,
                core_type: CoreType::Physical,
                unit: ScalingUnit::ScaleMax,
            },
        },
    );
}

#[test]
fn current_time_policy_with_hour_zero_first() {
    assert_request_golden(
        "current_time_policy.hex",
        Layout::Current,
        Request {
            vm_name: name("ubuntu"),
            body: RequestBody::SetPolicy(Policy {
                hours: HourSchedule {
                    busy: hours(&[17, 18, 19, 20, 21, 22, 23]),
                    quiet: hours(&[0, 2, 3, 4, 5, 6]),
                    traffic: hours(&[9, 10]),
                },
                turbo_boost: true,
                ..Policy::new(
                    PolicyKind::Time,
                    VcpuList::from_slice(&[2, 3]).expect("2 cores"),
                )
            }),
        },
    );
}

fn traffic_policy_request() -> Request {
    let macs = [
        "00:1b:21:aa:bb:cc".parse::<MacAddr>().expect("mac"),
        "52:54:00:12:34:56".parse::<MacAddr>().expect("mac"),
    ];
    Request {
        vm_name: name("ubuntu"),
        body: RequestBody::SetPolicy(Policy {
            macs: MacList::from_slice(&macs).expect("2 macs"),
            traffic: TrafficThresholds {
                min_pps: 1000,
                avg_pps: 1_800_000,
                max_pps: 2_000_000,
            },
            ..Policy::new(
                PolicyKind::Traffic,
                VcpuList::from_slice(&[0, 1, 2, 3]).expect("4 cores"),
            )
        }),
    }
}

#[test]
fn current_traffic_policy_ignores_vfid_high_bytes() {
    let fx = fixture("current_traffic_policy.hex");
    let expected = traffic_policy_request();
    assert_eq!(decode_request(&fx.bytes, Layout::Current), Ok(expected));
    let encoded = encode_request_record(&expected, Layout::Current).expect("encodable");
    let garbage = [54, 55, 62, 63];
    for (i, (got, want)) in encoded.iter().zip(&fx.bytes).enumerate() {
        if garbage.contains(&i) {
            assert_eq!(*got, 0, "high vfid byte {i} is written as zero");
            assert_ne!(*want, 0, "fixture has garbage at {i}");
        } else {
            assert_eq!(got, want, "byte {i}");
        }
    }
}

#[test]
fn current_query_from_uninitialised_struct_decodes() {
    let fx = fixture("current_query_uninit.hex");
    let expected = Request {
        vm_name: name("ubuntu"),
        body: RequestBody::Query {
            kind: QueryKind::FreqList,
            resource_id: 1,
        },
    };
    assert_eq!(decode_request(&fx.bytes, Layout::Current), Ok(expected));
    let encoded = encode_request_record(&expected, Layout::Current).expect("encodable");
    assert_eq!(&encoded[..48], {
        let mut head = fx.bytes[..48].to_vec();
        head[8..12].fill(0); // unit is unused by queries
        head[23] = 0; // after the NUL
        head
    });
    assert!(
        encoded[48..].iter().all(|b| *b == 0),
        "unused fields written as zero"
    );
}

#[test]
fn dpdk1711_workload_policy() {
    let expected = Request {
        vm_name: name("vm-17.11"),
        body: RequestBody::SetPolicy(Policy {
            workload: WorkloadLevel::Low,
            turbo_boost: true,
            ..Policy::new(
                PolicyKind::Workload,
                VcpuList::from_slice(&[1]).expect("1 core"),
            )
        }),
    };
    assert_request_golden("dpdk1711_policy.hex", Layout::Dpdk1711, expected);
    let fx = fixture("dpdk1711_policy.hex");
    assert_eq!(
        decode_request(&fx.bytes, Layout::Current),
        Err(RequestDecodeError::WrongLength {
            expected: 464,
            got: 456
        })
    );
}

#[test]
fn ack_echoes_the_cpu_power_record() {
    let request = fixture("current_cpu_power.hex");
    let ack = fixture("current_ack.hex");
    let encoded = encode_verdict(&request.bytes, Layout::Current, Verdict::Ack).expect("464 bytes");
    assert_eq!(&encoded[..], &ack.bytes[..]);
    let expected = VerdictReply {
        verdict: Verdict::Ack,
        resource_id: 10,
        unit: 3,
        vm_name: Some(name("ubuntu")),
    };
    assert_eq!(decode_verdict(&ack.bytes, Layout::Current), Ok(expected));
    assert_eq!(
        peek_reply_kind(&ack.bytes),
        Ok(ReplyKind::Verdict(Verdict::Ack))
    );
    assert_eq!(
        decode_reply(&ack.bytes, Layout::Current),
        Ok(Reply::Verdict(expected))
    );
}

#[test]
fn nack_of_a_query() {
    let nack = fixture("current_nack_query.hex");
    let query = Request {
        vm_name: name("ubuntu"),
        body: RequestBody::Query {
            kind: QueryKind::Caps,
            resource_id: 5,
        },
    };
    let raw = encode_request_record(&query, Layout::Current).expect("encodable");
    let encoded = encode_verdict(&raw, Layout::Current, Verdict::Nack).expect("464 bytes");
    assert_eq!(&encoded[..], &nack.bytes[..]);
    let reply = decode_verdict(&nack.bytes, Layout::Current).expect("a NACK");
    assert_eq!(reply.verdict, Verdict::Nack);
    assert_eq!(reply.resource_id, 5);
}

#[test]
fn freq_list_reply() {
    let fx = fixture("freq_list.hex");
    let expected = FreqListReply {
        resource_id: 0,
        unit: 0,
        vm_name: name("ubuntu"),
        freqs_khz: [2_301_000, 2_300_000, 1_200_000, 800_000, 0, 0, 0, 0],
        num_vcpu: 4,
    };
    assert_eq!(decode_freq_list(&fx.bytes), Ok(expected));
    assert_eq!(
        encode_freq_list(&expected).map(|b| b.to_vec()),
        Ok(fx.bytes.clone())
    );
    assert_eq!(peek_reply_kind(&fx.bytes), Ok(ReplyKind::FreqList));
    assert_eq!(
        decode_reply(&fx.bytes, Layout::Dpdk1711),
        Ok(Reply::FreqList(expected))
    );
}

#[test]
fn caps_list_reply() {
    let fx = fixture("caps_list.hex");
    let expected = CapsReply {
        resource_id: 2,
        unit: 0,
        vm_name: name("ubuntu"),
        turbo: [true, false, true, false, false, false, false, false],
        priority: [false, false, true, false, false, false, false, false],
        num_vcpu: 3,
    };
    assert_eq!(decode_caps_list(&fx.bytes), Ok(expected));
    assert_eq!(
        encode_caps_list(&expected).map(|b| b.to_vec()),
        Ok(fx.bytes.clone())
    );
    assert_eq!(
        decode_reply(&fx.bytes, Layout::Current),
        Ok(Reply::CapsList(expected))
    );
}

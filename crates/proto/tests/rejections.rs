//! Every rejection path of the binary codec: each error variant, with its
//! payload, from a valid hand-written fixture with one field broken.

mod common;

use common::fixture;
use vmpower_proto::layout::{
    EncodeError, ReplyDecodeError, RequestDecodeError, decode_caps_list, decode_freq_list,
    decode_reply, decode_request, decode_verdict, encode_caps_list, encode_freq_list,
    encode_request, encode_request_record, encode_verdict, peek_reply_kind,
};
use vmpower_proto::*;

fn put(bytes: &mut [u8], at: usize, v: &[u8]) {
    bytes[at..at + v.len()].copy_from_slice(v);
}

fn cpu_power() -> Vec<u8> {
    fixture("current_cpu_power.hex").bytes
}

fn time_policy() -> Vec<u8> {
    fixture("current_time_policy.hex").bytes
}

fn decode_cur(bytes: &[u8]) -> Result<Request, RequestDecodeError> {
    decode_request(bytes, Layout::Current)
}

#[test]
fn wrong_length() {
    let rec = cpu_power();
    for (len, layout) in [
        (463, Layout::Current),
        (0, Layout::Current),
        (464, Layout::Dpdk1711),
    ] {
        assert_eq!(
            decode_request(&rec[..len], layout),
            Err(RequestDecodeError::WrongLength {
                expected: layout.record_len(),
                got: len
            })
        );
    }
    let mut long = rec.clone();
    long.push(0);
    assert_eq!(
        decode_cur(&long),
        Err(RequestDecodeError::WrongLength {
            expected: 464,
            got: 465
        })
    );
}

#[test]
fn unknown_command() {
    for cmd in [0u32, 5, 6, 11, u32::MAX] {
        let mut rec = cpu_power();
        put(&mut rec, 12, &cmd.to_le_bytes());
        let err = decode_cur(&rec);
        assert_eq!(err, Err(RequestDecodeError::UnknownCommand(cmd)));
        assert!(
            err.expect_err("refused")
                .to_string()
                .contains(&cmd.to_string())
        );
    }
}

#[test]
fn name_not_terminated() {
    let mut rec = cpu_power();
    put(&mut rec, 16, &[b'a'; 32]);
    assert_eq!(decode_cur(&rec), Err(RequestDecodeError::NameNotTerminated));
    // A NUL just past the field does not count.
    rec[48] = 0;
    assert_eq!(decode_cur(&rec), Err(RequestDecodeError::NameNotTerminated));
}

#[test]
fn name_not_utf8() {
    let mut rec = cpu_power();
    put(&mut rec, 16, &[b'v', b'm', 0xff, 0]);
    assert_eq!(
        decode_cur(&rec),
        Err(RequestDecodeError::NameNotUtf8 { valid_up_to: 2 })
    );
}

#[test]
fn unknown_unit() {
    for unit in [0u32, 7, 0xdead_beef] {
        let mut rec = cpu_power();
        put(&mut rec, 8, &unit.to_le_bytes());
        assert_eq!(decode_cur(&rec), Err(RequestDecodeError::UnknownUnit(unit)));
    }
}

#[test]
fn bad_core_type_in_cpu_power_and_policy() {
    let mut rec = cpu_power();
    rec[444] = 2;
    assert_eq!(
        decode_cur(&rec),
        Err(RequestDecodeError::BadBool {
            field: "core_type",
            value: 2
        })
    );
    let mut rec = time_policy();
    rec[444] = 0xff;
    assert_eq!(
        decode_cur(&rec),
        Err(RequestDecodeError::BadBool {
            field: "core_type",
            value: 0xff
        })
    );
}

#[test]
fn dpdk1711_cpu_power_has_no_core_type() {
    // Byte 444 is `workload` in 17.11, unused by CPU_POWER: never read.
    let mut rec = cpu_power();
    rec.truncate(456);
    rec[444] = 9;
    let req = decode_request(&rec, Layout::Dpdk1711).expect("valid 17.11 CPU_POWER");
    assert!(matches!(
        req.body,
        RequestBody::Power {
            core_type: CoreType::Virtual,
            ..
        }
    ));
}

#[test]
fn bad_turbo_boost_flag() {
    let mut rec = time_policy();
    rec[456] = 2;
    assert_eq!(
        decode_cur(&rec),
        Err(RequestDecodeError::BadBool {
            field: "t_boost_status",
            value: 2
        })
    );
}

#[test]
fn unknown_policy_kind() {
    for code in [4i32, -1] {
        let mut rec = time_policy();
        put(&mut rec, 452, &code.to_le_bytes());
        assert_eq!(
            decode_cur(&rec),
            Err(RequestDecodeError::UnknownPolicyKind {
                code,
                layout: Layout::Current
            })
        );
    }
    // BRANCH_RATIO (3) exists only in the current layout.
    let mut rec = fixture("dpdk1711_policy.hex").bytes;
    put(&mut rec, 448, &3i32.to_le_bytes());
    let err = decode_request(&rec, Layout::Dpdk1711);
    assert_eq!(
        err,
        Err(RequestDecodeError::UnknownPolicyKind {
            code: 3,
            layout: Layout::Dpdk1711
        })
    );
    let mut rec = time_policy();
    put(&mut rec, 452, &3i32.to_le_bytes());
    assert!(matches!(
        decode_cur(&rec),
        Ok(Request {
            body: RequestBody::SetPolicy(Policy {
                kind: PolicyKind::BranchRatio,
                ..
            }),
            ..
        })
    ));
}

#[test]
fn unknown_workload() {
    for code in [3i32, -1, i32::MIN] {
        let mut rec = time_policy();
        put(&mut rec, 448, &code.to_le_bytes());
        assert_eq!(
            decode_cur(&rec),
            Err(RequestDecodeError::UnknownWorkload(code))
        );
    }
    let mut rec = fixture("dpdk1711_policy.hex").bytes;
    put(&mut rec, 444, &7i32.to_le_bytes());
    assert_eq!(
        decode_request(&rec, Layout::Dpdk1711),
        Err(RequestDecodeError::UnknownWorkload(7))
    );
}

#[test]
fn too_many_vcpus() {
    for n in [9u8, 255] {
        let mut rec = time_policy();
        rec[152] = n;
        assert_eq!(decode_cur(&rec), Err(RequestDecodeError::TooManyVcpus(n)));
    }
}

#[test]
fn mac_count_out_of_range() {
    for n in [-1i32, 11, i32::MAX] {
        let mut rec = time_policy();
        put(&mut rec, 128, &n.to_le_bytes());
        assert_eq!(
            decode_cur(&rec),
            Err(RequestDecodeError::MacCountOutOfRange(n))
        );
    }
}

#[test]
fn hour_out_of_range_names_array_index_and_value() {
    let cases = [
        ("busy_hours", 156, 0usize, 24i32),
        ("quiet_hours", 252, 23, -1),
        ("hours_to_use_traffic_profile", 348, 7, 100),
    ];
    for (array, base, index, value) in cases {
        let mut rec = time_policy();
        put(&mut rec, base + 4 * index, &value.to_le_bytes());
        let err = decode_cur(&rec);
        assert_eq!(
            err,
            Err(RequestDecodeError::HourOutOfRange {
                array,
                index,
                value
            })
        );
        let msg = err.expect_err("refused").to_string();
        assert!(
            msg.contains(array) && msg.contains(&value.to_string()),
            "{msg}"
        );
    }
}

#[test]
fn hour_slots_past_the_used_ones_are_still_checked() {
    // Trailing slots are padding only when zero; garbage there is refused.
    let mut rec = time_policy();
    put(&mut rec, 156 + 4 * 23, &(-5i32).to_le_bytes());
    assert_eq!(
        decode_cur(&rec),
        Err(RequestDecodeError::HourOutOfRange {
            array: "busy_hours",
            index: 23,
            value: -5
        })
    );
}

fn time_request(busy: &[u8], quiet: &[u8], traffic: &[u8]) -> Request {
    let hours = |h: &[u8]| HourSet::from_hours(h.iter().copied()).expect("hours");
    Request {
        vm_name: VmName::new("vm").expect("name"),
        body: RequestBody::SetPolicy(Policy {
            hours: HourSchedule {
                busy: hours(busy),
                quiet: hours(quiet),
                traffic: hours(traffic),
            },
            workload: WorkloadLevel::Medium,
            ..Policy::new(PolicyKind::Time, VcpuList::default())
        }),
    }
}

#[test]
fn encode_lone_hour_zero() {
    for (req, array) in [
        (time_request(&[0], &[], &[]), "busy_hours"),
        (time_request(&[1], &[0], &[]), "quiet_hours"),
        (time_request(&[], &[], &[0]), "hours_to_use_traffic_profile"),
    ] {
        for layout in [Layout::Current, Layout::Dpdk1711] {
            assert_eq!(
                encode_request_record(&req, layout),
                Err(EncodeError::LoneHourZero { array })
            );
        }
    }
}

#[test]
fn encode_branch_ratio_and_physical_in_dpdk1711() {
    let mut req = time_request(&[], &[], &[]);
    if let RequestBody::SetPolicy(p) = &mut req.body {
        p.kind = PolicyKind::BranchRatio;
    }
    assert_eq!(
        encode_request_record(&req, Layout::Dpdk1711),
        Err(EncodeError::BranchRatioInDpdk1711)
    );
    assert!(encode_request_record(&req, Layout::Current).is_ok());

    let mut req = time_request(&[], &[], &[]);
    if let RequestBody::SetPolicy(p) = &mut req.body {
        p.core_type = CoreType::Physical;
    }
    assert_eq!(
        encode_request_record(&req, Layout::Dpdk1711),
        Err(EncodeError::PhysicalCoreInDpdk1711)
    );

    let power = Request {
        vm_name: VmName::default(),
        body: RequestBody::Power {
            resource_id: 0,
            core_type: CoreType::Physical,
            unit: ScalingUnit::ScaleDown,
        },
    };
    assert_eq!(
        encode_request_record(&power, Layout::Dpdk1711),
        Err(EncodeError::PhysicalCoreInDpdk1711)
    );
}

#[test]
fn encode_wrong_buffer_length() {
    let req = time_request(&[], &[], &[]);
    let mut out = [0u8; 464];
    assert_eq!(
        encode_request(&req, Layout::Dpdk1711, &mut out),
        Err(EncodeError::WrongLength {
            expected: 456,
            got: 464
        })
    );
    assert_eq!(
        encode_verdict(&out[..100], Layout::Current, Verdict::Ack),
        Err(EncodeError::WrongLength {
            expected: 464,
            got: 100
        })
    );
}

fn freq_reply(num_vcpu: u8) -> FreqListReply {
    FreqListReply {
        resource_id: 0,
        unit: 0,
        vm_name: VmName::default(),
        freqs_khz: [1; 8],
        num_vcpu,
    }
}

fn caps_reply(num_vcpu: u8) -> CapsReply {
    CapsReply {
        resource_id: 0,
        unit: 0,
        vm_name: VmName::default(),
        turbo: [true; 8],
        priority: [false; 8],
        num_vcpu,
    }
}

#[test]
fn encode_reply_with_too_many_vcpus() {
    assert_eq!(
        encode_freq_list(&freq_reply(9)),
        Err(EncodeError::TooManyVcpus(9))
    );
    assert_eq!(
        encode_caps_list(&caps_reply(200)),
        Err(EncodeError::TooManyVcpus(200))
    );
}

#[test]
fn reply_wrong_length() {
    let freq = fixture("freq_list.hex").bytes;
    let caps = fixture("caps_list.hex").bytes;
    assert_eq!(
        decode_freq_list(&freq[..87]),
        Err(ReplyDecodeError::WrongLength {
            expected: 88,
            got: 87
        })
    );
    assert_eq!(
        decode_caps_list(&freq),
        Err(ReplyDecodeError::WrongLength {
            expected: 184,
            got: 88
        })
    );
    assert_eq!(
        decode_verdict(&caps, Layout::Dpdk1711),
        Err(ReplyDecodeError::WrongLength {
            expected: 456,
            got: 184
        })
    );
    assert_eq!(
        peek_reply_kind(&caps[..15]),
        Err(ReplyDecodeError::WrongLength {
            expected: 16,
            got: 15
        })
    );
    // A FREQ_LIST command on a record of the wrong size.
    assert_eq!(
        decode_reply(&freq[..80], Layout::Current),
        Err(ReplyDecodeError::WrongLength {
            expected: 88,
            got: 80
        })
    );
}

#[test]
fn reply_unexpected_command() {
    let freq = fixture("freq_list.hex").bytes;
    let caps = fixture("caps_list.hex").bytes;
    let ack = fixture("current_ack.hex").bytes;
    assert!(matches!(
        decode_freq_list(&{
            let mut b = freq.clone();
            b[12] = 4;
            b
        }),
        Err(ReplyDecodeError::UnexpectedCommand { got: 4, .. })
    ));
    assert!(matches!(
        decode_caps_list(&{
            let mut b = caps.clone();
            b[12] = 3;
            b
        }),
        Err(ReplyDecodeError::UnexpectedCommand { got: 3, .. })
    ));
    let mut b = ack.clone();
    b[12] = 3;
    assert!(matches!(
        decode_verdict(&b, Layout::Current),
        Err(ReplyDecodeError::UnexpectedCommand { got: 3, .. })
    ));
    b[12] = 0;
    assert!(matches!(
        peek_reply_kind(&b),
        Err(ReplyDecodeError::UnexpectedCommand { got: 0, .. })
    ));
    assert!(matches!(
        decode_reply(&b, Layout::Current),
        Err(ReplyDecodeError::UnexpectedCommand { got: 0, .. })
    ));
}

#[test]
fn reply_name_faults() {
    for mut bytes in [
        fixture("freq_list.hex").bytes,
        fixture("caps_list.hex").bytes,
    ] {
        bytes[17] = 0xc0; // "u\xc0untu": not UTF-8
        let r = decode_reply(&bytes, Layout::Current);
        assert_eq!(r, Err(ReplyDecodeError::NameNotUtf8 { valid_up_to: 1 }));
        bytes[16..48].fill(b'x');
        let r = decode_reply(&bytes, Layout::Current);
        assert_eq!(r, Err(ReplyDecodeError::NameNotTerminated));
    }
}

#[test]
fn reply_too_many_vcpus() {
    let mut freq = fixture("freq_list.hex").bytes;
    freq[80] = 9;
    assert_eq!(
        decode_freq_list(&freq),
        Err(ReplyDecodeError::TooManyVcpus(9))
    );
    let mut caps = fixture("caps_list.hex").bytes;
    caps[176] = 255;
    assert_eq!(
        decode_caps_list(&caps),
        Err(ReplyDecodeError::TooManyVcpus(255))
    );
}

#[test]
fn caps_bad_flag() {
    let mut caps = fixture("caps_list.hex").bytes;
    put(&mut caps, 48 + 8, &2u64.to_le_bytes());
    assert_eq!(
        decode_caps_list(&caps),
        Err(ReplyDecodeError::BadFlag {
            field: "turbo",
            index: 1,
            value: 2
        })
    );
    let mut caps = fixture("caps_list.hex").bytes;
    put(&mut caps, 112 + 16, &(1u64 << 32).to_le_bytes());
    assert_eq!(
        decode_caps_list(&caps),
        Err(ReplyDecodeError::BadFlag {
            field: "priority",
            index: 2,
            value: 1 << 32
        })
    );
    // Entries past num_vcpu (3) are not read.
    let mut caps = fixture("caps_list.hex").bytes;
    put(&mut caps, 48 + 8 * 5, &7u64.to_le_bytes());
    assert!(decode_caps_list(&caps).is_ok());
}

#[test]
fn verdict_with_garbage_name_still_decodes_without_name() {
    let mut ack = fixture("current_ack.hex").bytes;
    ack[16..48].fill(0xff);
    let reply = decode_verdict(&ack, Layout::Current).expect("verdict");
    assert_eq!((reply.verdict, reply.vm_name), (Verdict::Ack, None));
}

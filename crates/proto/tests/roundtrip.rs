//! Property tests of the binary codec: decode(encode(m)) == m for every
//! request body in both layouts, for FREQ_LIST and CAPS_LIST replies and
//! for verdicts; arbitrary bytes never make a decoder panic.

use proptest::prelude::*;
use vmpower_proto::layout::{
    Reply, decode_caps_list, decode_freq_list, decode_reply, decode_request, decode_verdict,
    encode_caps_list, encode_freq_list, encode_request_record, encode_verdict, peek_reply_kind,
};
use vmpower_proto::*;

fn vm_name() -> impl Strategy<Value = VmName> {
    "\\PC{0,31}".prop_filter_map("fits 31 bytes", |s| VmName::new(&s).ok())
}

/// Any hour set except exactly {0}, which the binary layout cannot carry.
fn hour_set() -> impl Strategy<Value = HourSet> {
    prop_oneof![Just(0u32), 0u32..(1 << 24),]
        .prop_filter("{0} alone is not encodable", |m| *m != 1)
        .prop_map(|mask| {
            HourSet::from_hours((0u8..24).filter(|h| mask & (1 << h) != 0)).expect("hours 0..24")
        })
}

fn policy(layout: Layout) -> impl Strategy<Value = Policy> {
    let kinds: Vec<PolicyKind> = match layout {
        Layout::Current => vec![
            PolicyKind::Traffic,
            PolicyKind::Time,
            PolicyKind::Workload,
            PolicyKind::BranchRatio,
        ],
        Layout::Dpdk1711 => vec![PolicyKind::Traffic, PolicyKind::Time, PolicyKind::Workload],
    };
    let core_type = match layout {
        Layout::Current => prop_oneof![Just(CoreType::Virtual), Just(CoreType::Physical)].boxed(),
        Layout::Dpdk1711 => Just(CoreType::Virtual).boxed(),
    };
    (
        proptest::sample::select(kinds),
        proptest::collection::vec(any::<u8>(), 0..=8),
        core_type,
        proptest::collection::vec(any::<[u8; 6]>(), 0..=10),
        any::<(u32, u32, u32)>(),
        (hour_set(), hour_set(), hour_set()),
        prop_oneof![
            Just(WorkloadLevel::High),
            Just(WorkloadLevel::Medium),
            Just(WorkloadLevel::Low)
        ],
        any::<bool>(),
    )
        .prop_map(
            |(
                kind,
                cores,
                core_type,
                macs,
                (min, avg, max),
                (busy, quiet, traffic),
                workload,
                turbo_boost,
            )| {
                let macs: Vec<MacAddr> = macs.into_iter().map(MacAddr).collect();
                Policy {
                    kind,
                    cores: VcpuList::from_slice(&cores).expect("<= 8"),
                    core_type,
                    macs: MacList::from_slice(&macs).expect("<= 10"),
                    traffic: TrafficThresholds {
                        min_pps: min,
                        avg_pps: avg,
                        max_pps: max,
                    },
                    hours: HourSchedule {
                        busy,
                        quiet,
                        traffic,
                    },
                    workload,
                    turbo_boost,
                }
            },
        )
}

fn unit() -> impl Strategy<Value = ScalingUnit> {
    (1u32..=6).prop_map(|c| ScalingUnit::from_code(c).expect("1..=6"))
}

fn query_kind() -> impl Strategy<Value = QueryKind> {
    prop_oneof![
        Just(QueryKind::Freq),
        Just(QueryKind::FreqList),
        Just(QueryKind::Caps),
        Just(QueryKind::CapsList),
    ]
}

fn request(layout: Layout) -> impl Strategy<Value = Request> {
    let core_type = match layout {
        Layout::Current => prop_oneof![Just(CoreType::Virtual), Just(CoreType::Physical)].boxed(),
        Layout::Dpdk1711 => Just(CoreType::Virtual).boxed(),
    };
    let body = prop_oneof![
        any::<u64>().prop_map(|resource_id| RequestBody::Connect { resource_id }),
        (any::<u64>(), core_type, unit()).prop_map(|(resource_id, core_type, unit)| {
            RequestBody::Power {
                resource_id,
                core_type,
                unit,
            }
        }),
        policy(layout).prop_map(RequestBody::SetPolicy),
        Just(RequestBody::RemovePolicy),
        (query_kind(), any::<u64>())
            .prop_map(|(kind, resource_id)| RequestBody::Query { kind, resource_id }),
        any::<u32>().prop_map(|version| RequestBody::Hello { version }),
        busyness().prop_map(RequestBody::Busyness),
    ];
    // CONNECT's name is never read (DPDK's guest leaves it uninitialised),
    // nor BUSYNESS's (identity comes from the channel).
    (vm_name(), body).prop_map(|(vm_name, body)| Request {
        vm_name: match body {
            RequestBody::Connect { .. } | RequestBody::Busyness(_) => VmName::default(),
            _ => vm_name,
        },
        body,
    })
}

/// Any valid busyness report: 1..=64 distinct vCPUs at 0..=1000 ‰, any
/// interval, rx-missed known or not.
fn busyness() -> impl Strategy<Value = BusynessReport> {
    (
        any::<u64>(),
        proptest::collection::btree_map(any::<u16>(), 0u16..=1000, 1..=64),
        any::<u32>(),
        prop_oneof![Just(None), (0..u64::MAX).prop_map(Some)],
    )
        .prop_map(|(seq, entries, interval_ms, rx_missed)| {
            let entries: Vec<BusyEntry> = entries
                .into_iter()
                .map(|(vcpu, permille)| BusyEntry { vcpu, permille })
                .collect();
            BusynessReport::new(seq, &entries, interval_ms, rx_missed)
                .expect("valid by construction")
        })
}

fn any_layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Current), Just(Layout::Dpdk1711)]
}

fn layout_and_request() -> impl Strategy<Value = (Layout, Request)> {
    any_layout().prop_flat_map(|layout| (Just(layout), request(layout)))
}

fn freq_list() -> impl Strategy<Value = FreqListReply> {
    (
        any::<u64>(),
        any::<u32>(),
        vm_name(),
        any::<[u32; 8]>(),
        0u8..=8,
    )
        .prop_map(|(resource_id, unit, vm_name, mut freqs_khz, num_vcpu)| {
            freqs_khz[usize::from(num_vcpu)..].fill(0);
            FreqListReply {
                resource_id,
                unit,
                vm_name,
                freqs_khz,
                num_vcpu,
            }
        })
}

fn caps_list() -> impl Strategy<Value = CapsReply> {
    (
        any::<u64>(),
        any::<u32>(),
        vm_name(),
        any::<[bool; 8]>(),
        any::<[bool; 8]>(),
        0u8..=8,
    )
        .prop_map(
            |(resource_id, unit, vm_name, mut turbo, mut priority, num_vcpu)| {
                turbo[usize::from(num_vcpu)..].fill(false);
                priority[usize::from(num_vcpu)..].fill(false);
                CapsReply {
                    resource_id,
                    unit,
                    vm_name,
                    turbo,
                    priority,
                    num_vcpu,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_round_trips((layout, req) in layout_and_request()) {
        let bytes = encode_request_record(&req, layout).expect("generated requests are encodable");
        prop_assert_eq!(bytes.len(), layout.record_len());
        prop_assert_eq!(decode_request(&bytes, layout), Ok(req));
    }

    #[test]
    fn verdict_round_trips((layout, req) in layout_and_request(), ack in any::<bool>()) {
        let raw = encode_request_record(&req, layout).expect("encodable");
        let verdict = if ack { Verdict::Ack } else { Verdict::Nack };
        let reply = encode_verdict(&raw, layout, verdict).expect("right length");
        prop_assert_eq!(&reply[..12], &raw[..12]);
        prop_assert_eq!(&reply[16..], &raw[16..]);
        let decoded = decode_verdict(&reply, layout).expect("a verdict");
        prop_assert_eq!(decoded.verdict, verdict);
        prop_assert_eq!(decoded.vm_name, Some(req.vm_name));
        let expected_id = match req.body {
            RequestBody::Connect { resource_id }
            | RequestBody::Power { resource_id, .. }
            | RequestBody::Query { resource_id, .. } => resource_id,
            RequestBody::Busyness(report) => report.seq(),
            RequestBody::SetPolicy(_) | RequestBody::RemovePolicy | RequestBody::Hello { .. } => 0,
        };
        prop_assert_eq!(decoded.resource_id, expected_id);
        prop_assert_eq!(decode_reply(&reply, layout), Ok(Reply::Verdict(decoded)));
    }

    #[test]
    fn verdict_echoes_arbitrary_raw_records(raw in proptest::collection::vec(any::<u8>(), 464), ack in any::<bool>()) {
        let verdict = if ack { Verdict::Ack } else { Verdict::Nack };
        let reply = encode_verdict(&raw, Layout::Current, verdict).expect("464 bytes");
        prop_assert_eq!(&reply[..12], &raw[..12]);
        prop_assert_eq!(&reply[12..16], &verdict.code().to_le_bytes()[..]);
        prop_assert_eq!(&reply[16..], &raw[16..]);
        prop_assert_eq!(decode_verdict(&reply, Layout::Current).map(|v| v.verdict), Ok(verdict));
    }

    #[test]
    fn freq_list_round_trips(reply in freq_list()) {
        let bytes = encode_freq_list(&reply).expect("num_vcpu <= 8");
        prop_assert_eq!(decode_freq_list(&bytes), Ok(reply));
        prop_assert_eq!(decode_reply(&bytes, Layout::Current), Ok(Reply::FreqList(reply)));
    }

    #[test]
    fn caps_list_round_trips(reply in caps_list()) {
        let bytes = encode_caps_list(&reply).expect("num_vcpu <= 8");
        prop_assert_eq!(decode_caps_list(&bytes), Ok(reply));
        prop_assert_eq!(decode_reply(&bytes, Layout::Dpdk1711), Ok(Reply::CapsList(reply)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for layout in [Layout::Current, Layout::Dpdk1711] {
            let _ = decode_request(&bytes, layout);
            let _ = decode_verdict(&bytes, layout);
            let _ = decode_reply(&bytes, layout);
        }
        let _ = decode_freq_list(&bytes);
        let _ = decode_caps_list(&bytes);
        let _ = peek_reply_kind(&bytes);
    }

    /// Records of the exact size with a valid command and name but random
    /// fields reach deep into the validation, and never panic; whatever
    /// decodes re-encodes to a record that decodes to the same value.
    #[test]
    fn random_fields_of_the_right_size(
        layout in any_layout(),
        mut bytes in proptest::collection::vec(any::<u8>(), 464),
        cmd in proptest::sample::select(vec![1u32, 2, 3, 4, 7, 8, 9, 10]),
        small in any::<[u8; 8]>(),
    ) {
        bytes.truncate(layout.record_len());
        bytes[12..16].copy_from_slice(&cmd.to_le_bytes());
        bytes[16] = 0;
        // Make the small fields often valid, so that policies decode.
        bytes[8..12].copy_from_slice(&u32::from(small[0] % 7).to_le_bytes());
        bytes[128..132].copy_from_slice(&i32::from(small[1] % 11).to_le_bytes());
        bytes[152] = small[2] % 9;
        for slot in 0..72 {
            let at = 156 + 4 * slot;
            let hour = i32::from(bytes[at] % 24);
            bytes[at..at + 4].copy_from_slice(&hour.to_le_bytes());
        }
        let tail = if layout == Layout::Current { 448 } else { 444 };
        if layout == Layout::Current {
            bytes[444] = small[3] % 2;
        }
        bytes[tail..tail + 4].copy_from_slice(&i32::from(small[4] % 3).to_le_bytes());
        bytes[tail + 4..tail + 8].copy_from_slice(&i32::from(small[5] % 4).to_le_bytes());
        bytes[tail + 8] = small[6] % 2;
        if let Ok(req) = decode_request(&bytes, layout) {
            // Anything decoded is encodable: decoding never yields {0}
            // alone, BRANCH_RATIO or a physical core in 17.11.
            let again = encode_request_record(&req, layout).expect("decoded values encode");
            prop_assert_eq!(decode_request(&again, layout), Ok(req));
        }
    }
}

#[test]
fn scaling_unit_all_is_every_unit_once_in_code_order() {
    let codes: Vec<u32> = ScalingUnit::ALL.iter().map(|u| u.code()).collect();
    assert_eq!(codes, [1, 2, 3, 4, 5, 6]);
    for unit in ScalingUnit::ALL {
        assert_eq!(ScalingUnit::from_code(unit.code()), Some(unit));
    }
    assert_eq!(ScalingUnit::from_code(7), None, "no seventh unit");
}

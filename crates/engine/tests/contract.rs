//! The reply each record gets on the wire, by the channel's contract:
//! DPDK's host's replies exactly by default, the native contract's full
//! answers (NACK with a reason, ACK for removal) after a HELLO.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod contract_invariants;

use std::time::Duration;

use vmpower_cpufreq::levels::FreqTable;
use vmpower_cpufreq::{CpuId, Khz};
use vmpower_engine::{
    ChannelId, Decision, Engine, PcpuSpec, Placement, Rejection, Reply, VmId, VmSettings,
};
use vmpower_proto::contract::{Contract, NackReason};
use vmpower_proto::layout::offsets::command;
use vmpower_proto::layout::{RecordHead, decode_request, encode_request_record};
use vmpower_proto::{CoreType, Layout, QueryKind, Request, RequestBody, ScalingUnit, Verdict};

const T0: Duration = Duration::from_secs(1);

fn engine(queries_allowed: bool) -> Engine {
    let mut e = Engine::default();
    e.add_pcpu(PcpuSpec {
        cpu: CpuId(2),
        table: FreqTable::new([2_301_000, 2_300_000, 1_200_000].map(Khz).to_vec()).unwrap(),
        current: Khz(2_300_000),
        domain: vec![CpuId(2)],
        high_priority: false,
        enable_turbo_moves_to_max: true,
    });
    let settings = VmSettings {
        queries_allowed,
        ..VmSettings::default()
    };
    e.add_vm(VmId::new("vm1"), settings);
    e.set_placement(&VmId::new("vm1"), Placement::pinned(&[2]));
    e
}

fn chan() -> ChannelId {
    ChannelId {
        vm: VmId::new("vm1"),
        index: 0,
    }
}

/// Sends raw record bytes as the daemon does: head from the bytes, the
/// request decoded (or its decoding error).
fn send_raw(e: &mut Engine, raw: &[u8]) -> (Decision, Contract) {
    let head = RecordHead::of(raw);
    let decoded = decode_request(raw, Layout::Current);
    let request = decoded
        .as_ref()
        .map_err(|err| Rejection::Malformed(err.to_string()));
    e.handle_record(T0, &chan(), head, request)
}

fn send(e: &mut Engine, body: RequestBody) -> Reply {
    let raw = encode_request_record(
        &Request {
            vm_name: Default::default(),
            body,
        },
        Layout::Current,
    )
    .unwrap();
    send_raw(e, &raw).0.reply
}

fn power(unit: ScalingUnit, vcpu: u64) -> RequestBody {
    RequestBody::Power {
        resource_id: vcpu,
        core_type: CoreType::Virtual,
        unit,
    }
}

fn query(kind: QueryKind) -> RequestBody {
    RequestBody::Query {
        kind,
        resource_id: 0,
    }
}

const ACK: Reply = Reply::Verdict(Verdict::Ack);
const NACK: Reply = Reply::Verdict(Verdict::Nack);

#[test]
fn dpdk_contract_answers_as_dpdks_host() {
    let mut e = engine(false);
    // CONNECT from an uninitialised struct: garbage everywhere but command.
    let mut connect = vec![0xa5u8; 464];
    connect[12..16].copy_from_slice(&command::CONNECT.to_le_bytes());
    let (d, contract) = send_raw(&mut e, &connect);
    assert_eq!((d.reply, contract), (Reply::None, Contract::Dpdk));
    assert!(
        d.notes
            .iter()
            .all(|n| !matches!(n, vmpower_engine::Note::Rejected(_)))
    );

    assert_eq!(send(&mut e, power(ScalingUnit::ScaleMin, 0)), ACK);
    assert_eq!(
        send(&mut e, power(ScalingUnit::ScaleMin, 5)),
        NACK,
        "vCPU 5 refused"
    );
    for kind in [
        QueryKind::Freq,
        QueryKind::FreqList,
        QueryKind::Caps,
        QueryKind::CapsList,
    ] {
        assert_eq!(
            send(&mut e, query(kind)),
            Reply::None,
            "{kind:?} not granted"
        );
    }
    assert_eq!(send(&mut e, RequestBody::RemovePolicy), Reply::None);

    // Records that do not decode: a verdict only where DPDK sends one.
    let mut bad_unit = encode_request_record(
        &Request {
            vm_name: Default::default(),
            body: power(ScalingUnit::ScaleUp, 0),
        },
        Layout::Current,
    )
    .unwrap()
    .to_vec();
    bad_unit[8] = 9;
    assert_eq!(send_raw(&mut e, &bad_unit).0.reply, Reply::None, "unit 9");
    let mut bad_core_type = bad_unit.clone();
    bad_core_type[8] = 1;
    bad_core_type[444] = 7;
    assert_eq!(
        send_raw(&mut e, &bad_core_type).0.reply,
        NACK,
        "CPU_POWER, bad core_type"
    );
    let mut unknown = bad_unit;
    unknown[12] = 5;
    assert_eq!(send_raw(&mut e, &unknown).0.reply, Reply::None, "command 5");
}

#[test]
fn granted_queries_are_answered_on_either_contract() {
    let mut e = engine(true);
    assert!(matches!(
        send(&mut e, query(QueryKind::FreqList)),
        Reply::FreqList(_)
    ));
    assert!(matches!(
        send(&mut e, query(QueryKind::Caps)),
        Reply::Caps(_)
    ));
    assert_eq!(
        send(&mut e, RequestBody::Hello { version: 1 }),
        Reply::Hello(1)
    );
    assert!(matches!(
        send(&mut e, query(QueryKind::Freq)),
        Reply::FreqList(_)
    ));
}

#[test]
fn hello_switches_to_native_until_connect_or_reconnect() {
    let mut e = engine(false);
    assert_eq!(
        send(&mut e, RequestBody::Hello { version: 7 }),
        Reply::Hello(2)
    );
    assert_eq!(e.channel_contract(&chan()), Contract::Native(2));
    let raw = encode_request_record(
        &Request {
            vm_name: Default::default(),
            body: query(QueryKind::FreqList),
        },
        Layout::Current,
    )
    .unwrap();
    let (d, contract) = send_raw(&mut e, &raw);
    assert_eq!((d.reply.clone(), contract), (NACK, Contract::Native(2)));
    assert_eq!(d.nack_reason(), Some(NackReason::QueriesNotAllowed));
    assert_eq!(send(&mut e, RequestBody::RemovePolicy), ACK);

    // A DPDK guest opening the port puts the channel back on DPDK's.
    assert_eq!(
        send(&mut e, RequestBody::Connect { resource_id: 0 }),
        Reply::None
    );
    assert_eq!(send(&mut e, RequestBody::RemovePolicy), Reply::None);

    assert_eq!(
        send(&mut e, RequestBody::Hello { version: 1 }),
        Reply::Hello(1)
    );
    e.channel_connected(&chan());
    assert_eq!(e.channel_contract(&chan()), Contract::Dpdk);
    assert_eq!(send(&mut e, RequestBody::RemovePolicy), Reply::None);

    // HELLO version 0 asks for DPDK's contract, and is answered.
    assert_eq!(
        send(&mut e, RequestBody::Hello { version: 1 }),
        Reply::Hello(1)
    );
    assert_eq!(
        send(&mut e, RequestBody::Hello { version: 0 }),
        Reply::Hello(0)
    );
    assert_eq!(e.channel_contract(&chan()), Contract::Dpdk);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// Any stream of records keeps the contract's invariants (the fuzz
    /// target `reply_contract` runs the same check for longer).
    #[test]
    fn any_stream_keeps_the_contract(
        flags in 0u8..4,
        records in proptest::collection::vec(record(), 0..12),
    ) {
        let mut data = vec![flags];
        for r in records {
            data.extend_from_slice(&r);
        }
        contract_invariants::check_stream(&data);
    }
}

/// A record: mostly valid requests (HELLO and CONNECT included), some
/// with their head or fields scrambled.
fn record() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let body = prop_oneof![
        Just(RequestBody::Connect { resource_id: 0 }),
        (0u32..3).prop_map(|version| RequestBody::Hello { version }),
        Just(RequestBody::RemovePolicy),
        (0u16..4, 0u16..=1000).prop_map(|(vcpu, permille)| {
            RequestBody::Busyness(
                vmpower_proto::BusynessReport::new(
                    0,
                    &[vmpower_proto::BusyEntry { vcpu, permille }],
                    100,
                    None,
                )
                .expect("one valid entry"),
            )
        }),
        (0u64..3, 0usize..6).prop_map(|(v, u)| power(ScalingUnit::ALL[u], v)),
        prop_oneof![
            Just(QueryKind::Freq),
            Just(QueryKind::FreqList),
            Just(QueryKind::Caps),
            Just(QueryKind::CapsList)
        ]
        .prop_map(query),
    ];
    (
        body,
        proptest::collection::vec((0usize..464, any::<u8>()), 0..3),
    )
        .prop_map(|(body, noise)| {
            let mut raw = encode_request_record(
                &Request {
                    vm_name: Default::default(),
                    body,
                },
                Layout::Current,
            )
            .unwrap()
            .to_vec();
            for (at, byte) in noise {
                raw[at] = byte;
            }
            raw
        })
}

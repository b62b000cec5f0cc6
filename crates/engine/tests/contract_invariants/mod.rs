//! The reply contract's invariants over any byte stream, shared by the
//! proptest in `contract.rs` and the fuzz target `reply_contract`
//! (`fuzz/fuzz_targets/reply_contract.rs` uses this file as a module).
//!
//! The stream is cut into 464-byte records and each goes through
//! [`Engine::handle_record`] as the daemon sends it. Whatever the bytes:
//! - on DPDK's contract a record gets at most the reply DPDK's host sends
//!   for its `command` and `unit` (a verdict, a list, or nothing);
//! - CONNECT never gets a reply and always puts the channel on DPDK's
//!   contract;
//! - a HELLO is answered with a version no higher than ours, and the
//!   channel is then on the contract it granted;
//! - BUSYNESS never gets a reply, on any contract, and leaves the
//!   contract as it was;
//! - on the native contract every record but CONNECT and BUSYNESS gets a
//!   reply.

use std::time::Duration;

use vmpower_cpufreq::levels::FreqTable;
use vmpower_cpufreq::{CpuId, Khz};
use vmpower_engine::{
    ChannelId, Engine, EngineConfig, PcpuSpec, Placement, RateLimit, Rejection, Reply, VmId,
    VmSettings,
};
use vmpower_proto::Layout;
use vmpower_proto::contract::{Contract, DpdkReply, NATIVE_VERSION, dpdk_reply};
use vmpower_proto::layout::offsets::command;
use vmpower_proto::layout::{RecordHead, decode_request};

/// Feeds `data` (its first byte chooses whether queries are granted and
/// how ENABLE_TURBO behaves) and panics on any broken invariant.
pub fn check_stream(data: &[u8]) {
    let Some((&flags, records)) = data.split_first() else {
        return;
    };
    let limit = RateLimit {
        burst: u32::MAX,
        per_second: u32::MAX,
    };
    let mut e = Engine::new(EngineConfig {
        rate_limit: limit,
        ..EngineConfig::default()
    });
    for cpu in 0..2 {
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(cpu),
            table: FreqTable::new([2_301_000, 2_300_000, 1_200_000].map(Khz).to_vec())
                .expect("a valid table"),
            current: Khz(2_300_000),
            domain: vec![CpuId(cpu)],
            high_priority: false,
            enable_turbo_moves_to_max: flags & 2 != 0,
        });
    }
    let vm = VmId::new("vm1");
    let settings = VmSettings {
        queries_allowed: flags & 1 != 0,
        ..VmSettings::default()
    };
    e.add_vm(vm.clone(), settings);
    e.set_placement(&vm, Placement::pinned(&[0, 1]));
    let chan = ChannelId { vm, index: 0 };
    for (i, raw) in records.chunks_exact(464).enumerate() {
        let head = RecordHead::of(raw);
        let before = e.channel_contract(&chan);
        let decoded = decode_request(raw, Layout::Current);
        let request = decoded
            .as_ref()
            .map_err(|err| Rejection::Malformed(err.to_string()));
        let now = Duration::from_millis(u64::try_from(i).unwrap_or(u64::MAX));
        let (decision, after) = e.handle_record(now, &chan, head, request);
        let reply = &decision.reply;
        assert_eq!(
            after,
            e.channel_contract(&chan),
            "the contract returned is in force"
        );
        match head.command {
            command::CONNECT => {
                assert_eq!(*reply, Reply::None, "CONNECT is never answered");
                assert_eq!(after, Contract::Dpdk, "CONNECT: DPDK's contract");
                continue;
            }
            command::BUSYNESS => {
                assert_eq!(*reply, Reply::None, "BUSYNESS is never answered");
                assert_eq!(after, before, "BUSYNESS leaves the contract");
                continue;
            }
            command::NATIVE_HELLO if decoded.is_ok() => {
                let Reply::Hello(v) = *reply else {
                    panic!("HELLO unanswered: {reply:?}")
                };
                assert!(v <= NATIVE_VERSION);
                assert_eq!(after, Contract::granted(v));
                continue;
            }
            _ => {}
        }
        assert!(
            !matches!(reply, Reply::Hello(_)),
            "only HELLO gets a HELLO reply"
        );
        match before {
            Contract::Dpdk => match dpdk_reply(head) {
                DpdkReply::Verdict => {
                    assert!(matches!(reply, Reply::Verdict(_)), "{head:?}: {reply:?}")
                }
                DpdkReply::ListIfAnswered => assert!(
                    matches!(reply, Reply::FreqList(_) | Reply::Caps(_) | Reply::None),
                    "{head:?}: {reply:?}"
                ),
                DpdkReply::Nothing => assert_eq!(*reply, Reply::None, "{head:?}"),
            },
            Contract::Native(_) => {
                assert_ne!(
                    *reply,
                    Reply::None,
                    "native: every record is answered ({head:?})"
                )
            }
        }
    }
}

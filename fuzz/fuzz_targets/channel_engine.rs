//! The daemon's channel path without its sockets: two guests' arbitrary
//! byte streams, read in chunks of any size and interleaved, through each
//! channel's record decoder (`RecordStream`, the VM's layout) and one
//! engine, and each reply encoded as `vmpowerd`'s core encodes it
//! (`crates/vmpowerd/src/core.rs`, `handle_frame`). vm1 runs on pCPUs 0
//! and 1, vm2 on 1 and 2 (pCPU 1 shared). Whatever the bytes:
//! - nothing panics;
//! - a guest's records move only its own pCPUs, to a frequency of the
//!   table, and release only its own pCPUs (no physical-core grant);
//! - every reply due encodes (the daemon would only log a failure, and a
//!   native guest would wait for an answer that never comes): a verdict as
//!   long as the guest's record, a list that decodes as it was sent.
//!
//! The first byte's bits: queries granted, ENABLE_TURBO moves to max, a
//! tight rate limit, vm2 on DPDK 17.11's layout; the second is the read
//! size less one.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vmpower_cpufreq::levels::FreqTable;
use vmpower_cpufreq::{CpuId, Khz};
use vmpower_engine::{
    Action, ChannelId, Engine, EngineConfig, PcpuSpec, Placement, RateLimit, Rejection, Reply,
    VmId, VmSettings,
};
use vmpower_proto::Layout;
use vmpower_proto::contract::{Contract, NackReason};
use vmpower_proto::layout::{
    RecordHead, decode_caps_list, decode_freq_list, encode_caps_list, encode_freq_list,
    encode_hello_reply, encode_nack_with_reason, encode_verdict,
};
use vmpower_proto::stream::RecordStream;

const TABLE: [u32; 3] = [2_301_000, 2_300_000, 1_200_000];

struct Guest {
    channel: ChannelId,
    layout: Layout,
    stream: RecordStream,
    pcpus: BTreeSet<CpuId>,
}

fn engine(flags: u8) -> Engine {
    let rate_limit = if flags & 4 != 0 {
        RateLimit {
            burst: 4,
            per_second: 100,
        }
    } else {
        RateLimit {
            burst: u32::MAX,
            per_second: u32::MAX,
        }
    };
    let mut e = Engine::new(EngineConfig {
        rate_limit,
        ..EngineConfig::default()
    });
    for cpu in 0..3 {
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(cpu),
            table: FreqTable::new(TABLE.map(Khz).to_vec()).expect("a valid table"),
            current: Khz(2_300_000),
            domain: vec![CpuId(cpu)],
            high_priority: false,
            enable_turbo_moves_to_max: flags & 2 != 0,
        });
    }
    e
}

fn guest(e: &mut Engine, flags: u8, name: &str, pcpus: &[u32], layout: Layout) -> Guest {
    let vm = VmId::new(name);
    let settings = VmSettings {
        layout,
        queries_allowed: flags & 1 != 0,
        ..VmSettings::default()
    };
    e.add_vm(vm.clone(), settings);
    e.set_placement(&vm, Placement::pinned(pcpus));
    Guest {
        channel: ChannelId { vm, index: 0 },
        layout,
        stream: RecordStream::new(layout),
        pcpus: pcpus.iter().copied().map(CpuId).collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, read, bytes @ ..] = data else {
        return;
    };
    let mut e = engine(*flags);
    let vm2_layout = if flags & 8 != 0 {
        Layout::Dpdk1711
    } else {
        Layout::Current
    };
    let mut guests = [
        guest(&mut e, *flags, "vm1", &[0, 1], Layout::Current),
        guest(&mut e, *flags, "vm2", &[1, 2], vm2_layout),
    ];
    let mut ms = 0u64;
    for (n, chunk) in bytes.chunks(usize::from(*read) + 1).enumerate() {
        let g = &mut guests[n % 2];
        let mut input = chunk;
        while let Some(frame) = g.stream.next_frame(&mut input) {
            ms += 1;
            let request = frame
                .request
                .as_ref()
                .map_err(|err| Rejection::Malformed(err.to_string()));
            let head = RecordHead::of(frame.raw);
            let now = Duration::from_millis(ms);
            let (decision, contract) = e.handle_record(now, &g.channel, head, request);
            for action in &decision.actions {
                match action {
                    Action::Set(change) => {
                        assert!(g.pcpus.contains(&change.cpu), "{action:?} by {}", g.channel);
                        assert!(TABLE.contains(&change.to.0), "{action:?}");
                    }
                    Action::Release { cpu, .. } => {
                        assert!(g.pcpus.contains(cpu), "{action:?} by {}", g.channel);
                    }
                }
            }
            let len = g.layout.record_len();
            match decision.reply {
                Reply::None => {}
                Reply::Verdict(v) => {
                    let bytes = match (v, contract) {
                        (vmpower_proto::Verdict::Nack, Contract::Native(_)) => {
                            let reason = decision.nack_reason().unwrap_or(NackReason::WriteFailed);
                            encode_nack_with_reason(frame.raw, g.layout, reason)
                        }
                        _ => encode_verdict(frame.raw, g.layout, v),
                    };
                    assert_eq!(bytes.expect("a verdict encodes").as_slice().len(), len);
                }
                Reply::Hello(version) => {
                    let bytes = encode_hello_reply(frame.raw, g.layout, version);
                    assert_eq!(bytes.expect("a HELLO reply encodes").as_slice().len(), len);
                }
                Reply::FreqList(r) => {
                    let bytes = encode_freq_list(&r).expect("a FREQ_LIST encodes");
                    assert_eq!(decode_freq_list(&bytes), Ok(r));
                }
                Reply::Caps(r) => {
                    let bytes = encode_caps_list(&r).expect("a CAPS_LIST encodes");
                    assert_eq!(decode_caps_list(&bytes), Ok(r));
                }
            }
        }
        assert!(input.is_empty(), "the stream takes every byte");
    }
});

//! The busyness controller through the engine's record path: reports
//! move a vCPU's pCPU proportionally, are refused (whole, unanswered) when
//! hostile, and silence puts the vCPUs at max.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::Duration;

use vmpower_cpufreq::levels::FreqTable;
use vmpower_cpufreq::{CpuId, Khz};
use vmpower_engine::{
    Action, ChannelId, Decision, Engine, Note, PcpuSpec, Placement, Rejection, Reply, Trigger,
    VmId, VmSettings, Winner,
};
use vmpower_proto::layout::{RecordHead, decode_request, encode_request_record};
use vmpower_proto::{
    BusyEntry, BusynessReport, CoreType, Layout, Policy, PolicyKind, Request, RequestBody,
    ScalingUnit, VcpuList, WorkloadLevel,
};

/// 3.0 GHz down to 1.0 GHz in 400 MHz steps, no turbo.
const KHZ: [u32; 6] = [
    3_000_000, 2_600_000, 2_200_000, 1_800_000, 1_400_000, 1_000_000,
];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// vm1 on pCPUs 0 and 1, vm2 on pCPU 2 and sharing pCPU 1.
fn engine() -> Engine {
    let mut e = Engine::default();
    for cpu in 0..3 {
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(cpu),
            table: FreqTable::new(KHZ.map(Khz).to_vec()).unwrap(),
            current: Khz(3_000_000),
            domain: vec![CpuId(cpu)],
            high_priority: false,
            enable_turbo_moves_to_max: true,
        });
    }
    e.add_vm(VmId::new("vm1"), VmSettings::default());
    e.set_placement(&VmId::new("vm1"), Placement::pinned(&[0, 1]));
    e.add_vm(VmId::new("vm2"), VmSettings::default());
    e.set_placement(&VmId::new("vm2"), Placement::pinned(&[2, 1]));
    e
}

fn chan(vm: &str) -> ChannelId {
    ChannelId {
        vm: VmId::new(vm),
        index: 0,
    }
}

fn send(e: &mut Engine, vm: &str, body: RequestBody, now: Duration) -> Decision {
    let raw = encode_request_record(
        &Request {
            vm_name: Default::default(),
            body,
        },
        Layout::Current,
    )
    .unwrap();
    let decoded = decode_request(&raw, Layout::Current);
    let request = decoded
        .as_ref()
        .map_err(|err| Rejection::Malformed(err.to_string()));
    e.handle_record(now, &chan(vm), RecordHead::of(&raw), request)
        .0
}

fn hello(e: &mut Engine, vm: &str, version: u32) {
    send(e, vm, RequestBody::Hello { version }, Duration::ZERO);
}

fn report(seq: u64, entries: &[(u16, u16)], interval_ms: u32) -> RequestBody {
    let entries: Vec<BusyEntry> = entries
        .iter()
        .map(|(vcpu, permille)| BusyEntry {
            vcpu: *vcpu,
            permille: *permille,
        })
        .collect();
    RequestBody::Busyness(BusynessReport::new(seq, &entries, interval_ms, None).unwrap())
}

/// The frequency each `Set` action writes, by pCPU.
fn sets(d: &[Action]) -> Vec<(u32, u32)> {
    d.iter()
        .filter_map(|a| match a {
            Action::Set(c) => Some((c.cpu.0, c.to.0)),
            Action::Release { .. } => None,
        })
        .collect()
}

fn rejected(d: &Decision) -> Option<&Rejection> {
    d.notes.iter().find_map(|n| match n {
        Note::Rejected(r) => Some(r),
        _ => None,
    })
}

#[test]
fn a_report_steps_proportionally_and_down_only_after_the_cooldown() {
    let mut e = engine();
    hello(&mut e, "vm1", 2);
    // 40 % busy at 3.0 GHz: 1.6 GHz would make 75 %, 1.8 GHz the lowest
    // level at or below the band's middle (80 %).
    let d = send(&mut e, "vm1", report(1, &[(0, 400)], 100), ms(100));
    assert_eq!(d.reply, Reply::None, "never answered");
    assert_eq!(sets(&d.actions), [(0, 1_800_000)]);
    assert!(matches!(
        &d.actions[0],
        Action::Set(c) if c.trigger == Trigger::Busyness { vm: VmId::new("vm1"), vcpu: 0, permille: 400 }
    ));
    // Now 20 % at 1.8 GHz, 50 ms later: within the cooldown, it stays.
    let d = send(&mut e, "vm1", report(2, &[(0, 200)], 100), ms(150));
    assert!(d.actions.is_empty(), "{d:?}");
    // After the cooldown: 1.0 GHz (36 %).
    let d = send(&mut e, "vm1", report(3, &[(0, 200)], 100), ms(200));
    assert_eq!(sets(&d.actions), [(0, 1_000_000)]);
    // 95 % at 1.0 GHz: up at once, to 1.4 GHz (68 %), no cooldown.
    let d = send(&mut e, "vm1", report(4, &[(0, 950)], 100), ms(210));
    assert_eq!(sets(&d.actions), [(0, 1_400_000)]);
    // Saturated: max.
    let d = send(&mut e, "vm1", report(5, &[(0, 1000)], 100), ms(220));
    assert_eq!(sets(&d.actions), [(0, 3_000_000)]);
    // In the band: nothing moves.
    let d = send(&mut e, "vm1", report(6, &[(0, 800)], 100), ms(900));
    assert!(d.actions.is_empty());
    let status = e.busyness_status(&VmId::new("vm1"), ms(900)).unwrap();
    assert_eq!(status.counters.accepted, 6);
    assert_eq!(status.vcpus, [(0, 800, 0)]);
}

#[test]
fn a_neighbours_want_still_wins_the_shared_pcpu() {
    let mut e = engine();
    hello(&mut e, "vm1", 2);
    // vm2 asked nothing of pCPU 1: it counts as max, so vm1's low want
    // on its vCPU 1 (pinned to pCPU 1) only takes the pCPU over, at max.
    let d = send(&mut e, "vm1", report(1, &[(1, 100)], 100), ms(100));
    assert_eq!(sets(&d.actions), [(1, 3_000_000)]);
    assert!(matches!(&d.actions[0], Action::Set(c) if c.winner == Winner::DefaultMax));
    // vm2 asks min for its vCPU 1 (pCPU 1): now vm1's want decides.
    let d = send(
        &mut e,
        "vm2",
        RequestBody::Power {
            resource_id: 1,
            core_type: CoreType::Virtual,
            unit: ScalingUnit::ScaleMin,
        },
        ms(110),
    );
    assert_eq!(sets(&d.actions), [(1, 1_000_000)]);
}

#[test]
fn hostile_reports_are_refused_whole_and_unanswered() {
    let mut e = engine();
    // DPDK's contract and native v1 do not accept reports.
    let d = send(&mut e, "vm1", report(1, &[(0, 100)], 100), ms(1));
    assert_eq!(rejected(&d), Some(&Rejection::BusynessNotNegotiated));
    assert_eq!(d.reply, Reply::None);
    hello(&mut e, "vm1", 1);
    let d = send(&mut e, "vm1", report(1, &[(0, 100)], 100), ms(2));
    assert_eq!(rejected(&d), Some(&Rejection::BusynessNotNegotiated));
    assert_eq!(d.reply, Reply::None, "native v1 answers, but not reports");
    hello(&mut e, "vm1", 2);
    // A vCPU not the VM's refuses the whole report: vCPU 0's good entry
    // moves nothing.
    let d = send(&mut e, "vm1", report(2, &[(0, 100), (7, 100)], 100), ms(10));
    assert!(matches!(
        rejected(&d),
        Some(Rejection::VcpuOutOfRange { vcpu: 7, count: 2 })
    ));
    assert!(d.actions.is_empty());
    assert_eq!(d.reply, Reply::None);
    assert!(e.busyness_deadline().is_none(), "nothing accepted yet");
    // A flood: the burst (20, less the refused report's token, plus 2
    // refilled in 10 ms at 200/s, capped at 20) goes through, then the
    // limit refuses.
    let mut refused = 0;
    for i in 0..40 {
        let d = send(&mut e, "vm1", report(3 + i, &[(0, 800)], 100), ms(20));
        if rejected(&d) == Some(&Rejection::ReportRateExceeded) {
            refused += 1;
        }
        assert_eq!(d.reply, Reply::None);
    }
    assert_eq!(refused, 40 - 20);
    // The neighbour is still served.
    hello(&mut e, "vm2", 2);
    let d = send(&mut e, "vm2", report(1, &[(0, 300)], 100), ms(30));
    assert_eq!(rejected(&d), None);
    assert_eq!(sets(&d.actions), [(2, 1_400_000)]);
}

#[test]
fn a_vcpu_its_policy_owns_is_not_the_controllers() {
    let mut e = engine();
    hello(&mut e, "vm1", 2);
    let policy = Policy {
        workload: WorkloadLevel::Low,
        ..Policy::new(PolicyKind::Workload, VcpuList::from_slice(&[0]).unwrap())
    };
    send(&mut e, "vm1", RequestBody::SetPolicy(policy), ms(1));
    let d = send(&mut e, "vm1", report(1, &[(0, 1000)], 100), ms(2));
    assert_eq!(
        rejected(&d),
        Some(&Rejection::PolicyOwnsCore("vCPU 0".to_owned()))
    );
    assert!(d.actions.is_empty());
}

#[test]
fn silence_puts_the_vcpus_at_max_once_and_a_report_takes_them_back() {
    let mut e = engine();
    hello(&mut e, "vm1", 2);
    assert_eq!(e.busyness_deadline(), None, "no report, no timer");
    let d = send(&mut e, "vm1", report(1, &[(0, 200)], 100), ms(1_000));
    assert_eq!(sets(&d.actions), [(0, 1_000_000)]);
    // Three intervals of 100 ms.
    assert_eq!(e.busyness_deadline(), Some(ms(1_300)));
    assert_eq!(e.busyness_check(ms(1_299)).stale, Vec::<VmId>::new());
    let out = e.busyness_check(ms(1_300));
    assert_eq!(out.stale, [VmId::new("vm1")]);
    assert_eq!(sets(&out.actions), [(0, 3_000_000)]);
    assert!(
        matches!(&out.actions[0], Action::Set(c) if c.trigger == Trigger::BusynessStale(VmId::new("vm1")))
    );
    assert_eq!(e.busyness_deadline(), None, "already at max");
    assert!(e.busyness_check(ms(5_000)).actions.is_empty(), "once");
    let status = e.busyness_status(&VmId::new("vm1"), ms(5_000)).unwrap();
    assert!(status.stale);
    assert_eq!(status.counters.stale_events, 1);
    // Reports resume (seq 5: 3 lost): down again only after the cooldown
    // from the stale event.
    let d = send(&mut e, "vm1", report(5, &[(0, 200)], 100), ms(5_000));
    assert_eq!(sets(&d.actions), [(0, 1_000_000)]);
    let status = e.busyness_status(&VmId::new("vm1"), ms(5_000)).unwrap();
    assert!(!status.stale);
    assert_eq!(status.counters.gaps, 3);
    // An absurd interval is clamped: silence is bounded (3 × 1 s).
    let d = send(&mut e, "vm1", report(6, &[(0, 800)], u32::MAX), ms(6_000));
    assert!(d.actions.is_empty());
    assert_eq!(e.busyness_deadline(), Some(ms(9_000)));
}

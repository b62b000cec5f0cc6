//! Policies in the engine: WORKLOAD, TRAFFIC with hysteresis and waiting,
//! TIME across an hour boundary and a daylight-saving change, BRANCH_RATIO
//! from recorded samples, ownership of cores, replacement and removal.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use vmpower_engine::{
    Action, ChannelId, Engine, EngineConfig, Note, OtherHours, PcpuSpec, Placement,
    PolicyExtensions, PolicySpec, PolicyState, Rejection, Reply, Trigger, VmId, VmSettings,
};
use vmpower_proto::{
    CoreType, HourSchedule, HourSet, MacAddr, MacList, Policy, PolicyKind, Request, RequestBody,
    ScalingUnit, TrafficThresholds, VcpuList, Verdict, VmName, WorkloadLevel,
};
use vmpower_types::levels::{FreqTable, Level};
use vmpower_types::{CpuId, Khz};

const MAX: u32 = 2_301_000;
const MEDIUM: u32 = 1_600_000; // index 5 / 2 = 2
const MIN: u32 = 800_000;

fn table() -> FreqTable {
    FreqTable::new(
        [2_301_000, 2_300_000, 1_600_000, 1_200_000, 800_000]
            .map(Khz)
            .to_vec(),
    )
    .unwrap()
}

fn engine(branch_counters: bool) -> Engine {
    engine_with(EngineConfig {
        branch_counters,
        ..EngineConfig::default()
    })
}

fn engine_with(config: EngineConfig) -> Engine {
    let mut e = Engine::new(config);
    for cpu in 0..4 {
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(cpu),
            table: table(),
            current: Khz(2_300_000),
            domain: vec![CpuId(cpu)],
            high_priority: false,
            enable_turbo_moves_to_max: true,
        });
    }
    e.add_vm(vm(), VmSettings::default());
    e.set_placement(&vm(), Placement::pinned(&[1, 2]));
    e
}

fn vm() -> VmId {
    VmId::new("vm1")
}

fn policy(kind: PolicyKind) -> Policy {
    Policy {
        macs: MacList::from_slice(&["02:00:00:00:00:01".parse::<MacAddr>().unwrap()]).unwrap(),
        traffic: TrafficThresholds {
            min_pps: 0,
            avg_pps: 1_800_000,
            max_pps: 2_000_000,
        },
        ..Policy::new(kind, VcpuList::from_slice(&[0, 1]).unwrap())
    }
}

fn spec(policy: Policy) -> PolicySpec {
    PolicySpec {
        policy,
        ext: PolicyExtensions::default(),
        tz: TimeZone::UTC,
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The (cpu, kHz) of every Set action.
fn sets(actions: &[Action]) -> Vec<(u32, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Set(c) => Some((c.cpu.0, c.to.0)),
            Action::Release { .. } => None,
        })
        .collect()
}

fn releases(actions: &[Action]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Release { cpu, .. } => Some(cpu.0),
            Action::Set(_) => None,
        })
        .collect()
}

fn power(e: &mut Engine, vcpu: u64, unit: ScalingUnit) -> Reply {
    let req = Request {
        vm_name: VmName::default(),
        body: RequestBody::Power {
            resource_id: vcpu,
            core_type: CoreType::Virtual,
            unit,
        },
    };
    let chan = ChannelId { vm: vm(), index: 0 };
    e.handle(Duration::from_secs(1), &chan, Ok(&req)).reply
}

#[test]
fn workload_levels_and_ownership_of_cores() {
    let mut e = engine(false);
    let epoch = Timestamp::UNIX_EPOCH;
    for (level, khz) in [
        (WorkloadLevel::Low, MIN),
        (WorkloadLevel::Medium, MEDIUM),
        (WorkloadLevel::High, MAX),
    ] {
        let p = Policy {
            workload: level,
            ..policy(PolicyKind::Workload)
        };
        let actions = e.set_policy(&vm(), spec(p), ms(0), epoch).unwrap();
        assert_eq!(sets(&actions), vec![(1, khz), (2, khz)], "{level:?}");
    }
    // The policy owns vCPUs 0-1: direct requests are refused.
    assert_eq!(
        power(&mut e, 0, ScalingUnit::ScaleMin),
        Reply::Verdict(Verdict::Nack)
    );
    let status = e.policy_status(&vm()).unwrap();
    assert_eq!(status.state, PolicyState::Active);
    // Removing it gives the pCPUs back (nobody wants anything of them).
    let actions = e.remove_policy(&vm());
    assert_eq!(releases(&actions), vec![1, 2]);
    assert!(e.policy_status(&vm()).is_none());
    assert_eq!(
        power(&mut e, 0, ScalingUnit::ScaleMin),
        Reply::Verdict(Verdict::Ack)
    );
}

#[test]
fn the_operator_may_let_requests_override_a_policy() {
    let mut e = engine(false);
    let settings = VmSettings {
        requests_override_policy: true,
        ..VmSettings::default()
    };
    e.add_vm(vm(), settings);
    let p = Policy {
        workload: WorkloadLevel::Low,
        ..policy(PolicyKind::Workload)
    };
    e.set_policy(&vm(), spec(p), ms(0), Timestamp::UNIX_EPOCH)
        .unwrap();
    assert_eq!(
        power(&mut e, 0, ScalingUnit::ScaleUp),
        Reply::Verdict(Verdict::Ack)
    );
    assert_eq!(
        e.known_khz(CpuId(1)),
        Some(Khz(1_200_000)),
        "one step up from min"
    );
    let status = e.policy_status(&vm()).unwrap();
    assert_eq!(status.cores.len(), 1, "vCPU 0 left the policy");
}

#[test]
fn traffic_with_hysteresis_and_a_waiting_state() {
    let mut e = engine(false);
    let actions = e
        .set_policy(
            &vm(),
            spec(policy(PolicyKind::Traffic)),
            ms(0),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
    assert!(
        actions.is_empty(),
        "no sample yet: the cores are left alone"
    );
    let st = e.policy_status(&vm()).unwrap();
    assert!(
        matches!(st.state, PolicyState::Waiting(_)),
        "{:?}",
        st.state
    );
    // The MAC has no counter source: still waiting, with the reason shown.
    let none = e.traffic_sample(
        &vm(),
        Err("MAC 02:00:00:00:00:01 not found".into()),
        ms(100),
    );
    assert!(none.is_empty());
    let st = e.policy_status(&vm()).unwrap();
    assert_eq!(
        st.state,
        PolicyState::Waiting("MAC 02:00:00:00:00:01 not found".into())
    );
    // (time ms, rate, expected writes)
    type Step = (u64, f64, &'static [(u32, u32)]);
    let steps: &[Step] = &[
        (200, 100_000.0, &[(1, MIN), (2, MIN)]),
        (300, 1_900_000.0, &[(1, MEDIUM), (2, MEDIUM)]),
        (400, 2_100_000.0, &[(1, MAX), (2, MAX)]),
        (500, 1_950_000.0, &[]), // inside the 5 % band
        (600, 1_850_000.0, &[]), // below the band, dwell starts
        (1000, 1_850_000.0, &[]),
        (1100, 1_850_000.0, &[(1, MEDIUM), (2, MEDIUM)]), // 500 ms below
        (1200, 1_850_000.0, &[]),                         // unchanged: no write
    ];
    for (t, rate, expected) in steps {
        let actions = e.traffic_sample(&vm(), Ok(*rate), ms(*t));
        assert_eq!(sets(&actions), expected.to_vec(), "t={t} rate={rate}");
        for a in &actions {
            let Action::Set(c) = a else { continue };
            let Trigger::Policy { input, .. } = &c.trigger else {
                panic!("{:?}", c.trigger)
            };
            assert_eq!(input.rate_pps, Some(*rate), "the input is recorded");
        }
    }
    let st = e.policy_status(&vm()).unwrap();
    assert_eq!(st.state, PolicyState::Active);
    assert_eq!(st.rate_pps, Some(1_850_000.0));
}

fn busy_17_18_quiet_2_3() -> Policy {
    Policy {
        hours: HourSchedule {
            // DPDK's zero-filled arrays decode to sets: hour 0 is not busy.
            busy: HourSet::from_hours([17, 18]).unwrap(),
            quiet: HourSet::from_hours([2, 3]).unwrap(),
            traffic: HourSet::EMPTY,
        },
        ..policy(PolicyKind::Time)
    }
}

#[test]
fn time_across_an_hour_boundary_leaves_other_hours_alone() {
    let mut e = engine(false);
    let at = ts("2026-06-01T16:59:59Z");
    let actions = e
        .set_policy(&vm(), spec(busy_17_18_quiet_2_3()), ms(0), at)
        .unwrap();
    assert_eq!(
        sets(&actions),
        vec![],
        "other hours: the cores stay where they are"
    );
    let status = e.policy_status(&vm()).unwrap();
    assert!(
        matches!(&status.state, PolicyState::Waiting(why) if why.contains("stay where they are")),
        "{:?}",
        status.state
    );
    assert_eq!(e.next_time_event(at), Some(ts("2026-06-01T17:00:00Z")));
    assert!(e.time_tick(ts("2026-06-01T16:59:59.9Z"), ms(1)).is_empty());
    let actions = e.time_tick(ts("2026-06-01T17:00:00Z"), ms(2));
    assert_eq!(sets(&actions), vec![(1, MAX), (2, MAX)]);
    assert!(
        e.time_tick(ts("2026-06-01T18:00:00Z"), ms(3)).is_empty(),
        "still busy"
    );
    let actions = e.time_tick(ts("2026-06-01T19:00:00Z"), ms(4));
    assert!(actions.is_empty(), "19:00 is in no set: max stays");
    assert_eq!(e.known_khz(CpuId(1)), Some(Khz(MAX)));
    let actions = e.time_tick(ts("2026-06-02T00:30:00Z"), ms(5));
    assert!(actions.is_empty(), "midnight is not busy");
    let actions = e.time_tick(ts("2026-06-02T02:00:00Z"), ms(6));
    assert_eq!(sets(&actions), vec![(1, MIN), (2, MIN)]);
    let actions = e.time_tick(ts("2026-06-02T04:00:00Z"), ms(7));
    assert!(actions.is_empty(), "04:00 is in no set: min stays");
}

#[test]
fn a_time_policy_replacing_another_in_other_hours_keeps_its_cores_where_they_are() {
    let mut e = engine(false);
    let at = ts("2026-06-01T19:30:00Z");
    let low = Policy {
        workload: WorkloadLevel::Low,
        ..policy(PolicyKind::Workload)
    };
    let actions = e.set_policy(&vm(), spec(low), ms(0), at).unwrap();
    assert_eq!(sets(&actions), vec![(1, MIN), (2, MIN)]);
    let actions = e
        .set_policy(&vm(), spec(busy_17_18_quiet_2_3()), ms(1), at)
        .unwrap();
    assert!(
        actions.is_empty(),
        "neither moved nor given back: {actions:?}"
    );
    assert!(e.is_managed(CpuId(1)));
    assert_eq!(e.known_khz(CpuId(1)), Some(Khz(MIN)));
}

#[test]
fn time_other_hours_at_a_level_when_configured() {
    // The policy's own setting, then the engine's default for policies
    // that say nothing.
    let medium = PolicySpec {
        ext: PolicyExtensions {
            other_hours: Some(OtherHours::Medium),
            ..PolicyExtensions::default()
        },
        ..spec(busy_17_18_quiet_2_3())
    };
    let config = EngineConfig {
        time_other_hours: OtherHours::Medium,
        ..EngineConfig::default()
    };
    for (mut e, spec) in [
        (engine(false), medium),
        (engine_with(config), spec(busy_17_18_quiet_2_3())),
    ] {
        let at = ts("2026-06-01T16:59:59Z");
        let actions = e.set_policy(&vm(), spec, ms(0), at).unwrap();
        assert_eq!(sets(&actions), vec![(1, MEDIUM), (2, MEDIUM)]);
        let actions = e.time_tick(ts("2026-06-01T17:00:00Z"), ms(2));
        assert_eq!(sets(&actions), vec![(1, MAX), (2, MAX)]);
        let actions = e.time_tick(ts("2026-06-01T19:00:00Z"), ms(4));
        assert_eq!(sets(&actions), vec![(1, MEDIUM), (2, MEDIUM)]);
    }
}

#[test]
fn time_across_a_daylight_saving_change() {
    let mut e = engine(false);
    let p = Policy {
        hours: HourSchedule {
            busy: HourSet::from_hours([3]).unwrap(),
            quiet: HourSet::from_hours([2]).unwrap(),
            traffic: HourSet::EMPTY,
        },
        ..policy(PolicyKind::Time)
    };
    let paris = PolicySpec {
        ext: PolicyExtensions {
            time_zone: Some("Europe/Paris".into()),
            ..PolicyExtensions::default()
        },
        tz: TimeZone::get("Europe/Paris").unwrap(),
        ..spec(p)
    };
    // 2026-03-29 01:30 CET; at 01:00 UTC clocks jump from 02:00 to 03:00.
    let at = ts("2026-03-29T00:30:00Z");
    e.set_policy(&vm(), paris, ms(0), at).unwrap();
    let next = e.next_time_event(at).unwrap();
    assert_eq!(next, ts("2026-03-29T01:00:00Z"));
    // Quiet hour 02 never happens that night: straight to busy 03.
    let actions = e.time_tick(next, ms(1));
    assert_eq!(sets(&actions), vec![(1, MAX), (2, MAX)]);
    // In autumn 02:00-03:00 happens twice: quiet, twice, then busy.
    let actions = e.time_tick(ts("2026-10-25T00:10:00Z"), ms(2)); // 02:10 CEST
    assert_eq!(sets(&actions), vec![(1, MIN), (2, MIN)]);
    assert!(
        e.time_tick(ts("2026-10-25T01:10:00Z"), ms(3)).is_empty(),
        "02:10 CET"
    );
    let actions = e.time_tick(ts("2026-10-25T02:00:00Z"), ms(4)); // 03:00 CET
    assert_eq!(sets(&actions), vec![(1, MAX), (2, MAX)]);
}

#[test]
fn branch_ratio_from_recorded_samples_and_its_refusal_without_counters() {
    let mut without = engine(false);
    let err = without
        .set_policy(
            &vm(),
            spec(policy(PolicyKind::BranchRatio)),
            ms(0),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap_err();
    assert_eq!(err, Rejection::NoBranchCounters);

    let mut e = engine(true);
    e.set_policy(
        &vm(),
        spec(policy(PolicyKind::BranchRatio)),
        ms(0),
        Timestamp::UNIX_EPOCH,
    )
    .unwrap();
    assert_eq!(
        e.branch_cpus().into_iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // A recorded series for pCPU 1 (vCPU 0): idle polling, then packets.
    let series = [0.002, 0.003, 0.002, 0.04, 0.003, 0.002, 0.002];
    let expected: [&[(u32, u32)]; 7] = [&[], &[], &[(1, MIN)], &[(1, MAX)], &[], &[], &[(1, MIN)]];
    for (i, (ratio, want)) in series.iter().zip(expected).enumerate() {
        let actions = e.branch_sample(CpuId(1), *ratio, ms(i as u64 * 100));
        assert_eq!(sets(&actions), want.to_vec(), "sample {i}: {ratio}");
    }
    // pCPU 3 is not the VM's: ignored.
    assert!(e.branch_sample(CpuId(3), 0.5, ms(900)).is_empty());
}

#[test]
fn a_policy_replaces_the_earlier_one_and_checks_its_cores() {
    let mut e = engine(false);
    let epoch = Timestamp::UNIX_EPOCH;
    let low = Policy {
        workload: WorkloadLevel::Low,
        ..policy(PolicyKind::Workload)
    };
    e.set_policy(&vm(), spec(low), ms(0), epoch).unwrap();
    // The new one governs vCPU 1 only: vCPU 0's pCPU is given back.
    let high_one = Policy {
        cores: VcpuList::from_slice(&[1]).unwrap(),
        workload: WorkloadLevel::High,
        ..policy(PolicyKind::Workload)
    };
    let actions = e.set_policy(&vm(), spec(high_one), ms(1), epoch).unwrap();
    assert_eq!(releases(&actions), vec![1]);
    assert_eq!(sets(&actions), vec![(2, MAX)]);
    // vCPU 5 does not exist; physical cores need the grant; no cores.
    let bad = |cores: &[u8], core_type| Policy {
        cores: VcpuList::from_slice(cores).unwrap(),
        core_type,
        ..policy(PolicyKind::Workload)
    };
    let cases = [
        (
            bad(&[5], CoreType::Virtual),
            Rejection::VcpuOutOfRange { vcpu: 5, count: 2 },
        ),
        (bad(&[1], CoreType::Physical), Rejection::PhysicalNotAllowed),
        (
            bad(&[], CoreType::Virtual),
            Rejection::InvalidPolicy("the policy names no core".into()),
        ),
    ];
    for (p, expected) in cases {
        assert_eq!(
            e.set_policy(&vm(), spec(p), ms(2), epoch).unwrap_err(),
            expected
        );
    }
    let no_mac = Policy {
        macs: MacList::default(),
        ..policy(PolicyKind::Traffic)
    };
    assert!(matches!(
        e.set_policy(&vm(), spec(no_mac), ms(3), epoch),
        Err(Rejection::InvalidPolicy(_))
    ));
    // A refused policy leaves the earlier one in force.
    assert_eq!(e.known_khz(CpuId(2)), Some(Khz(MAX)));
}

#[test]
fn a_guest_policy_over_the_channel_is_acked_and_noted_for_persistence() {
    let mut e = engine(false);
    let p = Policy {
        workload: WorkloadLevel::Low,
        ..policy(PolicyKind::Workload)
    };
    let chan = ChannelId { vm: vm(), index: 0 };
    let req = Request {
        vm_name: VmName::new("vm1").unwrap(),
        body: RequestBody::SetPolicy(p),
    };
    let d = e.handle(Duration::from_secs(1), &chan, Ok(&req));
    assert_eq!(d.reply, Reply::Verdict(Verdict::Ack));
    assert_eq!(sets(&d.actions), vec![(1, MIN), (2, MIN)]);
    assert!(d.notes.contains(&Note::PolicySet(vm(), p)));
    let remove = Request {
        vm_name: VmName::new("vm1").unwrap(),
        body: RequestBody::RemovePolicy,
    };
    let d = e.handle(Duration::from_secs(2), &chan, Ok(&remove));
    assert_eq!(d.reply, Reply::Verdict(Verdict::Ack));
    assert_eq!(releases(&d.actions), vec![1, 2]);
    assert!(d.notes.contains(&Note::PolicyRemoved(vm())));
}

#[test]
fn a_traffic_tick_decides_like_one_sample_per_policy() {
    // Two VMs sharing pCPUs 1-2 cross thresholds in the same tick: the
    // batch gives the same levels as feeding them one by one, whatever
    // the order of the samples and with samples of unknown VMs among them.
    let mk = || {
        let mut e = engine(false);
        e.add_vm(VmId::new("vm2"), VmSettings::default());
        e.set_placement(&VmId::new("vm2"), Placement::pinned(&[1, 2]));
        for name in ["vm1", "vm2"] {
            e.set_policy(
                &VmId::new(name),
                spec(policy(PolicyKind::Traffic)),
                ms(0),
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        }
        e
    };
    let (mut batch, mut single, mut shuffled) = (mk(), mk(), mk());
    for (t, a, b) in [
        (100, 10.0, 10.0),
        (200, 1_900_000.0, 10.0),
        (300, 2_500_000.0, 1_900_000.0),
        (400, 10.0, 10.0),
        (1000, 10.0, 10.0),
    ] {
        let samples = vec![(VmId::new("vm1"), Ok(a)), (VmId::new("vm2"), Ok(b))];
        let acts = batch.traffic_tick(samples, ms(t));
        single.traffic_sample(&VmId::new("vm1"), Ok(a), ms(t));
        single.traffic_sample(&VmId::new("vm2"), Ok(b), ms(t));
        let unordered = vec![
            (VmId::new("zz"), Ok(a)),
            (VmId::new("vm2"), Ok(b)),
            (VmId::new("vm15"), Ok(b)),
            (VmId::new("vm1"), Ok(a)),
            (VmId::new("vm0"), Ok(a)),
        ];
        shuffled.traffic_tick(unordered, ms(t));
        for cpu in [1, 2] {
            assert_eq!(
                batch.known_khz(CpuId(cpu)),
                single.known_khz(CpuId(cpu)),
                "t={t} cpu{cpu}"
            );
            assert_eq!(
                shuffled.known_khz(CpuId(cpu)),
                single.known_khz(CpuId(cpu)),
                "unordered samples, t={t} cpu{cpu}"
            );
        }
        assert!(
            acts.len() <= 2,
            "each domain at most once per tick: {acts:?}"
        );
    }
    assert_eq!(batch.known_khz(CpuId(1)), Some(Khz(MIN)));
}

#[test]
fn drops_raise_at_once_say_why_and_are_kept_with_the_policy() {
    use vmpower_engine::policy::drops::{Learned, TrafficReading};
    let mut e = engine(false);
    e.set_policy(
        &vm(),
        spec(policy(PolicyKind::Traffic)),
        ms(0),
        Timestamp::UNIX_EPOCH,
    )
    .unwrap();
    let reading = |rate_pps, drops_pps| {
        vec![(
            vm(),
            Ok(TrafficReading {
                rate_pps,
                drops_pps,
            }),
        )]
    };
    let mut acts = Vec::new();
    e.traffic_tick_into(&reading(100.0, 0.0), ms(100), &mut acts);
    assert!(e.take_learned().is_empty());
    let min = e.known_khz(CpuId(1));
    // Drops at min while receiving 1 Mpps: max at once, the trigger says so.
    acts.clear();
    e.traffic_tick_into(&reading(1_000_000.0, 5_000.0), ms(200), &mut acts);
    assert_ne!(e.known_khz(CpuId(1)), min);
    let drops = acts.iter().find_map(|a| match a {
        Action::Set(change) => match &change.trigger {
            Trigger::Policy { input, .. } => input.drops,
            _ => None,
        },
        _ => None,
    });
    let d = drops.expect("a decision whose input has the drops");
    assert_eq!(
        (d.level, d.rate_pps, d.drops_pps),
        (Level::Min, 1_000_000.0, 5_000.0)
    );
    let learned = e.take_learned();
    assert_eq!(learned.len(), 1);
    assert_eq!(learned[0].1.min.map(|c| c.rate_pps), Some(1_000_000.0));
    assert!(e.take_learned().is_empty(), "taken once");
    // What was learned is in the policy's extensions, so a policy
    // restored from them starts from it.
    let st = e.policy_status(&vm()).unwrap();
    assert_eq!(st.spec.ext.learned, Some(learned[0].1));
    let mut again = engine(false);
    again
        .set_policy(&vm(), st.spec.clone(), ms(0), Timestamp::UNIX_EPOCH)
        .unwrap();
    let restored: Learned = again.policy_status(&vm()).unwrap().learned;
    assert_eq!(restored.min.map(|c| c.rate_pps), Some(1_000_000.0));
}

//! Table-driven tests of the engine's handling of direct requests,
//! authorisation, queries, arbitration of shared pCPUs and re-pinning.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use vmpower_engine::{
    Action, ChannelId, CoreKey, Decision, Engine, EngineConfig, Note, PcpuSpec, Placement,
    RateLimit, Rejection, Reply, Trigger, VmId, VmSettings, Winner,
};
use vmpower_proto::{CoreType, QueryKind, Request, RequestBody, ScalingUnit, Verdict, VmName};
use vmpower_types::levels::FreqTable;
use vmpower_types::{CpuId, Khz};

const T0: Duration = Duration::from_secs(1);

/// acpi-cpufreq with turbo: index 0 is the pseudo-frequency.
fn turbo_table() -> FreqTable {
    FreqTable::new(
        [2_301_000, 2_300_000, 2_000_000, 1_600_000, 1_200_000]
            .map(Khz)
            .to_vec(),
    )
    .unwrap()
}

fn plain_table() -> FreqTable {
    FreqTable::new([2_300_000, 1_800_000, 1_200_000].map(Khz).to_vec()).unwrap()
}

/// A host of 8 pCPUs at 2.3 GHz (index 1), each its own domain except
/// 6 and 7, which share one; pCPU 5 has a table without turbo.
fn engine() -> Engine {
    engine_with(EngineConfig::default())
}

fn engine_with(config: EngineConfig) -> Engine {
    let mut e = Engine::new(config);
    for cpu in 0..6 {
        let table = if cpu == 5 {
            plain_table()
        } else {
            turbo_table()
        };
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(cpu),
            table,
            current: Khz(2_300_000),
            domain: vec![CpuId(cpu)],
            high_priority: cpu == 2,
            enable_turbo_moves_to_max: true,
        });
    }
    for cpu in [6, 7] {
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(cpu),
            table: turbo_table(),
            current: Khz(2_300_000),
            domain: vec![CpuId(6), CpuId(7)],
            high_priority: false,
            enable_turbo_moves_to_max: true,
        });
    }
    e
}

fn vm(name: &str) -> VmId {
    VmId::new(name)
}

fn chan(name: &str) -> ChannelId {
    ChannelId {
        vm: vm(name),
        index: 0,
    }
}

fn add(e: &mut Engine, name: &str, settings: VmSettings, pcpus: &[u32]) {
    e.add_vm(vm(name), settings);
    let actions = e.set_placement(&vm(name), Placement::pinned(pcpus));
    assert!(actions.is_empty(), "placing a VM changes nothing by itself");
}

fn power(vcpu: u64, unit: ScalingUnit) -> Request {
    power_as("", vcpu, CoreType::Virtual, unit)
}

fn power_as(name: &str, id: u64, core_type: CoreType, unit: ScalingUnit) -> Request {
    Request {
        vm_name: VmName::new(name).unwrap(),
        body: RequestBody::Power {
            resource_id: id,
            core_type,
            unit,
        },
    }
}

fn send(e: &mut Engine, name: &str, req: &Request) -> Decision {
    e.handle(T0, &chan(name), Ok(req))
}

/// The (cpu, kHz) of every Set action.
fn sets(d: &Decision) -> Vec<(u32, u32)> {
    d.actions
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

fn rejection(d: &Decision) -> Option<&Rejection> {
    d.notes.iter().find_map(|n| match n {
        Note::Rejected(r) => Some(r),
        _ => None,
    })
}

#[test]
fn every_unit_follows_librte_power_semantics() {
    use ScalingUnit::*;
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[3]);
    // (unit, expected writes): the core starts at 2.3 GHz (index 1).
    let steps: &[(ScalingUnit, &[(u32, u32)])] = &[
        (ScaleMin, &[(3, 1_200_000)]),
        (ScaleMin, &[]),
        (ScaleUp, &[(3, 1_600_000)]),
        (ScaleDown, &[(3, 1_200_000)]),
        (ScaleDown, &[]),
        (ScaleMax, &[(3, 2_301_000)]),
        (ScaleUp, &[]),
        (DisableTurbo, &[(3, 2_300_000)]),
        (ScaleUp, &[]),
        (ScaleMax, &[]),
        // acpi-cpufreq (as DPDK's backend): enabling turbo moves to max.
        (EnableTurbo, &[(3, 2_301_000)]),
        (ScaleUp, &[]),
    ];
    for (i, (unit, expected)) in steps.iter().enumerate() {
        let d = send(&mut e, "vm1", &power(0, *unit));
        assert_eq!(d.reply, Reply::Verdict(Verdict::Ack), "step {i} {unit:?}");
        assert_eq!(sets(&d), expected.to_vec(), "step {i} {unit:?}");
    }
    assert_eq!(e.known_khz(CpuId(3)), Some(Khz(2_301_000)));
    assert!(e.is_managed(CpuId(3)));
}

#[test]
fn turbo_follows_dpdk_backend_of_each_driver() {
    use ScalingUnit::*;
    // (moves to max on ENABLE_TURBO, steps): the core starts at 2.3 GHz.
    type Steps = &'static [(ScalingUnit, &'static [(u32, u32)])];
    let cases: [(bool, Steps); 2] = [
        // intel_pstate: ENABLE_TURBO only sets the flag.
        (
            false,
            &[
                // The first request takes the core over, where it is.
                (DisableTurbo, &[(3, 2_300_000)]),
                (EnableTurbo, &[]),
                (ScaleUp, &[(3, 2_301_000)]),
                // Disabling at index 0 moves to max without turbo.
                (DisableTurbo, &[(3, 2_300_000)]),
            ],
        ),
        // acpi-cpufreq, amd-pstate, cppc: it moves to max, from anywhere;
        // DISABLE_TURBO below index 1 leaves the core where it is.
        (
            true,
            &[
                (ScaleMin, &[(3, 1_200_000)]),
                (DisableTurbo, &[]),
                (EnableTurbo, &[(3, 2_301_000)]),
                (DisableTurbo, &[(3, 2_300_000)]),
            ],
        ),
    ];
    for (moves, steps) in cases {
        let mut e = engine();
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(3),
            table: turbo_table(),
            current: Khz(2_300_000),
            domain: vec![CpuId(3)],
            high_priority: false,
            enable_turbo_moves_to_max: moves,
        });
        add(&mut e, "vm1", VmSettings::default(), &[3]);
        for (i, (unit, expected)) in steps.iter().enumerate() {
            let d = send(&mut e, "vm1", &power(0, *unit));
            assert_eq!(d.reply, Reply::Verdict(Verdict::Ack), "{moves} step {i}");
            assert_eq!(sets(&d), expected.to_vec(), "{moves} step {i} {unit:?}");
        }
    }
}

#[test]
fn each_change_names_its_cause() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[1, 3]);
    let d = send(&mut e, "vm1", &power(1, ScalingUnit::ScaleMin));
    let [Action::Set(change)] = d.actions.as_slice() else {
        panic!("one set expected: {d:?}");
    };
    assert_eq!(change.from, Khz(2_300_000));
    assert_eq!(change.to, Khz(1_200_000));
    assert_eq!(*change.domain, [CpuId(3)]);
    assert_eq!(change.winner, Winner::Vm(vm("vm1")));
    assert_eq!(
        change.trigger,
        Trigger::Request {
            vm: vm("vm1"),
            core: CoreKey::Vcpu(1),
            unit: ScalingUnit::ScaleMin
        }
    );
}

#[test]
fn refusals_are_nacked_with_their_reason() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[1, 5]);
    // vCPU 2 spans pCPUs 2-3.
    let mut p = Placement::pinned(&[1, 5]);
    p.vcpus = 4;
    p.affinity.insert(2, BTreeSet::from([CpuId(2), CpuId(3)]));
    e.set_placement(&vm("vm1"), p);
    let cases: Vec<(Request, Rejection)> = vec![
        (
            power(4, ScalingUnit::ScaleMin),
            Rejection::VcpuOutOfRange { vcpu: 4, count: 4 },
        ),
        (
            power(u64::MAX, ScalingUnit::ScaleMin),
            Rejection::VcpuOutOfRange {
                vcpu: u64::MAX,
                count: 4,
            },
        ),
        (power(3, ScalingUnit::ScaleMin), Rejection::NoPlacement(3)),
        (
            power(2, ScalingUnit::ScaleMin),
            Rejection::AffinitySpansPcpus {
                vcpu: 2,
                pcpus: "2-3".into(),
            },
        ),
        (
            power_as("", 1, CoreType::Physical, ScalingUnit::ScaleMin),
            Rejection::PhysicalNotAllowed,
        ),
        (
            power(1, ScalingUnit::EnableTurbo),
            Rejection::NotApplicable("turbo is not available on this core".into()),
        ),
    ];
    for (req, expected) in cases {
        let d = send(&mut e, "vm1", &req);
        assert_eq!(d.reply, Reply::Verdict(Verdict::Nack), "{req:?}");
        assert_eq!(rejection(&d), Some(&expected), "{req:?}");
        assert!(d.actions.is_empty(), "{req:?}");
    }
    // Unknown VM, and a pCPU without frequency control.
    let d = send(&mut e, "ghost", &power(0, ScalingUnit::ScaleMin));
    assert_eq!(rejection(&d), Some(&Rejection::UnknownVm("ghost".into())));
    add(&mut e, "vm2", VmSettings::default(), &[42]);
    let d = send(&mut e, "vm2", &power(0, ScalingUnit::ScaleMin));
    assert_eq!(rejection(&d), Some(&Rejection::NotControllable(CpuId(42))));
    // A record that did not decode is NACKed with the decoder's reason.
    let d = e.handle(
        T0,
        &chan("vm1"),
        Err(Rejection::Malformed("bad unit 9".into())),
    );
    assert_eq!(d.reply, Reply::Verdict(Verdict::Nack));
    assert_eq!(rejection(&d).map(Rejection::label), Some("malformed"));
}

#[test]
fn grants_widen_what_a_vm_may_drive() {
    let mut e = engine();
    let settings = VmSettings {
        physical_allowed: true,
        multi_pcpu_allowed: true,
        ..VmSettings::default()
    };
    add(&mut e, "vm1", settings, &[1]);
    let mut p = Placement::pinned(&[1]);
    p.vcpus = 2;
    p.affinity.insert(1, BTreeSet::from([CpuId(2), CpuId(3)]));
    e.set_placement(&vm("vm1"), p);
    let d = send(&mut e, "vm1", &power(1, ScalingUnit::ScaleMin));
    assert_eq!(sets(&d), vec![(2, 1_200_000), (3, 1_200_000)]);
    // Physical: its own pCPU yes, another no.
    let d = send(
        &mut e,
        "vm1",
        &power_as("", 1, CoreType::Physical, ScalingUnit::ScaleMin),
    );
    assert_eq!(sets(&d), vec![(1, 1_200_000)]);
    let d = send(
        &mut e,
        "vm1",
        &power_as("", 4, CoreType::Physical, ScalingUnit::ScaleMin),
    );
    assert_eq!(rejection(&d), Some(&Rejection::PhysicalNotOwned(4)));
}

#[test]
fn shared_pcpu_gets_the_highest_want_and_silent_vms_count_as_max() {
    let mut e = engine();
    add(&mut e, "a", VmSettings::default(), &[3]);
    add(&mut e, "b", VmSettings::default(), &[3]);
    // a wants min, b asked nothing: b counts as max (turbo, index 0).
    let d = send(&mut e, "a", &power(0, ScalingUnit::ScaleMin));
    assert_eq!(d.reply, Reply::Verdict(Verdict::Ack));
    assert_eq!(sets(&d), vec![(3, 2_301_000)]);
    let [Action::Set(c)] = d.actions.as_slice() else {
        panic!()
    };
    assert_eq!(
        c.winner,
        Winner::DefaultMax,
        "the silent VM's default max won"
    );
    // b steps down from where the pCPU is now (turbo): to 2.3 GHz, still
    // the higher of the two wants.
    let d = send(&mut e, "b", &power(0, ScalingUnit::ScaleDown));
    assert_eq!(sets(&d), vec![(3, 2_300_000)]);
    // b goes to min too: now both are at min.
    let d = send(&mut e, "b", &power(0, ScalingUnit::ScaleMin));
    assert_eq!(sets(&d), vec![(3, 1_200_000)]);
    // a leaves: b's min stays, nothing to write.
    assert!(e.remove_vm(&vm("a")).is_empty());
    // b leaves: nobody wants anything, the pCPU is given back.
    assert_eq!(releases(&e.remove_vm(&vm("b"))), vec![3]);
    assert!(!e.is_managed(CpuId(3)));
}

#[test]
fn a_frequency_domain_moves_as_one() {
    let mut e = engine();
    add(&mut e, "a", VmSettings::default(), &[6]);
    add(&mut e, "b", VmSettings::default(), &[7]);
    // b uses pCPU 7 of the same domain and asked nothing: max.
    let d = send(&mut e, "a", &power(0, ScalingUnit::ScaleMin));
    assert_eq!(sets(&d), vec![(6, 2_301_000)]);
    let d = send(&mut e, "b", &power(0, ScalingUnit::ScaleMin));
    let [Action::Set(c)] = d.actions.as_slice() else {
        panic!()
    };
    assert_eq!((c.cpu, c.to), (CpuId(6), Khz(1_200_000)));
    assert_eq!(*c.domain, [CpuId(6), CpuId(7)]);
}

#[test]
fn a_wanted_level_follows_its_vcpu_when_re_pinned() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[2]);
    assert_eq!(
        sets(&send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMin))),
        vec![(2, 1_200_000)]
    );
    let actions = e.set_placement(&vm("vm1"), Placement::pinned(&[4]));
    assert_eq!(releases(&actions), vec![2]);
    let set: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Set(c) => Some((c.cpu.0, c.to.0, c.trigger.clone())),
            Action::Release { .. } => None,
        })
        .collect();
    assert_eq!(
        set,
        vec![(4, 1_200_000, Trigger::Placement(vm("vm1")))],
        "the want moved to pCPU 4"
    );
    // The next request acts on the new pCPU.
    assert_eq!(
        sets(&send(&mut e, "vm1", &power(0, ScalingUnit::ScaleUp))),
        vec![(4, 1_600_000)]
    );
    assert!(!e.is_managed(CpuId(2)));
}

#[test]
fn queries_are_answered_only_when_allowed() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[1, 2, 5]);
    let q = |kind, id| Request {
        vm_name: VmName::new("vm1").unwrap(),
        body: RequestBody::Query {
            kind,
            resource_id: id,
        },
    };
    let d = send(&mut e, "vm1", &q(QueryKind::FreqList, 0));
    assert_eq!(rejection(&d), Some(&Rejection::QueriesNotAllowed));
    assert_eq!(d.reply, Reply::Verdict(Verdict::Nack));

    let allowed = VmSettings {
        queries_allowed: true,
        ..VmSettings::default()
    };
    e.add_vm(vm("vm1"), allowed);
    send(&mut e, "vm1", &power(1, ScalingUnit::ScaleMin));
    let Reply::FreqList(list) = send(&mut e, "vm1", &q(QueryKind::FreqList, 0)).reply else {
        panic!("freq list expected")
    };
    assert_eq!(list.num_vcpu, 3);
    assert_eq!(
        list.freqs_khz,
        [2_300_000, 1_200_000, 2_300_000, 0, 0, 0, 0, 0]
    );
    assert_eq!(list.vm_name.as_str(), "vm1");
    let Reply::FreqList(one) = send(&mut e, "vm1", &q(QueryKind::Freq, 1)).reply else {
        panic!("freq list expected")
    };
    assert_eq!(one.freqs_khz, [0, 1_200_000, 0, 0, 0, 0, 0, 0]);
    let Reply::Caps(caps) = send(&mut e, "vm1", &q(QueryKind::CapsList, 0)).reply else {
        panic!("caps expected")
    };
    assert_eq!(
        &caps.turbo[..3],
        &[true, true, false],
        "pCPU 5 has no turbo"
    );
    assert_eq!(
        &caps.priority[..3],
        &[false, true, false],
        "pCPU 2 is high-priority"
    );
    let d = send(&mut e, "vm1", &q(QueryKind::Caps, 3));
    assert_eq!(
        rejection(&d),
        Some(&Rejection::VcpuOutOfRange { vcpu: 3, count: 3 })
    );
}

#[test]
fn the_channel_is_the_identity_not_the_packet() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[1]);
    add(&mut e, "vm2", VmSettings::default(), &[2]);
    // vm1 claims to be vm2: its own vCPU 0 (pCPU 1) moves, not vm2's.
    let d = send(
        &mut e,
        "vm1",
        &power_as("vm2", 0, CoreType::Virtual, ScalingUnit::ScaleMin),
    );
    assert_eq!(sets(&d), vec![(1, 1_200_000)]);
    assert!(d.notes.contains(&Note::NameMismatch {
        channel: chan("vm1"),
        claimed: "vm2".into()
    }));
    // An empty name (librte_power sends none) and the right name are fine.
    for name in ["", "vm1"] {
        let d = send(
            &mut e,
            "vm1",
            &power_as(name, 0, CoreType::Virtual, ScalingUnit::ScaleUp),
        );
        assert!(d.notes.is_empty(), "{name:?}: {:?}", d.notes);
    }
}

#[test]
fn connect_is_noted_and_not_answered() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[1]);
    let req = Request {
        vm_name: VmName::default(),
        body: RequestBody::Connect { resource_id: 0 },
    };
    let d = send(&mut e, "vm1", &req);
    assert_eq!(d.reply, Reply::None);
    assert_eq!(d.notes, vec![Note::Connected(chan("vm1"))]);
}

#[test]
fn disabled_channels_are_read_and_ignored() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[1]);
    e.set_channel_enabled(&chan("vm1"), false, T0);
    let d = send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMin));
    assert_eq!(d.reply, Reply::None);
    assert_eq!(rejection(&d), Some(&Rejection::ChannelDisabled));
    assert!(d.actions.is_empty());
    e.set_channel_enabled(&chan("vm1"), true, T0);
    assert_eq!(
        sets(&send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMin))),
        vec![(1, 1_200_000)]
    );
}

#[test]
fn a_flooding_channel_is_limited_and_others_are_not() {
    let config = EngineConfig {
        rate_limit: RateLimit {
            burst: 5,
            per_second: 10,
        },
        ..EngineConfig::default()
    };
    let mut e = engine_with(config);
    add(&mut e, "noisy", VmSettings::default(), &[1]);
    add(&mut e, "quiet", VmSettings::default(), &[2]);
    // A channel not seen yet may send its burst.
    assert_eq!(e.channel_allowance(&chan("noisy"), T0), 5);
    let req = power(0, ScalingUnit::ScaleDown);
    send(&mut e, "noisy", &req);
    assert_eq!(e.channel_allowance(&chan("noisy"), T0), 4);
    let verdicts: Vec<_> = (1..8)
        .map(|_| rejection(&send(&mut e, "noisy", &req)).map(Rejection::label))
        .collect();
    assert_eq!(&verdicts[..4], &[None; 4]);
    assert_eq!(&verdicts[4..], &[Some("rate_limited"); 3]);
    assert_eq!(e.channel_allowance(&chan("noisy"), T0), 0);
    // Refused without an answer: a flood must not cost a reply each.
    assert_eq!(send(&mut e, "noisy", &req).reply, Reply::None);
    assert_eq!(
        e.channel_wait(&chan("noisy"), T0),
        Duration::from_millis(100)
    );
    assert_eq!(rejection(&send(&mut e, "quiet", &req)), None);
    // 100 ms later the noisy channel has one token again.
    assert_eq!(
        e.channel_wait(&chan("noisy"), T0 + Duration::from_millis(100)),
        Duration::ZERO
    );
    assert_eq!(
        e.channel_allowance(&chan("noisy"), T0 + Duration::from_millis(100)),
        1
    );
    let later = T0 + Duration::from_millis(100);
    assert_eq!(rejection(&e.handle(later, &chan("noisy"), Ok(&req))), None);
}

#[test]
fn a_failed_write_is_undone_and_retried_on_the_next_request() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[1]);
    let d = send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMin));
    let [Action::Set(change)] = d.actions.as_slice() else {
        panic!()
    };
    e.write_failed(change);
    assert_eq!(e.known_khz(CpuId(1)), Some(Khz(2_300_000)));
    assert!(!e.is_managed(CpuId(1)));
    // The want is recorded; the same request tries the write again.
    assert_eq!(
        sets(&send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMin))),
        vec![(1, 1_200_000)]
    );
}

#[test]
fn placement_of_many_vms_keeps_arbitration_consistent() {
    // Four VMs on two pCPUs; the level of each pCPU is the max of the
    // wants of its users (silent users count as max).
    let mut e = engine();
    let layout: BTreeMap<&str, u32> = [("a", 1), ("b", 1), ("c", 2), ("d", 2)].into();
    for (name, cpu) in &layout {
        add(&mut e, name, VmSettings::default(), &[*cpu]);
    }
    for name in ["a", "b", "c"] {
        send(&mut e, name, &power(0, ScalingUnit::ScaleMin));
    }
    assert_eq!(
        e.known_khz(CpuId(1)),
        Some(Khz(1_200_000)),
        "a and b at min"
    );
    assert_eq!(e.known_khz(CpuId(2)), Some(Khz(2_301_000)), "d is silent");
    let actions = e.remove_vm(&vm("d"));
    assert_eq!(releases(&actions), Vec::<u32>::new());
    assert_eq!(
        e.known_khz(CpuId(2)),
        Some(Khz(1_200_000)),
        "c alone at min"
    );
}

#[test]
fn the_operator_overrides_vms_until_it_releases() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[1]);
    assert_eq!(
        sets(&send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMin))),
        vec![(1, 1_200_000)]
    );
    let actions = e.operator_apply(CpuId(1), ScalingUnit::ScaleMax).unwrap();
    let [Action::Set(c)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!((c.to, &c.winner), (Khz(2_301_000), &Winner::Operator));
    // The guest is told the pCPU is held.
    let d = send(&mut e, "vm1", &power(0, ScalingUnit::ScaleDown));
    assert_eq!(rejection(&d), Some(&Rejection::OperatorPinned(CpuId(1))));
    // Released: the VM's own want (min) is back in force.
    let actions = e.operator_release(CpuId(1)).unwrap();
    assert_eq!(
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Set(c) => Some(c.to),
                Action::Release { .. } => None,
            })
            .collect::<Vec<_>>(),
        vec![Khz(1_200_000)]
    );
    // An operator level on a pCPU no VM uses is released with it.
    e.operator_apply(CpuId(4), ScalingUnit::ScaleMin).unwrap();
    assert_eq!(releases(&e.operator_release(CpuId(4)).unwrap()), vec![4]);
    assert_eq!(
        e.operator_apply(CpuId(40), ScalingUnit::ScaleMin),
        Err(Rejection::NotControllable(CpuId(40)))
    );
}

#[test]
fn a_pcpu_declared_again_with_a_shorter_table_keeps_working() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[3]);
    // At the last entry of the five-entry table (index 4).
    let d = send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMin));
    assert_eq!(sets(&d), vec![(3, 1_200_000)]);
    // The driver came back with three entries; the CPU is now at 1.8 GHz.
    e.add_pcpu(PcpuSpec {
        cpu: CpuId(3),
        table: plain_table(),
        current: Khz(1_800_000),
        domain: vec![CpuId(3)],
        high_priority: false,
        enable_turbo_moves_to_max: true,
    });
    assert_eq!(e.known_khz(CpuId(3)), Some(Khz(1_800_000)));
    // The VM's min is the new table's last entry, and it is written
    // (the CPU is not there).
    let d = send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMin));
    assert_eq!(d.reply, Reply::Verdict(Verdict::Ack));
    assert_eq!(sets(&d), vec![(3, 1_200_000)]);
    let d = send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMax));
    assert_eq!(sets(&d), vec![(3, 2_300_000)]);
}

#[test]
fn a_yielded_pcpu_is_refused_and_set_by_no_one_until_the_operator_takes_it() {
    let mut e = engine();
    add(&mut e, "vm1", VmSettings::default(), &[1]);
    add(&mut e, "vm2", VmSettings::default(), &[1]);
    send(&mut e, "vm1", &power(0, ScalingUnit::ScaleMin));
    assert!(e.yield_pcpu(CpuId(1)));
    assert!(e.is_yielded(CpuId(1)) && !e.is_managed(CpuId(1)));
    assert!(!e.yield_pcpu(CpuId(40)), "not controllable");
    // The guests are told why; nothing is set, nothing released.
    let d = send(&mut e, "vm2", &power(0, ScalingUnit::ScaleMax));
    assert_eq!(rejection(&d), Some(&Rejection::Yielded(CpuId(1))));
    assert_eq!(
        Rejection::Yielded(CpuId(1)).nack_reason(),
        vmpower_proto::contract::NackReason::NotControllable
    );
    assert!(e.remove_vm(&vm("vm1")).is_empty());
    // The operator's command takes it back; its release hands it to the
    // VMs' arbitration again.
    let actions = e.operator_apply(CpuId(1), ScalingUnit::ScaleMin).unwrap();
    let [Action::Set(c)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!((c.to, &c.winner), (Khz(1_200_000), &Winner::Operator));
    assert!(!e.is_yielded(CpuId(1)));
    e.operator_release(CpuId(1)).unwrap();
    let d = send(&mut e, "vm2", &power(0, ScalingUnit::ScaleMax));
    assert_eq!(rejection(&d), None);
    assert_eq!(sets(&d), vec![(1, 2_301_000)]);
}

//! BRANCH_RATIO thresholds per pCPU: the policy's own threshold wins, then
//! the operator's per-core map (`Engine::set_branch_thresholds`), then the
//! engine's default.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use vmpower_engine::{
    Action, Engine, EngineConfig, PcpuSpec, Placement, PolicyExtensions, PolicySpec, VmId,
    VmSettings,
};
use vmpower_proto::{Policy, PolicyKind, VcpuList};
use vmpower_types::levels::FreqTable;
use vmpower_types::{CpuId, Khz};

const MAX: u32 = 2_300_000;

fn engine() -> Engine {
    let mut e = Engine::new(EngineConfig {
        branch_counters: true,
        ..EngineConfig::default()
    });
    let table = FreqTable::new([2_300_000, 1_600_000, 800_000].map(Khz).to_vec()).unwrap();
    for cpu in 0..4 {
        e.add_pcpu(PcpuSpec {
            cpu: CpuId(cpu),
            table: table.clone(),
            current: Khz(1_600_000),
            domain: vec![CpuId(cpu)],
            high_priority: false,
            enable_turbo_moves_to_max: true,
        });
    }
    e.add_vm(VmId::new("vm1"), VmSettings::default());
    e.set_placement(&VmId::new("vm1"), Placement::pinned(&[1, 2]));
    e
}

fn spec(threshold: Option<f64>) -> PolicySpec {
    PolicySpec {
        policy: Policy::new(
            PolicyKind::BranchRatio,
            VcpuList::from_slice(&[0, 1]).unwrap(),
        ),
        ext: PolicyExtensions {
            branch_threshold: threshold,
            ..PolicyExtensions::default()
        },
        tz: TimeZone::UTC,
    }
}

fn maxed(actions: &[Action]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Set(c) if c.to.0 == MAX => Some(c.cpu.0),
            _ => None,
        })
        .collect()
}

#[test]
fn the_operators_per_core_threshold_applies_when_the_policy_has_none() {
    let mut e = engine();
    e.set_branch_thresholds(BTreeMap::from([(CpuId(1), 0.05)]));
    let at = Timestamp::UNIX_EPOCH;
    e.set_policy(&VmId::new("vm1"), spec(None), Duration::ZERO, at)
        .unwrap();
    let ms = Duration::from_millis;
    // 0.03 is above the default (0.01) but below pCPU 1's 0.05.
    assert!(maxed(&e.branch_sample(CpuId(1), 0.03, ms(1))).is_empty());
    assert_eq!(maxed(&e.branch_sample(CpuId(2), 0.03, ms(2))), vec![2]);
    assert_eq!(maxed(&e.branch_sample(CpuId(1), 0.06, ms(3))), vec![1]);
}

#[test]
fn a_policys_own_threshold_wins_over_the_operators() {
    let mut e = engine();
    e.set_branch_thresholds(BTreeMap::from([(CpuId(1), 0.05)]));
    let at = Timestamp::UNIX_EPOCH;
    e.set_policy(&VmId::new("vm1"), spec(Some(0.2)), Duration::ZERO, at)
        .unwrap();
    let ms = Duration::from_millis;
    assert!(maxed(&e.branch_sample(CpuId(1), 0.1, ms(1))).is_empty());
    assert_eq!(maxed(&e.branch_sample(CpuId(1), 0.25, ms(2))), vec![1]);
}

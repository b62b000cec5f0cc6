//! Property tests: whatever sequence of requests arrives, every write stays
//! inside the frequency table, and each pCPU runs at the highest level any
//! of its VMs wants (silent VMs counting as max), as a shadow model says.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use vmpower_engine::{
    Action, ChannelId, Engine, EngineConfig, PcpuSpec, Placement, RateLimit, Reply, VmId,
    VmSettings,
};
use vmpower_proto::{CoreType, Request, RequestBody, ScalingUnit, Verdict, VmName};
use vmpower_types::levels::{FreqTable, LevelState, ScalingOp};
use vmpower_types::{CpuId, Khz};

fn table() -> FreqTable {
    FreqTable::new(
        [2_301_000, 2_300_000, 2_000_000, 1_600_000, 1_200_000]
            .map(Khz)
            .to_vec(),
    )
    .unwrap()
}

/// VM index → pCPU of each of its two vCPUs. pCPU 2 and 3 are shared.
const LAYOUT: [[u32; 2]; 3] = [[1, 2], [2, 3], [3, 3]];

fn op(unit: ScalingUnit) -> ScalingOp {
    match unit {
        ScalingUnit::ScaleUp => ScalingOp::Up,
        ScalingUnit::ScaleDown => ScalingOp::Down,
        ScalingUnit::ScaleMax => ScalingOp::Max,
        ScalingUnit::ScaleMin => ScalingOp::Min,
        ScalingUnit::EnableTurbo => ScalingOp::EnableTurbo,
        ScalingUnit::DisableTurbo => ScalingOp::DisableTurbo,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pcpus_follow_the_highest_want(
        steps in prop::collection::vec((0usize..3, 0u64..2, 0usize..6), 1..60),
        turbo_moves in any::<bool>(),
    ) {
        let t = table();
        let limit = RateLimit { burst: 1000, per_second: 1000 };
        let mut e = Engine::new(EngineConfig { rate_limit: limit, ..EngineConfig::default() });
        for cpu in 1..=3 {
            e.add_pcpu(PcpuSpec {
                cpu: CpuId(cpu),
                table: t.clone(),
                current: Khz(2_300_000),
                domain: vec![CpuId(cpu)],
                high_priority: false,
                enable_turbo_moves_to_max: turbo_moves,
            });
        }
        for (i, pcpus) in LAYOUT.iter().enumerate() {
            let id = VmId::new(&format!("vm{i}"));
            e.add_vm(id.clone(), VmSettings::default());
            e.set_placement(&id, Placement::pinned(pcpus));
        }
        // Shadow model: wants per (vm, vcpu), level per pCPU.
        let mut wants: BTreeMap<(usize, u64), LevelState> = BTreeMap::new();
        let mut level: BTreeMap<u32, usize> = (1..=3).map(|c| (c, 1)).collect();
        for (vm, vcpu, unit) in steps {
            let unit = ScalingUnit::ALL[unit];
            let pcpu = LAYOUT[vm][usize::try_from(vcpu).unwrap()];
            let req = Request {
                vm_name: VmName::default(),
                body: RequestBody::Power { resource_id: vcpu, core_type: CoreType::Virtual, unit },
            };
            let chan = ChannelId { vm: VmId::new(&format!("vm{vm}")), index: 0 };
            let d = e.handle(Duration::from_secs(1), &chan, Ok(&req));

            let mut state = wants.get(&(vm, vcpu)).copied()
                .unwrap_or_else(|| LevelState::new(&t, level[&pcpu]));
            let ok = state.apply_op(&t, op(unit)).is_ok();
            if ok && unit == ScalingUnit::EnableTurbo && turbo_moves {
                // acpi-cpufreq, amd-pstate, cppc: enabling turbo moves to max.
                state.apply_op(&t, ScalingOp::Max).unwrap();
            }
            prop_assert_eq!(&d.reply, &Reply::Verdict(if ok { Verdict::Ack } else { Verdict::Nack }));
            if ok {
                wants.insert((vm, vcpu), state);
            }
            for action in &d.actions {
                let Action::Set(c) = action else { panic!("no release expected: {action:?}") };
                prop_assert!(t.index_of(c.to).is_some(), "{:?} outside the table", c.to);
                prop_assert_eq!(t.get(c.index), Some(c.to));
            }
            // Expected level of every pCPU somebody asked about.
            for cpu in 1..=3u32 {
                let mut asked = false;
                let mut best = usize::MAX;
                for (v, pcpus) in LAYOUT.iter().enumerate() {
                    let mine: Vec<usize> = (0..2u64)
                        .filter(|vc| pcpus[usize::try_from(*vc).unwrap()] == cpu)
                        .filter_map(|vc| wants.get(&(v, vc)).map(LevelState::index))
                        .collect();
                    if !pcpus.contains(&cpu) {
                        continue;
                    }
                    let want = mine.iter().min().copied().unwrap_or(0);
                    asked |= !mine.is_empty();
                    best = best.min(want);
                }
                if asked {
                    level.insert(cpu, best);
                    prop_assert_eq!(e.known_khz(CpuId(cpu)), t.get(best), "pCPU {}", cpu);
                    prop_assert!(e.is_managed(CpuId(cpu)));
                } else {
                    prop_assert!(!e.is_managed(CpuId(cpu)));
                }
            }
        }
    }
}

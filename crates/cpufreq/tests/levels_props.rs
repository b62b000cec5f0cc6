//! Property: whatever sequence of guest operations and engine levels a CPU
//! receives, on any driver family, the façade keeps the level inside the
//! table and the control file(s) always hold the table entry of the level.

// Helpers outside #[test] functions panic on setup failure, like the tests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use proptest::prelude::*;
use vmpower_cpufreq::control::{Change, ControlError, CpuFreq};
use vmpower_cpufreq::discovery::paths::cpufreq_file;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::levels::{Level, LevelError, ScalingOp};
use vmpower_cpufreq::{CpuId, Driver, SysfsIo};

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::Op(ScalingOp::Up)),
        Just(Change::Op(ScalingOp::Down)),
        Just(Change::Op(ScalingOp::Max)),
        Just(Change::Op(ScalingOp::Min)),
        Just(Change::Op(ScalingOp::EnableTurbo)),
        Just(Change::Op(ScalingOp::DisableTurbo)),
        Just(Change::Level(Level::Min)),
        Just(Change::Level(Level::Medium)),
        Just(Change::Level(Level::Max)),
        (0usize..40).prop_map(|i| Change::Level(Level::Index(i))),
    ]
}

fn driver() -> impl Strategy<Value = (Driver, bool)> {
    prop_oneof![
        Just((Driver::AcpiCpufreq, true)),
        Just((Driver::AcpiCpufreq, false)),
        Just((Driver::IntelCpufreq, true)),
        Just((Driver::AmdPstate, true)),
        Just((Driver::CppcCpufreq, false)),
        Just((Driver::IntelPstate, true)),
        Just((Driver::AmdPstateEpp, false)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_file_always_holds_the_level(
        (driver, turbo) in driver(),
        changes in prop::collection::vec(change(), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let bounds = matches!(driver, Driver::IntelPstate | Driver::AmdPstateEpp);
        let fake = Arc::new(FakeSysfs::builder(1).driver(driver).turbo(turbo).build().unwrap());
        let io: Arc<dyn SysfsIo> = fake.clone();
        let mut freq = CpuFreq::new(io, dir.path().join("t.json")).unwrap();
        let cpu = CpuId(0);
        let table = freq.table(cpu).unwrap().clone();
        let file = if bounds { "scaling_max_freq" } else { "scaling_setspeed" };
        for change in changes {
            match freq.apply(cpu, change) {
                Ok(out) => {
                    prop_assert!(out.index < table.len());
                    prop_assert_eq!(Some(out.new_khz), table.get(out.index));
                    let held = fake.read(&cpufreq_file(cpu, file)).unwrap();
                    prop_assert_eq!(held, out.new_khz.0.to_string());
                    if bounds {
                        let min = fake.read(&cpufreq_file(cpu, "scaling_min_freq")).unwrap();
                        prop_assert_eq!(min, out.new_khz.0.to_string());
                    }
                }
                Err(ControlError::Level { source: LevelError::TurboUnavailable | LevelError::IndexOutOfRange { .. }, .. }) => {}
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
            let state = freq.level(cpu).unwrap();
            prop_assert!(state.index() < table.len());
        }
        prop_assert!(freq.restore_all().unwrap().complete());
    }
}

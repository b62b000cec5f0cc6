//! The façade against a fake tree of every driver family: each level
//! operation lands the right value in the right file, writes happen only on
//! change, the takeover record precedes the first write, shared domains,
//! global turbo, uncore, release and restore.

// Helpers outside #[test] functions panic on setup failure, like the tests.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use vmpower_cpufreq::backend::BackendError;
use vmpower_cpufreq::control::{Change, ControlError, CpuFreq, Released};
use vmpower_cpufreq::discovery::paths::{self, cpufreq_file};
use vmpower_cpufreq::fake::{FakeSysfs, FakeSysfsBuilder};
use vmpower_cpufreq::levels::{Level, LevelError, ScalingOp};
use vmpower_cpufreq::takeover::TakeoverRecord;
use vmpower_cpufreq::uncore_control::{UncoreError, UncoreRange};
use vmpower_cpufreq::{CpuId, Driver, Khz, SysfsIo};

struct Host {
    fake: Arc<FakeSysfs>,
    freq: CpuFreq,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

fn host(builder: FakeSysfsBuilder) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("takeover.json");
    let fake = Arc::new(builder.build().unwrap());
    let io: Arc<dyn SysfsIo> = fake.clone();
    let freq = CpuFreq::new(io, &record).unwrap();
    Host {
        fake,
        freq,
        record,
        _dir: dir,
    }
}

fn read(fake: &FakeSysfs, cpu: u32, name: &str) -> String {
    fake.read(&cpufreq_file(CpuId(cpu), name)).unwrap()
}

/// The value the driver family's control file(s) hold, checked to agree.
fn pinned(fake: &FakeSysfs, cpu: u32, bounds: bool) -> u32 {
    if bounds {
        let (min, max) = (
            read(fake, cpu, "scaling_min_freq"),
            read(fake, cpu, "scaling_max_freq"),
        );
        assert_eq!(min, max, "bounds pinned together");
        max.parse().unwrap()
    } else {
        read(fake, cpu, "scaling_setspeed").parse().unwrap()
    }
}

/// One driver family: its tree, whether it pins bounds, its table's top,
/// second entry, length and turbo.
struct Family {
    name: &'static str,
    builder: fn() -> FakeSysfsBuilder,
    bounds: bool,
    top: u32,
    second: u32,
    len: usize,
    turbo: bool,
}

fn families() -> Vec<Family> {
    vec![
        Family {
            name: "acpi turbo",
            builder: || FakeSysfs::builder(2),
            bounds: false,
            top: 2_301_000,
            second: 2_300_000,
            len: 17,
            turbo: true,
        },
        Family {
            name: "acpi no turbo",
            builder: || FakeSysfs::builder(2).turbo(false),
            bounds: false,
            top: 2_300_000,
            second: 2_200_000,
            len: 16,
            turbo: false,
        },
        Family {
            name: "intel_cpufreq",
            builder: || FakeSysfs::builder(2).driver(Driver::IntelCpufreq),
            bounds: false,
            top: 3_500_000,
            second: 2_300_000,
            len: 17,
            turbo: true,
        },
        Family {
            name: "amd-pstate",
            builder: || FakeSysfs::builder(2).driver(Driver::AmdPstate),
            bounds: false,
            top: 3_500_000,
            second: 2_300_000,
            len: 17,
            turbo: true,
        },
        Family {
            name: "cppc",
            builder: || {
                FakeSysfs::builder(2)
                    .driver(Driver::CppcCpufreq)
                    .turbo(false)
            },
            bounds: false,
            top: 2_300_000,
            second: 2_200_000,
            len: 16,
            turbo: false,
        },
        Family {
            name: "intel_pstate",
            builder: || FakeSysfs::builder(2).driver(Driver::IntelPstate),
            bounds: true,
            top: 3_500_000,
            second: 2_300_000,
            len: 17,
            turbo: true,
        },
        Family {
            name: "amd-pstate-epp",
            builder: || FakeSysfs::builder(2).driver(Driver::AmdPstateEpp),
            bounds: true,
            top: 3_500_000,
            second: 2_300_000,
            len: 17,
            turbo: true,
        },
    ]
}

#[test]
fn every_operation_lands_in_the_right_file_for_every_driver() {
    for fam in families() {
        let mut h = host((fam.builder)());
        let cpu = CpuId(1);
        let table = h.freq.table(cpu).unwrap().clone();
        assert_eq!(
            (table.len(), table.turbo_available()),
            (fam.len, fam.turbo),
            "{}",
            fam.name
        );
        assert_eq!(table.get(0), Some(Khz(fam.top)), "{}", fam.name);
        assert_eq!(table.freqs().last(), Some(&Khz(800_000)), "{}", fam.name);
        let at = |i: usize| table.get(i).unwrap().0;
        let last = fam.len - 1;
        let no_turbo_top = if fam.turbo { 1 } else { 0 };

        // (change, expected index)
        let steps: Vec<(Change, usize)> = vec![
            (ScalingOp::Max.into(), 0),
            (ScalingOp::Down.into(), 1),
            (ScalingOp::Up.into(), 0),
            (ScalingOp::DisableTurbo.into(), no_turbo_top),
            (ScalingOp::Up.into(), no_turbo_top),
            (ScalingOp::Max.into(), no_turbo_top),
            (Level::Medium.into(), fam.len / 2),
            (ScalingOp::Min.into(), last),
            (ScalingOp::Down.into(), last),
            (Level::Index(2).into(), 2),
        ];
        for (i, (change, want)) in steps.iter().enumerate() {
            let out = h
                .freq
                .apply(cpu, *change)
                .unwrap_or_else(|e| panic!("{} step {i}: {e}", fam.name));
            assert_eq!(out.index, *want, "{} step {i}", fam.name);
            assert_eq!(out.new_khz, Khz(at(*want)), "{} step {i}", fam.name);
            assert_eq!(
                pinned(&h.fake, 1, fam.bounds),
                at(*want),
                "{} step {i}",
                fam.name
            );
            assert_eq!(
                h.freq.current(cpu).unwrap(),
                Some(Khz(at(*want))),
                "{} step {i}",
                fam.name
            );
        }
        assert_eq!(at(1), fam.second, "{}", fam.name);
        let governor = read(&h.fake, 1, "scaling_governor");
        assert_eq!(governor == "userspace", !fam.bounds, "{}", fam.name);
        // cpu0 never touched.
        assert!(
            h.fake
                .writes()
                .iter()
                .all(|w| !w.path.starts_with(paths::cpu_dir(CpuId(0)))),
            "{}",
            fam.name
        );

        // Turbo on: allowed only where the table has turbo.
        let on = h.freq.apply(cpu, ScalingOp::EnableTurbo);
        if fam.turbo {
            assert!(on.unwrap().index == 2);
            assert_eq!(
                h.freq.apply(cpu, ScalingOp::Max).unwrap().new_khz,
                Khz(fam.top)
            );
        } else {
            assert!(
                matches!(
                    on,
                    Err(ControlError::Level {
                        source: LevelError::TurboUnavailable,
                        ..
                    })
                ),
                "{}",
                fam.name
            );
        }
    }
}

#[test]
fn writes_only_when_the_frequency_changes() {
    let mut h = host(FakeSysfs::builder(2));
    let out = h.freq.apply(CpuId(0), ScalingOp::Max).unwrap();
    assert!(out.changed);
    assert_eq!((out.old_khz, out.new_khz), (Khz(800_000), Khz(2_301_000)));
    let setspeed = cpufreq_file(CpuId(0), "scaling_setspeed");
    for _ in 0..3 {
        let out = h.freq.apply(CpuId(0), ScalingOp::Max).unwrap();
        assert!(!out.changed);
        assert!(
            h.freq
                .apply(CpuId(0), ScalingOp::Up)
                .is_ok_and(|o| !o.changed)
        );
    }
    assert_eq!(h.fake.writes_to(&setspeed), ["2301000"]);
    assert_eq!(
        h.fake.writes_to(cpufreq_file(CpuId(0), "scaling_governor")),
        ["userspace"]
    );
    // Already at min: min changes nothing after the first.
    h.freq.apply(CpuId(0), ScalingOp::Min).unwrap();
    h.freq.apply(CpuId(0), Level::Min).unwrap();
    h.freq.apply(CpuId(0), ScalingOp::Down).unwrap();
    assert_eq!(h.fake.writes_to(&setspeed), ["2301000", "800000"]);
}

#[test]
fn the_record_is_on_disk_before_the_first_write() {
    let mut h = host(FakeSysfs::builder(2).domain_size(2));
    assert!(!h.record.exists());
    h.freq.apply(CpuId(1), ScalingOp::Max).unwrap();
    let record = TakeoverRecord::load(&h.record).unwrap().unwrap();
    // Both CPUs of the domain moved, both are recorded with their originals.
    assert_eq!(
        record.cpus.keys().copied().collect::<Vec<_>>(),
        [CpuId(0), CpuId(1)]
    );
    assert!(record.cpus.values().all(|c| c.governor == "schedutil"));

    // A record that cannot be stored stops everything before any write.
    let fake = Arc::new(FakeSysfs::builder(1).build().unwrap());
    let io: Arc<dyn SysfsIo> = fake.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut freq = CpuFreq::new(io, dir.path().join("no/such/dir/t.json")).unwrap();
    assert!(matches!(
        freq.apply(CpuId(0), ScalingOp::Max),
        Err(ControlError::Takeover(_))
    ));
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    assert_eq!(
        freq.level(CpuId(0)).unwrap().index(),
        16,
        "level not committed"
    );
}

#[test]
fn shared_domain_moves_siblings_and_is_released_by_the_last_user() {
    let mut h = host(FakeSysfs::builder(4).domain_size(2));
    assert_eq!(h.freq.domain_cpus(CpuId(3)).unwrap(), [CpuId(2), CpuId(3)]);
    let out = h.freq.apply(CpuId(3), Level::Max).unwrap();
    assert_eq!(out.domain_cpus, [CpuId(2), CpuId(3)]);
    assert_eq!(read(&h.fake, 2, "scaling_setspeed"), "2301000");
    // The engine asks cpu2 for min: the shared policy follows the last request.
    h.freq.apply(CpuId(2), Level::Min).unwrap();
    assert_eq!(read(&h.fake, 3, "scaling_setspeed"), "800000");
    assert_eq!(
        h.freq.level(CpuId(3)).unwrap().index(),
        0,
        "sibling keeps its own level"
    );

    assert_eq!(
        h.freq.release(CpuId(3)).unwrap(),
        Released::HeldBy(vec![CpuId(2)])
    );
    assert_eq!(read(&h.fake, 3, "scaling_governor"), "userspace");
    assert_eq!(h.freq.release(CpuId(2)).unwrap(), Released::Restored);
    assert_eq!(read(&h.fake, 3, "scaling_governor"), "schedutil");
    assert_eq!(h.freq.release(CpuId(2)).unwrap(), Released::NotTaken);
    assert!(!h.record.exists());
    assert_eq!(
        read(&h.fake, 0, "scaling_governor"),
        "schedutil",
        "other domain untouched"
    );
}

#[test]
fn errors_are_typed_and_leave_the_level_alone() {
    // Offline at start: not managed.
    let mut h = host(FakeSysfs::builder(4).offline(&[3]));
    assert!(matches!(
        h.freq.apply(CpuId(3), ScalingOp::Max),
        Err(ControlError::NotManaged { cpu: CpuId(3) })
    ));
    // Offline after start.
    h.fake.set_online(CpuId(2), false).unwrap();
    let err = h.freq.apply(CpuId(2), ScalingOp::Max).unwrap_err();
    assert!(
        matches!(
            err,
            ControlError::Takeover(_) | ControlError::Backend(BackendError::Offline { .. })
        ),
        "{err:?}"
    );
    assert!(format!("{err:#?}").contains("cpu2"), "{err:?}");

    // Another tool takes the governor back.
    h.freq.apply(CpuId(1), ScalingOp::Max).unwrap();
    h.fake
        .external_kernel_write(cpufreq_file(CpuId(1), "scaling_governor"), "performance")
        .unwrap();
    let err = h.freq.apply(CpuId(1), ScalingOp::Min).unwrap_err();
    assert!(
        matches!(err, ControlError::Backend(BackendError::ChangedExternally { ref found, .. }) if found == "performance"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("cpu1") && err.to_string().contains("scaling_governor"),
        "{err}"
    );
    assert_eq!(h.freq.level(CpuId(1)).unwrap().index(), 0);
    // The daemon may decide to take it back: the original stays as recorded.
    h.freq.retake(CpuId(1)).unwrap();
    assert_eq!(read(&h.fake, 1, "scaling_governor"), "userspace");
    assert_eq!(
        h.freq.apply(CpuId(1), ScalingOp::Min).unwrap().new_khz,
        Khz(800_000)
    );
    assert_eq!(
        h.freq.takeover_record().cpus[&CpuId(1)].governor,
        "schedutil"
    );

    // Unknown driver.
    let mut h = host(FakeSysfs::builder(1).driver(Driver::Other("pcc-cpufreq".into())));
    let err = h.freq.apply(CpuId(0), ScalingOp::Max).unwrap_err();
    assert!(
        matches!(err, ControlError::Backend(BackendError::UnknownDriver { cpu: CpuId(0), ref driver }) if driver == "pcc-cpufreq"),
        "{err:?}"
    );
    assert!(h.fake.writes().is_empty());
    assert!(!h.record.exists());

    // Governor not offered (intel_pstate active forced to a setspeed-only tree is
    // impossible through the façade; the backend test covers it). Out-of-table index:
    let mut h = host(FakeSysfs::builder(1));
    assert!(matches!(
        h.freq.apply(CpuId(0), Level::Index(99)),
        Err(ControlError::Level {
            cpu: CpuId(0),
            source: LevelError::IndexOutOfRange { index: 99, len: 17 }
        })
    ));
    assert!(h.fake.writes().is_empty());
}

#[test]
fn restore_all_brings_every_cpu_back() {
    let mut h = host(FakeSysfs::builder(4).driver(Driver::IntelPstate));
    for cpu in 0..4 {
        h.freq
            .apply(
                CpuId(cpu),
                if cpu % 2 == 0 { Level::Min } else { Level::Max },
            )
            .unwrap();
    }
    assert_eq!(read(&h.fake, 0, "scaling_max_freq"), "800000");
    let report = h.freq.restore_all().unwrap();
    assert!(report.complete(), "{report:?}");
    for cpu in 0..4 {
        assert_eq!(read(&h.fake, cpu, "scaling_min_freq"), "800000");
        assert_eq!(read(&h.fake, cpu, "scaling_max_freq"), "3500000");
        assert_eq!(read(&h.fake, cpu, "scaling_governor"), "powersave");
    }
    assert!(!h.record.exists());
    // Usable again afterwards: takes over anew.
    h.freq.apply(CpuId(0), Level::Max).unwrap();
    assert_eq!(read(&h.fake, 0, "scaling_min_freq"), "3500000");
    assert!(h.record.exists());
}

#[test]
fn global_turbo_switches_are_recorded_and_restored() {
    for (builder, file, off_value) in [
        (FakeSysfs::builder(2), paths::boost(), "0"),
        (
            FakeSysfs::builder(2).driver(Driver::AmdPstate),
            paths::boost(),
            "0",
        ),
        (
            FakeSysfs::builder(2).driver(Driver::IntelPstate),
            paths::intel_pstate("no_turbo"),
            "1",
        ),
    ] {
        let mut h = host(builder);
        assert!(h.freq.global_turbo().unwrap());
        assert!(
            !h.freq.set_global_turbo(true).unwrap(),
            "already on: no write, no record"
        );
        assert!(!h.record.exists());
        assert!(h.freq.set_global_turbo(false).unwrap());
        assert_eq!(h.fake.read(&file).unwrap(), off_value);
        assert!(!h.freq.global_turbo().unwrap());
        assert!(
            TakeoverRecord::load(&h.record)
                .unwrap()
                .unwrap()
                .turbo
                .is_some()
        );
        assert!(h.freq.restore_all().unwrap().complete());
        assert!(h.freq.global_turbo().unwrap());
        assert!(!h.record.exists());
    }
    let h = host(
        FakeSysfs::builder(1)
            .turbo(false)
            .driver(Driver::CppcCpufreq),
    );
    assert!(matches!(
        h.freq.global_turbo(),
        Err(ControlError::NoTurboSwitch)
    ));
}

#[test]
fn uncore_range_is_bounded_ordered_and_restored() {
    let mut h = host(
        FakeSysfs::builder(2)
            .driver(Driver::IntelPstate)
            .uncore(Khz(800_000), Khz(2_400_000)),
    );
    let domains = h.freq.uncore_domains().unwrap();
    assert_eq!(domains.len(), 1);
    let d = &domains[0].name;
    assert_eq!(d, "package_00_die_00");
    assert_eq!(h.freq.uncore_current(d).unwrap(), Khz(2_400_000));
    // Down: the min goes first... both writes accepted by the emulated kernel.
    assert!(
        h.freq
            .set_uncore(
                d,
                UncoreRange {
                    min: Khz(1_000_000),
                    max: Khz(1_000_000)
                }
            )
            .unwrap()
    );
    assert_eq!(h.freq.uncore_current(d).unwrap(), Khz(1_000_000));
    // Up past the current max: the max must go first.
    h.fake.clear_writes();
    assert!(
        h.freq
            .set_uncore(
                d,
                UncoreRange {
                    min: Khz(2_000_000),
                    max: Khz(2_200_000)
                }
            )
            .unwrap()
    );
    let names: Vec<String> = h
        .fake
        .writes()
        .iter()
        .map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["max_freq_khz", "min_freq_khz"]);
    assert!(
        !h.freq
            .set_uncore(
                d,
                UncoreRange {
                    min: Khz(2_000_000),
                    max: Khz(2_200_000)
                }
            )
            .unwrap()
    );
    let err = h
        .freq
        .set_uncore(
            d,
            UncoreRange {
                min: Khz(700_000),
                max: Khz(2_200_000),
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, ControlError::Uncore(UncoreError::OutOfRange { .. })),
        "{err:?}"
    );
    assert!(h.freq.restore_all().unwrap().complete());
    assert_eq!(
        h.freq.uncore_range(d).unwrap(),
        UncoreRange {
            min: Khz(800_000),
            max: Khz(2_400_000)
        }
    );
}

#[test]
fn global_turbo_off_keeps_cores_off_the_turbo_entry() {
    let mut h = host(FakeSysfs::builder(1).turbo_enabled(false));
    let state = h.freq.level(CpuId(0)).unwrap();
    assert!(!state.turbo_enabled());
    assert_eq!(
        h.freq.apply(CpuId(0), ScalingOp::Max).unwrap().new_khz,
        Khz(2_300_000)
    );
    assert_eq!(read(&h.fake, 0, "scaling_setspeed"), "2300000");
    // Per-core turbo on while the switch is off: the kernel caps the turbo
    // entry, which is reported, not hidden.
    h.freq.apply(CpuId(0), ScalingOp::EnableTurbo).unwrap();
    let err = h.freq.apply(CpuId(0), ScalingOp::Max).unwrap_err();
    assert!(
        matches!(
            err,
            ControlError::Backend(BackendError::ChangedExternally { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        h.freq.level(CpuId(0)).unwrap().index(),
        1,
        "level not committed"
    );
}

/// `verify` reads a held domain back without writing: another writer's
/// governor, setspeed or bound is a foreign write naming the file; an
/// unheld domain passes. `yield_domain` drops it from the record without
/// writing, so nothing restores over the other writer's setting.
#[test]
fn verify_finds_another_writer_and_yield_leaves_its_setting() {
    let cases = [
        (Driver::AcpiCpufreq, "scaling_governor", "performance"),
        (Driver::AcpiCpufreq, "scaling_setspeed", "1800000"),
        (Driver::IntelPstate, "scaling_max_freq", "2000000"),
    ];
    for (driver, file, value) in cases {
        let mut h = host(FakeSysfs::builder(2).driver(driver.clone()));
        let cpu = CpuId(1);
        h.freq.verify(cpu).unwrap();
        h.freq.apply(cpu, Level::Min).unwrap();
        assert_eq!(h.freq.held(), [cpu]);
        h.freq.verify(cpu).unwrap();
        let writes = h.fake.writes().len();
        h.fake
            .external_kernel_write(cpufreq_file(cpu, file), value)
            .unwrap();
        let err = h.freq.verify(cpu).unwrap_err();
        assert!(err.is_foreign_write(), "{driver:?} {file}: {err}");
        assert!(err.to_string().contains(file), "{err}");
        assert_eq!(h.fake.writes().len(), writes, "verify wrote");
        h.freq.yield_domain(cpu).unwrap();
        assert!(h.freq.held().is_empty());
        assert!(!h.freq.takeover_record().cpus.contains_key(&cpu));
        h.freq.verify(cpu).unwrap();
        h.freq.restore_all().unwrap();
        assert_eq!(read(&h.fake, 1, file), value, "{driver:?}");
    }
}

//! Takeover and restore against fake trees: the record is on disk before
//! anything changes, restore puts governors and bounds back (also from the
//! file alone, after a crash), is idempotent, survives CPUs going offline,
//! and releases CPUs one at a time.

// Helpers outside #[test] functions panic on setup failure, like the tests.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vmpower_cpufreq::backend::{FrequencyControl, Mechanism, make_control};
use vmpower_cpufreq::discovery::paths::cpufreq_file;
use vmpower_cpufreq::fake::{FakeSysfs, FakeSysfsBuilder};
use vmpower_cpufreq::takeover::{
    RECORD_VERSION, Takeover, TakeoverError, TakeoverItem, TakeoverRecord, restore_from_file,
};
use vmpower_cpufreq::turbo::TurboSwitch;
use vmpower_cpufreq::uncore_control::{self, UncoreRange};
use vmpower_cpufreq::{CpuId, Driver, Khz, SysfsIo};

fn read(io: &dyn SysfsIo, cpu: u32, name: &str) -> String {
    io.read(&cpufreq_file(CpuId(cpu), name)).unwrap()
}

fn take_and_set(
    fake: &Arc<FakeSysfs>,
    takeover: &mut Takeover,
    cpu: u32,
    khz: u32,
) -> Box<dyn FrequencyControl> {
    let driver = fake.driver().unwrap().clone();
    takeover.take_cpu(&**fake, CpuId(cpu)).unwrap();
    let io: Arc<dyn SysfsIo> = fake.clone();
    let mut c = make_control(
        io,
        Mechanism::for_driver(&driver).unwrap(),
        CpuId(cpu),
        vec![CpuId(cpu)],
    );
    c.set(Khz(khz)).unwrap();
    c
}

/// Copies every regular file of `from` over `to` (symlinks are the
/// builder's, identical in both trees).
fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else if kind.is_file() {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn record_holds_originals_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("takeover.json");
    let fake = Arc::new(FakeSysfs::builder(2).build().unwrap());
    let mut t = Takeover::open(&path).unwrap();
    assert!(!path.exists(), "nothing taken, no file");
    assert!(t.take_cpu(&*fake, CpuId(0)).unwrap());
    assert!(path.exists(), "the record is on disk when take_cpu returns");
    let on_disk = TakeoverRecord::load(&path).unwrap().unwrap();
    let original = &on_disk.cpus[&CpuId(0)];
    assert_eq!(on_disk.version, RECORD_VERSION);
    assert_eq!(original.governor, "schedutil");
    assert_eq!((original.min, original.max), (Khz(800_000), Khz(2_301_000)));
    assert_eq!(original.setspeed, None);

    // Change the CPU, then a new process opens the record: the original stays.
    let io: Arc<dyn SysfsIo> = fake.clone();
    make_control(io, Mechanism::Setspeed, CpuId(0), vec![CpuId(0)])
        .set(Khz(900_000))
        .unwrap();
    let mut again = Takeover::open(&path).unwrap();
    assert!(!again.take_cpu(&*fake, CpuId(0)).unwrap());
    assert_eq!(again.record().cpus[&CpuId(0)].governor, "schedutil");
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains("userspace"), "{text}");
}

#[test]
fn restore_after_a_crash_from_the_file_alone() {
    let state = tempfile::tempdir().unwrap();
    let record = state.path().join("takeover.json");
    let before = tempfile::tempdir().unwrap();
    let after = tempfile::tempdir().unwrap();
    let builder = || {
        FakeSysfsBuilder::new(4)
            .driver(Driver::IntelPstate)
            .domain_size(1)
    };
    {
        let fake = Arc::new(builder().in_dir(before.path()).build().unwrap());
        let mut t = Takeover::open(&record).unwrap();
        let _c0 = take_and_set(&fake, &mut t, 0, 3_500_000);
        let _c2 = take_and_set(&fake, &mut t, 2, 1_000_000);
        assert_eq!(read(&*fake, 2, "scaling_max_freq"), "1000000");
        // Crash: everything dropped without restoring.
    }
    // A fresh fake kernel over the same tree.
    let fake = builder().in_dir(after.path()).build().unwrap();
    copy_tree(before.path(), after.path());
    assert_eq!(read(&fake, 0, "scaling_min_freq"), "3500000");
    let report = restore_from_file(&record, &fake).unwrap();
    assert!(report.complete(), "{report:?}");
    assert_eq!(
        report.restored,
        [TakeoverItem::Cpu(CpuId(0)), TakeoverItem::Cpu(CpuId(2))]
    );
    for cpu in [0, 2] {
        assert_eq!(read(&fake, cpu, "scaling_governor"), "powersave");
        assert_eq!(read(&fake, cpu, "scaling_min_freq"), "800000");
        assert_eq!(read(&fake, cpu, "scaling_max_freq"), "3500000");
    }
    assert!(!record.exists(), "record deleted once everything is back");
    // Idempotent: nothing left, nothing written.
    fake.clear_writes();
    let report = restore_from_file(&record, &fake).unwrap();
    assert!(report.complete() && report.restored.is_empty());
    assert!(fake.writes().is_empty());
}

#[test]
fn userspace_restore_brings_back_governor_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let fake = Arc::new(FakeSysfs::builder(2).governor("ondemand").build().unwrap());
    // Someone had narrowed the bounds before we came.
    fake.external_kernel_write(cpufreq_file(CpuId(1), "scaling_max_freq"), "2000000")
        .unwrap();
    let mut t = Takeover::open(&path).unwrap();
    let _c = take_and_set(&fake, &mut t, 1, 1_000_000);
    fake.external_kernel_write(cpufreq_file(CpuId(1), "scaling_min_freq"), "1000000")
        .unwrap();
    assert_eq!(read(&*fake, 1, "scaling_governor"), "userspace");
    let report = t.restore_all(&*fake).unwrap();
    assert!(report.complete(), "{report:?}");
    assert_eq!(read(&*fake, 1, "scaling_governor"), "ondemand");
    assert_eq!(read(&*fake, 1, "scaling_min_freq"), "800000");
    assert_eq!(read(&*fake, 1, "scaling_max_freq"), "2000000");
    assert_eq!(read(&*fake, 1, "scaling_setspeed"), "<unsupported>");
    assert!(t.record().is_empty() && !path.exists());
    // Idempotent in the same process too.
    fake.clear_writes();
    assert!(t.restore_all(&*fake).unwrap().restored.is_empty());
    assert!(fake.writes().is_empty());
}

#[test]
fn original_userspace_speed_and_epp_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeSysfs::builder(1).governor("userspace").build().unwrap());
    let io: Arc<dyn SysfsIo> = fake.clone();
    make_control(io, Mechanism::Setspeed, CpuId(0), vec![CpuId(0)])
        .set(Khz(1_700_000))
        .unwrap();
    let mut t = Takeover::open(dir.path().join("a.json")).unwrap();
    let _c = take_and_set(&fake, &mut t, 0, 900_000);
    assert_eq!(t.record().cpus[&CpuId(0)].setspeed, Some(Khz(1_700_000)));
    assert!(t.restore_all(&*fake).unwrap().complete());
    assert_eq!(read(&*fake, 0, "scaling_setspeed"), "1700000");

    let fake = Arc::new(
        FakeSysfs::builder(1)
            .driver(Driver::AmdPstateEpp)
            .build()
            .unwrap(),
    );
    fake.external_kernel_write(
        cpufreq_file(CpuId(0), "energy_performance_preference"),
        "balance_power",
    )
    .unwrap();
    let mut t = Takeover::open(dir.path().join("b.json")).unwrap();
    let _c = take_and_set(&fake, &mut t, 0, 1_000_000);
    assert_eq!(
        t.record().cpus[&CpuId(0)].epp.as_deref(),
        Some("balance_power")
    );
    // Another tool switches to performance, which forces the EPP.
    fake.external_kernel_write(cpufreq_file(CpuId(0), "scaling_governor"), "performance")
        .unwrap();
    let report = t.restore_all(&*fake).unwrap();
    assert!(report.complete(), "{report:?}");
    assert_eq!(read(&*fake, 0, "scaling_governor"), "powersave");
    assert_eq!(
        read(&*fake, 0, "energy_performance_preference"),
        "balance_power"
    );
    assert_eq!(read(&*fake, 0, "scaling_max_freq"), "3500000");
}

#[test]
fn offline_cpu_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let fake = Arc::new(FakeSysfs::builder(4).build().unwrap());
    let mut t = Takeover::open(&path).unwrap();
    let _c1 = take_and_set(&fake, &mut t, 1, 1_000_000);
    let _c2 = take_and_set(&fake, &mut t, 2, 1_000_000);
    fake.set_online(CpuId(2), false).unwrap();
    let report = t.restore_all(&*fake).unwrap();
    assert!(!report.complete());
    assert_eq!(report.offline(), [CpuId(2)]);
    assert_eq!(report.restored, [TakeoverItem::Cpu(CpuId(1))]);
    assert_eq!(read(&*fake, 1, "scaling_governor"), "schedutil");
    let on_disk = TakeoverRecord::load(&path).unwrap().unwrap();
    assert_eq!(on_disk.cpus.keys().copied().collect::<Vec<_>>(), [CpuId(2)]);
    // Back online: the next restore finishes the job.
    fake.set_online(CpuId(2), true).unwrap();
    assert!(t.restore_all(&*fake).unwrap().complete());
    assert_eq!(read(&*fake, 2, "scaling_governor"), "schedutil");
    assert!(!path.exists());
}

#[test]
fn release_one_cpu_restores_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let fake = Arc::new(FakeSysfs::builder(2).build().unwrap());
    let mut t = Takeover::open(&path).unwrap();
    let _c0 = take_and_set(&fake, &mut t, 0, 1_000_000);
    let _c1 = take_and_set(&fake, &mut t, 1, 1_000_000);
    assert!(t.release_cpu(&*fake, CpuId(1)).unwrap());
    assert_eq!(read(&*fake, 1, "scaling_governor"), "schedutil");
    assert_eq!(read(&*fake, 0, "scaling_governor"), "userspace");
    let on_disk = TakeoverRecord::load(&path).unwrap().unwrap();
    assert_eq!(on_disk.cpus.keys().copied().collect::<Vec<_>>(), [CpuId(0)]);
    assert!(
        !t.release_cpu(&*fake, CpuId(1)).unwrap(),
        "already released"
    );
    assert!(t.release_cpu(&*fake, CpuId(0)).unwrap());
    assert!(!path.exists());
}

#[test]
fn turbo_and_uncore_are_recorded_and_restored_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let fake = Arc::new(
        FakeSysfs::builder(2)
            .driver(Driver::IntelPstate)
            .packages(2)
            .uncore(Khz(800_000), Khz(2_400_000))
            .build()
            .unwrap(),
    );
    let mut t = Takeover::open(&path).unwrap();
    let switch = TurboSwitch::detect(&*fake).unwrap();
    assert_eq!(switch, TurboSwitch::NoTurbo);
    assert!(t.take_turbo(&*fake, switch).unwrap());
    switch.set_enabled(&*fake, false).unwrap();
    let domain = "package_01_die_00";
    assert!(t.take_uncore(&*fake, domain).unwrap());
    uncore_control::set_range(
        &*fake,
        domain,
        UncoreRange {
            min: Khz(1_200_000),
            max: Khz(1_200_000),
        },
    )
    .unwrap();
    let _c = take_and_set(&fake, &mut t, 0, 2_300_000);

    let on_disk = TakeoverRecord::load(&path).unwrap().unwrap();
    assert_eq!(on_disk.turbo.as_ref().unwrap().value, "0");
    assert_eq!(
        on_disk.uncore[domain],
        UncoreRange {
            min: Khz(800_000),
            max: Khz(2_400_000)
        }
    );

    let report = t.restore_all(&*fake).unwrap();
    assert!(report.complete(), "{report:?}");
    assert_eq!(
        report.restored[0],
        TakeoverItem::Turbo(TurboSwitch::NoTurbo)
    );
    assert!(switch.enabled(&*fake).unwrap());
    assert_eq!(
        uncore_control::current_range(&*fake, domain).unwrap(),
        UncoreRange {
            min: Khz(800_000),
            max: Khz(2_400_000)
        }
    );
    assert_eq!(read(&*fake, 0, "scaling_max_freq"), "3500000");
    assert!(!path.exists());
}

#[test]
fn bad_records_are_refused_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("t.json");
    fs::write(&path, r#"{"version": 99, "cpus": {}}"#).unwrap();
    assert!(matches!(
        Takeover::open(&path),
        Err(TakeoverError::UnsupportedVersion { found: 99, .. })
    ));
    fs::write(&path, "{ not json").unwrap();
    let err = Takeover::open(&path).unwrap_err();
    assert!(matches!(err, TakeoverError::Corrupt { .. }));
    assert!(err.to_string().contains("t.json"), "{err}");
}

#[test]
fn record_that_cannot_be_stored_blocks_the_takeover() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("t.json");
    let fake = FakeSysfs::builder(1).build().unwrap();
    let mut t = Takeover::open(&path).unwrap();
    let err = t.take_cpu(&fake, CpuId(0)).unwrap_err();
    assert!(matches!(err, TakeoverError::Io { .. }), "{err:?}");
    assert!(t.record().is_empty(), "not recorded in memory either");
}

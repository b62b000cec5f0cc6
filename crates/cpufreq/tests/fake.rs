//! Tests of the fake sysfs tree: its layout, and each kernel rule it
//! emulates on write.

use std::fs;
use std::path::{Path, PathBuf};

use vmpower_cpufreq::discovery::paths;
use vmpower_cpufreq::fake::{FailKind, FakeSysfs};
use vmpower_cpufreq::{CpuId, Driver, Khz, Sysfs, SysfsError, SysfsIo};

fn cf(cpu: u32, file: &str) -> PathBuf {
    paths::cpufreq_file(CpuId(cpu), file)
}

fn read(fake: &FakeSysfs, rel: impl AsRef<Path>) -> String {
    fake.read(rel.as_ref())
        .expect("the file exists and is readable")
}

fn acpi(cpus: u32) -> FakeSysfs {
    FakeSysfs::builder(cpus)
        .driver(Driver::AcpiCpufreq)
        .build()
        .expect("a valid description")
}

fn is_refused(r: Result<(), SysfsError>) -> bool {
    matches!(r, Err(SysfsError::Refused { .. }))
}

#[test]
fn layout_has_policy_symlinks_and_newlines() {
    let fake = FakeSysfs::builder(4).domain_size(2).build().unwrap();
    let root = fake.path();
    let link = fs::read_link(root.join(paths::cpu_dir(CpuId(3))).join("cpufreq")).unwrap();
    assert_eq!(link, Path::new("../cpufreq/policy2"));
    assert_eq!(read(&fake, cf(3, "related_cpus")), "2 3");
    assert_eq!(read(&fake, cf(3, "affected_cpus")), "2 3");
    assert_eq!(read(&fake, paths::cpu_root("online")), "0-3");
    assert!(!fake.exists(&paths::cpu_online(CpuId(0))));
    assert_eq!(read(&fake, paths::cpu_online(CpuId(1))), "1");
    // Every value file ends with exactly one newline.
    let mut stack = vec![root.to_path_buf()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let content = fs::read_to_string(&path).unwrap();
                assert!(content.ends_with('\n'), "{}", path.display());
                assert!(!content.ends_with("\n\n"), "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(files > 30, "only {files} files");
}

#[test]
fn acpi_table_has_turbo_pseudo_entry_only_with_turbo() {
    let fake = acpi(1);
    let table = read(&fake, cf(0, "scaling_available_frequencies"));
    assert!(table.starts_with("2301000 2300000 2200000"), "{table}");
    assert_eq!(read(&fake, cf(0, "cpuinfo_max_freq")), "2301000");
    assert_eq!(read(&fake, paths::boost()), "1");
    let plain = FakeSysfs::builder(1).turbo(false).build().unwrap();
    let table = read(&plain, cf(0, "scaling_available_frequencies"));
    assert!(table.starts_with("2300000 2200000"), "{table}");
    assert!(!plain.exists(&paths::boost()));
}

#[test]
fn default_governors_and_available_lists_per_driver() {
    let cases = [
        (Driver::AcpiCpufreq, "schedutil", 6),
        (Driver::IntelPstate, "powersave", 2),
        (Driver::IntelCpufreq, "schedutil", 6),
        (Driver::AmdPstate, "schedutil", 6),
        (Driver::AmdPstateEpp, "powersave", 2),
        (Driver::CppcCpufreq, "schedutil", 6),
    ];
    for (driver, governor, count) in cases {
        let fake = FakeSysfs::builder(2)
            .driver(driver.clone())
            .build()
            .unwrap();
        assert_eq!(read(&fake, cf(1, "scaling_driver")), driver.sysfs_name());
        assert_eq!(read(&fake, cf(1, "scaling_governor")), governor, "{driver}");
        let available = read(&fake, cf(1, "scaling_available_governors"));
        assert_eq!(
            available.split_whitespace().count(),
            count,
            "{driver}: {available}"
        );
        assert_eq!(read(&fake, cf(1, "scaling_setspeed")), "<unsupported>");
    }
    assert!(
        FakeSysfs::builder(1)
            .driver(Driver::IntelPstate)
            .governor("userspace")
            .build()
            .is_err()
    );
}

#[test]
fn governor_must_be_available() {
    let fake = FakeSysfs::builder(1)
        .driver(Driver::IntelPstate)
        .build()
        .unwrap();
    assert!(is_refused(
        fake.write(&cf(0, "scaling_governor"), "userspace")
    ));
    assert!(is_refused(fake.write(&cf(0, "scaling_governor"), "")));
    fake.write(&cf(0, "scaling_governor"), "performance\n")
        .unwrap();
    assert_eq!(read(&fake, cf(0, "scaling_governor")), "performance");
}

#[test]
fn userspace_governor_exposes_setspeed_and_leaving_hides_it() {
    let fake = acpi(1);
    fake.write(&cf(0, "scaling_governor"), "userspace").unwrap();
    let cur = read(&fake, cf(0, "scaling_cur_freq"));
    assert_eq!(read(&fake, cf(0, "scaling_setspeed")), cur);
    fake.write(&cf(0, "scaling_setspeed"), "1500000\n").unwrap();
    assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "1500000");
    assert_eq!(read(&fake, cf(0, "scaling_setspeed")), "1500000");
    fake.write(&cf(0, "scaling_governor"), "ondemand").unwrap();
    assert_eq!(read(&fake, cf(0, "scaling_setspeed")), "<unsupported>");
    assert!(is_refused(
        fake.write(&cf(0, "scaling_setspeed"), "1500000")
    ));
}

#[test]
fn setspeed_checks_bounds_table_and_numbers() {
    let fake = acpi(1);
    let setspeed = cf(0, "scaling_setspeed");
    assert!(
        is_refused(fake.write(&setspeed, "1500000")),
        "not userspace"
    );
    fake.write(&cf(0, "scaling_governor"), "userspace").unwrap();
    assert!(is_refused(fake.write(&setspeed, "1550000")), "not in table");
    assert!(
        is_refused(fake.write(&setspeed, "700000")),
        "below cpuinfo_min"
    );
    assert!(
        is_refused(fake.write(&setspeed, "2400000")),
        "above cpuinfo_max"
    );
    assert!(is_refused(fake.write(&setspeed, "fast")), "not a number");
    fake.write(&cf(0, "scaling_max_freq"), "2000000").unwrap();
    assert!(is_refused(fake.write(&setspeed, "2100000")), "above max");
    fake.write(&setspeed, "2000000").unwrap();
    assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "2000000");
}

#[test]
fn min_and_max_bounds_are_ordered_and_within_hardware_limits() {
    let fake = FakeSysfs::builder(1)
        .driver(Driver::IntelPstate)
        .build()
        .unwrap();
    let (min, max) = (cf(0, "scaling_min_freq"), cf(0, "scaling_max_freq"));
    assert_eq!(read(&fake, &max), "3500000");
    fake.write(&max, "2000000").unwrap();
    assert!(is_refused(fake.write(&min, "2100000")), "min above max");
    fake.write(&min, "1500000").unwrap();
    assert!(is_refused(fake.write(&max, "1400000")), "max below min");
    assert!(is_refused(fake.write(&max, "3600000")), "above cpuinfo_max");
    assert!(is_refused(fake.write(&min, "700000")), "below cpuinfo_min");
    assert!(is_refused(fake.write(&min, "-1")), "not a number");
    assert_eq!(read(&fake, &min), "1500000");
    assert_eq!(read(&fake, &max), "2000000");
}

#[test]
fn pinning_drivers_follow_min_and_max() {
    for driver in [Driver::IntelPstate, Driver::AmdPstateEpp] {
        let fake = FakeSysfs::builder(1).driver(driver).build().unwrap();
        let (min, max) = (cf(0, "scaling_min_freq"), cf(0, "scaling_max_freq"));
        // Going up: min first (max starts at the top).
        fake.write(&min, "2000000").unwrap();
        fake.write(&max, "2000000").unwrap();
        assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "2000000");
        // Going down: max first is refused while min is above it.
        assert!(is_refused(fake.write(&max, "1200000")));
        assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "2000000");
        fake.write(&min, "1200000").unwrap();
        fake.write(&max, "1200000").unwrap();
        assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "1200000");
    }
}

#[test]
fn boost_off_caps_current_frequency_and_accepts_only_flags() {
    let fake = acpi(2);
    fake.write(&cf(0, "scaling_governor"), "userspace").unwrap();
    fake.write(&cf(0, "scaling_setspeed"), "2301000").unwrap();
    assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "2301000");
    assert!(is_refused(fake.write(&paths::boost(), "2")));
    fake.write(&paths::boost(), "0\n").unwrap();
    assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "2300000");
    fake.write(&paths::boost(), "1").unwrap();
    assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "2301000");
}

#[test]
fn intel_no_turbo_caps_at_base_and_needs_turbo_hardware() {
    let fake = FakeSysfs::builder(1)
        .driver(Driver::IntelPstate)
        .governor("performance")
        .build()
        .unwrap();
    assert_eq!(read(&fake, cf(0, "base_frequency")), "2300000");
    assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "3500000");
    fake.write(&paths::intel_pstate("no_turbo"), "1").unwrap();
    assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "2300000");
    assert!(is_refused(
        fake.write(&paths::intel_pstate("no_turbo"), "yes")
    ));
    let no_turbo = FakeSysfs::builder(1)
        .driver(Driver::IntelCpufreq)
        .turbo(false)
        .build()
        .unwrap();
    assert_eq!(read(&no_turbo, paths::intel_pstate("no_turbo")), "1");
    assert_eq!(read(&no_turbo, paths::intel_pstate("status")), "passive");
    let err = no_turbo
        .write(&paths::intel_pstate("no_turbo"), "0")
        .unwrap_err();
    assert!(
        matches!(err, SysfsError::PermissionDenied { .. }),
        "{err:?}"
    );
}

#[test]
fn shared_domain_writes_are_seen_by_every_member() {
    let fake = FakeSysfs::builder(4).domain_size(4).build().unwrap();
    fake.write(&cf(2, "scaling_governor"), "performance")
        .unwrap();
    for cpu in 0..4 {
        assert_eq!(read(&fake, cf(cpu, "scaling_governor")), "performance");
    }
    let resolved = fake.resolve(&cf(3, "scaling_governor"));
    assert_eq!(
        resolved,
        Path::new("devices/system/cpu/cpufreq/policy0/scaling_governor")
    );
    assert_eq!(
        fake.writes_to(cf(0, "scaling_governor")),
        vec!["performance"]
    );
}

#[test]
fn offline_cpu_loses_cpufreq_and_topology_and_comes_back() {
    let fake = FakeSysfs::builder(4)
        .domain_size(2)
        .offline(&[3])
        .build()
        .unwrap();
    assert_eq!(read(&fake, paths::cpu_root("online")), "0-2");
    assert_eq!(read(&fake, paths::cpu_root("offline")), "3");
    assert!(!fake.exists(&cf(3, "scaling_governor")));
    assert!(!fake.exists(&paths::topology_file(CpuId(3), "core_id")));
    assert_eq!(read(&fake, cf(2, "affected_cpus")), "2");
    assert_eq!(read(&fake, cf(2, "related_cpus")), "2 3");
    fake.write(&paths::cpu_online(CpuId(3)), "1").unwrap();
    assert_eq!(read(&fake, paths::cpu_root("online")), "0-3");
    assert_eq!(read(&fake, cf(3, "affected_cpus")), "2 3");
    assert!(fake.exists(&paths::topology_file(CpuId(3), "core_id")));
    fake.set_online(CpuId(1), false).unwrap();
    assert_eq!(read(&fake, paths::cpu_root("online")), "0,2-3");
    let err = fake.read(&cf(1, "scaling_governor")).unwrap_err();
    assert!(matches!(err, SysfsError::NotFound { .. }));
    assert!(matches!(
        fake.set_online(CpuId(0), false),
        Err(SysfsError::NotFound { .. })
    ));
    assert!(is_refused(fake.write(&paths::cpu_online(CpuId(2)), "2")));
}

#[test]
fn injected_failures_fire_once_or_always() {
    let fake = acpi(2);
    let gov = cf(1, "scaling_governor");
    fake.fail_next_write(&gov, FailKind::Refused);
    assert!(is_refused(fake.write(&gov, "performance")));
    fake.write(&gov, "performance").unwrap();
    fake.fail_all_writes(&gov, FailKind::PermissionDenied);
    for _ in 0..2 {
        let err = fake.write(&gov, "ondemand").unwrap_err();
        assert!(
            matches!(err, SysfsError::PermissionDenied { ref value, .. } if value == "ondemand")
        );
    }
    assert_eq!(
        read(&fake, &gov),
        "performance",
        "a failed write changes nothing"
    );
    // Other files are unaffected; clearing restores writes.
    fake.write(&cf(0, "scaling_governor"), "ondemand").unwrap();
    fake.clear_failures();
    fake.write(&gov, "ondemand").unwrap();
    fake.fail_next_write(&gov, FailKind::Busy);
    assert!(matches!(
        fake.write(&gov, "ondemand"),
        Err(SysfsError::Io { .. })
    ));
}

#[test]
fn write_log_holds_only_accepted_writes() {
    let fake = acpi(1);
    let gov = cf(0, "scaling_governor");
    fake.write(&gov, "userspace\n").unwrap();
    let _ = fake.write(&gov, "turbo");
    fake.write(&cf(0, "scaling_setspeed"), "1000000").unwrap();
    let log = fake.writes();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].path, gov);
    assert_eq!(log[0].value, "userspace");
    assert_eq!(log[1].value, "1000000");
    fake.clear_writes();
    assert!(fake.writes().is_empty());
}

#[test]
fn external_changes_bypass_or_follow_the_kernel() {
    let fake = acpi(1);
    let gov = cf(0, "scaling_governor");
    fake.write(&gov, "userspace").unwrap();
    // tuned switches the governor through the kernel: setspeed goes away.
    fake.external_kernel_write(&gov, "performance").unwrap();
    assert_eq!(read(&fake, &gov), "performance");
    assert_eq!(read(&fake, cf(0, "scaling_setspeed")), "<unsupported>");
    assert_eq!(read(&fake, cf(0, "scaling_cur_freq")), "2301000");
    assert!(is_refused(fake.external_kernel_write(&gov, "bogus")));
    // A raw write bypasses every check.
    fake.external_write(&gov, "bogus").unwrap();
    assert_eq!(read(&fake, &gov), "bogus");
    assert_eq!(fake.writes().len(), 1, "external writes are not logged");
}

#[test]
fn read_only_and_missing_files() {
    let fake = acpi(1);
    let err = fake.write(&cf(0, "cpuinfo_max_freq"), "1").unwrap_err();
    assert!(
        matches!(err, SysfsError::PermissionDenied { .. }),
        "{err:?}"
    );
    let err = fake.write(&paths::cpu_root("online"), "0-1").unwrap_err();
    assert!(
        matches!(err, SysfsError::PermissionDenied { .. }),
        "{err:?}"
    );
    let err = fake.write(&cf(0, "base_frequency"), "1").unwrap_err();
    assert!(matches!(err, SysfsError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("base_frequency"));
}

#[test]
fn epp_is_checked_and_busy_under_performance() {
    let fake = FakeSysfs::builder(1)
        .driver(Driver::IntelPstate)
        .build()
        .unwrap();
    let epp = cf(0, "energy_performance_preference");
    assert_eq!(read(&fake, &epp), "balance_performance");
    fake.write(&epp, "power").unwrap();
    assert!(is_refused(fake.write(&epp, "fastest")));
    fake.write(&cf(0, "scaling_governor"), "performance")
        .unwrap();
    assert_eq!(read(&fake, &epp), "performance");
    let err = fake.write(&epp, "power").unwrap_err();
    assert!(matches!(err, SysfsError::Io { .. }), "{err:?}");
}

#[test]
fn uncore_bounds_are_checked_and_current_clamped() {
    let fake = FakeSysfs::builder(2)
        .packages(2)
        .uncore(Khz(800_000), Khz(2_400_000))
        .build()
        .unwrap();
    let file = |name: &str| paths::uncore_file(1, 0, name);
    assert_eq!(read(&fake, file("current_freq_khz")), "2400000");
    fake.write(&file("max_freq_khz"), "2000000").unwrap();
    assert_eq!(read(&fake, file("current_freq_khz")), "2000000");
    assert!(is_refused(fake.write(&file("max_freq_khz"), "2500000")));
    assert!(is_refused(fake.write(&file("min_freq_khz"), "700000")));
    assert!(is_refused(fake.write(&file("min_freq_khz"), "2100000")));
    fake.write(&file("min_freq_khz"), "2000000").unwrap();
    assert!(is_refused(fake.write(&file("max_freq_khz"), "1900000")));
    assert_eq!(
        read(&fake, paths::uncore_file(0, 0, "max_freq_khz")),
        "2400000"
    );
}

#[test]
fn topology_numbers_threads_like_x86() {
    let fake = FakeSysfs::builder(8)
        .packages(2)
        .threads_per_core(2)
        .build()
        .unwrap();
    let topo = |cpu: u32, f: &str| read(&fake, paths::topology_file(CpuId(cpu), f));
    assert_eq!(topo(0, "thread_siblings_list"), "0,4");
    assert_eq!(topo(5, "thread_siblings_list"), "1,5");
    assert_eq!(topo(2, "physical_package_id"), "1");
    assert_eq!(topo(6, "physical_package_id"), "1");
    assert_eq!(topo(3, "core_id"), "1");
    assert_eq!(topo(3, "package_cpus_list"), "2-3,6-7");
    assert!(FakeSysfs::builder(6).packages(4).build().is_err());
}

#[test]
fn cppc_and_amd_trees_have_their_files() {
    let cppc = FakeSysfs::builder(1)
        .driver(Driver::CppcCpufreq)
        .build()
        .unwrap();
    assert_eq!(
        read(&cppc, paths::cppc_file(CpuId(0), "nominal_freq")),
        "2300"
    );
    assert_eq!(
        read(&cppc, paths::cppc_file(CpuId(0), "highest_perf")),
        "350"
    );
    let amd = FakeSysfs::builder(1)
        .driver(Driver::AmdPstate)
        .build()
        .unwrap();
    assert_eq!(read(&amd, paths::amd_pstate("status")), "passive");
    assert_eq!(read(&amd, paths::boost()), "1");
    assert!(!amd.exists(&cf(0, "scaling_available_frequencies")));
}

#[test]
fn a_host_without_cpufreq_has_cpus_but_no_policies() {
    let fake = FakeSysfs::builder(2).no_cpufreq().build().unwrap();
    assert_eq!(read(&fake, paths::cpu_root("online")), "0-1");
    assert!(
        fake.list_dir(Path::new("devices/system/cpu/cpufreq"))
            .unwrap()
            .is_empty()
    );
    assert!(!fake.exists(&cf(0, "scaling_governor")));
}

#[test]
fn another_process_sees_the_same_files_and_keep_keeps_them() {
    let fake = acpi(2);
    fake.write(&cf(1, "scaling_governor"), "powersave").unwrap();
    let plain = Sysfs::new(fake.path());
    assert_eq!(plain.read(&cf(1, "scaling_governor")).unwrap(), "powersave");
    let root = fake.keep();
    assert!(root.join(cf(1, "scaling_governor")).exists());
    fs::remove_dir_all(&root).unwrap();

    let dropped = acpi(1);
    let path = dropped.path().to_owned();
    drop(dropped);
    assert!(!path.exists());
}

#[test]
fn builds_in_a_given_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSysfs::builder(1)
        .in_dir(dir.path().join("sys"))
        .build()
        .unwrap();
    assert_eq!(fake.path(), dir.path().join("sys"));
    drop(fake);
    assert!(
        dir.path()
            .join("sys")
            .join(cf(0, "scaling_driver"))
            .exists()
    );
}

#[test]
fn builder_refuses_inconsistent_hosts() {
    assert!(FakeSysfs::builder(0).build().is_err());
    assert!(FakeSysfs::builder(2).offline(&[0]).build().is_err());
    assert!(FakeSysfs::builder(2).offline(&[2]).build().is_err());
    assert!(
        FakeSysfs::builder(3)
            .domains(vec![vec![0, 1], vec![1, 2]])
            .build()
            .is_err()
    );
    assert!(
        FakeSysfs::builder(3)
            .domains(vec![vec![0, 1]])
            .build()
            .is_err()
    );
    assert!(
        FakeSysfs::builder(1)
            .table(vec![Khz(1_000_000), Khz(2_000_000)])
            .build()
            .is_err()
    );
}

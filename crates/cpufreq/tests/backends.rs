//! Both frequency-control mechanisms against fake sysfs trees that apply
//! the kernel's write rules: values land in the right files, writes happen
//! only on change and in an accepted order, changes by another tool are
//! noticed, and every error names the CPU, the file and the value.

// Helpers outside #[test] functions panic on setup failure, like the tests.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vmpower_cpufreq::backend::{BackendError, FrequencyControl, Mechanism, make_control};
use vmpower_cpufreq::discovery::paths::cpufreq_file;
use vmpower_cpufreq::fake::{FailKind, FakeSysfs};
use vmpower_cpufreq::{CpuId, Driver, Khz, SysfsIo};

fn fake(driver: Driver) -> Arc<FakeSysfs> {
    Arc::new(FakeSysfs::builder(4).driver(driver).build().unwrap())
}

fn control(fake: &Arc<FakeSysfs>, cpu: u32, domain: &[u32]) -> Box<dyn FrequencyControl> {
    let driver = fake.driver().unwrap().clone();
    let mechanism = Mechanism::for_cpu(CpuId(cpu), &driver).unwrap();
    let io: Arc<dyn SysfsIo> = fake.clone();
    make_control(
        io,
        mechanism,
        CpuId(cpu),
        domain.iter().map(|&c| CpuId(c)).collect(),
    )
}

fn file(cpu: u32, name: &str) -> PathBuf {
    cpufreq_file(CpuId(cpu), name)
}

fn read(fake: &FakeSysfs, cpu: u32, name: &str) -> String {
    fake.read(&file(cpu, name)).unwrap()
}

/// File names of the logged writes, in order.
fn write_names(fake: &FakeSysfs) -> Vec<String> {
    fake.writes()
        .iter()
        .map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn assert_names(err: &BackendError, cpu: u32, path: &Path, value: &str) {
    let text = err.to_string();
    assert!(text.contains(&format!("cpu{cpu}")), "{text}");
    assert!(
        text.contains(&path.display().to_string())
            || text.contains(path.file_name().unwrap().to_str().unwrap()),
        "{text}"
    );
    assert!(text.contains(value), "{text}");
    assert_eq!(err.cpu(), CpuId(cpu));
}

#[test]
fn mechanism_follows_the_driver() {
    use Driver::*;
    for (driver, want) in [
        (AcpiCpufreq, Some(Mechanism::Setspeed)),
        (IntelCpufreq, Some(Mechanism::Setspeed)),
        (AmdPstate, Some(Mechanism::Setspeed)),
        (CppcCpufreq, Some(Mechanism::Setspeed)),
        (IntelPstate, Some(Mechanism::Bounds)),
        (AmdPstateEpp, Some(Mechanism::Bounds)),
        (Other("pcc-cpufreq".into()), None),
    ] {
        assert_eq!(Mechanism::for_driver(&driver), want, "{driver}");
    }
    let err = Mechanism::for_cpu(CpuId(3), &Driver::Other("pcc-cpufreq".into())).unwrap_err();
    assert!(
        matches!(err, BackendError::UnknownDriver { cpu: CpuId(3), ref driver } if driver == "pcc-cpufreq")
    );
    assert!(
        err.to_string().contains("cpu3") && err.to_string().contains("pcc-cpufreq"),
        "{err}"
    );
}

#[test]
fn setspeed_tolerates_unsupported_then_takes_over_and_sets() {
    for driver in [
        Driver::AcpiCpufreq,
        Driver::IntelCpufreq,
        Driver::AmdPstate,
        Driver::CppcCpufreq,
    ] {
        let fake = fake(driver.clone());
        let mut c = control(&fake, 1, &[1]);
        assert_eq!(read(&fake, 1, "scaling_setspeed"), "<unsupported>");
        assert_eq!(
            c.current().unwrap(),
            None,
            "{driver}: <unsupported> is not an error"
        );
        c.prepare().unwrap();
        assert_eq!(read(&fake, 1, "scaling_governor"), "userspace");
        let out = c.set(Khz(1_200_000)).unwrap();
        assert!(out.written);
        assert_eq!(out.new, Khz(1_200_000));
        assert_eq!(out.domain, vec![CpuId(1)]);
        assert_eq!(read(&fake, 1, "scaling_setspeed"), "1200000", "{driver}");
        assert_eq!(read(&fake, 1, "scaling_cur_freq"), "1200000", "{driver}");
        assert_eq!(c.current().unwrap(), Some(Khz(1_200_000)));
        // Other CPUs untouched.
        assert_ne!(read(&fake, 0, "scaling_governor"), "userspace");
        assert_eq!(
            write_names(&fake),
            ["scaling_governor", "scaling_setspeed"],
            "{driver}"
        );
    }
}

#[test]
fn setspeed_writes_only_on_change() {
    let fake = fake(Driver::AcpiCpufreq);
    let mut c = control(&fake, 0, &[0]);
    c.prepare().unwrap();
    c.set(Khz(2_301_000)).unwrap();
    let again = c.set(Khz(2_301_000)).unwrap();
    assert!(!again.written);
    assert_eq!(again.old, Some(Khz(2_301_000)));
    assert_eq!(fake.writes_to(file(0, "scaling_setspeed")), ["2301000"]);
    // Preparing an already-userspace CPU writes no governor.
    fake.clear_writes();
    c.prepare().unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    c.set(Khz(800_000)).unwrap();
    assert_eq!(fake.writes_to(file(0, "scaling_setspeed")), ["800000"]);
}

#[test]
fn setspeed_notices_another_tool() {
    let fake = fake(Driver::AcpiCpufreq);
    let mut c = control(&fake, 2, &[2]);
    c.set(Khz(1_500_000)).unwrap();
    fake.external_kernel_write(file(2, "scaling_setspeed"), "1000000")
        .unwrap();
    let err = c.set(Khz(1_600_000)).unwrap_err();
    assert!(
        matches!(err, BackendError::ChangedExternally { ref found, ref expected, .. } if found == "1000000" && expected == "1500000"),
        "{err:?}"
    );
    assert_names(&err, 2, &file(2, "scaling_setspeed"), "1000000");

    fake.external_kernel_write(file(2, "scaling_governor"), "ondemand")
        .unwrap();
    fake.clear_writes();
    let err = c.set(Khz(1_600_000)).unwrap_err();
    assert!(
        matches!(err, BackendError::ChangedExternally { ref found, .. } if found == "ondemand"),
        "{err:?}"
    );
    assert_names(&err, 2, &file(2, "scaling_governor"), "ondemand");
    assert!(
        fake.writes().is_empty(),
        "nothing written after noticing: {:?}",
        fake.writes()
    );
}

#[test]
fn setspeed_names_a_governor_changed_before_the_first_set() {
    let fake = fake(Driver::AcpiCpufreq);
    let mut c = control(&fake, 1, &[1]);
    c.prepare().unwrap();
    fake.external_kernel_write(file(1, "scaling_governor"), "performance")
        .unwrap();
    fake.clear_writes();
    let err = c.set(Khz(1_000_000)).unwrap_err();
    assert!(
        matches!(err, BackendError::ChangedExternally { ref found, .. } if found == "performance"),
        "{err:?}"
    );
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    // Prepared again, the kept file serves the next change.
    c.prepare().unwrap();
    c.set(Khz(1_000_000)).unwrap();
    assert_eq!(c.current().unwrap(), Some(Khz(1_000_000)));
    assert_eq!(fake.writes_to(file(1, "scaling_setspeed")), ["1000000"]);
}

#[test]
fn setspeed_refuses_when_userspace_not_offered() {
    let fake = fake(Driver::IntelPstate);
    let io: Arc<dyn SysfsIo> = fake.clone();
    let mut c = make_control(io, Mechanism::Setspeed, CpuId(1), vec![CpuId(1)]);
    let err = c.prepare().unwrap_err();
    assert!(
        matches!(err, BackendError::GovernorNotOffered { ref wanted, .. } if wanted == "userspace"),
        "{err:?}"
    );
    assert_names(
        &err,
        1,
        &file(1, "scaling_available_governors"),
        "userspace",
    );
    assert!(fake.writes().is_empty());
}

#[test]
fn kernel_refusal_and_permission_name_cpu_file_value() {
    let fake = fake(Driver::AcpiCpufreq);
    let mut c = control(&fake, 3, &[3]);
    c.prepare().unwrap();
    fake.fail_next_write(file(3, "scaling_setspeed"), FailKind::Refused);
    let err = c.set(Khz(1_400_000)).unwrap_err();
    assert!(matches!(err, BackendError::Refused { .. }), "{err:?}");
    assert_names(&err, 3, &file(3, "scaling_setspeed"), "1400000");

    fake.fail_next_write(file(3, "scaling_setspeed"), FailKind::PermissionDenied);
    let err = c.set(Khz(1_400_000)).unwrap_err();
    assert!(
        matches!(err, BackendError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert_names(&err, 3, &file(3, "scaling_setspeed"), "1400000");

    // A real EINVAL from the emulated kernel: not a table entry.
    let err = c.set(Khz(1_450_000)).unwrap_err();
    assert!(
        matches!(err, BackendError::Refused { ref value, .. } if value == "1450000"),
        "{err:?}"
    );
    // The failures did not poison the control.
    c.set(Khz(1_400_000)).unwrap();
    assert_eq!(read(&fake, 3, "scaling_setspeed"), "1400000");
}

#[test]
fn offline_cpu_is_typed() {
    let fake = Arc::new(FakeSysfs::builder(4).offline(&[2]).build().unwrap());
    let mut c = control(&fake, 2, &[2]);
    let err = c.prepare().unwrap_err();
    assert!(
        matches!(err, BackendError::Offline { cpu: CpuId(2), .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("cpu2/cpufreq"), "{err}");
    // Going offline after takeover.
    let mut c = control(&fake, 1, &[1]);
    c.set(Khz(900_000)).unwrap();
    fake.set_online(CpuId(1), false).unwrap();
    let err = c.set(Khz(1_000_000)).unwrap_err();
    assert!(
        matches!(err, BackendError::Offline { cpu: CpuId(1), .. }),
        "{err:?}"
    );
}

#[test]
fn shared_domain_moves_siblings() {
    let fake = Arc::new(FakeSysfs::builder(4).domain_size(2).build().unwrap());
    let mut c = control(&fake, 2, &[2, 3]);
    let out = c.set(Khz(1_100_000)).unwrap();
    assert_eq!(out.domain, vec![CpuId(2), CpuId(3)]);
    assert_eq!(c.domain(), [CpuId(2), CpuId(3)]);
    assert_eq!(read(&fake, 3, "scaling_setspeed"), "1100000");
    assert_eq!(read(&fake, 3, "scaling_governor"), "userspace");
    assert_ne!(read(&fake, 1, "scaling_governor"), "userspace");
}

#[test]
fn bounds_pin_in_an_order_the_kernel_accepts() {
    for driver in [Driver::IntelPstate, Driver::AmdPstateEpp] {
        let fake = fake(driver.clone());
        let mut c = control(&fake, 0, &[0]);
        c.prepare().unwrap();
        assert_eq!(
            read(&fake, 0, "scaling_governor"),
            "powersave",
            "governor left alone"
        );
        assert_eq!(c.current().unwrap(), None, "bounds apart: nothing pinned");

        // Down from (800000, 3500000): min is already below, max moves.
        let out = c.set(Khz(1_500_000)).unwrap();
        assert!(out.written);
        assert_eq!(
            (
                read(&fake, 0, "scaling_min_freq"),
                read(&fake, 0, "scaling_max_freq")
            ),
            ("1500000".into(), "1500000".into())
        );
        assert_eq!(read(&fake, 0, "scaling_cur_freq"), "1500000", "{driver}");

        // Up: the max must go first.
        fake.clear_writes();
        c.set(Khz(3_500_000)).unwrap();
        assert_eq!(
            write_names(&fake),
            ["scaling_max_freq", "scaling_min_freq"],
            "{driver}"
        );
        // Down: the min must go first.
        fake.clear_writes();
        c.set(Khz(800_000)).unwrap();
        assert_eq!(
            write_names(&fake),
            ["scaling_min_freq", "scaling_max_freq"],
            "{driver}"
        );
        assert_eq!(c.current().unwrap(), Some(Khz(800_000)));
        assert_eq!(read(&fake, 0, "scaling_cur_freq"), "800000");

        fake.clear_writes();
        let again = c.set(Khz(800_000)).unwrap();
        assert!(
            !again.written && fake.writes().is_empty(),
            "no write when unchanged"
        );
    }
}

#[test]
fn bounds_notice_another_tool_and_name_errors() {
    let fake = fake(Driver::IntelPstate);
    let mut c = control(&fake, 1, &[1]);
    c.set(Khz(2_000_000)).unwrap();
    fake.external_kernel_write(file(1, "scaling_max_freq"), "3000000")
        .unwrap();
    fake.clear_writes();
    let err = c.set(Khz(1_000_000)).unwrap_err();
    assert!(
        matches!(err, BackendError::ChangedExternally { ref expected, ref found, .. } if expected == "2000000" && found == "3000000"),
        "{err:?}"
    );
    assert_names(&err, 1, &file(1, "scaling_max_freq"), "3000000");
    assert!(fake.writes().is_empty());

    // Re-taking over forgets what was written and pins again.
    c.prepare().unwrap();
    fake.fail_next_write(file(1, "scaling_min_freq"), FailKind::PermissionDenied);
    let err = c.set(Khz(1_000_000)).unwrap_err();
    assert!(
        matches!(err, BackendError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert_names(&err, 1, &file(1, "scaling_min_freq"), "1000000");

    // Above cpuinfo_max_freq: the emulated kernel refuses.
    let err = c.set(Khz(9_000_000)).unwrap_err();
    assert!(
        matches!(err, BackendError::Refused { ref value, .. } if value == "9000000"),
        "{err:?}"
    );
}

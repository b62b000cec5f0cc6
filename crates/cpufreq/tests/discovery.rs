//! Discovery against fake trees of every driver family, with turbo on and
//! off, shared domains, offline CPUs, uncore, broken files and hosts
//! without cpufreq.

use std::collections::BTreeSet;
use std::path::Path;

use vmpower_cpufreq::discovery::{DiscoveryError, HostCpus, discover, paths, read_state};
use vmpower_cpufreq::fake::{FakeSysfs, FakeSysfsBuilder};
use vmpower_cpufreq::uncore::read_uncore_domain;
use vmpower_cpufreq::{CpuId, Driver, Khz, Sysfs, SysfsError, SysfsIo};

fn host(builder: FakeSysfsBuilder) -> (FakeSysfs, HostCpus) {
    let fake = builder.build().expect("a valid fake host");
    let host = discover(&fake).expect("discovery succeeds");
    (fake, host)
}

fn ids(list: &[u32]) -> BTreeSet<CpuId> {
    list.iter().copied().map(CpuId).collect()
}

/// Expected facts for one driver family with turbo on or off.
struct Case {
    driver: Driver,
    turbo: bool,
    table_head: Option<u32>,
    cpuinfo_max: u32,
    governor: &'static str,
    governors: usize,
    epp: bool,
    /// `None`: no switch (the boost file exists only with turbo).
    enabled: Option<bool>,
}

#[test]
fn every_driver_family_with_turbo_on_and_off() {
    use Driver::*;
    let case = |driver, turbo, table_head, cpuinfo_max, governor, governors, epp| Case {
        enabled: match (&driver, turbo) {
            // intel_pstate always has no_turbo (1 without turbo).
            (IntelPstate | IntelCpufreq, on) => Some(on),
            (_, true) => Some(true),
            (_, false) => None,
        },
        driver,
        turbo,
        table_head,
        cpuinfo_max,
        governor,
        governors,
        epp,
    };
    let cases = [
        case(
            AcpiCpufreq,
            true,
            Some(2_301_000),
            2_301_000,
            "schedutil",
            6,
            false,
        ),
        case(
            AcpiCpufreq,
            false,
            Some(2_300_000),
            2_300_000,
            "schedutil",
            6,
            false,
        ),
        case(IntelPstate, true, None, 3_500_000, "powersave", 2, true),
        case(IntelPstate, false, None, 2_300_000, "powersave", 2, true),
        case(IntelCpufreq, true, None, 3_500_000, "schedutil", 6, false),
        case(IntelCpufreq, false, None, 2_300_000, "schedutil", 6, false),
        case(AmdPstate, true, None, 3_500_000, "schedutil", 6, false),
        case(AmdPstate, false, None, 2_300_000, "schedutil", 6, false),
        case(AmdPstateEpp, true, None, 3_500_000, "powersave", 2, true),
        case(AmdPstateEpp, false, None, 2_300_000, "powersave", 2, true),
        case(CppcCpufreq, true, None, 3_500_000, "schedutil", 6, false),
        case(CppcCpufreq, false, None, 2_300_000, "schedutil", 6, false),
    ];
    for c in cases {
        let label = format!("{} turbo={}", c.driver, c.turbo);
        let (_fake, host) = host(
            FakeSysfs::builder(2)
                .driver(c.driver.clone())
                .turbo(c.turbo),
        );
        assert_eq!(host.with_cpufreq().count(), 2, "{label}");
        let freq = host.cpu(CpuId(1)).unwrap().cpufreq.as_ref().unwrap();
        assert_eq!(freq.driver, c.driver, "{label}");
        assert_eq!(freq.state.governor, c.governor, "{label}");
        assert_eq!(freq.available_governors.len(), c.governors, "{label}");
        assert_eq!(freq.table.as_ref().map(|t| t[0].0), c.table_head, "{label}");
        assert_eq!(freq.cpuinfo_min, Khz(800_000), "{label}");
        assert_eq!(freq.cpuinfo_max, Khz(c.cpuinfo_max), "{label}");
        assert_eq!(freq.base, Some(Khz(2_300_000)), "{label}");
        assert_eq!(freq.turbo_available, c.turbo, "{label}");
        assert_eq!(host.turbo_enabled(), c.enabled, "{label}");
        assert_eq!(freq.epp.is_some(), c.epp, "{label}");
        assert_eq!(freq.state.setspeed, None, "{label}: <unsupported> is None");
    }
}

#[test]
fn acpi_table_is_highest_first_even_when_listed_ascending() {
    let fake = FakeSysfs::builder(1).build().unwrap();
    let file = paths::cpufreq_file(CpuId(0), "scaling_available_frequencies");
    fake.external_write(&file, "800000 1200000 1000000 ")
        .unwrap();
    let host = discover(&fake).unwrap();
    let freq = host.cpu(CpuId(0)).unwrap().cpufreq.clone().unwrap();
    assert_eq!(
        freq.table.unwrap(),
        vec![Khz(1_200_000), Khz(1_000_000), Khz(800_000)]
    );
}

#[test]
fn intel_turbo_disabled_is_still_available() {
    let (_fake, host) = host(
        FakeSysfs::builder(1)
            .driver(Driver::IntelPstate)
            .turbo_enabled(false),
    );
    let freq = host.cpu(CpuId(0)).unwrap().cpufreq.as_ref().unwrap();
    assert!(freq.turbo_available);
    assert_eq!(host.turbo_enabled(), Some(false));
    let intel = host.globals.intel_pstate.as_ref().unwrap();
    assert_eq!(intel.status.as_deref(), Some("active"));
    assert_eq!(intel.no_turbo, Some(true));
    assert_eq!(intel.max_perf_pct, Some(100));
    assert_eq!(host.globals.boost, None);
}

#[test]
fn amd_status_and_boost_are_global_switches() {
    let (_fake, host) = host(
        FakeSysfs::builder(2)
            .driver(Driver::AmdPstateEpp)
            .turbo_enabled(false),
    );
    assert_eq!(host.globals.amd_pstate_status.as_deref(), Some("active"));
    assert_eq!(host.globals.boost, Some(false));
    assert_eq!(host.turbo_enabled(), Some(false));
    let epp = host
        .cpu(CpuId(0))
        .unwrap()
        .cpufreq
        .as_ref()
        .unwrap()
        .epp
        .clone()
        .unwrap();
    assert_eq!(epp.current, "balance_performance");
    assert!(epp.available.contains(&"power".to_owned()));
}

#[test]
fn shared_domains_group_cpus_that_move_together() {
    let (_fake, host) =
        host(FakeSysfs::builder(6).domains(vec![vec![0, 1, 2], vec![3, 4], vec![5]]));
    assert_eq!(host.domains.len(), 3);
    assert_eq!(host.moves_with(CpuId(1)), ids(&[0, 1, 2]));
    assert_eq!(host.moves_with(CpuId(4)), ids(&[3, 4]));
    assert_eq!(host.moves_with(CpuId(5)), ids(&[5]));
    let domain = host.domain_of(CpuId(4)).unwrap();
    assert_eq!(domain.policy, "policy3");
    assert_eq!(domain.affected, ids(&[3, 4]));
    let freq = host.cpu(CpuId(2)).unwrap().cpufreq.as_ref().unwrap();
    assert_eq!(freq.policy, "policy0");
    assert_eq!(freq.related_cpus, ids(&[0, 1, 2]));
}

#[test]
fn offline_cpus_are_listed_without_cpufreq() {
    let (_fake, host) = host(FakeSysfs::builder(4).domain_size(2).offline(&[1, 3]));
    assert_eq!(host.cpus.len(), 4);
    assert_eq!(host.online().collect::<Vec<_>>(), vec![CpuId(0), CpuId(2)]);
    let off = host.cpu(CpuId(3)).unwrap();
    assert!(!off.online && off.cpufreq.is_none() && off.topology.is_none());
    let domain = host.domain_of(CpuId(2)).unwrap();
    assert_eq!(domain.related, ids(&[2, 3]));
    assert_eq!(domain.affected, ids(&[2]));
    assert_eq!(host.moves_with(CpuId(3)), ids(&[3]), "offline: no domain");
}

#[test]
fn topology_reports_packages_dies_cores_and_siblings() {
    let (_fake, host) = host(
        FakeSysfs::builder(8)
            .packages(2)
            .dies_per_package(2)
            .threads_per_core(2),
    );
    let topo = |cpu| host.cpu(CpuId(cpu)).unwrap().topology.clone().unwrap();
    assert_eq!(topo(0).thread_siblings, ids(&[0, 4]));
    assert_eq!(topo(3).package, Some(1));
    assert_eq!(topo(3).die, Some(1));
    assert_eq!(topo(7).core, Some(1));
    assert_eq!(topo(2).die, Some(0));
}

#[test]
fn unknown_id_minus_one_is_none() {
    let fake = FakeSysfs::builder(1).build().unwrap();
    fake.external_write(paths::topology_file(CpuId(0), "physical_package_id"), "-1")
        .unwrap();
    let host = discover(&fake).unwrap();
    assert_eq!(
        host.cpu(CpuId(0))
            .unwrap()
            .topology
            .as_ref()
            .unwrap()
            .package,
        None
    );
}

#[test]
fn uncore_domains_are_discovered_and_reread() {
    let (fake, host) = host(
        FakeSysfs::builder(4)
            .packages(2)
            .dies_per_package(2)
            .uncore(Khz(800_000), Khz(2_400_000)),
    );
    let names: Vec<_> = host.uncore.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "package_00_die_00",
            "package_00_die_01",
            "package_01_die_00",
            "package_01_die_01"
        ]
    );
    let u = &host.uncore[2];
    assert_eq!((u.package, u.die), (1, 0));
    assert_eq!(
        (u.initial_min, u.initial_max),
        (Khz(800_000), Khz(2_400_000))
    );
    assert_eq!(u.current, Some(Khz(2_400_000)));
    fake.write(&u.dir().join("max_freq_khz"), "1600000")
        .unwrap();
    let again = read_uncore_domain(&fake, &u.name).unwrap();
    assert_eq!(
        (again.max, again.current),
        (Khz(1_600_000), Some(Khz(1_600_000)))
    );
    let (_plain, none) = host_without_uncore();
    assert!(none.uncore.is_empty());
}

fn host_without_uncore() -> (FakeSysfs, HostCpus) {
    host(FakeSysfs::builder(1))
}

fn parse_error_names(err: DiscoveryError, file: &str, content: &str) {
    match &err {
        DiscoveryError::Sysfs(SysfsError::Parse {
            path, content: c, ..
        }) => {
            assert!(path.ends_with(file), "{path:?}");
            assert_eq!(c, content);
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(file) && text.contains(content), "{text}");
}

#[test]
fn garbage_in_a_file_is_an_error_naming_it() {
    let fake = FakeSysfs::builder(2).domain_size(2).build().unwrap();
    fake.external_write(paths::cpufreq_file(CpuId(1), "cpuinfo_max_freq"), "lots")
        .unwrap();
    let err = discover(&fake).unwrap_err();
    parse_error_names(err, "cpu0/cpufreq/cpuinfo_max_freq", "lots");

    let fake = FakeSysfs::builder(2).build().unwrap();
    fake.external_write(paths::cpu_root("online"), "0-x")
        .unwrap();
    parse_error_names(discover(&fake).unwrap_err(), "cpu/online", "0-x");

    let fake = FakeSysfs::builder(2).build().unwrap();
    fake.external_write(paths::boost(), "maybe").unwrap();
    parse_error_names(discover(&fake).unwrap_err(), "cpufreq/boost", "maybe");

    let fake = FakeSysfs::builder(2).build().unwrap();
    fake.external_write(paths::cpufreq_file(CpuId(0), "scaling_setspeed"), "fast")
        .unwrap();
    parse_error_names(discover(&fake).unwrap_err(), "scaling_setspeed", "fast");
}

#[test]
fn a_host_without_cpufreq_discovers_cpus_without_it() {
    let (_fake, host) = host(FakeSysfs::builder(4).no_cpufreq().offline(&[2]));
    assert_eq!(host.cpus.len(), 4);
    assert_eq!(host.with_cpufreq().count(), 0);
    assert!(host.domains.is_empty());
    assert_eq!(host.online().count(), 3);
    assert!(host.cpu(CpuId(1)).unwrap().topology.is_some());
    assert_eq!(host.turbo_enabled(), None);
    assert_eq!(host.moves_with(CpuId(1)), ids(&[1]));
}

#[test]
fn an_unknown_driver_is_other_not_an_error() {
    let (_fake, host) = host(FakeSysfs::builder(1).driver(Driver::Other("weird-freq".into())));
    let freq = host.cpu(CpuId(0)).unwrap().cpufreq.as_ref().unwrap();
    assert_eq!(freq.driver, Driver::Other("weird-freq".into()));
}

#[test]
fn online_list_and_files_must_agree() {
    let fake = FakeSysfs::builder(3).build().unwrap();
    fake.external_write(paths::cpu_online(CpuId(2)), "0")
        .unwrap();
    match discover(&fake).unwrap_err() {
        DiscoveryError::OnlineMismatch {
            cpu,
            listed,
            file_says,
            ..
        } => {
            assert_eq!((cpu, listed, file_says), (CpuId(2), true, false));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_root_without_cpus_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(paths::CPU_DIR)).unwrap();
    let err = discover(&Sysfs::new(dir.path())).unwrap_err();
    assert!(matches!(err, DiscoveryError::NoCpus { .. }), "{err:?}");
    let err = discover(&Sysfs::new(dir.path().join("nope"))).unwrap_err();
    assert!(matches!(err, DiscoveryError::Sysfs(_)), "{err:?}");
}

#[test]
fn refresh_reads_back_writes_and_external_changes() {
    let (fake, mut host) = host(FakeSysfs::builder(4).domain_size(2));
    let gov = paths::cpufreq_file(CpuId(3), "scaling_governor");
    fake.write(&gov, "userspace").unwrap();
    fake.write(
        &paths::cpufreq_file(CpuId(3), "scaling_setspeed"),
        "1500000",
    )
    .unwrap();
    let state = host.refresh(&fake, CpuId(3)).unwrap();
    assert_eq!(state.governor, "userspace");
    assert_eq!(state.setspeed, Some(Khz(1_500_000)));
    assert_eq!(state.cur, Khz(1_500_000));
    // The domain partner sees the same state; other domains are untouched.
    let partner = &host.cpu(CpuId(2)).unwrap().cpufreq.as_ref().unwrap().state;
    assert_eq!(partner, &state);
    let other = &host.cpu(CpuId(0)).unwrap().cpufreq.as_ref().unwrap().state;
    assert_eq!(other.governor, "schedutil");
    // tuned switches the governor under us.
    fake.external_kernel_write(&gov, "performance").unwrap();
    let state = read_state(&fake, CpuId(2)).unwrap();
    assert_eq!(state.governor, "performance");
    assert_eq!(state.setspeed, None);
    assert_eq!(host.refresh(&fake, CpuId(2)).unwrap(), state);
}

#[test]
fn refresh_of_a_cpu_without_cpufreq_is_a_typed_error() {
    let (fake, mut host) = host(FakeSysfs::builder(3).offline(&[2]));
    let err = host.refresh(&fake, CpuId(2)).unwrap_err();
    assert!(
        matches!(err, DiscoveryError::NoCpufreq { cpu: CpuId(2) }),
        "{err:?}"
    );
    assert!(matches!(
        host.refresh(&fake, CpuId(9)),
        Err(DiscoveryError::NoCpufreq { .. })
    ));
}

#[test]
fn plain_sysfs_over_the_fake_tree_sees_the_same_host() {
    let fake = FakeSysfs::builder(4)
        .driver(Driver::IntelPstate)
        .domain_size(2)
        .offline(&[3])
        .uncore(Khz(1_000_000), Khz(2_000_000))
        .build()
        .unwrap();
    let via_fake = discover(&fake).unwrap();
    let via_plain = discover(&Sysfs::new(fake.path())).unwrap();
    assert_eq!(via_fake, via_plain);
    // And the description survives a JSON round trip.
    let json = serde_json::to_string(&via_fake).unwrap();
    let back: HostCpus = serde_json::from_str(&json).unwrap();
    assert_eq!(back, via_fake);
    assert!(Path::new(fake.path()).is_absolute());
    assert!(fake.exists(&paths::cpu_root("intel_pstate/status")));
}

//! Property tests of the fake kernel: whatever sequence of writes a backend
//! makes, the tree stays one a kernel could show, a refused write changes
//! nothing, and discovery never panics on garbage.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;
use vmpower_cpufreq::discovery::{discover, paths};
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::{CpuId, Driver, SysfsIo};

#[derive(Debug, Clone)]
enum Op {
    Governor(&'static str),
    Setspeed(u32),
    Min(u32),
    Max(u32),
    Boost(&'static str),
}

fn op() -> impl Strategy<Value = Op> {
    // Frequencies around the default range (800 MHz .. 3.5 GHz), on and
    // off the 100 MHz grid, plus the acpi turbo pseudo-entry.
    let freq = prop_oneof![
        (7u32..=36).prop_map(|n| n * 100_000),
        Just(2_301_000u32),
        600_000u32..4_000_000,
    ];
    prop_oneof![
        prop::sample::select(vec![
            "userspace",
            "performance",
            "powersave",
            "schedutil",
            "bogus"
        ])
        .prop_map(Op::Governor),
        freq.clone().prop_map(Op::Setspeed),
        freq.clone().prop_map(Op::Min),
        freq.prop_map(Op::Max),
        prop::sample::select(vec!["0", "1", "2"]).prop_map(Op::Boost),
    ]
}

fn policy_snapshot(fake: &FakeSysfs) -> BTreeMap<String, String> {
    let dir = fake.path().join(paths::policy_dir("policy0"));
    fs::read_dir(&dir)
        .expect("the policy directory exists")
        .map(|e| {
            let e = e.expect("a directory entry");
            let content = fs::read_to_string(e.path()).expect("a readable file");
            (e.file_name().to_string_lossy().into_owned(), content)
        })
        .collect()
}

fn num(snapshot: &BTreeMap<String, String>, file: &str) -> u32 {
    snapshot[file].trim().parse().expect("a number")
}

fn apply(fake: &FakeSysfs, op: &Op) -> bool {
    let cf = |file: &str| paths::cpufreq_file(CpuId(0), file);
    let (path, value): (PathBuf, String) = match op {
        Op::Governor(g) => (cf("scaling_governor"), (*g).to_owned()),
        Op::Setspeed(f) => (cf("scaling_setspeed"), f.to_string()),
        Op::Min(f) => (cf("scaling_min_freq"), f.to_string()),
        Op::Max(f) => (cf("scaling_max_freq"), f.to_string()),
        Op::Boost(v) => {
            let switch = match fake.driver() {
                Some(Driver::IntelPstate) => paths::intel_pstate("no_turbo"),
                _ => paths::boost(),
            };
            (switch, (*v).to_owned())
        }
    };
    fake.write(&path, &value).is_ok()
}

fn check_invariants(s: &BTreeMap<String, String>) -> Result<(), TestCaseError> {
    let (min, max, cur) = (
        num(s, "scaling_min_freq"),
        num(s, "scaling_max_freq"),
        num(s, "scaling_cur_freq"),
    );
    let (hw_min, hw_max) = (num(s, "cpuinfo_min_freq"), num(s, "cpuinfo_max_freq"));
    prop_assert!(hw_min <= min && min <= max && max <= hw_max, "{s:?}");
    // The turbo cap may hold cur below a min set above the base frequency.
    prop_assert!(cur <= max && (cur >= min || cur <= 2_300_000), "{s:?}");
    if let Some(table) = s.get("scaling_available_frequencies") {
        prop_assert!(
            table.split_whitespace().any(|f| f == cur.to_string()),
            "{s:?}"
        );
    }
    let governor = s["scaling_governor"].trim();
    let setspeed = s["scaling_setspeed"].trim();
    if governor == "userspace" {
        prop_assert_eq!(setspeed, cur.to_string());
    } else {
        prop_assert_eq!(setspeed, "<unsupported>");
    }
    prop_assert!(
        s["scaling_available_governors"]
            .split_whitespace()
            .any(|g| g == governor),
        "{s:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_write_sequence_keeps_a_kernel_like_tree(
        intel in any::<bool>(),
        ops in prop::collection::vec(op(), 1..25),
    ) {
        let driver = if intel { Driver::IntelCpufreq } else { Driver::AcpiCpufreq };
        let fake = FakeSysfs::builder(2).domain_size(2).driver(driver).build().expect("a valid host");
        let mut accepted = 0;
        for op in &ops {
            let before = policy_snapshot(&fake);
            if apply(&fake, op) {
                accepted += 1;
            } else {
                prop_assert_eq!(&before, &policy_snapshot(&fake), "refused {:?} changed the tree", op);
            }
            check_invariants(&policy_snapshot(&fake))?;
        }
        prop_assert_eq!(fake.writes().len(), accepted);
    }

    #[test]
    fn discovery_never_panics_on_garbage(
        file in prop::sample::select(vec![
            "scaling_cur_freq", "cpuinfo_max_freq", "related_cpus", "scaling_setspeed",
            "scaling_available_frequencies", "scaling_governor",
        ]),
        content in "[ -~]{0,24}",
    ) {
        let fake = FakeSysfs::builder(2).build().expect("a valid host");
        fake.external_write(paths::cpufreq_file(CpuId(1), file), &content).expect("a raw write");
        if let Err(err) = discover(&fake) {
            prop_assert!(err.to_string().contains(file), "{err}");
        }
        prop_assert!(fake.exists(&paths::cpufreq_file(CpuId(1), file)));
    }
}

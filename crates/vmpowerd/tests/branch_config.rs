//! Per-core BRANCH_RATIO thresholds in the configuration: the file's
//! `core_branch_ratio` list and the repeatable `--core-branch-ratio` flag,
//! good and bad inputs, errors naming the bad element.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use clap::Parser;
use vmpower_cpufreq::CpuId;
use vmpowerd::config::{Args, Config, ConfigError};

fn invalid_key(err: ConfigError) -> (String, String) {
    match err {
        ConfigError::Invalid { key, reason } => (key, reason),
        other => panic!("expected an invalid setting, got {other}"),
    }
}

#[test]
fn the_file_lists_thresholds_per_set_of_cores() {
    let c = Config::from_toml(
        r#"core_branch_ratio = ["2-4:0.01", "6,8:0.2"]"#,
        Path::new("c.toml"),
    )
    .unwrap();
    let map = c.branch_thresholds().unwrap();
    let cpus: Vec<u32> = map.keys().map(|c| c.0).collect();
    assert_eq!(cpus, vec![2, 3, 4, 6, 8]);
    assert_eq!(map[&CpuId(8)], 0.2);
    assert_eq!(map[&CpuId(3)], 0.01);
    assert!(Config::default().branch_thresholds().unwrap().is_empty());
}

#[test]
fn bad_file_entries_are_named_by_position_and_text() {
    let cases = [
        (r#"["2-4:0.01", "3"]"#, "core_branch_ratio[1]", "\"3\""),
        (r#"["x-4:0.01"]"#, "core_branch_ratio[0]", "x-4"),
        (r#"["1:2"]"#, "core_branch_ratio[0]", "\"1:2\""),
        (r#"["1-2:0.1", "0,2:0.3"]"#, "core_branch_ratio[1]", "CPU 2"),
    ];
    for (list, key, detail) in cases {
        let text = format!("core_branch_ratio = {list}");
        let err = Config::from_toml(&text, Path::new("c.toml")).unwrap_err();
        let (got, reason) = invalid_key(err);
        assert_eq!(got, key, "{list}");
        assert!(reason.contains(detail), "{list}: {reason}");
    }
    let err = Config::from_toml("core_branch_ratio = \"2-4:0.01\"", Path::new("c.toml"));
    assert!(
        matches!(err, Err(ConfigError::Parse { .. })),
        "a list, not a string"
    );
}

#[test]
fn the_repeatable_flag_replaces_the_files_list() {
    let args = Args::try_parse_from([
        "vmpowerd",
        "--core-branch-ratio",
        "2-4:0.01",
        "--core-branch-ratio",
        "7:0.05",
    ])
    .unwrap();
    assert_eq!(args.core_branch_ratio, vec!["2-4:0.01", "7:0.05"]);
    let mut c = Config::from_toml(r#"core_branch_ratio = ["0:0.5"]"#, Path::new("c")).unwrap();
    c.apply_args(&args);
    let map = c.branch_thresholds().unwrap();
    assert_eq!(
        map.keys().map(|c| c.0).collect::<Vec<_>>(),
        vec![2, 3, 4, 7]
    );
    // No flag: the file's list stays.
    let mut c = Config::from_toml(r#"core_branch_ratio = ["0:0.5"]"#, Path::new("c")).unwrap();
    c.apply_args(&Args::default());
    assert_eq!(c.core_branch_ratio, vec!["0:0.5"]);
    // A bad flag is caught by validation, with its position.
    let args = Args::try_parse_from(["vmpowerd", "--core-branch-ratio", "2-4"]).unwrap();
    let mut c = Config::default();
    c.apply_args(&args);
    let (key, reason) = invalid_key(c.validate().unwrap_err());
    assert_eq!(key, "core_branch_ratio[0]");
    assert!(reason.contains("CPULIST:THRESHOLD"), "{reason}");
}

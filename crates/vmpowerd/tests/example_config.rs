//! `contrib/vmpowerd.toml`, the example configuration, against the
//! daemon's real parser: as shipped it parses to the defaults (so the
//! defaults it states are true); with every `#key = value` line
//! uncommented it still parses, and it names every setting of `Config`,
//! of a `[vm.NAME]` table, of `rate_limit` and of a `mac_devices` entry —
//! a new setting without an example fails here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use vmpowerd::config::{Config, VmConfig};
use vmpowerd::traffic::ConfiguredDevice;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/vmpowerd.toml")
}

fn example() -> String {
    std::fs::read_to_string(example_path()).unwrap()
}

/// The example with its commented-out settings (`#key = value`, `#[table]`:
/// no space after the `#`) turned on; prose comments (`# text`) stay.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The keys a value serializes to (its fields, for a struct).
fn keys_of(value: &impl serde::Serialize) -> BTreeSet<String> {
    match serde_json::to_value(value).unwrap() {
        serde_json::Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not a struct: {other}"),
    }
}

fn table_keys(value: &toml::Value) -> BTreeSet<String> {
    value
        .as_table()
        .unwrap_or_else(|| panic!("not a table: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn missing(wanted: &BTreeSet<String>, present: &BTreeSet<String>) -> Vec<String> {
    wanted.difference(present).cloned().collect()
}

#[test]
fn as_shipped_it_parses_to_the_defaults() {
    let config = Config::from_toml(&example(), &example_path()).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn uncommented_it_parses_and_validates() {
    let text = uncommented(&example());
    // Parsed without validation first: libvirt_uri is refused by a build
    // without the libvirt feature, which is right but not the example's
    // fault.
    let mut config: Config = toml::from_str(&text).unwrap();
    assert!(config.metrics_address.is_some(), "metrics_address example");
    assert!(config.libvirt_uri.is_some(), "libvirt_uri example");
    assert_eq!(config.vm.len(), 1, "one example VM");
    assert_eq!(config.mac_devices.len(), 1, "one example MAC");
    if !cfg!(feature = "libvirt") {
        config.libvirt_uri = None;
    }
    config.validate().unwrap();
}

#[test]
fn every_setting_has_an_example() {
    let text = uncommented(&example());
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let top = table_keys(&doc);
    let absent = missing(&keys_of(&Config::default()), &top);
    assert!(absent.is_empty(), "settings without an example: {absent:?}");

    let absent = missing(
        &keys_of(&Config::default().rate_limit),
        &table_keys(&doc["rate_limit"]),
    );
    assert!(
        absent.is_empty(),
        "rate_limit.{absent:?} without an example"
    );

    let vms = doc["vm"].as_table().unwrap();
    let (_, vm) = vms.iter().next().expect("an example [vm.NAME] table");
    let absent = missing(&keys_of(&VmConfig::default()), &table_keys(vm));
    assert!(absent.is_empty(), "vm.NAME.{absent:?} without an example");

    let device = ConfiguredDevice {
        ifname: "vnet0".to_owned(),
        direction: Default::default(),
    };
    let macs = doc["mac_devices"].as_table().unwrap();
    let (_, entry) = macs.iter().next().expect("an example mac_devices entry");
    let absent = missing(&keys_of(&device), &table_keys(entry));
    assert!(
        absent.is_empty(),
        "mac_devices entry {absent:?} without an example"
    );
}

#[test]
fn every_setting_is_explained() {
    // Blocks are separated by blank lines; a block with a setting in it
    // (commented out or not) has a prose comment too.
    let text = example();
    for block in text.split("\n\n") {
        let is_setting = |l: &&str| !l.starts_with("# ") && l.contains(" = ");
        let is_prose = |l: &&str| l.starts_with("# ");
        if let Some(setting) = block.lines().find(is_setting) {
            assert!(
                block.lines().any(|l| is_prose(&l)),
                "{setting:?} has no comment"
            );
        }
    }
}

#[test]
fn the_uncommenting_rule_keeps_prose() {
    let text = "# prose = not a setting\n#key = 1\n## heading\n#\n";
    assert_eq!(
        uncommented(text),
        "# prose = not a setting\nkey = 1\n## heading\n#"
    );
}

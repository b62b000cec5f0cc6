//! Every built-in CPU model through the binary: `vmpower-sim run --cpu
//! NAME` accepts it and charges static max exactly its table's top
//! P-state plus its uncore share, and an unknown name is refused with the
//! list of built-ins. Bounded: a few 5 s traces, well under a second each.

use std::process::Command;

use vmpower_sim::power::{CpuModel, builtin_names};

const SECONDS: f64 = 5.0;

fn run(cpu: &str, json: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmpower-sim"))
        .args([
            "run",
            "--cpu",
            cpu,
            "--vms",
            "1",
            "--seconds",
            "5",
            "--json",
        ])
        .arg(json)
        .output()
        .expect("the binary starts")
}

#[test]
fn run_accepts_every_builtin_and_uses_its_table() {
    let dir = tempfile::tempdir().unwrap();
    for name in builtin_names() {
        let model = CpuModel::load(name).unwrap();
        let json = dir.path().join(format!("{name}.json"));
        let out = run(name, &json);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["cpu_model"], model.name.as_str(), "{name}");
        let max = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["controller"] == "static max")
            .expect("static max is always compared");
        let want = (model.core_w(0) + model.uncore_share_w()) * SECONDS;
        let got = max["energy_j"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-6 * want,
            "{name}: static max {got} J, table says {want} J"
        );
    }
}

#[test]
fn run_refuses_an_unknown_model_naming_the_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("no-such-cpu", &dir.path().join("x.json"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-cpu"), "{err}");
    for name in builtin_names() {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
}

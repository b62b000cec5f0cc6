//! The engine is pure by construction, not by convention: this test reads
//! the manifests and fails when `vmpower-engine`, or a workspace crate it
//! depends on, gains a dependency that is not on the allow-list below of
//! crates known to do no I/O (no files, sockets, processes or clock).
//!
//! It checks `[dependencies]`, `[build-dependencies]` and their
//! `[target.*]` forms of the engine and, recursively, of every workspace
//! crate it reaches (`vmpower-proto`, `vmpower-types`); the engine's own
//! `[dev-dependencies]` against a short list of test-only crates. Registry
//! crates are trusted by name (and jiff by its features): their own
//! dependency trees are what `cargo tree -p vmpower-engine` shows.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// Registry crates the engine may reach, each with why it does no I/O.
const PURE_EXTERNAL: &[(&str, &str)] = &[
    ("thiserror", "derives Error impls"),
    (
        "serde",
        "(de)serialisation traits over data the caller holds",
    ),
    (
        "serde_json",
        "JSON to and from values in memory (vmpower-proto)",
    ),
    (
        "jiff",
        "civil-time arithmetic on timestamps passed in, bundled tzdb (see JIFF_IO_FEATURES)",
    ),
    ("smallvec", "inline vectors"),
];

/// Workspace crates the engine may reach; each is checked the same way.
const PURE_WORKSPACE: &[&str] = &["vmpower-proto", "vmpower-types"];

/// Crates only the engine's tests and benches use, never linked into it.
/// Its tests build frequency tables from `vmpower-types`, not from the
/// cpufreq crate's fake sysfs trees.
const DEV_ONLY: &[&str] = &["proptest", "criterion", "toml"];

/// jiff features that read the host's files (the system time zone, the
/// zoneinfo database); jiff's default features include them.
const JIFF_IO_FEATURES: &[&str] = &[
    "tz-system",
    "tzdb-zoneinfo",
    "tzdb-concatenated",
    "tzdb-bundle-platform",
];

const WHY: &str = "vmpower-engine makes the decisions and must do no I/O \
    (ARCHITECTURE.md): sysfs, sockets and clocks belong in vmpower-cpufreq \
    and vmpowerd. If the new crate does no I/O, add it to the allow-list in \
    crates/engine/tests/purity.rs with the reason";

/// One dependency as a manifest declares it.
struct Dep {
    /// The package name (`package = ...` of a renamed dependency, else the key).
    name: String,
    /// Where it was declared, e.g. `vmpower-proto [dependencies]`.
    place: String,
    /// Whether it is a workspace path crate.
    local: bool,
    /// Its features, merged with the workspace entry's.
    features: Vec<String>,
    /// Whether its default features are on.
    default_features: bool,
}

/// The workspace: its `[workspace.dependencies]` and a way to read a
/// member's manifest by package name.
struct Workspace<'a> {
    deps: Table,
    manifest: &'a dyn Fn(&str) -> Table,
}

impl Workspace<'_> {
    /// The dependencies of `crate_name` in the sections named by `dev`
    /// (dev-dependencies, or the normal and build ones).
    fn deps(&self, crate_name: &str, manifest: &Table, dev: bool) -> Vec<Dep> {
        let wanted: &[&str] = if dev {
            &["dev-dependencies"]
        } else {
            &["dependencies", "build-dependencies"]
        };
        let mut sections: Vec<(String, &Table)> = Vec::new();
        for &section in wanted {
            if let Some(t) = manifest.get(section).and_then(Value::as_table) {
                sections.push((format!("[{section}]"), t));
            }
        }
        for (cfg, target) in manifest
            .get("target")
            .and_then(Value::as_table)
            .into_iter()
            .flatten()
        {
            for &section in wanted {
                if let Some(t) = target.get(section).and_then(Value::as_table) {
                    sections.push((format!("[target.{cfg}.{section}]"), t));
                }
            }
        }
        let mut out = Vec::new();
        for (section, table) in sections {
            for (key, spec) in table {
                out.push(self.dep(crate_name, &section, key, spec));
            }
        }
        out
    }

    fn dep(&self, crate_name: &str, section: &str, key: &str, spec: &Value) -> Dep {
        let inherited = spec.get("workspace").and_then(Value::as_bool) == Some(true);
        let base = if inherited { self.deps.get(key) } else { None };
        let field = |name: &str| {
            spec.get(name)
                .or_else(|| base.and_then(|b| b.get(name)))
                .cloned()
        };
        let features = [spec.get("features"), base.and_then(|b| b.get("features"))]
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        Dep {
            name: field("package")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| key.to_owned()),
            place: format!("{crate_name} {section}"),
            local: field("path").is_some(),
            features,
            default_features: field("default-features").and_then(|v| v.as_bool()) != Some(false),
        }
    }

    /// Every reason the crate `name` (with this manifest) is not pure,
    /// following workspace crates it depends on.
    fn impurities(&self, name: &str, manifest: &Table, out: &mut Vec<String>) {
        for dep in self.deps(name, manifest, false) {
            let allowed = if dep.local {
                PURE_WORKSPACE.contains(&dep.name.as_str())
            } else {
                PURE_EXTERNAL.iter().any(|(n, _)| *n == dep.name)
            };
            if !allowed {
                out.push(format!(
                    "{}: {} is not on the allow-list of pure crates",
                    dep.place, dep.name
                ));
                continue;
            }
            if dep.name == "jiff" {
                jiff_impurities(&dep, out);
            }
            if dep.local {
                let manifest = (self.manifest)(&dep.name);
                self.impurities(&dep.name, &manifest, out);
            }
        }
    }

    /// Every dev-dependency of the engine outside the test-only list.
    fn dev_impurities(&self, manifest: &Table, out: &mut Vec<String>) {
        for dep in self.deps("vmpower-engine", manifest, true) {
            let pure = PURE_WORKSPACE.contains(&dep.name.as_str())
                || PURE_EXTERNAL.iter().any(|(n, _)| *n == dep.name);
            if !pure && !DEV_ONLY.contains(&dep.name.as_str()) {
                out.push(format!(
                    "{}: {} is not on the engine's list of test-only crates",
                    dep.place, dep.name
                ));
            }
        }
    }
}

fn jiff_impurities(dep: &Dep, out: &mut Vec<String>) {
    if dep.default_features {
        out.push(format!(
            "{}: jiff with its default features reads the system time zone; \
             set default-features = false",
            dep.place
        ));
    }
    for feature in &dep.features {
        if JIFF_IO_FEATURES.contains(&feature.as_str()) {
            out.push(format!(
                "{}: jiff feature {feature} reads the host's files",
                dep.place
            ));
        }
    }
}

/// Everything wrong with the engine's manifest, in `ws`.
fn engine_impurities(ws: &Workspace<'_>, engine: &Table) -> Vec<String> {
    let mut out = Vec::new();
    ws.impurities("vmpower-engine", engine, &mut out);
    ws.dev_impurities(engine, &mut out);
    out
}

fn parse(text: &str) -> Table {
    text.parse().unwrap()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> Table {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse(&text)
}

fn workspace_deps(root_manifest: &Table) -> Table {
    root_manifest["workspace"]["dependencies"]
        .as_table()
        .unwrap()
        .clone()
}

#[test]
fn engine_depends_on_no_io_crate() {
    let root = root();
    let engine = read(&root.join("crates/engine/Cargo.toml"));
    let root_manifest = read(&root.join("Cargo.toml"));
    let deps = workspace_deps(&root_manifest);
    let lookup = deps.clone();
    let manifest = move |name: &str| {
        let path = lookup
            .get(name)
            .and_then(|d| d.get("path"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{name} has no path in [workspace.dependencies]"));
        read(&root.join(path).join("Cargo.toml"))
    };
    let ws = Workspace {
        deps,
        manifest: &manifest,
    };
    let found = engine_impurities(&ws, &engine);
    assert!(found.is_empty(), "{WHY}:\n  {}", found.join("\n  "));
}

/// A workspace of fake manifests, to show the check catches each way in.
fn fake_workspace(proto: &'static str) -> (Table, impl Fn(&str) -> Table) {
    let deps = parse(
        r#"
        vmpower-proto = { path = "crates/proto" }
        vmpower-types = { path = "crates/types" }
        vmpower-cpufreq = { path = "crates/cpufreq" }
        serde = { version = "1", features = ["derive"] }
        tokio = "1"
        "#,
    );
    let manifest = move |name: &str| match name {
        "vmpower-proto" => parse(proto),
        _ => parse("[dependencies]\nserde.workspace = true\n"),
    };
    (deps, manifest)
}

fn fake_engine_impurities(engine: &str, proto: &'static str) -> Vec<String> {
    let (deps, manifest) = fake_workspace(proto);
    let ws = Workspace {
        deps,
        manifest: &manifest,
    };
    engine_impurities(&ws, &parse(engine))
}

const PURE_PROTO: &str = "[dependencies]\nserde.workspace = true\n";

#[test]
fn a_pure_engine_passes_the_check() {
    let engine = r#"
        [dependencies]
        vmpower-proto.workspace = true
        vmpower-types.workspace = true
        jiff = { version = "1", default-features = false, features = ["std", "tzdb-bundle-always"] }
        [dev-dependencies]
        proptest.workspace = true
    "#;
    assert_eq!(
        fake_engine_impurities(engine, PURE_PROTO),
        Vec::<String>::new()
    );
}

#[test]
fn the_cpufreq_crate_is_refused_in_any_section() {
    for section in [
        "dependencies",
        "dev-dependencies",
        "build-dependencies",
        "target.'cfg(unix)'.dependencies",
    ] {
        let engine = format!("[{section}]\nvmpower-cpufreq.workspace = true\n");
        let found = fake_engine_impurities(&engine, PURE_PROTO);
        assert_eq!(found.len(), 1, "{section}: {found:?}");
        assert!(found[0].contains("vmpower-cpufreq"), "{found:?}");
    }
}

#[test]
fn a_renamed_or_inline_io_crate_is_refused() {
    let engine = r#"
        [dependencies]
        rt = { package = "tokio", version = "1" }
        cpufreq = { package = "vmpower-cpufreq", path = "../cpufreq" }
    "#;
    let found = fake_engine_impurities(engine, PURE_PROTO);
    assert_eq!(found.len(), 2, "{found:?}");
    for name in ["tokio", "vmpower-cpufreq"] {
        assert!(found.iter().any(|f| f.contains(name)), "{name}: {found:?}");
    }
}

#[test]
fn an_io_crate_behind_a_workspace_crate_is_refused() {
    let proto = "[dependencies]\ntokio.workspace = true\n";
    let engine = "[dependencies]\nvmpower-proto.workspace = true\n";
    let found = fake_engine_impurities(engine, proto);
    assert_eq!(
        found,
        ["vmpower-proto [dependencies]: tokio is not on the allow-list of pure crates"]
    );
}

#[test]
fn jiff_reading_the_system_time_zone_is_refused() {
    let defaults = "[dependencies]\njiff = \"1\"\n";
    let found = fake_engine_impurities(defaults, PURE_PROTO);
    assert!(
        found.len() == 1 && found[0].contains("default-features"),
        "{found:?}"
    );
    let system = r#"
        [dependencies]
        jiff = { version = "1", default-features = false, features = ["std", "tz-system"] }
    "#;
    let found = fake_engine_impurities(system, PURE_PROTO);
    assert!(
        found.len() == 1 && found[0].contains("tz-system"),
        "{found:?}"
    );
}

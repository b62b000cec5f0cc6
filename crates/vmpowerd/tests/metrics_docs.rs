//! `docs/metrics.md` and the Grafana dashboard agree with `FAMILIES`, the
//! one list of what the endpoint exports: every family is documented
//! with its type and labels and shown on the dashboard, and neither names
//! a metric that does not exist.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use vmpowerd::metrics::families::{FAMILIES, Family};
use vmpowerd::metrics::process::PROCESS_FAMILIES;

fn repo_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `vmpower_…` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("vmpower_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        // Only whole words: not the end of another identifier.
        let before = rest[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

fn sample_names() -> BTreeSet<String> {
    FAMILIES.iter().map(|f| f.sample_name()).collect()
}

/// The table row `docs/metrics.md` has for `f`, up to its meaning.
fn row(f: &Family) -> String {
    let labels: Vec<String> = f.labels.iter().map(|l| format!("`{l}`")).collect();
    let labels = match labels.join(", ") {
        none if none.is_empty() => " ".to_owned(),
        some => format!(" {some} "),
    };
    format!("| `{}` | {} |{labels}|", f.sample_name(), f.kind.as_str())
}

#[test]
fn every_family_is_documented_with_its_type_and_labels() {
    let doc = repo_file("docs/metrics.md");
    for f in FAMILIES {
        let row = row(f);
        assert!(doc.contains(&row), "docs/metrics.md lacks the row {row}");
    }
    let known = sample_names();
    for name in metric_names(&doc) {
        assert!(
            known.contains(&name),
            "docs/metrics.md names {name}, which is not exported"
        );
    }
}

/// The standard process_* families too: documented with their type, and
/// every `process_…` name the doc gives is exported.
#[test]
fn every_process_family_is_documented_and_no_other() {
    let doc = repo_file("docs/metrics.md");
    for f in PROCESS_FAMILIES {
        let row = row(f);
        assert!(doc.contains(&row), "docs/metrics.md lacks the row {row}");
    }
    let known: BTreeSet<String> = PROCESS_FAMILIES.iter().map(|f| f.sample_name()).collect();
    for word in doc.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("process_") {
            assert!(
                known.contains(word),
                "docs/metrics.md names {word}, which is not exported"
            );
        }
    }
}

/// Every string in a JSON document.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn balanced(expr: &str) -> bool {
    let mut stack = Vec::new();
    let mut quoted = false;
    for c in expr.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted => {}
            '(' | '{' | '[' => stack.push(c),
            ')' | '}' | ']' => {
                let open = match c {
                    ')' => '(',
                    '}' => '{',
                    _ => '[',
                };
                if stack.pop() != Some(open) {
                    return false;
                }
            }
            _ => {}
        }
    }
    stack.is_empty() && !quoted
}

#[test]
fn the_dashboard_uses_only_exported_metrics_and_shows_them_all() {
    let text = repo_file("contrib/grafana/vmpower.json");
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    assert_eq!(dash["uid"], "vmpower-overview");
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel id twice");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            assert!(
                !expr.trim().is_empty() && balanced(expr),
                "bad expr {expr:?}"
            );
            assert!(
                !metric_names(expr).is_empty(),
                "{expr:?} uses no vmpower metric"
            );
            // Every selector follows the job and instance variables, so
            // the dashboard shows the daemons chosen, not all of them.
            let selectors = expr.matches("vmpower_").count();
            let filtered = expr
                .matches("{job=~\"$job\", instance=~\"$instance\"")
                .count();
            assert_eq!(
                selectors, filtered,
                "{expr:?}: every selector needs job=~\"$job\", instance=~\"$instance\" first"
            );
        }
    }
    let variables: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for name in ["job", "instance"] {
        assert!(
            variables.contains(&name),
            "no ${name} variable: {variables:?}"
        );
    }
    let mut all = Vec::new();
    strings(&dash, &mut all);
    let used: BTreeSet<String> = all.iter().flat_map(|s| metric_names(s)).collect();
    let known = sample_names();
    for name in &used {
        assert!(
            known.contains(name),
            "the dashboard queries {name}, which is not exported"
        );
    }
    for name in &known {
        assert!(used.contains(name), "the dashboard does not show {name}");
    }
}

#[test]
fn the_helpers_find_names_and_check_brackets() {
    let names = metric_names("rate(vmpower_a_total[5m]) / xvmpower_b + vmpower_c{x=\"(\"}");
    assert_eq!(
        names,
        BTreeSet::from(["vmpower_a_total".to_owned(), "vmpower_c".to_owned()])
    );
    assert!(balanced("sum by (a) (rate(x{y=\"(\"}[5m]))"));
    assert!(!balanced("sum(rate(x[5m])"));
    assert!(!balanced("x{a=\"b}"));
}

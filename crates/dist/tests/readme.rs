//! README.md claims only what is built: every rejection label the engine
//! can count has a row in its troubleshooting table; every relative link
//! resolves; every policy, config and JSON example parses with the real
//! parsers; every `vmpower-guest` command line in it parses with the real
//! CLI, every `vmpowerctl …` names a real subcommand, and every `cargo … -p
//! NAME` a real package.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The labels of `Rejection::label`, read from the engine's source so that
/// a new reason is seen here without anyone listing it.
fn rejection_labels() -> BTreeSet<String> {
    let source = std::fs::read_to_string(root().join("crates/engine/src/reject.rs")).unwrap();
    let start = source
        .find("pub fn label(&self)")
        .expect("Rejection::label");
    let body = &source[start..];
    let end = body.find("\n    }\n").expect("end of label()");
    body[..end]
        .split("=> \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// Fenced code blocks: (language, text).
fn code_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.push(current.take().unwrap()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Shell command lines of the `sh` blocks, continuations joined, comments
/// dropped.
fn shell_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for (lang, body) in code_blocks(text) {
        if lang != "sh" {
            continue;
        }
        let mut pending = String::new();
        for line in body.lines() {
            let line = line.split(" #").next().unwrap().trim_end();
            if line.trim_start().starts_with('#') {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => {
                    pending.push_str(line);
                    lines.push(pending.trim().to_owned());
                    pending.clear();
                }
            }
        }
    }
    lines
}

/// Inline code spans (`…`) outside fenced blocks.
fn inline_spans(text: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
        } else if !in_block {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.replace('\n', " "))
        .collect()
}

#[test]
fn every_rejection_reason_is_explained() {
    let labels = rejection_labels();
    assert!(labels.len() >= 17, "labels read from reject.rs: {labels:?}");
    let text = readme();
    let missing: Vec<&String> = labels
        .iter()
        .filter(|l| !text.contains(&format!("\n| `{l}` |")))
        .collect();
    assert!(missing.is_empty(), "no troubleshooting row for {missing:?}");
}

#[test]
fn the_first_commands_are_the_demo_and_the_tests() {
    let (lang, first) = code_blocks(&readme()).into_iter().next().unwrap();
    assert_eq!(lang, "sh");
    let commands: Vec<&str> = first.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        commands,
        ["cargo run --release -p vmpower-demo", "bash scripts/test"]
    );
}

#[test]
fn relative_links_resolve() {
    let text = readme();
    let mut checked = 0;
    for part in text.split("](").skip(1) {
        let target = part.split(')').next().unwrap();
        if target.contains("://") || target.starts_with('#') {
            continue;
        }
        let path = root().join(target.split('#').next().unwrap());
        assert!(
            path.exists(),
            "README links to {target}, which does not exist"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} links found");
}

#[test]
fn packages_named_in_cargo_commands_exist() {
    let mut packages = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(manifest) {
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .unwrap()
                .trim_end_matches('"');
            packages.insert(name.to_owned());
        }
    }
    let text = readme();
    let mut named = 0;
    for line in shell_lines(&text).into_iter().chain(inline_spans(&text)) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.contains(&"cargo") {
            continue;
        }
        for pair in words.windows(2).filter(|w| w[0] == "-p") {
            assert!(
                packages.contains(pair[1]),
                "no package {} ({line})",
                pair[1]
            );
            named += 1;
        }
    }
    assert!(named >= 3, "only {named} packages named");
}

#[test]
fn vmpower_guest_command_lines_parse() {
    let mut parsed = 0;
    for line in shell_lines(&readme()) {
        if !line.starts_with("vmpower-guest ") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Err(e) = vmpower_guest::cli::Cli::try_parse_from(&words) {
            panic!("{line}: {e}");
        }
        parsed += 1;
    }
    assert!(parsed >= 5, "only {parsed} vmpower-guest lines");
}

#[test]
fn vmpowerctl_subcommands_exist() {
    let cmd = vmpowerctl::cli::Cli::command();
    let known: BTreeSet<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
    let text = readme();
    let mut seen = 0;
    for span in inline_spans(&text).into_iter().chain(shell_lines(&text)) {
        let Some(rest) = span.strip_prefix("vmpowerctl ") else {
            continue;
        };
        let Some(sub) = rest.split_whitespace().find(|w| !w.starts_with('-')) else {
            continue;
        };
        if sub.chars().all(|c| c.is_ascii_uppercase()) {
            continue; // a placeholder: `vmpowerctl --control-socket PATH`
        }
        assert!(known.contains(sub), "`{span}`: no subcommand {sub}");
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} vmpowerctl commands");
    for sub in ["status", "top", "history", "policy", "set-pcpu", "shell"] {
        assert!(text.contains(&format!("`{sub}")) || text.contains(&format!("vmpowerctl {sub}")));
    }
}

#[test]
fn policy_config_and_json_examples_parse() {
    let dir = tempfile::tempdir().unwrap();
    let mut kinds = BTreeSet::new();
    for (lang, body) in code_blocks(&readme()) {
        match lang.as_str() {
            "toml" if body.contains("\nkind = ") || body.starts_with("vm = ") => {
                vmpower_api::PolicyFile::parse(&body)
                    .and_then(|p| p.policy())
                    .unwrap_or_else(|e| panic!("{body}: {e}"));
                kinds.insert("operator policy");
            }
            "toml" if body.contains("\npolicy = ") => {
                let path = dir.path().join("policy.toml");
                std::fs::write(&path, &body).unwrap();
                vmpower_guest::cli::policy::from_file(&path)
                    .unwrap_or_else(|e| panic!("{body}: {e}"));
                kinds.insert("guest policy");
            }
            "toml" => {
                vmpowerd::config::Config::from_toml(&body, Path::new("README.md"))
                    .unwrap_or_else(|e| panic!("{body}: {e}"));
                kinds.insert("config");
            }
            "json" => {
                for line in body.lines().filter(|l| !l.trim().is_empty()) {
                    if line.starts_with("{\"vm\"") {
                        vmpower_api::PolicyFile::parse(line)
                            .and_then(|p| p.policy())
                            .unwrap_or_else(|e| panic!("{line}: {e}"));
                        kinds.insert("operator policy (JSON)");
                    } else {
                        vmpower_proto::json::parse_request(line)
                            .unwrap_or_else(|e| panic!("{line}: {e}"));
                        kinds.insert("FIFO");
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(kinds.len(), 5, "examples of each form: {kinds:?}");
}

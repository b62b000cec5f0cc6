//! The `vmpower-dist` binary: generated man pages name every subcommand,
//! completion scripts cover every subcommand and flag, and `install
//! --dest-dir` lays out exactly the expected files.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vmpower_dist::programs::{self, subcommand_paths};

fn dist(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmpower-dist"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&std::ffi::OsStr]) -> Output {
    let out = dist(args);
    assert!(
        out.status.success(),
        "vmpower-dist {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A roff page as plain text: `\-` is a hyphen.
fn page_text(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("\\-", "-")
}

/// Every file under `root`, relative to it.
fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    out
}

#[test]
fn man_pages_name_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    ok(&["gen-man".as_ref(), dir.path().as_os_str()]);
    for program in programs::all() {
        let cmd = program.command();
        let section = program.section;
        let main = dir
            .path()
            .join(format!("man{section}/{}.{section}", program.name));
        let text = page_text(&main);
        assert!(
            text.contains(&format!(".TH {} {section}", program.name)),
            "{}",
            main.display()
        );
        for path in subcommand_paths(&cmd) {
            let page_name = format!("{}-{}", program.name, path.join("-"));
            let page = dir
                .path()
                .join(format!("man{section}/{page_name}.{section}"));
            assert!(page.is_file(), "no page {}", page.display());
            // Top-level subcommands are listed on the program's page,
            // nested ones on their parent's.
            let parent = if path.len() == 1 {
                text.clone()
            } else {
                let parent = format!("{}-{}", program.name, path[..path.len() - 1].join("-"));
                page_text(&dir.path().join(format!("man{section}/{parent}.{section}")))
            };
            assert!(
                parent.contains(&format!("{page_name}({section})")),
                "{page_name} not listed"
            );
        }
        for arg in cmd.get_arguments().filter_map(|a| a.get_long()) {
            assert!(
                text.contains(&format!("--{arg}")),
                "--{arg} in {}",
                main.display()
            );
        }
    }
}

#[test]
fn completions_cover_every_subcommand_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    ok(&["gen-completions".as_ref(), dir.path().as_os_str()]);
    for program in programs::all() {
        let cmd = program.command();
        for (shell, file) in [
            ("bash", program.name.to_owned()),
            ("zsh", format!("_{}", program.name)),
            ("fish", format!("{}.fish", program.name)),
        ] {
            let path = dir.path().join(shell).join(file);
            let script = std::fs::read_to_string(&path).unwrap();
            assert!(!script.trim().is_empty(), "{} is empty", path.display());
            for sub in subcommand_paths(&cmd) {
                let name = sub.last().unwrap();
                assert!(
                    script.contains(name.as_str()),
                    "{name} in {}",
                    path.display()
                );
            }
            for arg in cmd.get_arguments().filter_map(|a| a.get_long()) {
                assert!(script.contains(arg), "--{arg} in {}", path.display());
            }
        }
        let bash = dir.path().join("bash").join(program.name);
        let check = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
        assert!(
            check.status.success(),
            "{}: {}",
            bash.display(),
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

/// A directory of stand-in binaries.
fn fake_bins(dir: &Path) -> PathBuf {
    let bins = dir.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    for name in ["vmpowerd", "vmpowerctl", "vmpower-guest"] {
        std::fs::write(bins.join(name), format!("#!/bin/sh\necho {name}\n")).unwrap();
    }
    bins
}

fn install(root: &Path, bins: &Path) -> Output {
    dist(&[
        "install".as_ref(),
        "--prefix".as_ref(),
        "/usr".as_ref(),
        "--dest-dir".as_ref(),
        root.as_os_str(),
        "--bin-dir".as_ref(),
        bins.as_os_str(),
    ])
}

#[test]
fn install_lays_out_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let bins = fake_bins(dir.path());
    let root = dir.path().join("root");
    let out = install(&root, &bins);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut expected: BTreeSet<PathBuf> = BTreeSet::new();
    for name in ["vmpowerd", "vmpowerctl", "vmpower-guest"] {
        let bin = root.join("usr/bin").join(name);
        assert_eq!(
            std::fs::read(&bin).unwrap(),
            std::fs::read(bins.join(name)).unwrap()
        );
        let mode = std::fs::metadata(&bin).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{}", bin.display());
        expected.insert(format!("usr/bin/{name}").into());
        expected.insert(format!("usr/share/bash-completion/completions/{name}").into());
        expected.insert(format!("usr/share/zsh/site-functions/_{name}").into());
        expected.insert(format!("usr/share/fish/vendor_completions.d/{name}.fish").into());
    }
    for program in programs::all() {
        let s = program.section;
        expected.insert(format!("usr/share/man/man{s}/{}.{s}", program.name).into());
        for path in subcommand_paths(&program.command()) {
            let page = format!("{}-{}", program.name, path.join("-"));
            expected.insert(format!("usr/share/man/man{s}/{page}.{s}").into());
        }
    }
    expected.insert("usr/share/man/man5/vmpowerd.toml.5".into());
    expected.insert("usr/lib/systemd/system/vmpowerd.service".into());
    expected.insert("usr/lib/systemd/system/vmpower-guest-agent.service".into());
    expected.insert("usr/share/doc/vmpower/vmpowerd.toml".into());
    expected.insert("etc/vmpower/vmpowerd.toml".into());
    assert_eq!(files_under(&root), expected);

    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/vmpowerd.service")).unwrap();
    assert!(
        unit.lines()
            .any(|l| l == "ExecStart=/usr/bin/vmpowerd --config /etc/vmpower/vmpowerd.toml"),
        "{unit}"
    );
    let guest_unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/vmpower-guest-agent.service"))
            .unwrap();
    assert!(
        guest_unit
            .lines()
            .any(|l| l == "ExecStart=/usr/bin/vmpower-guest --channel 0 agent"),
        "{guest_unit}"
    );
    // The units' Documentation= pages are installed.
    let docs = [&unit, &guest_unit]
        .iter()
        .flat_map(|u| u.lines().filter_map(|l| l.strip_prefix("Documentation=")))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>();
    for doc in docs {
        let page = doc.strip_prefix("man:").unwrap();
        let (name, section) = page.trim_end_matches(')').split_once('(').unwrap();
        let path = root.join(format!("usr/share/man/man{section}/{name}.{section}"));
        assert!(path.is_file(), "{doc}: no {}", path.display());
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/vmpowerd.toml");
    assert_eq!(
        std::fs::read(root.join("etc/vmpower/vmpowerd.toml")).unwrap(),
        std::fs::read(example).unwrap()
    );
}

#[test]
fn install_keeps_an_existing_config() {
    let dir = tempfile::tempdir().unwrap();
    let bins = fake_bins(dir.path());
    let root = dir.path().join("root");
    let config = root.join("etc/vmpower/vmpowerd.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "log = \"debug\"\n").unwrap();
    let out = install(&root, &bins);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "log = \"debug\"\n"
    );
    assert!(root.join("usr/share/doc/vmpower/vmpowerd.toml").is_file());
}

#[test]
fn install_without_the_binaries_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bins = fake_bins(dir.path());
    std::fs::remove_file(bins.join("vmpowerctl")).unwrap();
    let root = dir.path().join("root");
    let out = install(&root, &bins);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vmpowerctl"), "{err}");
    assert!(!root.exists(), "something was written");
}

//! Records the git commit vmpowerd is built from (`VMPOWER_GIT_COMMIT`,
//! shown by the metrics' build info), when built in a git checkout with
//! `git` installed; a value already in the environment wins (packagers).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=VMPOWER_GIT_COMMIT");
    if std::env::var_os("VMPOWER_GIT_COMMIT").is_some() {
        return;
    }
    // Rebuilt when HEAD moves: HEAD itself (a checkout) and the branch it
    // names (a commit).
    let git_dir = Path::new("../../.git");
    let head = git_dir.join("HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed={}", head.display());
        if let Ok(text) = std::fs::read_to_string(&head)
            && let Some(reference) = text.trim().strip_prefix("ref: ")
        {
            let path = git_dir.join(reference);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=VMPOWER_GIT_COMMIT={commit}");
    }
}

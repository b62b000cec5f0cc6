//! The policy directory: operators drop policy files (TOML `*.toml` or
//! JSON `*.json`, the format of `vmpowerctl policy create`) into it; each
//! applies when written, and is withdrawn when its file is removed.
//!
//! ## Behavior
//! - At start every file is applied, in name order; then the directory is
//!   watched with inotify. A file applies when its writer closes it (or it
//!   is moved in); other names (editor backups, dotfiles) are ignored.
//! - A file replaces the VM's earlier policy, whatever its source; removing
//!   the file withdraws the policy only if that file is still what set it.
//! - A bad file is logged with its name and the reason, and changes
//!   nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};
use vmpower_api::PolicyFile;
use vmpower_engine::VmId;

use crate::channels::watch::{DirEvent, DirWatch, scan};
use crate::run::Daemon;
use crate::store::PolicySource;

/// Whether `path` names a policy file.
fn is_policy_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.')
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("toml" | "json")
        )
}

/// Applies the directory's files, then follows it until aborted.
pub async fn follow(daemon: Arc<Daemon>, dir: PathBuf) {
    let mut watch = match DirWatch::files(&dir) {
        Ok(w) => w,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot watch the policy directory");
            return;
        }
    };
    let mut from_file: BTreeMap<PathBuf, VmId> = BTreeMap::new();
    for path in scan(&dir).unwrap_or_default() {
        apply_file(&daemon, &path, &mut from_file);
    }
    info!(dir = %dir.display(), files = from_file.len(), "watching the policy directory");
    while let Some(event) = watch.next().await {
        match event {
            Ok(DirEvent::Appeared(path)) => apply_file(&daemon, &path, &mut from_file),
            Ok(DirEvent::Gone(path)) => withdraw(&daemon, &path, &mut from_file),
            Err(e) => warn!(error = %e, "policy directory watch failed"),
        }
    }
}

fn source_of(path: &Path) -> PolicySource {
    PolicySource::PolicyDir(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

fn apply_file(daemon: &Daemon, path: &Path, from_file: &mut BTreeMap<PathBuf, VmId>) {
    if !is_policy_file(path) {
        return;
    }
    let file = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| PolicyFile::parse(&text).map_err(|e| e.to_string()))
    {
        Ok(f) => f,
        Err(e) => {
            warn!(file = %path.display(), error = %e, "policy file refused");
            return;
        }
    };
    match crate::policy_ops::apply(daemon, &file) {
        Ok(vm) => {
            daemon.persist_policy(&vm, source_of(path));
            info!(file = %path.display(), %vm, "policy file applied");
            from_file.insert(path.to_owned(), vm);
        }
        Err(e) => warn!(file = %path.display(), error = %e, "policy file refused"),
    }
}

fn withdraw(daemon: &Daemon, path: &Path, from_file: &mut BTreeMap<PathBuf, VmId>) {
    let Some(vm) = from_file.remove(path) else {
        return;
    };
    // Only if this file is still what set the VM's policy.
    let still_ours = {
        let core = crate::lock(&daemon.core);
        core.store
            .as_ref()
            .and_then(|s| s.policy(&vm).ok().flatten())
            .is_some_and(|p| p.source == source_of(path))
    };
    if still_ours && crate::policy_ops::remove(daemon, &vm) {
        daemon.forget_policy(&vm);
        info!(file = %path.display(), %vm, "policy file removed: policy withdrawn");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_toml_and_json_files_count() {
        for (name, yes) in [
            ("vm1.toml", true),
            ("vm1.json", true),
            (".vm1.toml.swp", false),
            (".hidden.toml", false),
            ("vm1.toml~", false),
            ("README", false),
        ] {
            assert_eq!(is_policy_file(Path::new(name)), yes, "{name}");
        }
    }
}

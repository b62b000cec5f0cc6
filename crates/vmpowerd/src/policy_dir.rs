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
//! - Two files naming one VM: a warning names both, and the one written
//!   last is in force (at start, the last in name order). When the file in
//!   force is removed (or rewritten to name another VM) and another file for that
//!   VM remains, that one applies (the last in name order, as a restart
//!   would apply it) instead of the policy being withdrawn.
//! - At start, a restored policy whose file was removed while the daemon
//!   was stopped is released as that removal would have released it.
//! - On SIGHUP the directory is rescanned: a file whose content changed
//!   since it was last read applies (inotify does not see a change behind
//!   a symlink, nor one made while the watch queue overflowed), a file gone
//!   is withdrawn, and the counts are logged.
//! - A FIFO, device, socket or directory named like a policy file (or a
//!   symlink to one, e.g. to `/dev/zero`) is refused by type without being
//!   opened for reading, and a file over 1 MiB is refused before it is
//!   read whole ([`crate::files`]): the runtime never blocks on one.
//! - A bad or refused file is logged with its name and the reason, changes
//!   nothing, and is listed in `vmpowerctl status` (`policy_files_refused`)
//!   until it is applied or removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tracing::{info, warn};
use vmpower_api::PolicyFile;
use vmpower_engine::VmId;

use crate::channels::watch::{DirEvent, DirWatch, scan};
use crate::state::{PolicyError, PolicyFrom, State};
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

/// The files whose policy was applied, and the VM each names.
type Applied = BTreeMap<PathBuf, VmId>;

/// A hash of each file's content when it was last read, so that a rescan
/// applies only the files that changed.
type Seen = BTreeMap<PathBuf, u64>;

/// Applies the directory's files, then follows it until aborted.
pub async fn follow(daemon: State, dir: PathBuf) {
    let mut watch = match DirWatch::files(&dir) {
        Ok(w) => w,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot watch the policy directory");
            return;
        }
    };
    let mut applied = Applied::new();
    let mut seen = Seen::new();
    for path in scan(&dir).unwrap_or_default() {
        apply_file(&daemon, &path, &mut applied, &mut seen, false);
    }
    forget_gone_files(&daemon, &dir, &mut applied);
    info!(dir = %dir.display(), files = applied.len(), "watching the policy directory");
    let rescan = daemon.policy_rescan().clone();
    loop {
        let event = tokio::select! {
            event = watch.next() => event,
            () = rescan.notified() => {
                rescan_dir(&daemon, &dir, &mut applied, &mut seen);
                continue;
            }
        };
        let Some(event) = event else { return };
        match event {
            Ok(DirEvent::Appeared(path)) => {
                apply_file(&daemon, &path, &mut applied, &mut seen, false);
            }
            Ok(DirEvent::Gone(path)) => {
                seen.remove(&path);
                withdraw(&daemon, &path, &mut applied);
            }
            Err(e) => warn!(error = %e, "policy directory watch failed"),
        }
    }
}

/// SIGHUP: applies the files whose content changed since they were read,
/// withdraws the policies of files gone.
fn rescan_dir(daemon: &State, dir: &Path, applied: &mut Applied, seen: &mut Seen) {
    let present = scan(dir).unwrap_or_default();
    let mut changed = 0;
    for path in &present {
        if apply_file(daemon, path, applied, seen, true) {
            changed += 1;
        }
    }
    let gone: std::collections::BTreeSet<PathBuf> = seen
        .keys()
        .chain(applied.keys())
        .filter(|p| !present.contains(p))
        .cloned()
        .collect();
    for path in &gone {
        seen.remove(path);
        withdraw(daemon, path, applied);
    }
    info!(dir = %dir.display(), changed, gone = gone.len(), "policy directory rescanned");
}

/// `vmpowerd --check-config`: why each policy file in `dir` would be
/// refused, by file.
pub fn check_files(dir: &Path) -> Vec<(PathBuf, String)> {
    scan(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| is_policy_file(p))
        .filter_map(|path| {
            let checked = load(&path)
                .and_then(|file| crate::vm_name::check(&file.vm).map_err(|e| e.to_string()));
            checked.err().map(|e| (path, e))
        })
        .collect()
}

/// The door of a file's policy: the directory, by the file's name.
fn from_of(path: &Path) -> PolicyFrom {
    PolicyFrom::PolicyDir(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// Reads a policy file's text: a regular file only, never blocking, at
/// most [`crate::files::MAX_FILE_LEN`] bytes (see [`crate::files`]).
fn read(path: &Path) -> Result<String, String> {
    crate::files::read_text(path, crate::files::MAX_FILE_LEN)
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
}

/// Parses a policy file's text in the format its name says (a `.json`
/// file's error is JSON's).
fn parse(path: &Path, text: &str) -> Result<PolicyFile, String> {
    PolicyFile::parse_named(path, text).map_err(|e| e.to_string())
}

/// Reads and parses a policy file.
fn load(path: &Path) -> Result<PolicyFile, String> {
    read(path).and_then(|text| parse(path, &text))
}

fn hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Applies a parsed file, recorded with the file as the policy's source.
/// A policy in force whose frequency write failed counts as applied (it
/// is persisted too; the failure is warned here and is in `status`'s last
/// errors).
fn install(daemon: &State, path: &Path, file: &PolicyFile) -> Result<VmId, String> {
    let vm = match daemon.apply_policy_file(&from_of(path), file) {
        Ok(vm) => vm,
        Err(PolicyError::WriteFailed) => {
            warn!(file = %path.display(), "policy file applied, but a frequency write failed");
            VmId::new(&file.vm)
        }
        Err(e) => return Err(e.to_string()),
    };
    daemon.policy_file_settled(path);
    Ok(vm)
}

/// Logs a refused file and lists it in `status`.
fn refuse(daemon: &State, path: &Path, error: String) {
    warn!(file = %path.display(), error = %error, "policy file refused");
    daemon.policy_file_refused(path, error);
}

/// Reads, parses and applies a policy file (with `only_changed`, only if
/// its content changed since it was last read); whether it was read anew.
fn apply_file(
    daemon: &State,
    path: &Path,
    applied: &mut Applied,
    seen: &mut Seen,
    only_changed: bool,
) -> bool {
    if !is_policy_file(path) {
        return false;
    }
    let text = match read(path) {
        Ok(text) => text,
        Err(e) => {
            seen.remove(path);
            refuse(daemon, path, e);
            return true;
        }
    };
    let digest = hash(&text);
    if only_changed && seen.get(path) == Some(&digest) {
        return false;
    }
    seen.insert(path.to_owned(), digest);
    let file = match parse(path, &text) {
        Ok(f) => f,
        Err(e) => {
            refuse(daemon, path, e);
            return true;
        }
    };
    let vm = match install(daemon, path, &file) {
        Ok(vm) => vm,
        Err(e) => {
            refuse(daemon, path, e);
            return true;
        }
    };
    info!(file = %path.display(), %vm, "policy file applied");
    for (other, _) in applied.iter().filter(|(p, v)| **v == vm && *p != path) {
        warn!(
            file = %path.display(),
            other = %other.display(),
            %vm,
            "two policy files name the same VM: this file's policy replaces the other's"
        );
    }
    // The file named another VM before: that VM's policy from it goes.
    if let Some(before) = applied.insert(path.to_owned(), vm.clone())
        && before != vm
    {
        release(daemon, path, &before, applied);
    }
    true
}

fn withdraw(daemon: &State, path: &Path, applied: &mut Applied) {
    daemon.policy_file_settled(path);
    if let Some(vm) = applied.remove(path) {
        release(daemon, path, &vm, applied);
    }
}

/// Restored policies whose file went while the daemon was stopped (or now
/// names another VM) are released as a removal would have released them.
/// A file still there but refused keeps its policy.
fn forget_gone_files(daemon: &State, dir: &Path, applied: &mut Applied) {
    for (vm, source) in daemon.stored_sources() {
        let PolicySource::PolicyDir(name) = source else {
            continue;
        };
        let path = dir.join(name);
        let gone = match applied.get(&path) {
            Some(named) => *named != vm,
            None => !path.exists(),
        };
        if gone {
            info!(file = %path.display(), %vm, "policy file gone while the daemon was stopped");
            release(daemon, &path, &vm, applied);
        }
    }
}

/// `path` no longer sets `vm`'s policy: if it is still what set it, the
/// VM's other file (the last in name order) applies, or else the policy
/// is withdrawn.
fn release(daemon: &State, path: &Path, vm: &VmId, applied: &mut Applied) {
    let still_ours = daemon.stored_source(vm) == from_of(path).stored();
    if !still_ours {
        return;
    }
    let others: Vec<PathBuf> = applied
        .iter()
        .filter(|(p, v)| *v == vm && p.as_path() != path)
        .map(|(p, _)| p.clone())
        .rev()
        .collect();
    for other in others {
        let result = match load(&other) {
            // It names another VM now: its own event saw to that.
            Ok(file) if file.vm != vm.as_str() => continue,
            Ok(file) => install(daemon, &other, &file),
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => {
                info!(
                    file = %path.display(),
                    now = %other.display(),
                    %vm,
                    "policy file removed: the VM's other policy file applies"
                );
                return;
            }
            Err(e) => {
                applied.remove(&other);
                refuse(daemon, &other, e);
            }
        }
    }
    if daemon.remove_policy(&from_of(path), vm) {
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

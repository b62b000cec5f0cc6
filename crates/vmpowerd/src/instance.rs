//! One daemon per state directory: an exclusive `flock` on
//! `<state-dir>/vmpowerd.lock`, taken before anything is restored and held
//! until the daemon stops.
//!
//! ## Behavior
//! - A second daemon on the same state directory would read the running
//!   one's takeover record as a crash's leftovers, give its CPUs back under
//!   its feet and take its control socket; it is refused instead, with the
//!   pid of the one running.
//! - The lock goes with the process: a killed daemon leaves nothing held
//!   (the file stays, empty of meaning, and is reused).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "vmpowerd.lock";

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum InstanceLockError {
    /// Another daemon holds it.
    #[error(
        "another vmpowerd (pid {pid}) is using state dir {}: stop it first, or give this one its own --state-dir",
        dir.display()
    )]
    Held {
        /// The state directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it (`?` if unreadable).
        pid: String,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Locks `state_dir` for this process, writing its pid into the lock file.
pub fn lock(state_dir: &Path) -> Result<InstanceLock, InstanceLockError> {
    let path = state_dir.join(LOCK_FILE);
    let io = |source: std::io::Error| InstanceLockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(InstanceLockError::Held {
                dir: state_dir.to_path_buf(),
                pid: if pid.is_empty() { "?" } else { pid }.to_owned(),
            });
        }
        Err(e) => return Err(io(e.into())),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(InstanceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let first = lock(dir.path()).expect("the first lock");
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).expect("the lock file");
        assert_eq!(pid.trim(), std::process::id().to_string());
        let err = lock(dir.path()).expect_err("a second lock on the same dir");
        let text = err.to_string();
        assert!(matches!(err, InstanceLockError::Held { .. }), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        // Another state dir is another daemon's business.
        let other = tempfile::tempdir().expect("a temp dir");
        let _elsewhere = lock(other.path()).expect("a lock elsewhere");
        drop(first);
        let _again = lock(dir.path()).expect("free once the first is dropped");
    }

    #[test]
    fn an_unwritable_place_is_an_error_naming_the_file() {
        let err = lock(Path::new("/nonexistent/vmpower-state")).expect_err("no such dir");
        assert!(
            err.to_string()
                .contains("/nonexistent/vmpower-state/vmpowerd.lock"),
            "{err}"
        );
    }
}

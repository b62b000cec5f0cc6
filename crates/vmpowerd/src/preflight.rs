//! Start-up checks: can the daemon do its job where it runs? A sandbox
//! (systemd's `ProtectSystem=strict`) that leaves a non-default
//! `sysfs_root`, `state_dir` or control socket directory read-only would
//! make every write fail after the daemon said it was ready; these checks
//! refuse the start instead, naming each path and what to grant.
//!
//! ## Behavior
//! - The cpufreq files the daemon writes under `<sysfs_root>/devices/
//!   system/cpu` (`scaling_governor`, `scaling_min_freq`,
//!   `scaling_max_freq`, `scaling_setspeed` of each CPU, and `boost` /
//!   `intel_pstate/no_turbo` when present) are opened for writing and
//!   closed: nothing is written, so nothing changes.
//! - `state_dir`, the control socket's directory and `channel_dir` (or,
//!   when one does not exist yet, the nearest directory above it, where it
//!   will be made) are checked with `access(W_OK)`, which reports a
//!   read-only mount as such.
//! - Every problem is reported, not only the first; for the cpufreq files
//!   the first [`MAX_LISTED`] are named and the rest counted.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Files named per directory before the rest are only counted.
pub const MAX_LISTED: usize = 8;

/// One path the daemon must write and cannot.
#[derive(Debug)]
pub struct Problem {
    /// The path.
    pub path: PathBuf,
    /// Why it cannot be written.
    pub error: std::io::Error,
    /// What to add to the unit's `ReadWritePaths=` for it.
    pub grant: PathBuf,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not writable ({}): under systemd, add `ReadWritePaths={}` to the unit (`systemctl edit vmpowerd`)",
            self.path.display(),
            self.error,
            self.grant.display()
        )
    }
}

/// The start was refused: the daemon could not do its job.
#[derive(Debug, thiserror::Error)]
#[error("refusing to start: {}", list(.problems, .more))]
pub struct PreflightError {
    /// What is wrong.
    pub problems: Vec<Problem>,
    /// cpufreq files not writable beyond those listed.
    pub more: usize,
}

fn list(problems: &[Problem], more: &usize) -> String {
    let mut text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    if *more > 0 {
        text.push(format!("and {more} more cpufreq files alike"));
    }
    text.join("; ")
}

/// Checks every path the daemon must write; `Ok` when it can do its job.
pub fn check(config: &Config) -> Result<(), PreflightError> {
    let mut problems = Vec::new();
    let cpus = config.sysfs_root.join("devices/system/cpu");
    let mut more = 0;
    for file in cpufreq_files(&cpus) {
        if let Err(error) = std::fs::OpenOptions::new().write(true).open(&file) {
            if problems.len() < MAX_LISTED {
                problems.push(Problem {
                    path: file,
                    error,
                    grant: cpus.clone(),
                });
            } else {
                more += 1;
            }
        }
    }
    let socket_dir = config
        .control_socket
        .parent()
        .unwrap_or(Path::new("/"))
        .to_owned();
    for dir in [&config.state_dir, &socket_dir, &config.channel_dir] {
        if let Err(error) = dir_writable(dir) {
            problems.push(Problem {
                path: dir.clone(),
                error,
                grant: dir.clone(),
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PreflightError { problems, more })
    }
}

/// The cpufreq files under `cpus` (`<sysfs>/devices/system/cpu`) that
/// exist and that the daemon writes.
fn cpufreq_files(cpus: &Path) -> Vec<PathBuf> {
    const PER_CPU: [&str; 4] = [
        "scaling_governor",
        "scaling_min_freq",
        "scaling_max_freq",
        "scaling_setspeed",
    ];
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cpus)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.strip_prefix("cpu")
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .map(|e| e.path().join("cpufreq"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| PER_CPU.iter().map(move |f| d.join(f)))
        .collect();
    files.push(cpus.join("cpufreq/boost"));
    files.push(cpus.join("intel_pstate/no_turbo"));
    files.retain(|f| f.is_file());
    files
}

/// Whether the daemon may create files in `dir`, or make it (checked on
/// the nearest directory above that exists).
fn dir_writable(dir: &Path) -> std::io::Result<()> {
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if !existing.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is not a directory", existing.display()),
        ));
    }
    rustix::fs::access(existing, rustix::fs::Access::WRITE_OK).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_the_way_of_the_state_dir_is_named_with_what_to_grant() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let config = Config {
            sysfs_root: dir.path().join("sys"),
            state_dir: blocker.join("state"),
            control_socket: dir.path().join("control.sock"),
            channel_dir: dir.path().join("channels"),
            ..Config::default()
        };
        let err = check(&config).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "ReadWritePaths={}",
                blocker.join("state").display()
            )),
            "{text}"
        );
    }
}

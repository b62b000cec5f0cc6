//! What an installation of vmpower needs beyond `cargo build`: man pages
//! and shell completions generated from the programs' clap definitions
//! (so they cannot drift from the flags), and an installer that lays out
//! binaries, pages, completions, the systemd unit and the example config
//! under a prefix, optionally staged under a destination directory for
//! packaging.
//!
//! - [`programs`]: the three programs, their man sections and clap commands.
//! - [`man`]: one page per program and per subcommand (`vmpowerctl-status.1`).
//! - [`config_page`]: vmpowerd.toml(5), from `docs/configuration.md`.
//! - [`completions`]: bash, zsh and fish scripts.
//! - [`install`]: the file layout and the copy.
//!
//! Generation is pure (files in memory); only [`install`] and
//! [`GeneratedFile::write_to`] touch the file system.

pub mod completions;
pub mod config_page;
pub mod install;
pub mod man;
pub mod programs;

use std::path::{Path, PathBuf};

/// A file made in memory, to be written under some directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Its path relative to the directory it goes in.
    pub name: PathBuf,
    /// Its bytes.
    pub contents: Vec<u8>,
}

/// Why a generated file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct WriteError {
    /// The file (or the directory that could not be made).
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl GeneratedFile {
    /// The contents as text (lossy), for checks.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.contents).into_owned()
    }

    /// Writes the file under `dir` (creating directories), mode 0644.
    pub fn write_to(&self, dir: &Path) -> Result<PathBuf, WriteError> {
        write_file(&dir.join(&self.name), &self.contents, 0o644)
    }
}

/// Writes `contents` to `path` with `mode`, creating its directory. The
/// file is written beside it and renamed over it, so a running binary
/// being replaced keeps running and a reader never sees half a file.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<PathBuf, WriteError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError { path, source }
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(WriteError {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        });
    };
    std::fs::create_dir_all(parent).map_err(fail(parent))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".new");
    let temp = parent.join(temp_name);
    std::fs::write(&temp, contents).map_err(fail(&temp))?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode)).map_err(fail(&temp))?;
    std::fs::rename(&temp, path).map_err(fail(path))?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/tool");
        write_file(&path, b"one", 0o755).unwrap();
        write_file(&path, b"two", 0o755).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }
}

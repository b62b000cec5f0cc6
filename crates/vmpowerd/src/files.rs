//! Reading the operator's text files (the config file, policy files)
//! without trusting what the path names.
//!
//! ## Behavior
//! - Only a regular file is read (a symlink is followed to what it names):
//!   a FIFO, a device (a symlink to `/dev/zero`), a socket or a directory
//!   is refused by type, named, and never opened for reading, so nothing
//!   blocks in `open(2)` or `read(2)`.
//! - The file is opened with `O_NONBLOCK` and checked again with `fstat`
//!   (it may have been replaced between the check and the open).
//! - At most `cap` bytes are read: a longer file is refused, naming the
//!   file and the cap, before more than the cap is allocated.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most a policy file or the config file may hold.
pub const MAX_FILE_LEN: u64 = 1024 * 1024;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFileError {
    /// Not a regular file.
    #[error("{path} is a {kind}, not a regular file: refused without reading it")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// Longer than the cap.
    #[error("{path} is larger than {cap} bytes: refused")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap in bytes.
        cap: u64,
    },
    /// Not UTF-8.
    #[error("{path} is not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn kind(file_type: std::fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        None
    } else if file_type.is_fifo() {
        Some("FIFO")
    } else if file_type.is_char_device() {
        Some("character device")
    } else if file_type.is_block_device() {
        Some("block device")
    } else if file_type.is_socket() {
        Some("socket")
    } else if file_type.is_dir() {
        Some("directory")
    } else {
        Some("special file")
    }
}

/// Reads the regular file at `path` (at most `cap` bytes) as text.
pub fn read_text(path: &Path, cap: u64) -> Result<String, ReadFileError> {
    let io = |source| ReadFileError::Io {
        path: path.to_owned(),
        source,
    };
    let check = |meta: &std::fs::Metadata| -> Result<(), ReadFileError> {
        if let Some(kind) = kind(meta.file_type()) {
            return Err(ReadFileError::NotRegular {
                path: path.to_owned(),
                kind,
            });
        }
        if meta.len() > cap {
            return Err(ReadFileError::TooLarge {
                path: path.to_owned(),
                cap,
            });
        }
        Ok(())
    };
    check(&std::fs::metadata(path).map_err(io)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(io)?;
    check(&file.metadata().map_err(io)?)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadFileError::TooLarge {
            path: path.to_owned(),
            cap,
        });
    }
    String::from_utf8(bytes).map_err(|_| ReadFileError::NotText {
        path: path.to_owned(),
    })
}

/// `O_NONBLOCK | O_NOCTTY`: opening never waits (a FIFO without a
/// writer) nor takes a terminal.
fn libc_flags() -> i32 {
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    i32::try_from(flags.bits()).expect("open flags fit an int")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_by_type_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.toml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let zero = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let socket = dir.path().join("s.toml");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for (path, what) in [
            (&fifo, "FIFO"),
            (&zero, "character device"),
            (&socket, "socket"),
        ] {
            let err = read_text(path, MAX_FILE_LEN).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(path.to_str().unwrap()) && msg.contains(what),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_file_past_the_cap_is_refused_naming_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        std::fs::write(&path, "x".repeat(11)).unwrap();
        let err = read_text(&path, 10).unwrap_err();
        assert!(err.to_string().contains("10 bytes"), "{err}");
        assert_eq!(read_text(&path, 11).unwrap().len(), 11);
    }
}

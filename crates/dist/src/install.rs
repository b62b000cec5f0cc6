//! The installation layout and the copy.
//!
//! Under the prefix P (default `/usr/local`): `P/bin` the three binaries,
//! `P/share/man/man{1,8}` the pages, `P/share/bash-completion/completions`,
//! `P/share/zsh/site-functions` and `P/share/fish/vendor_completions.d` the
//! completions, `P/lib/systemd/system/vmpowerd.service` the host's unit
//! and `vmpower-guest-agent.service` the guest's (their ExecStart pointed
//! at `P/bin`), `P/share/doc/vmpower` the
//! example config. `/etc/vmpower/vmpowerd.toml` gets the example only when
//! absent: an operator's config is never overwritten.
//!
//! With a destination directory D every path is staged under D (for
//! packaging) while the files still name their final paths.

use std::path::{Path, PathBuf};

use crate::completions::{self, Completion};
use crate::man::{self, ManPage};
use crate::{WriteError, write_file};
use clap_complete::Shell;

/// The systemd unit as shipped (ExecStart under `/usr/local`).
pub const UNIT: &str = include_str!("../../../contrib/systemd/vmpowerd.service");
/// The guest agent's systemd unit as shipped (ExecStart under `/usr/local`).
pub const GUEST_UNIT: &str = include_str!("../../../contrib/systemd/vmpower-guest-agent.service");
/// The example configuration, every setting at its default.
pub const EXAMPLE_CONFIG: &str = include_str!("../../../contrib/vmpowerd.toml");
/// The binaries installed, by name.
pub const BINARIES: [&str; 3] = ["vmpowerd", "vmpowerctl", "vmpower-guest"];
/// Where the daemon's config goes (the unit's `--config`).
pub const CONFIG_PATH: &str = "/etc/vmpower/vmpowerd.toml";
/// The prefix the shipped unit's ExecStart assumes.
const UNIT_PREFIX: &str = "/usr/local";

/// Why the installation failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The prefix is not an absolute path.
    #[error("the prefix {path} is not an absolute path")]
    RelativePrefix {
        /// The prefix given.
        path: PathBuf,
    },
    /// A binary to install is not there.
    #[error("no {path}: build the binaries first (cargo build --release) or pass --bin-dir")]
    MissingBinary {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A binary could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What to install where.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Installation prefix, e.g. `/usr/local` or `/usr`.
    pub prefix: PathBuf,
    /// Staging root (packaging); `None` installs for real.
    pub dest_dir: Option<PathBuf>,
    /// Where the built binaries are (e.g. `target/release`).
    pub bin_dir: PathBuf,
}

/// One installed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Its final path (what the system will see).
    pub path: PathBuf,
    /// Where it was written (under the destination directory, if any).
    pub written: PathBuf,
}

/// What a file's contents come from.
#[derive(Debug, Clone)]
enum Source {
    Bytes(Vec<u8>),
    Binary(PathBuf),
}

/// A file to install: final path, contents, mode, and whether an
/// existing file is kept.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    source: Source,
    mode: u32,
    keep_existing: bool,
}

/// The unit with ExecStart's program under `prefix`.
pub fn unit_for(prefix: &Path) -> String {
    exec_under(UNIT, "vmpowerd", prefix)
}

/// The guest agent's unit with ExecStart's program under `prefix`.
pub fn guest_unit_for(prefix: &Path) -> String {
    exec_under(GUEST_UNIT, "vmpower-guest", prefix)
}

/// `unit` with ExecStart's `program` moved from the shipped prefix to `prefix`.
fn exec_under(unit: &str, program: &str, prefix: &Path) -> String {
    let shipped = format!("ExecStart={UNIT_PREFIX}/bin/{program} ");
    let wanted = format!("ExecStart={} ", prefix.join("bin").join(program).display());
    unit.replace(&shipped, &wanted)
}

/// Where a man page goes under `prefix`.
pub fn man_path(prefix: &Path, page: &ManPage) -> PathBuf {
    prefix
        .join(format!("share/man/man{}", page.section))
        .join(page.file.name.file_name().unwrap_or_default())
}

/// Where a completion script goes under `prefix`.
pub fn completion_path(prefix: &Path, completion: &Completion) -> PathBuf {
    let dir = match completion.shell {
        Shell::Zsh => "share/zsh/site-functions",
        Shell::Fish => "share/fish/vendor_completions.d",
        _ => "share/bash-completion/completions",
    };
    prefix
        .join(dir)
        .join(completions::file_name(completion.program, completion.shell))
}

fn plan(options: &InstallOptions) -> Vec<Entry> {
    let prefix = &options.prefix;
    let file = |path: PathBuf, contents: Vec<u8>| Entry {
        path,
        source: Source::Bytes(contents),
        mode: 0o644,
        keep_existing: false,
    };
    let mut entries: Vec<Entry> = BINARIES
        .iter()
        .map(|name| Entry {
            path: prefix.join("bin").join(name),
            source: Source::Binary(options.bin_dir.join(name)),
            mode: 0o755,
            keep_existing: false,
        })
        .collect();
    for page in man::pages() {
        entries.push(file(man_path(prefix, &page), page.file.contents));
    }
    for script in completions::scripts() {
        entries.push(file(completion_path(prefix, &script), script.file.contents));
    }
    entries.push(file(
        prefix.join("lib/systemd/system/vmpowerd.service"),
        unit_for(prefix).into_bytes(),
    ));
    entries.push(file(
        prefix.join("lib/systemd/system/vmpower-guest-agent.service"),
        guest_unit_for(prefix).into_bytes(),
    ));
    entries.push(file(
        prefix.join("share/doc/vmpower/vmpowerd.toml"),
        EXAMPLE_CONFIG.as_bytes().to_vec(),
    ));
    entries.push(Entry {
        keep_existing: true,
        ..file(
            PathBuf::from(CONFIG_PATH),
            EXAMPLE_CONFIG.as_bytes().to_vec(),
        )
    });
    entries
}

/// `path` under the destination directory, if any.
fn staged(dest_dir: Option<&Path>, path: &Path) -> PathBuf {
    match dest_dir {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_owned(),
    }
}

/// Installs everything; returns each file written (an existing config
/// kept is not listed).
pub fn install(options: &InstallOptions) -> Result<Vec<Installed>, InstallError> {
    if !options.prefix.is_absolute() {
        return Err(InstallError::RelativePrefix {
            path: options.prefix.clone(),
        });
    }
    let entries = plan(options);
    // Every binary is checked before anything is written.
    for entry in &entries {
        if let Source::Binary(from) = &entry.source
            && !from.is_file()
        {
            return Err(InstallError::MissingBinary { path: from.clone() });
        }
    }
    let mut done = Vec::new();
    for entry in entries {
        let written = staged(options.dest_dir.as_deref(), &entry.path);
        if entry.keep_existing && written.exists() {
            continue;
        }
        let contents = match entry.source {
            Source::Bytes(bytes) => bytes,
            Source::Binary(from) => {
                std::fs::read(&from).map_err(|source| InstallError::Read { path: from, source })?
            }
        };
        write_file(&written, &contents, entry.mode)?;
        done.push(Installed {
            path: entry.path,
            written,
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_follows_the_prefix() {
        let unit = unit_for(Path::new("/usr"));
        assert!(
            unit.contains("\nExecStart=/usr/bin/vmpowerd --config /etc/vmpower/vmpowerd.toml\n"),
            "{unit}"
        );
        assert!(!unit.contains("/usr/local/bin/vmpowerd"));
        assert_eq!(unit_for(Path::new(UNIT_PREFIX)), UNIT);
        let guest = guest_unit_for(Path::new("/usr"));
        assert!(
            guest.contains("\nExecStart=/usr/bin/vmpower-guest --channel 0 agent\n"),
            "{guest}"
        );
        assert_eq!(guest_unit_for(Path::new(UNIT_PREFIX)), GUEST_UNIT);
    }

    #[test]
    fn staging_keeps_final_paths_under_the_root() {
        assert_eq!(
            staged(Some(Path::new("/tmp/pkg")), Path::new("/usr/bin/x")),
            PathBuf::from("/tmp/pkg/usr/bin/x")
        );
        assert_eq!(
            staged(None, Path::new("/usr/bin/x")),
            PathBuf::from("/usr/bin/x")
        );
    }

    #[test]
    fn a_relative_prefix_is_refused() {
        let err = install(&InstallOptions {
            prefix: "usr".into(),
            dest_dir: None,
            bin_dir: ".".into(),
        })
        .unwrap_err();
        assert!(matches!(err, InstallError::RelativePrefix { .. }), "{err}");
    }
}

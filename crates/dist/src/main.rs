//! `vmpower-dist`: generates the man pages and shell completions of
//! vmpowerd, vmpowerctl and vmpower-guest from their clap definitions, and
//! installs everything (`bash scripts/install` runs it after a release
//! build).
//!
//! Exit codes: 0 done; 1 failed (the message says what); 2 usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vmpower_dist::install::{InstallOptions, install};
use vmpower_dist::{GeneratedFile, completions, man};

/// Man pages, shell completions and installation of vmpower.
#[derive(Debug, Parser)]
#[command(name = "vmpower-dist", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write every man page into DIR/man1, DIR/man5 and DIR/man8 (a MANPATH entry).
    GenMan {
        /// Output directory.
        dir: PathBuf,
    },
    /// Write bash, zsh and fish completions into DIR/bash, DIR/zsh, DIR/fish.
    GenCompletions {
        /// Output directory.
        dir: PathBuf,
    },
    /// Install the binaries, man pages, completions, the systemd unit and
    /// the example config (to /etc/vmpower/vmpowerd.toml unless one exists).
    Install {
        /// Installation prefix.
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
        /// Stage every file under this directory (packaging) instead of /.
        #[arg(long, value_name = "DIR")]
        dest_dir: Option<PathBuf>,
        /// Take the binaries from here instead of building them
        /// (`cargo build --release` in this workspace).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Cargo features for the build, e.g. `vmpowerd/libvirt`.
        #[arg(long, conflicts_with = "bin_dir")]
        features: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmpower-dist: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::GenMan { dir } => {
            for page in man::pages() {
                let sub = format!("man{}", page.section);
                report(page.file.write_to(&dir.join(sub))?);
            }
        }
        Command::GenCompletions { dir } => {
            let files: Vec<GeneratedFile> =
                completions::scripts().into_iter().map(|c| c.file).collect();
            for file in files {
                report(file.write_to(&dir)?);
            }
        }
        Command::Install {
            prefix,
            dest_dir,
            bin_dir,
            features,
        } => {
            let bin_dir = match bin_dir {
                Some(dir) => dir,
                None => build(features.as_deref())?,
            };
            let staged = dest_dir.is_some();
            let done = install(&InstallOptions {
                prefix,
                dest_dir,
                bin_dir,
            })?;
            for file in &done {
                report(file.written.clone());
            }
            if !staged {
                println!(
                    "next: systemctl daemon-reload && systemctl enable --now vmpowerd \
                     (edit /etc/vmpower/vmpowerd.toml first)"
                );
            }
        }
    }
    Ok(())
}

fn report(path: PathBuf) {
    println!("wrote {}", path.display());
}

/// Builds the three binaries in release mode; returns where they are.
fn build(features: Option<&str>) -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(&cargo);
    cmd.current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "vmpowerd",
        "-p",
        "vmpowerctl",
        "-p",
        "vmpower-guest",
    ]);
    if let Some(f) = features {
        cmd.args(["--features", f]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", Path::new(&cargo).display()))?;
    anyhow::ensure!(status.success(), "cargo build failed ({status})");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    Ok(target.join("release"))
}

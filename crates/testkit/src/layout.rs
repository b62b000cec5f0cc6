//! The fake host's layout: where the daemon finds sysfs, /proc, its
//! channels, state, policies and control socket, all under one directory.
//!
//! ## Behavior
//! - [`HostDirs::under`] names the paths only (`sys`, `proc`, `channels`,
//!   `state`, `policies.d`, `control.sock`); [`HostDirs::create`] makes the
//!   channel and proc directories, which the daemon expects to exist.
//! - [`FakeHost`] owns a temporary directory laid out so, with a fake
//!   sysfs tree in it (or beside it, for a tree a test built itself).
//! - [`HostDirs::daemon_args`] gives the `vmpowerd` flags for the layout,
//!   so that every spawner of the binary starts it the same way.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
pub use vmpower_cpufreq::fake::{FakeSysfs, FakeSysfsBuilder};
use vmpower_cpufreq::{Driver, SysfsIo};

/// The paths of a fake host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDirs {
    /// The directory holding everything else (and the config file).
    pub root: PathBuf,
    /// Stands for `/sys`.
    pub sysfs: PathBuf,
    /// Stands for `/proc` (empty: there is no QEMU; the test plays it).
    pub proc: PathBuf,
    /// Where QEMU would put the channel sockets.
    pub channels: PathBuf,
    /// The daemon's state (database, takeover record).
    pub state: PathBuf,
    /// The watched policy directory.
    pub policies: PathBuf,
    /// The control socket.
    pub control: PathBuf,
}

impl HostDirs {
    /// The layout under `root`.
    pub fn under(root: &Path) -> HostDirs {
        HostDirs {
            root: root.to_owned(),
            sysfs: root.join("sys"),
            proc: root.join("proc"),
            channels: root.join("channels"),
            state: root.join("state"),
            policies: root.join("policies.d"),
            control: root.join("control.sock"),
        }
    }

    /// Makes the channel and proc directories.
    pub fn create(&self) -> anyhow::Result<()> {
        for d in [&self.channels, &self.proc] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(())
    }

    /// The config file's path for the binary (`<root>/vmpowerd.toml`).
    pub fn config_file(&self) -> PathBuf {
        self.root.join("vmpowerd.toml")
    }

    /// `vmpowerd`'s flags for this layout: `--sysfs-root`, `--proc-root`,
    /// `--channel-dir`, `--state-dir`, `--control-socket` (the config file
    /// and the log are the caller's).
    pub fn daemon_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        for (flag, path) in [
            ("--sysfs-root", &self.sysfs),
            ("--proc-root", &self.proc),
            ("--channel-dir", &self.channels),
            ("--state-dir", &self.state),
            ("--control-socket", &self.control),
        ] {
            args.push(flag.into());
            args.push(path.into());
        }
        args
    }

    /// A channel socket's path, `<channels>/<vm>.<index>`.
    pub fn channel(&self, vm: &str, index: u32) -> PathBuf {
        self.channels.join(format!("{vm}.{index}"))
    }
}

/// A cpufreq file of a CPU, relative to the sysfs root.
pub fn cpufreq_file(cpu: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("devices/system/cpu/cpu{cpu}/cpufreq/{file}"))
}

/// The fake tree most tests run on: 4 CPUs of acpi-cpufreq with turbo.
pub fn acpi4() -> FakeSysfsBuilder {
    FakeSysfs::builder(4).driver(Driver::AcpiCpufreq)
}

/// A temporary directory laid out as a host, with its fake sysfs tree.
#[derive(Debug)]
pub struct FakeHost {
    /// The fake sysfs tree.
    pub fake: Arc<FakeSysfs>,
    /// The paths.
    pub dirs: HostDirs,
    /// The temporary directory (removed on drop).
    pub dir: tempfile::TempDir,
}

impl FakeHost {
    /// [`acpi4`] in a fresh temporary directory.
    pub fn new() -> FakeHost {
        FakeHost::build(acpi4()).expect("a fake host in a temp dir")
    }

    /// The tree `builder` makes, in `<tmp>/sys`.
    pub fn build(builder: FakeSysfsBuilder) -> anyhow::Result<FakeHost> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        FakeHost::build_in(dir, builder)
    }

    /// The tree `builder` makes, in `<dir>/sys`.
    pub fn build_in(dir: tempfile::TempDir, builder: FakeSysfsBuilder) -> anyhow::Result<FakeHost> {
        let dirs = HostDirs::under(dir.path());
        let fake = builder
            .in_dir(&dirs.sysfs)
            .build()
            .context("building the fake sysfs tree")?;
        dirs.create()?;
        Ok(FakeHost {
            fake: Arc::new(fake),
            dirs,
            dir,
        })
    }

    /// A host around a tree the test built itself (wherever it lies).
    pub fn around(fake: Arc<FakeSysfs>) -> FakeHost {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut dirs = HostDirs::under(dir.path());
        dirs.sysfs = fake.path().to_owned();
        dirs.create().expect("the channel and proc directories");
        FakeHost { fake, dirs, dir }
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A cpufreq file of a CPU, e.g. `scaling_setspeed`, as the daemon
    /// left it.
    pub fn cpu_file(&self, cpu: u32, file: &str) -> String {
        self.fake.read(&cpufreq_file(cpu, file)).unwrap()
    }
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_name_every_directory_of_the_layout() {
        let dirs = HostDirs::under(Path::new("/h"));
        let args: Vec<String> = dirs
            .daemon_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "--sysfs-root",
                "/h/sys",
                "--proc-root",
                "/h/proc",
                "--channel-dir",
                "/h/channels",
                "--state-dir",
                "/h/state",
                "--control-socket",
                "/h/control.sock"
            ]
        );
    }

    #[test]
    fn a_fake_host_holds_its_tree_and_directories() {
        let host = FakeHost::new();
        assert!(host.fake.path().starts_with(host.path()));
        assert!(host.dirs.channels.is_dir());
        assert_eq!(host.cpu_file(3, "scaling_driver"), "acpi-cpufreq");
    }
}

//! The run's shared context: the work directory, the artifacts the run
//! script built, the accelerator, and the clean-up record.
//!
//! ## Behavior
//! - Every process the harness starts is appended to `WORK/pids`, every
//!   network device to `WORK/links`, namespace to `WORK/netns`, libvirt
//!   domain to `WORK/domains` and daemon pid file to `WORK/daemons`, before
//!   or as it is made. The harness removes them itself (guards' `Drop`);
//!   tests/e2e/run's EXIT trap removes whatever is still listed, so an
//!   interrupted run (Ctrl-C kills the harness without unwinding) leaves
//!   nothing behind either.
//! - Each scenario gets its own directory `WORK/sN`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// How QEMU runs its vCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization (`-enable-kvm -cpu host`).
    Kvm,
    /// Emulation, one host thread per vCPU (`-accel tcg,thread=multi`).
    Tcg,
}

impl Accel {
    /// KVM only on a normal KVM host: not under kvm_pvm (stock kernels die
    /// there with "KVM internal error"), only with vmx/svm in cpuinfo and an
    /// openable /dev/kvm. `VMPOWER_E2E_ACCEL=tcg|kvm` overrides.
    pub fn detect() -> Accel {
        match std::env::var("VMPOWER_E2E_ACCEL").as_deref() {
            Ok("tcg") => return Accel::Tcg,
            Ok("kvm") => return Accel::Kvm,
            _ => {}
        }
        let pvm = Path::new("/sys/module/kvm_pvm").exists();
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let hw = cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if !pvm && hw && dev {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// QEMU's arguments for it.
    pub fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-enable-kvm", "-cpu", "host"],
            Accel::Tcg => &["-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }
}

/// What every scenario needs: paths and the clean-up record.
#[derive(Debug, Clone)]
pub struct Work {
    /// The run's work directory.
    pub dir: PathBuf,
    /// The guest kernel.
    pub kernel: PathBuf,
    /// The guest initramfs.
    pub initrd: PathBuf,
    /// The vmpowerd binary.
    pub vmpowerd: PathBuf,
    /// The vmpowerctl binary.
    pub vmpowerctl: PathBuf,
    /// KVM or TCG.
    pub accel: Accel,
}

impl Work {
    /// A fresh directory for one scenario (`WORK/<name>`).
    pub fn scenario_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.dir.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// Appends `line` to the clean-up list `list` (`pids`, `links`, ...).
    pub fn record(&self, list: &str, line: &str) -> anyhow::Result<()> {
        let path = self.dir.join(list);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{line}").with_context(|| format!("writing {}", path.display()))
    }
}

/// The host CPUs this process may run on (where vCPUs can be pinned).
pub fn host_cpus() -> anyhow::Result<Vec<u32>> {
    let set = rustix::thread::sched_getaffinity(None).context("sched_getaffinity")?;
    let max = u32::try_from(rustix::thread::CpuSet::MAX_CPU).unwrap_or(u32::MAX);
    Ok((0..max)
        .filter(|c| usize::try_from(*c).is_ok_and(|c| set.is_set(c)))
        .collect())
}

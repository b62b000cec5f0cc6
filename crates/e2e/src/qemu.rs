//! A guest under QEMU: the command line (power channels on unix sockets in
//! the daemon's channel directory, the harness's control port, QMP, the
//! serial console in a file), boot detection, vCPU pinning through QMP
//! thread ids and sched_setaffinity, and stopping.
//!
//! ## Behavior
//! - QEMU is started with `-name NAME,debug-threads=on` so its vCPU threads
//!   are named `CPU n/TCG` (or `/KVM`): the daemon's /proc discovery needs it
//!   (unless the spec turns it off to leave the daemon only QMP).
//! - [`Qemu::wait_ready`] waits for the guest's `e2e: ready` console line and
//!   fails at once on a kernel panic, "KVM internal error" (QEMU then stays
//!   alive and paused) or QEMU exiting.
//! - Files live in the VM's directory: `console.log` (ttyS0), `qemu.log`
//!   (QEMU's own output), `qmp.sock`, `ctl.sock`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

use crate::guest_ctl::GuestCtl;
use crate::proc::Proc;
use crate::qmp::Qmp;
use crate::wait;
use crate::work::Work;

/// Bound on a boot (TCG on a loaded 2-core machine boots in about 4 s).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The name of the harness's control port in the guest.
pub const CTL_PORT: &str = "org.vmpower.e2e.ctl";

/// The daemon's QMP socket in the VM's directory (see [`VmSpec::daemon_qmp`]).
pub const DAEMON_QMP: &str = "qmp-daemon.sock";

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// The VM's name (`-name`, and the channel sockets `NAME.N`).
    pub name: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Power channel numbers: `virtio.serial.port.poweragent.N` on
    /// `CHANNEL_DIR/NAME.N`.
    pub channels: Vec<u32>,
    /// The daemon's channel directory.
    pub channel_dir: PathBuf,
    /// More QEMU arguments (e.g. a network device).
    pub extra: Vec<String>,
    /// `-name NAME,debug-threads=on` (vCPU threads named `CPU n/TCG`);
    /// without it the daemon can learn the vCPU threads only from QMP.
    pub debug_threads: bool,
    /// A second QMP monitor for the daemon at `DIR/qmp-daemon.sock` (QMP
    /// serves one client per socket; the harness keeps `qmp.sock`).
    pub daemon_qmp: bool,
}

impl VmSpec {
    /// `vcpus` vCPUs and channels 0 and 1.
    pub fn new(name: &str, vcpus: u32, channel_dir: &Path) -> VmSpec {
        VmSpec {
            name: name.to_owned(),
            vcpus,
            channels: vec![0, 1],
            channel_dir: channel_dir.to_owned(),
            extra: Vec::new(),
            debug_threads: true,
            daemon_qmp: false,
        }
    }
}

/// A running QEMU.
#[derive(Debug)]
pub struct Qemu {
    /// The spec it was started with.
    pub spec: VmSpec,
    dir: PathBuf,
    proc: Proc,
    qmp: Option<Qmp>,
}

impl Qemu {
    /// Starts QEMU; files go to `dir` (created).
    pub fn start(work: &Work, dir: &Path, spec: &VmSpec) -> anyhow::Result<Qemu> {
        fs::create_dir_all(dir)?;
        let mut args: Vec<String> = work
            .accel
            .qemu_args()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let console = dir.join("console.log");
        let _ = fs::remove_file(&console);
        let s = |p: &Path| p.display().to_string();
        args.extend([
            "-name".into(),
            if spec.debug_threads {
                format!("{},debug-threads=on", spec.name)
            } else {
                spec.name.clone()
            },
            "-m".into(),
            "192".into(),
            "-smp".into(),
            spec.vcpus.to_string(),
            "-display".into(),
            "none".into(),
            "-monitor".into(),
            "none".into(),
            "-no-reboot".into(),
            "-serial".into(),
            format!("file:{}", s(&console)),
            "-kernel".into(),
            s(&work.kernel),
            "-initrd".into(),
            s(&work.initrd),
            "-append".into(),
            "console=ttyS0 panic=-1 quiet".into(),
            "-device".into(),
            "virtio-serial".into(),
        ]);
        if !spec.extra.iter().any(|a| a.contains("virtio-net")) {
            args.extend(["-nic".into(), "none".into()]);
        }
        for n in &spec.channels {
            let path = spec.channel_dir.join(format!("{}.{n}", spec.name));
            args.extend([
                "-chardev".into(),
                format!("socket,id=ch{n},path={},server=on,wait=off", s(&path)),
                "-device".into(),
                format!("virtserialport,chardev=ch{n},name=virtio.serial.port.poweragent.{n}"),
            ]);
        }
        // The control port last: the guest waits for it, so every power port
        // is there too by then.
        args.extend([
            "-chardev".into(),
            format!(
                "socket,id=e2ectl,path={},server=on,wait=off",
                s(&dir.join("ctl.sock"))
            ),
            "-device".into(),
            format!("virtserialport,chardev=e2ectl,name={CTL_PORT}"),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", s(&dir.join("qmp.sock"))),
        ]);
        if spec.daemon_qmp {
            args.extend([
                "-chardev".into(),
                format!(
                    "socket,id=qmpd,path={},server=on,wait=off",
                    s(&dir.join(DAEMON_QMP))
                ),
                "-mon".into(),
                "chardev=qmpd,mode=control".into(),
            ]);
        }
        args.extend(spec.extra.iter().cloned());
        let mut command = Command::new("qemu-system-x86_64");
        command.args(&args);
        let proc = Proc::spawn(
            work,
            &format!("QEMU {}", spec.name),
            command,
            &dir.join("qemu.log"),
        )?;
        Ok(Qemu {
            spec: spec.clone(),
            dir: dir.to_owned(),
            proc,
            qmp: None,
        })
    }

    /// The serial console so far.
    pub fn console(&self) -> String {
        fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// The console's and QEMU's last lines, for a failure report.
    pub fn diagnostics(&self) -> String {
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        format!(
            "--- {} console (last lines):\n{}\n--- qemu.log:\n{}",
            self.spec.name,
            tail(self.console()),
            tail(fs::read_to_string(self.proc.log()).unwrap_or_default())
        )
    }

    /// A fatal condition visible in the logs, if any.
    fn broken(&mut self) -> anyhow::Result<Option<String>> {
        let console = self.console();
        if let Some(line) = console.lines().find(|l| l.contains("Kernel panic")) {
            return Ok(Some(format!("guest kernel panic: {line}")));
        }
        let qemu_log = fs::read_to_string(self.proc.log()).unwrap_or_default();
        if qemu_log.contains("KVM internal error") {
            return Ok(Some(
                "KVM internal error (the guest kernel cannot run under this KVM)".into(),
            ));
        }
        if let Some(status) = self.proc.exited()? {
            return Ok(Some(format!("QEMU exited ({status})")));
        }
        Ok(None)
    }

    /// Waits until the guest's /init says it is ready, then connects the
    /// control port.
    pub fn wait_ready(&mut self) -> anyhow::Result<GuestCtl> {
        let ready = wait::until("the guest to boot", BOOT_TIMEOUT, || {
            if let Some(why) = self.broken()? {
                return Ok(Some(Err(why)));
            }
            Ok(self.console().contains("e2e: ready").then_some(Ok(())))
        });
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                self.proc.kill();
                bail!("{why}\n{}", self.diagnostics());
            }
            Err(e) => bail!("{e:#}\n{}", self.diagnostics()),
        }
        GuestCtl::connect(&self.dir.join("ctl.sock"))
    }

    /// The QMP session (connected on first use).
    pub fn qmp(&mut self) -> anyhow::Result<&mut Qmp> {
        if self.qmp.is_none() {
            self.qmp = Some(Qmp::connect(&self.dir.join("qmp.sock"))?);
        }
        Ok(self.qmp.as_mut().expect("connected just above"))
    }

    /// Host thread id of each vCPU, by vCPU index.
    pub fn vcpu_tids(&mut self) -> anyhow::Result<Vec<(u32, i32)>> {
        self.qmp()?.vcpu_threads()
    }

    /// Pins vCPU `vcpu` to host CPU `cpu` and reads the affinity back.
    pub fn pin(&mut self, vcpu: u32, cpu: u32) -> anyhow::Result<()> {
        let tids = self.vcpu_tids()?;
        let Some(&(_, tid)) = tids.iter().find(|(v, _)| *v == vcpu) else {
            bail!("{}: no vCPU {vcpu} in {tids:?}", self.spec.name);
        };
        let pid = rustix::process::Pid::from_raw(tid)
            .with_context(|| format!("thread id {tid} of vCPU {vcpu}"))?;
        let mut set = CpuSet::new();
        set.set(usize::try_from(cpu)?);
        sched_setaffinity(Some(pid), &set)
            .with_context(|| format!("pinning vCPU {vcpu} (thread {tid}) to CPU {cpu}"))?;
        let back = sched_getaffinity(Some(pid))?;
        if back != set {
            bail!("vCPU {vcpu} (thread {tid}): affinity did not read back as CPU {cpu}");
        }
        Ok(())
    }

    /// Pins vCPU i to `cpus[i]`.
    pub fn pin_all(&mut self, cpus: &[u32]) -> anyhow::Result<()> {
        for (vcpu, cpu) in cpus.iter().enumerate() {
            self.pin(u32::try_from(vcpu)?, *cpu)?;
        }
        Ok(())
    }

    /// Powers the guest off (`quit` over QMP) and waits for QEMU to exit;
    /// killed if it does not within 10 s.
    pub fn quit(&mut self) -> anyhow::Result<()> {
        if let Ok(qmp) = self.qmp() {
            // QEMU may close the socket before answering.
            let _ = qmp.execute("quit", None);
        }
        self.qmp = None;
        if self.proc.wait_exit(Duration::from_secs(10))?.is_none() {
            self.proc.kill();
        }
        Ok(())
    }
}

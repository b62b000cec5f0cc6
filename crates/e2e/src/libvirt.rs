//! A real libvirt for the e2e run: libvirtd and virtlogd started by hand
//! (no systemd here) unless one already answers, domains defined from XML
//! and always destroyed and undefined, `virsh` with a time limit, and the
//! channel socket paths read from a domain's live XML.
//!
//! ## Behavior
//! - Daemons the harness starts write their pid files into the scenario
//!   directory, listed in `WORK/daemons`; they are stopped (SIGTERM, then
//!   waited for) when the guard drops, and by the run script's trap.
//!   A libvirtd that was already running is used and left alone.
//! - Domains are listed in `WORK/domains` before they are defined.
//! - Every virsh call runs under `timeout`, so a stuck libvirtd cannot hang
//!   the run.
//! - While libvirt is in use, /dev/kvm is made usable by group `kvm` (no
//!   udev here to do it): libvirt probes QEMU's capabilities as root, where
//!   KVM works, and drops its cache as "KVM no longer available" whenever
//!   its QEMU user cannot open /dev/kvm, so every `virsh define` re-probed
//!   (about 50 s here). The original owner and mode are written to
//!   `WORK/devkvm` for the trap and put back on drop. Domains stay TCG
//!   (`type='qemu'`) unless KVM really works.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process};

use crate::wait;
use crate::work::Work;

/// The URI of the system QEMU driver.
pub const URI: &str = "qemu:///system";

/// Bound on libvirtd's first start (E2E.md: 8-12 s).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `virsh -c URI ARGS` (at most 60 s); returns stdout.
pub fn virsh(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("timeout")
        .args(["60", "virsh", "-q", "-c", URI])
        .args(args)
        .output()
        .context("running virsh")?;
    if !out.status.success() {
        bail!(
            "virsh {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// libvirtd and virtlogd, started here or found running.
#[derive(Debug)]
pub struct Libvirtd {
    started: Vec<PathBuf>,
    _kvm: Option<KvmAccess>,
}

/// /dev/kvm opened to group `kvm` for as long as it lives.
#[derive(Debug)]
struct KvmAccess {
    uid: u32,
    gid: u32,
    mode: u32,
}

const DEV_KVM: &str = "/dev/kvm";

impl KvmAccess {
    fn grant(work: &Work) -> anyhow::Result<Option<KvmAccess>> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let Ok(meta) = fs::metadata(DEV_KVM) else {
            return Ok(None);
        };
        let group = fs::read_to_string("/etc/group").unwrap_or_default();
        let Some(kvm_gid) = group.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some("kvm")).then(|| f.nth(1)?.parse::<u32>().ok())?
        }) else {
            return Ok(None);
        };
        let access = KvmAccess {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        };
        work.record(
            "devkvm",
            &format!("{}:{} {:o}", access.uid, access.gid, access.mode),
        )?;
        std::os::unix::fs::chown(DEV_KVM, None, Some(kvm_gid)).context("chgrp kvm /dev/kvm")?;
        fs::set_permissions(DEV_KVM, fs::Permissions::from_mode(access.mode | 0o660))
            .context("chmod g+rw /dev/kvm")?;
        Ok(Some(access))
    }
}

impl Drop for KvmAccess {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::os::unix::fs::chown(DEV_KVM, Some(self.uid), Some(self.gid));
        let _ = fs::set_permissions(DEV_KVM, fs::Permissions::from_mode(self.mode));
    }
}

impl Libvirtd {
    /// Uses a running libvirtd, or starts virtlogd and libvirtd.
    pub fn ensure(work: &Work, dir: &Path) -> anyhow::Result<Libvirtd> {
        let mut daemons = Libvirtd {
            started: Vec::new(),
            _kvm: KvmAccess::grant(work)?,
        };
        if virsh(&["version"]).is_ok() {
            return Ok(daemons);
        }
        for (name, binary) in [
            ("virtlogd", "/usr/sbin/virtlogd"),
            ("libvirtd", "/usr/sbin/libvirtd"),
        ] {
            let pid_file = dir.join(format!("{name}.pid"));
            work.record("daemons", &pid_file.display().to_string())?;
            let status = Command::new(binary)
                .arg("-d")
                .arg("--pid-file")
                .arg(&pid_file)
                .status()
                .with_context(|| format!("starting {binary}"))?;
            if !status.success() {
                bail!("{binary} -d failed ({status})");
            }
            daemons.started.push(pid_file);
        }
        wait::until("libvirtd to answer", START_TIMEOUT, || {
            Ok(virsh(&["version"]).is_ok().then_some(()))
        })?;
        Ok(daemons)
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        // libvirtd first, then virtlogd.
        for pid_file in self.started.iter().rev() {
            let pid = fs::read_to_string(pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .and_then(Pid::from_raw);
            if let Some(pid) = pid {
                let _ = kill_process(pid, Signal::TERM);
                let proc_dir = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
                let _ = wait::until("a libvirt daemon to stop", Duration::from_secs(15), || {
                    Ok((!proc_dir.exists()).then_some(()))
                });
            }
        }
    }
}

/// A defined and started domain; destroyed and undefined on drop.
#[derive(Debug)]
pub struct LibvirtDomain {
    /// Its name.
    pub name: String,
}

impl LibvirtDomain {
    /// Defines the domain from `xml` (written to `dir`) and starts it.
    pub fn create(work: &Work, dir: &Path, name: &str, xml: &str) -> anyhow::Result<Self> {
        // A domain of that name left by an interrupted run goes first.
        let _ = virsh(&["destroy", name]);
        let _ = virsh(&["undefine", name]);
        work.record("domains", &format!("{URI} {name}"))?;
        let domain = LibvirtDomain {
            name: name.to_owned(),
        };
        let path = dir.join(format!("{name}.xml"));
        fs::write(&path, xml).with_context(|| format!("writing {}", path.display()))?;
        virsh(&["define", &path.display().to_string()])?;
        virsh(&["start", name])?;
        Ok(domain)
    }

    /// The socket path of the channel whose target is `target`, from the
    /// live XML.
    pub fn channel_path(&self, target: &str) -> anyhow::Result<PathBuf> {
        let xml = virsh(&["dumpxml", &self.name])?;
        channel_path(&xml, target)
            .with_context(|| format!("no unix channel {target} in {}'s live XML", self.name))
    }
}

impl Drop for LibvirtDomain {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.name]);
        let _ = virsh(&["undefine", &self.name]);
    }
}

/// The `path` of the `<channel>` whose `<target name>` is `target`.
pub fn channel_path(xml: &str, target: &str) -> Option<PathBuf> {
    xml.split("<channel ").skip(1).find_map(|block| {
        let block = block.split("</channel>").next()?;
        let wanted = format!("name='{target}'");
        if !block.contains(&wanted) {
            return None;
        }
        let start = block.find("path='")? + "path='".len();
        let len = block[start..].find('\'')?;
        Some(PathBuf::from(&block[start..start + len]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_paths_from_live_xml() {
        let xml = "<domain><devices>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-3-vm/virtio.serial.port.poweragent.0'/>
      <target type='virtio' name='virtio.serial.port.poweragent.0' state='connected'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-3-vm/org.vmpower.e2e.ctl'/>
      <target type='virtio' name='org.vmpower.e2e.ctl' state='disconnected'/>
    </channel>
  </devices></domain>";
        assert_eq!(
            channel_path(xml, "org.vmpower.e2e.ctl").unwrap(),
            PathBuf::from("/var/lib/libvirt/qemu/channel/target/domain-3-vm/org.vmpower.e2e.ctl")
        );
        assert!(
            channel_path(xml, "virtio.serial.port.poweragent.0")
                .unwrap()
                .ends_with("virtio.serial.port.poweragent.0")
        );
        assert_eq!(channel_path(xml, "other"), None);
    }
}

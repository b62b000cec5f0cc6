//! Scenario 4, libvirt: libvirtd and virtlogd started by hand, a domain
//! with power channel 0 (no socket path: libvirt picks one, which only the
//! live XML tells) and `<cputune>` pins vCPU 0 → A, vCPU 1 → B, booting the
//! same guest. vmpowerd runs with `--libvirt-uri qemu:///system` and an
//! empty channel directory, and re-reads placement only every 10 minutes:
//! it must find the domain, its pins and its channel from libvirt alone,
//! follow `virsh vcpupin` (A and B swapped) through libvirt's events, and
//! serve the guest's requests on the right pCPUs before and after.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};

use super::{two_cpus, vg};
use crate::daemon::{Daemon, DaemonSpec};
use crate::guest_ctl::GuestCtl;
use crate::libvirt::{LibvirtDomain, Libvirtd, virsh};
use crate::qemu::{BOOT_TIMEOUT, CTL_PORT};
use crate::work::{Accel, Work};

/// The domain's name (also the VM's name in the daemon).
const DOMAIN: &str = "vmpower-e2e-s4";

/// The domain XML: TCG (or KVM), 2 vCPUs pinned to `pins`, the guest's
/// kernel and initramfs, power channel 0 and the control channel.
fn domain_xml(work: &Work, console: &std::path::Path, pins: [u32; 2]) -> String {
    let kind = match work.accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "qemu",
    };
    let mut xml = format!(
        "<domain type='{kind}'>\n  <name>{DOMAIN}</name>\n  <memory unit='MiB'>192</memory>\n  \
         <vcpu placement='static'>2</vcpu>\n  <cputune>\n"
    );
    for (vcpu, cpu) in pins.iter().enumerate() {
        let _ = writeln!(xml, "    <vcpupin vcpu='{vcpu}' cpuset='{cpu}'/>");
    }
    let _ = write!(
        xml,
        "  </cputune>\n  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n    \
         <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    \
         <cmdline>console=ttyS0 panic=-1 quiet</cmdline>\n  </os>\n  \
         <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  \
         <on_crash>destroy</on_crash>\n  <devices>\n    \
         <controller type='virtio-serial' index='0'/>\n    \
         <channel type='unix'><target type='virtio' name='virtio.serial.port.poweragent.0'/></channel>\n    \
         <channel type='unix'><target type='virtio' name='{CTL_PORT}'/></channel>\n    \
         <serial type='file'><source path='{}'/></serial>\n    \
         <memballoon model='none'/>\n  </devices>\n</domain>\n",
        work.kernel.display(),
        work.initrd.display(),
        console.display()
    );
    xml
}

/// Runs the scenario.
pub fn run(work: &Work) -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("needs root (libvirt's system driver)");
    }
    let dir = work.scenario_dir("s4")?;
    let (a, b, cpus) = two_cpus()?;
    // QEMU runs as libvirt's user and writes the console file here.
    let vm_dir = dir.join("vm");
    std::fs::create_dir_all(&vm_dir)?;
    std::fs::set_permissions(&vm_dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    let console = vm_dir.join("console.log");

    let _libvirtd = Libvirtd::ensure(work, &dir)?;
    let mut daemon = Daemon::start(
        work,
        &dir,
        &DaemonSpec {
            cpus,
            libvirt_uri: Some(crate::libvirt::URI.to_owned()),
            placement_refresh_ms: Some(600_000),
            ..DaemonSpec::default()
        },
    )?;
    let domain = LibvirtDomain::create(work, &dir, DOMAIN, &domain_xml(work, &console, [a, b]))?;
    let mut g = GuestCtl::connect(&domain.channel_path(CTL_PORT)?)?;
    g.run_for("true", BOOT_TIMEOUT).with_context(|| {
        format!(
            "the guest under libvirt did not boot; console:\n{}",
            std::fs::read_to_string(&console).unwrap_or_default()
        )
    })?;
    daemon.wait_placement(DOMAIN, &[a, b])?;
    let t = daemon.table(a)?;
    let (turbo, min) = (t[0], t[t.len() - 1]);

    g.run_ok(&vg("set-cpu-freq 0 max"))?;
    daemon.wait_speed(a, turbo)?;
    g.run_ok(&vg("set-cpu-freq 1 min"))?;
    daemon.wait_speed(b, min)?;

    // Re-pin through libvirt: the daemon hears it as TUNABLE events (its
    // own placement refresh is 10 minutes away).
    virsh(&["vcpupin", DOMAIN, "0", &b.to_string()])?;
    virsh(&["vcpupin", DOMAIN, "1", &a.to_string()])?;
    daemon
        .wait_placement(DOMAIN, &[b, a])
        .context("following virsh vcpupin")?;
    g.run_ok(&vg("set-cpu-freq 0 max"))?;
    daemon.wait_speed(b, turbo)?;
    g.run_ok(&vg("set-cpu-freq 1 min"))?;
    daemon.wait_speed(a, min)?;

    drop(g);
    drop(domain);
    std::thread::sleep(Duration::from_millis(100));
    daemon.stop()
}

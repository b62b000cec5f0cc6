//! Scenario 2, re-pin while running: vCPU 0 starts on host CPU A and
//! vCPU 1 on B; the test swaps them with sched_setaffinity while the guest
//! runs. The daemon must notice by itself and the next request for vCPU 0
//! must land on B, the next for vCPU 1 on A.
//!
//! It runs twice, once for each way the daemon learns the vCPU threads of
//! a plain QEMU: from /proc (`-name vm2,debug-threads=on`, threads named
//! `CPU n/TCG`), then from QMP alone (VM `vm2q` without debug-threads, so
//! /proc cannot tell its vCPU threads apart, and `[vm.vm2q] qmp_socket` in
//! the daemon's configuration naming a QMP monitor of its own).

use std::path::Path;

use super::{boot_pinned, two_cpus, vg};
use crate::daemon::{Daemon, DaemonSpec};
use crate::qemu::{DAEMON_QMP, VmSpec};
use crate::work::Work;

/// Swaps the pins of `spec`'s two vCPUs under the running guest.
fn repin(
    work: &Work,
    dir: &Path,
    daemon: &Daemon,
    spec: &VmSpec,
    a: u32,
    b: u32,
) -> anyhow::Result<()> {
    let (mut vm, mut g) = boot_pinned(work, dir, daemon, spec, &[a, b])?;
    let t = daemon.table(a)?;
    let (turbo, min) = (t[0], t[t.len() - 1]);

    g.run_ok(&vg("set-cpu-freq 0 min"))?;
    daemon.wait_speed(a, min)?;
    // B is nobody's yet: still under its own governor.
    daemon.expect_speed(b, None)?;

    vm.pin_all(&[b, a])?;
    daemon.wait_placement(&spec.name, &[b, a])?;

    g.run_ok(&vg("set-cpu-freq 0 max"))?;
    daemon.wait_speed(b, turbo)?;
    if daemon.setspeed(a)? == Some(turbo) {
        anyhow::bail!("vCPU 0's request reached CPU {a}, where it no longer runs");
    }
    g.run_ok(&vg("set-cpu-freq 1 max"))?;
    daemon.wait_speed(a, turbo)?;
    g.run_ok(&vg("set-cpu-freq 1 min"))?;
    daemon.wait_speed(a, min)?;
    daemon.expect_speed(b, Some(turbo))?;
    // The VM goes away; its pCPUs are given back before the next one.
    g.run_ok(&vg("set-cpu-freq 0 min"))?;
    vm.quit()
}

/// Runs the scenario.
pub fn run(work: &Work) -> anyhow::Result<()> {
    let dir = work.scenario_dir("s2")?;
    let (a, b, cpus) = two_cpus()?;
    let qmp_dir = dir.join("vm2q");
    let mut daemon = Daemon::start(
        work,
        &dir,
        &DaemonSpec {
            cpus,
            extra_config: format!(
                "[vm.vm2q]\nqmp_socket = {:?}\n",
                qmp_dir.join(DAEMON_QMP).display().to_string()
            ),
            ..DaemonSpec::default()
        },
    )?;
    let spec = VmSpec::new("vm2", 2, &daemon.channel_dir);
    repin(work, &dir.join("vm2"), &daemon, &spec, a, b)?;

    let mut spec = VmSpec::new("vm2q", 2, &daemon.channel_dir);
    spec.debug_threads = false;
    spec.daemon_qmp = true;
    // The previous VM's pCPUs must be free again first.
    daemon.wait_released(a)?;
    daemon.wait_released(b)?;
    repin(work, &qmp_dir, &daemon, &spec, a, b)?;
    daemon.stop()
}

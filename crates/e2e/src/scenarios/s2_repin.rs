//! Scenario 2, re-pin while running: vCPU 0 starts on host CPU A and
//! vCPU 1 on B; the test swaps them with sched_setaffinity while the guest
//! runs. The daemon must notice by itself (it re-reads /proc), and the next
//! request for vCPU 0 must land on B, the next for vCPU 1 on A.

use super::{boot_pinned, two_cpus, vg};
use crate::daemon::{Daemon, DaemonSpec};
use crate::qemu::VmSpec;
use crate::work::Work;

/// Runs the scenario.
pub fn run(work: &Work) -> anyhow::Result<()> {
    let dir = work.scenario_dir("s2")?;
    let (a, b, cpus) = two_cpus()?;
    let mut daemon = Daemon::start(
        work,
        &dir,
        &DaemonSpec {
            cpus,
            ..DaemonSpec::default()
        },
    )?;
    let spec = VmSpec::new("vm2", 2, &daemon.channel_dir);
    let (mut vm, mut g) = boot_pinned(work, &dir.join("vm2"), &daemon, &spec, &[a, b])?;
    let t = daemon.table(a)?;
    let (turbo, min) = (t[0], t[t.len() - 1]);

    g.run_ok(&vg("set-cpu-freq 0 min"))?;
    daemon.wait_speed(a, min)?;
    // B is nobody's yet: still under its own governor.
    daemon.expect_speed(b, None)?;

    vm.pin_all(&[b, a])?;
    daemon.wait_placement("vm2", &[b, a])?;

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

    vm.quit()?;
    daemon.stop()
}

//! Scenario 1, plain QEMU: a 2-vCPU guest with power channels 0 and 1 and
//! a QMP socket, vCPU 0 and 1 pinned to two different host CPUs (QMP thread
//! ids + sched_setaffinity). The daemon finds the VM and its pins in /proc
//! by itself. From inside the guest, vmpower-guest sends max, min, up, down,
//! turbo off/on, queries (refused, then allowed with `vmpowerctl
//! set-query`), a WORKLOAD policy and a TIME policy; each step checks the
//! guest's output and the fake sysfs `scaling_setspeed` of the right host
//! CPU (and that the other one did not move).

use anyhow::Context;

use super::{boot_pinned, expect_contains, two_cpus_and_daemon, vg};
use crate::qemu::VmSpec;
use crate::work::Work;

/// Runs the scenario.
pub fn run(work: &Work) -> anyhow::Result<()> {
    let dir = work.scenario_dir("s1")?;
    let (a, b, mut daemon) = two_cpus_and_daemon(work, &dir)?;
    let spec = VmSpec::new("vm1", 2, &daemon.channel_dir);
    let (mut vm, mut g) = boot_pinned(work, &dir.join("vm1"), &daemon, &spec, &[a, b])?;
    let t = daemon.table(a)?;
    let last = t.len().checked_sub(1).context("empty frequency table")?;
    let (turbo, max_no_turbo, min) = (t[0], t[1], t[last]);

    // Direct requests, each on the pCPU of the vCPU it names.
    let out = g.run_ok(&vg("set-cpu-freq 0 max"))?;
    expect_contains("set-cpu-freq 0 max", &out, "acknowledged")?;
    daemon.wait_speed(a, turbo)?;
    g.run_ok(&vg("set-cpu-freq 1 min"))?;
    daemon.wait_speed(b, min)?;
    daemon.expect_speed(a, Some(turbo))?;
    g.run_ok(&vg("set-cpu-freq 1 up"))?;
    daemon.wait_speed(b, t[last - 1])?;
    g.run_ok(&vg("set-cpu-freq 0 down"))?;
    daemon.wait_speed(a, max_no_turbo)?;
    g.run_ok(&vg("set-cpu-freq 0 up"))?;
    daemon.wait_speed(a, turbo)?;
    // Turbo off moves a core at the turbo entry down one; max then stops
    // below turbo; turbo on lets max reach it again.
    g.run_ok(&vg("set-cpu-freq 0 disable-turbo"))?;
    daemon.wait_speed(a, max_no_turbo)?;
    g.run_ok(&vg("set-cpu-freq 0 min"))?;
    daemon.wait_speed(a, min)?;
    g.run_ok(&vg("set-cpu-freq 0 max"))?;
    daemon.wait_speed(a, max_no_turbo)?;
    g.run_ok(&vg("set-cpu-freq 0 enable-turbo"))?;
    g.run_ok(&vg("set-cpu-freq 0 max"))?;
    daemon.wait_speed(a, turbo)?;
    daemon.expect_speed(b, Some(t[last - 1]))?;

    // Queries: refused (NACK, exit 4) until the operator allows them.
    g.run_expect(&vg("query-cpu-freq all"), 4)
        .context("a query before set-query")?;
    daemon.ctl(&["set-query", "vm1", "enable"])?;
    let out = g.run_ok(&vg("query-cpu-freq all"))?;
    expect_contains("query-cpu-freq all", &out, &format!("vCPU 0: {turbo} kHz"))?;
    expect_contains(
        "query-cpu-freq all",
        &out,
        &format!("vCPU 1: {} kHz", t[last - 1]),
    )?;
    let out = g.run_ok(&vg("query-cpu-freq 1"))?;
    expect_contains(
        "query-cpu-freq 1",
        &out,
        &format!("vCPU 1: {} kHz", t[last - 1]),
    )?;
    let out = g.run_ok(&vg("query-cpu-caps all"))?;
    expect_contains("query-cpu-caps all", &out, "vCPU 0: turbo yes")?;
    expect_contains("query-cpu-caps all", &out, "vCPU 1: turbo yes")?;

    // WORKLOAD policy over both vCPUs: LOW is min, MEDIUM the middle entry.
    let out = g.run_ok(&vg(
        "send-policy --policy WORKLOAD --vcpu-list 0-1 --workload LOW",
    ))?;
    expect_contains("send-policy WORKLOAD", &out, "acknowledged")?;
    daemon.wait_speed(a, min)?;
    daemon.wait_speed(b, min)?;
    g.run_ok(&vg(
        "send-policy --policy WORKLOAD --vcpu-list 0-1 --workload MEDIUM",
    ))?;
    let medium = t[t.len() / 2];
    daemon.wait_speed(a, medium)?;
    daemon.wait_speed(b, medium)?;

    // TIME policy: every hour busy is max, every hour quiet is min,
    // whatever the hour of the run. It replaces the WORKLOAD policy.
    g.run_ok(&vg(
        "send-policy --policy TIME --vcpu-list 0-1 --busy-hours 0-23",
    ))?;
    let shown = daemon.ctl(&["policy", "show", "vm1"])?;
    expect_contains("vmpowerctl policy show vm1", &shown, "TIME")?;
    // This core's turbo is enabled (above), so max is the turbo entry.
    daemon.wait_speed(a, turbo)?;
    daemon.wait_speed(b, turbo)?;
    g.run_ok(&vg(
        "send-policy --policy TIME --vcpu-list 0-1 --quiet-hours 0-23",
    ))?;
    daemon.wait_speed(a, min)?;
    daemon.wait_speed(b, min)?;
    g.run_ok(&vg("remove-policy"))?;

    vm.quit()?;
    daemon.stop()
}

//! Scenario 3, QEMU restart: the guest has a WORKLOAD HIGH policy on vCPU 1
//! (on host CPU B). QEMU quits, so its channel sockets go away; a new QEMU
//! of the same VM starts with the same sockets and vCPU 1 pinned to A this
//! time. Without any operator action the daemon must reconnect, keep the
//! policy and apply it where vCPU 1 now runs, and serve new requests.

use anyhow::{Context, bail};
use serde_json::Value;

use super::{boot_pinned, expect_contains, two_cpus_and_daemon, vg};
use crate::daemon::{Daemon, EFFECT_TIMEOUT};
use crate::qemu::VmSpec;
use crate::wait;
use crate::work::Work;

/// The daemon's view of channel `vm3.0`: (up, connects).
fn channel_state(daemon: &Daemon) -> anyhow::Result<(bool, u64)> {
    let stats = daemon.stats()?;
    let channel = stats
        .pointer("/channels/vm3.0")
        .with_context(|| format!("no channel vm3.0 in {stats}"))?;
    let up = channel.get("up").and_then(Value::as_bool);
    let connects = channel.get("connects").and_then(Value::as_u64);
    match (up, connects) {
        (Some(u), Some(c)) => Ok((u, c)),
        _ => bail!("channel vm3.0 without up/connects: {channel}"),
    }
}

/// Runs the scenario.
pub fn run(work: &Work) -> anyhow::Result<()> {
    let dir = work.scenario_dir("s3")?;
    let (a, b, mut daemon) = two_cpus_and_daemon(work, &dir)?;
    let spec = VmSpec::new("vm3", 2, &daemon.channel_dir);
    let (mut vm, mut g) = boot_pinned(work, &dir.join("vm3-boot1"), &daemon, &spec, &[a, b])?;
    let t = daemon.table(a)?;
    let (turbo, min) = (t[0], t[t.len() - 1]);

    g.run_ok(&vg(
        "send-policy --policy WORKLOAD --vcpu-list 1 --workload HIGH",
    ))?;
    daemon.wait_speed(b, turbo)?;
    daemon.expect_speed(a, None)?;
    let (_, connects_before) = channel_state(&daemon)?;

    // QEMU goes away: its sockets with it.
    drop(g);
    vm.quit()?;
    wait::until("the daemon to see vm3.0 down", EFFECT_TIMEOUT, || {
        Ok((!channel_state(&daemon)?.0).then_some(()))
    })?;

    // The same VM again, vCPU 1 now on A.
    let (mut vm, mut g) = boot_pinned(work, &dir.join("vm3-boot2"), &daemon, &spec, &[b, a])?;
    wait::until("the daemon to reconnect vm3.0", EFFECT_TIMEOUT, || {
        let (up, connects) = channel_state(&daemon)?;
        Ok((up && connects > connects_before).then_some(()))
    })?;
    let shown = daemon.ctl(&["policy", "show", "vm3"])?;
    expect_contains("vmpowerctl policy show vm3", &shown, "WORKLOAD")?;
    daemon
        .wait_speed(a, turbo)
        .context("the policy on vCPU 1 after the restart")?;
    // vCPU 0 (now on B) is served over the reconnected channel.
    g.run_ok(&vg("set-cpu-freq 0 min"))?;
    daemon.wait_speed(b, min)?;
    daemon.expect_speed(a, Some(turbo))?;

    vm.quit()?;
    daemon.stop()
}

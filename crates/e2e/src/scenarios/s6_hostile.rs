//! Scenario 6, a hostile guest: VM `bad` (vCPU 0 on host CPU A) writes a
//! spoofed vm_name naming its neighbour, a physical-core request for a host
//! CPU, a policy over physical cores, garbage bytes and a flood of valid
//! requests far beyond the rate limit (paused at the limit, not read
//! past it); VM `good` (vCPU 0 on B) is served
//! throughout, including while the flood runs. Checks: each attack is
//! refused or contained as the rules say (`vmpowerctl status --json`
//! counters), B moves only on `good`'s requests, and the daemon stays up.

use anyhow::{Context, bail};
use serde_json::Value;

use super::{two_cpus_and_daemon, vg};
use crate::daemon::EFFECT_TIMEOUT;
use crate::qemu::{Qemu, VmSpec};
use crate::wait;
use crate::work::Work;

/// The power port as the guest sees it.
const PORT: &str = "/dev/virtio-ports/virtio.serial.port.poweragent.0";

/// A counter of `stats` at `pointer` (0 when absent).
fn counter(stats: &Value, pointer: &str) -> u64 {
    stats.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Sum of the rejections whose label contains `part`.
fn rejections(stats: &Value, part: &str) -> u64 {
    stats
        .get("rejections")
        .and_then(Value::as_object)
        .map_or(0, |m| {
            m.iter()
                .filter(|(k, _)| k.contains(part))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
}

/// Runs the scenario.
pub fn run(work: &Work) -> anyhow::Result<()> {
    let dir = work.scenario_dir("s6")?;
    let (a, b, mut daemon) = two_cpus_and_daemon(work, &dir)?;
    let mut bad_spec = VmSpec::new("bad", 1, &daemon.channel_dir);
    bad_spec.channels = vec![0];
    let mut good_spec = VmSpec::new("good", 1, &daemon.channel_dir);
    good_spec.channels = vec![0];
    // Both boot at once.
    let mut bad = Qemu::start(work, &dir.join("bad"), &bad_spec)?;
    let mut good = Qemu::start(work, &dir.join("good"), &good_spec)?;
    let mut gb = bad.wait_ready()?;
    let mut gg = good.wait_ready()?;
    bad.pin(0, a)?;
    good.pin(0, b)?;
    daemon.wait_placement("bad", &[a])?;
    daemon.wait_placement("good", &[b])?;
    let t = daemon.table(a)?;
    let (turbo, min) = (t[0], t[t.len() - 1]);

    gg.run_ok(&vg("set-cpu-freq 0 min"))?;
    daemon.wait_speed(b, min)?;

    // A spoofed vm_name: identity is the channel, so bad moves its own CPU.
    gb.run_ok(&vg("--vm-name good set-cpu-freq 0 max"))?;
    daemon.wait_speed(a, turbo)?;
    daemon.expect_speed(b, Some(min))?;
    let stats = daemon.stats()?;
    if counter(&stats, "/name_mismatches") == 0 {
        bail!("a spoofed vm_name was not counted: {stats}");
    }

    // Physical cores: a policy naming host CPU B is refused (NACK, exit 4);
    // a raw CPU_POWER for host CPU 1 too.
    gb.run_expect(
        &vg(&format!(
            "send-policy --policy WORKLOAD --workload HIGH --vcpu-list {b} --physical-cores"
        )),
        4,
    )
    .context("a policy over a physical core")?;
    let before = daemon.stats()?;
    gb.run_ok(&format!("cat /payloads/physical.bin > {PORT}"))?;
    wait::until(
        "the raw physical-core request to be refused",
        EFFECT_TIMEOUT,
        || {
            let now = daemon.stats()?;
            Ok((rejections(&now, "physical") > rejections(&before, "physical")).then_some(()))
        },
    )
    .with_context(|| format!("stats before: {before}"))?;
    daemon.expect_speed(b, Some(min))?;

    // Garbage: ten records' worth of noise, each refused.
    let before = daemon.stats()?;
    gb.run_ok(&format!("cat /payloads/garbage.bin > {PORT}"))?;
    wait::until("garbage to be refused", EFFECT_TIMEOUT, || {
        let now = daemon.stats()?;
        Ok((rejections(&now, "malformed") >= rejections(&before, "malformed") + 10).then_some(()))
    })?;

    // A flood in the background; the neighbour is served meanwhile.
    let before = daemon.stats()?;
    gb.run_ok(&format!(
        "(cat /payloads/flood.bin > {PORT}; echo flood-done > /tmp/flood) >/dev/null 2>&1 &"
    ))?;
    gg.run_ok(&vg("set-cpu-freq 0 max"))?;
    daemon.wait_speed(b, turbo)?;
    wait::until("the flood to end", EFFECT_TIMEOUT * 4, || {
        let out = gb.run("cat /tmp/flood 2>/dev/null")?;
        Ok(out.text.contains("flood-done").then_some(()))
    })?;
    // The flood was not read past the channel's limit: the channel was
    // paused for tokens (its requests wait in the guest), none refused.
    let after = daemon.stats()?;
    let throttled = "/channels/bad.0/throttled";
    let paused = counter(&after, throttled).saturating_sub(counter(&before, throttled));
    if paused == 0 || rejections(&after, "rate_limited") != 0 {
        bail!(
            "a flood of {} requests was not paused at the rate limit: {after}",
            crate::payloads::FLOOD_RECORDS
        );
    }
    gg.run_ok(&vg("set-cpu-freq 0 min"))?;
    daemon.wait_speed(b, min)?;
    // Nothing of the neighbour's was refused, and the daemon never failed.
    let stats = daemon.stats()?;
    let good_refused: Vec<&String> = stats
        .get("requests")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter(|k| k.starts_with("good/") && !k.ends_with("/ok"))
                .collect()
        })
        .unwrap_or_default();
    if !good_refused.is_empty() || counter(&stats, "/sysfs_failures") != 0 {
        bail!("the neighbour was not served cleanly: {stats}");
    }

    bad.quit()?;
    good.quit()?;
    daemon.stop()
}

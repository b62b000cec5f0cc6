//! Scenario 5, TRAFFIC with real packets: the guest has a virtio-net NIC
//! (MAC M) on a host tap named and addressed as libvirt does (tap MAC
//! `fe:` + M's last five bytes). From inside the guest vmpower-guest sends a
//! TRAFFIC policy for vCPUs 0-1 and MAC M (avg 300, max 600 pps). The host
//! sends UDP through the tap at chosen rates, and the test watches the two
//! pCPUs: min with no traffic; max above 600 pps; after the rate falls to
//! the medium band, max is *held* for the dwell time (hysteresis) before
//! medium; min again at a low rate.
//!
//! Rates (1,500 / 420 / 60 pps) sit far from every threshold and from the
//! 5 % band, so a jittery sender on a loaded machine stays on the intended
//! side; the only timing checked is a lower bound (the hold), which load
//! can only lengthen.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{boot_pinned, expect_contains, two_cpus_and_daemon, vg};
use crate::qemu::VmSpec;
use crate::traffic::{Sender, Tap, mac_text, tx_packets};
use crate::work::Work;

/// The guest NIC's MAC (the policy's).
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xe2, 0xe5, 0x05];
/// The engine's default dwell time.
const DWELL: Duration = Duration::from_millis(500);

/// Runs the scenario.
pub fn run(work: &Work) -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("needs root (a tap device)");
    }
    let dir = work.scenario_dir("s5")?;
    let tap = Tap::create(work, GUEST_MAC)?;
    let (a, b, mut daemon) = two_cpus_and_daemon(work, &dir)?;
    let mut spec = VmSpec::new("vm5", 2, &daemon.channel_dir);
    spec.extra = vec![
        "-netdev".into(),
        format!("tap,id=n0,ifname={},script=no,downscript=no", tap.name),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,mac={}", mac_text(GUEST_MAC)),
    ];
    let (mut vm, mut g) = boot_pinned(work, &dir.join("vm5"), &daemon, &spec, &[a, b])?;
    let t = daemon.table(a)?;
    let (turbo, min, medium) = (t[0], t[t.len() - 1], t[t.len() / 2]);
    let both = |khz: u32| -> anyhow::Result<()> {
        daemon.wait_speed(a, khz)?;
        daemon.wait_speed(b, khz)
    };

    let out = g.run_ok(&vg(&format!(
        "send-policy --policy TRAFFIC --vcpu-list 0-1 --mac-list {} \
         --avg-packet-thresh 300 --max-packet-thresh 600",
        mac_text(GUEST_MAC)
    )))?;
    expect_contains("send-policy TRAFFIC", &out, "acknowledged")?;
    both(min).context("no traffic")?;

    let sender = Sender::start(
        &format!("{}:0", tap.host_addr),
        &format!("{}:9", tap.guest_addr),
    )?;
    let tx_before = tx_packets(&tap.name)?;
    sender.set_rate(1_500);
    both(turbo).context("1,500 pps, above max")?;
    if tx_packets(&tap.name)? <= tx_before {
        bail!("the tap's transmit counter did not move: the guest took no packet");
    }

    sender.set_rate(420);
    let fell = Instant::now();
    both(medium).context("420 pps, medium band")?;
    let held = fell.elapsed();
    if held < DWELL.mul_f64(0.8) {
        bail!("max was held only {held:?} after the rate fell (dwell {DWELL:?})");
    }

    sender.set_rate(60);
    let tx_low = tx_packets(&tap.name)?;
    both(min).context("60 pps, below avg")?;
    if tx_packets(&tap.name)? <= tx_low {
        bail!("no packet went out at 60 pps: min was reached without traffic");
    }
    sender.set_rate(0);
    drop(sender);
    let shown = daemon.ctl(&["policy", "show", "vm5"])?;
    expect_contains("vmpowerctl policy show vm5", &shown, "TRAFFIC")?;

    g.run_ok(&vg("remove-policy"))?;
    vm.quit()?;
    daemon.stop()?;
    drop(tap);
    Ok(())
}

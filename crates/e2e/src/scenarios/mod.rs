//! The scenarios of issue #6 (and scenario 7 of issue #13), one file each,
//! and what they share: booting a guest with its vCPUs pinned and waiting
//! until the daemon has found it.
//!
//! Each scenario gets its own directory, daemon and guests, so any one can
//! run alone (`tests/e2e/run 2`). A scenario returns an error naming what
//! it waited for or what differed, with the logs' last lines.

pub mod s1_plain;
pub mod s2_repin;
pub mod s3_restart;
pub mod s4_libvirt;
pub mod s5_traffic;
pub mod s6_hostile;
pub mod s7_dpdk;

use std::path::Path;

use anyhow::bail;

use crate::daemon::{Daemon, DaemonSpec};
use crate::guest_ctl::GuestCtl;
use crate::qemu::{Qemu, VmSpec};
use crate::work::{Work, host_cpus};

/// One scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its number (issue #6; 7 is issue #13's).
    pub number: u32,
    /// A short name for the report.
    pub name: &'static str,
    /// Runs it.
    pub run: fn(&Work) -> anyhow::Result<()>,
}

/// Every scenario, in the order the run script lists them.
pub const ALL: &[Scenario] = &[
    Scenario {
        number: 1,
        name: "plain QEMU: requests, policies, queries",
        run: s1_plain::run,
    },
    Scenario {
        number: 2,
        name: "re-pin while running",
        run: s2_repin::run,
    },
    Scenario {
        number: 3,
        name: "QEMU restart: reconnect, policy kept",
        run: s3_restart::run,
    },
    Scenario {
        number: 6,
        name: "hostile guest contained, neighbour served",
        run: s6_hostile::run,
    },
    Scenario {
        number: 5,
        name: "TRAFFIC policy with real packets",
        run: s5_traffic::run,
    },
    Scenario {
        number: 7,
        name: "DPDK's own guest library (librte_power)",
        run: s7_dpdk::run,
    },
    Scenario {
        number: 4,
        name: "libvirt: domain, pins, channel, vcpupin",
        run: s4_libvirt::run,
    },
];

/// Two distinct host CPUs to pin vCPUs on, and the size of the fake host
/// (every host CPU exists in the fake tree).
pub fn two_cpus() -> anyhow::Result<(u32, u32, u32)> {
    let cpus = host_cpus()?;
    let (Some(&a), Some(&b)) = (cpus.first(), cpus.get(1)) else {
        bail!("these scenarios need two host CPUs to pin vCPUs on; this process may use {cpus:?}");
    };
    let size = cpus.iter().max().map_or(2, |m| m + 1).max(2);
    Ok((a, b, size))
}

/// Two host CPUs to pin vCPUs on ([`two_cpus`]) and a daemon with the
/// default spec on a fake host of every host CPU.
pub fn two_cpus_and_daemon(work: &Work, dir: &Path) -> anyhow::Result<(u32, u32, Daemon)> {
    let (a, b, cpus) = two_cpus()?;
    let daemon = Daemon::start(
        work,
        dir,
        &DaemonSpec {
            cpus,
            ..DaemonSpec::default()
        },
    )?;
    Ok((a, b, daemon))
}

/// `vmpower-guest` with a bounded wait for the host's answer.
pub fn vg(args: &str) -> String {
    format!("vmpower-guest --timeout 5 {args}")
}

/// Boots `spec`, pins vCPU i to `pins[i]`, and waits until the daemon
/// places the vCPUs there (it finds them by itself, from /proc).
pub fn boot_pinned(
    work: &Work,
    dir: &Path,
    daemon: &Daemon,
    spec: &VmSpec,
    pins: &[u32],
) -> anyhow::Result<(Qemu, GuestCtl)> {
    let mut vm = Qemu::start(work, dir, spec)?;
    let ctl = vm.wait_ready()?;
    vm.pin_all(pins)?;
    daemon.wait_placement(&spec.name, pins)?;
    Ok((vm, ctl))
}

/// Requires `text` to contain `needle`.
pub fn expect_contains(what: &str, text: &str, needle: &str) -> anyhow::Result<()> {
    if !text.contains(needle) {
        bail!("{what}: expected {needle:?} in:\n{text}");
    }
    Ok(())
}

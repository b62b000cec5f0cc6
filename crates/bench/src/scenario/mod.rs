//! The five benchmarks of issue 3, one module each. A scenario builds its
//! own fake host in a fresh work directory, spawns the daemon, plays QEMU
//! and the guests, and returns a [`Report`](crate::report::Report); every
//! exit path stops the daemon and removes the directory (drop guards).

pub mod busyness;
pub mod dpdk_reply;
pub mod idle;
pub mod isolation;
pub mod latency;
pub mod memory;
pub mod netns;
pub mod reaction;
pub mod throughput;
pub mod traffic_cpu;

use std::time::Duration;

use crate::guest::{Qemu, accept_all};
use crate::host::{Daemon, DaemonOptions, Host, HostSpec, Workdir, vm_name};

/// What every scenario needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// How to start the daemon.
    pub daemon: DaemonOptions,
    /// Host CPUs of the fake sysfs tree.
    pub cpus: u32,
    /// Small sizes and short times (smoke runs).
    pub quick: bool,
}

impl Ctx {
    /// `full` normally, `quick` with `--quick`, unless given explicitly.
    pub fn pick<T>(&self, given: Option<T>, full: T, quick: T) -> T {
        given.unwrap_or(if self.quick { quick } else { full })
    }
}

/// A running fake host: its directory, the daemon, and one accepted
/// stream per channel (VM by VM, channel by channel).
pub struct Running {
    /// The daemon (declared first: stopped before the streams close and
    /// the work dir goes).
    pub daemon: Daemon,
    /// The connected channels, as QEMU holds them.
    pub streams: Vec<std::os::unix::net::UnixStream>,
    /// The host's paths.
    pub host: Host,
    /// The work dir, removed last.
    pub dir: Workdir,
}

/// Builds a host with `spec`, listens at `<vm>.<n>` for `channels` per VM,
/// spawns the daemon and accepts every connection within `wait`.
pub fn launch(
    ctx: &Ctx,
    label: &str,
    spec: &HostSpec,
    channels: u32,
    wait: Duration,
) -> anyhow::Result<Running> {
    let dir = Workdir::create(label)?;
    let host = Host::build(dir.path(), spec)?;
    let names =
        (0..spec.vms).flat_map(|i| (0..channels).map(move |n| format!("{}.{n}", vm_name(i))));
    let qemu = Qemu::bind(&host.channels, names)?;
    let daemon = host.spawn(&ctx.daemon)?;
    let streams = accept_all(qemu, wait)?;
    Ok(Running {
        daemon,
        streams,
        host,
        dir,
    })
}

//! DPDK's host FIFOs: `<channel-dir>/fifo<N>`, carrying JSON objects as
//! vm_power_manager reads them. The FIFO is the operator's channel (the
//! host side writes it), so its instructions act on host CPUs directly.
//!
//! ## Behavior
//! - The FIFO is opened read-write so the reader never sees end-of-file
//!   when a writer closes; concatenated objects arriving in any chunks are
//!   decoded with [`JsonStreamDecoder`] (bounded, resynchronising).
//! - `{"instruction": {"command": "power", ...}}` applies the unit to the
//!   host CPU `resource_id` as an operator override (see the engine).
//! - `{"policy": {"command": "create", ...}}` installs (or replaces) the
//!   named VM's policy as the operator's (its `core_list` are host CPUs);
//!   `"destroy"` removes it. Both go through the state as every door's
//!   policy does ([`crate::state`]): a VM not known yet is added (when
//!   `auto_add_vms` is on), and the policy is persisted, also when a
//!   frequency write failed (logged within the FIFO's budget).
//! - A FIFO's writers (containers, in DPDK's design) are less trusted than
//!   the operator: every line a FIFO's messages cause (junk, refusals,
//!   policies) shares one budget per FIFO ([`crate::ratelog`], 10 per
//!   10 s); past it lines are counted in
//!   `vmpower_log_lines_suppressed_total` and the next line says
//!   `suppressed=N`. Undecodable messages are counted as rejections
//!   (`fifo_invalid`), refused ones as `fifo_refused`. The stream buffer
//!   holds at most one object's cap (64 KiB) plus one read (16 KiB).
//! - At start the daemon makes `fifo<N>` for each controllable CPU N that
//!   has none (as vm_power_manager does), and removes them when it stops,
//!   with those a crashed run left (a FIFO already there is adopted); a
//!   file of that name that is not a FIFO is left alone (warned).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tracing::{info, warn};
use vmpower_cpufreq::CpuId;
use vmpower_engine::{OperatorAction, PolicyExtensions, PolicySpec, VmId};
use vmpower_proto::json::JsonStreamDecoder;
use vmpower_proto::{Request, RequestBody};

use crate::ratelog::Budget;
use crate::state::{PolicyError, PolicyFrom, State};
use crate::stats::Stats;

/// Bytes read from the FIFO at once.
const READ_BUF: usize = 16 * 1024;

/// One FIFO's log budget.
#[derive(Default)]
struct FifoLog(Budget);

impl FifoLog {
    /// Whether a line may be logged; the count suppressed before it.
    fn allow(&mut self, stats: &mut Stats) -> Option<u64> {
        self.0.allow(&mut stats.log_lines_suppressed)
    }

    /// Counts a message refused for `reason`; whether its line may be
    /// logged (and the count suppressed before it).
    fn refused(&mut self, stats: &mut Stats, reason: &'static str) -> Option<u64> {
        *stats.rejections.entry(reason).or_default() += 1;
        self.allow(stats)
    }
}

/// Makes `<dir>/fifo<N>` (mode 0600: the host's operator writes them) for
/// each of `cpus` that has none; returns the FIFOs to remove at stop: those
/// made, and those found (a crashed run's).
pub fn create_fifos(dir: &Path, cpus: &[CpuId]) -> Vec<PathBuf> {
    let mut made = Vec::new();
    for cpu in cpus {
        let path = dir.join(format!("fifo{}", cpu.0));
        let mode = rustix::fs::Mode::from_raw_mode(0o600);
        match rustix::fs::mknodat(rustix::fs::CWD, &path, rustix::fs::FileType::Fifo, mode, 0) {
            Ok(()) => made.push(path),
            Err(rustix::io::Errno::EXIST) => {
                let fifo = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_fifo());
                if fifo {
                    made.push(path);
                } else {
                    warn!(path = %path.display(), "exists and is not a FIFO: not read (remove it and restart to get DPDK's FIFO)");
                }
            }
            Err(e) => warn!(path = %path.display(), error = %e, "cannot make FIFO"),
        }
    }
    made
}

/// Reads the FIFO at `path` until it is removed or fails.
pub async fn serve_fifo(path: PathBuf, state: State) {
    let mut rx = match pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&path)
    {
        Ok(rx) => rx,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot open FIFO");
            return;
        }
    };
    info!(path = %path.display(), "reading JSON FIFO");
    let mut decoder = JsonStreamDecoder::new();
    let mut log = FifoLog::default();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "FIFO read failed");
                return;
            }
        };
        decoder.push(&buf[..n]);
        while let Some(message) = decoder.next_message() {
            match message {
                Ok(request) => apply(&path, &request, &state, &mut log),
                Err(e) => {
                    if let Some(suppressed) = log.refused(&mut state.lock().stats, "fifo_invalid") {
                        warn!(path = %path.display(), error = %e, suppressed, "invalid JSON message");
                    }
                }
            }
        }
    }
}

/// Turns one message into a call on the state, and its result into the
/// FIFO's answer: a log line within the FIFO's budget.
fn apply(path: &Path, request: &Request, state: &State, log: &mut FifoLog) {
    match request.body {
        RequestBody::Power {
            resource_id, unit, ..
        } => {
            let Ok(cpu) = u32::try_from(resource_id).map(CpuId) else {
                if let Some(suppressed) = log.refused(&mut state.lock().stats, "fifo_refused") {
                    warn!(path = %path.display(), resource_id, suppressed, "no such host CPU");
                }
                return;
            };
            if let Err(e) = state.set_cpu_freq(cpu, OperatorAction::Unit(unit))
                && let Some(suppressed) = log.refused(&mut state.lock().stats, "fifo_refused")
            {
                warn!(path = %path.display(), pcpu = cpu.0, error = %e, suppressed, "instruction refused");
            }
        }
        RequestBody::SetPolicy(policy) => {
            let Some(vm) = named_vm(path, request, &mut state.lock().stats, log) else {
                return;
            };
            let spec = PolicySpec {
                policy,
                ext: PolicyExtensions::default(),
                tz: state.default_time_zone(),
            };
            let applied = state.apply_policy(&PolicyFrom::Fifo(fifo_number(path)), &vm, spec);
            let stats = &mut state.lock().stats;
            match applied {
                Ok(()) => {
                    if let Some(suppressed) = log.allow(stats) {
                        info!(path = %path.display(), %vm, kind = ?policy.kind, suppressed, "policy from the FIFO");
                    }
                }
                Err(PolicyError::WriteFailed) => {
                    if let Some(suppressed) = log.allow(stats) {
                        warn!(path = %path.display(), %vm, kind = ?policy.kind, suppressed, "policy from the FIFO in force, but a frequency write failed");
                    }
                }
                Err(e) => {
                    if let Some(suppressed) = log.refused(stats, "fifo_refused") {
                        warn!(path = %path.display(), %vm, error = %e, suppressed, "policy refused");
                    }
                }
            }
        }
        RequestBody::RemovePolicy => {
            let Some(vm) = named_vm(path, request, &mut state.lock().stats, log) else {
                return;
            };
            state.remove_policy(&PolicyFrom::Fifo(fifo_number(path)), &vm);
            if let Some(suppressed) = log.allow(&mut state.lock().stats) {
                info!(path = %path.display(), %vm, suppressed, "policy destroyed from the FIFO");
            }
        }
        _ => {
            if let Some(suppressed) = log.refused(&mut state.lock().stats, "fifo_refused") {
                warn!(path = %path.display(), suppressed, "message ignored: not a power instruction or policy");
            }
        }
    }
}

/// The VM a policy message names, if the name is one `add-vm` accepts
/// (refused, counted and logged otherwise).
fn named_vm(path: &Path, request: &Request, stats: &mut Stats, log: &mut FifoLog) -> Option<VmId> {
    let name = request.vm_name.as_str();
    match crate::vm_name::check(name) {
        Ok(()) => Some(VmId::new(name)),
        Err(e) => {
            if let Some(suppressed) = log.refused(stats, "fifo_refused") {
                warn!(path = %path.display(), error = %e, suppressed, "policy message refused");
            }
            None
        }
    }
}

/// N of `fifoN`.
fn fifo_number(path: &std::path::Path) -> u32 {
    match super::ChannelName::of_path(path) {
        Some(super::ChannelName::Fifo(n)) => n,
        _ => 0,
    }
}

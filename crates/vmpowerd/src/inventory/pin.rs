//! Re-pinning a live vCPU thread (`vmpowerctl set-pcpu` on a running VM)
//! and reading a thread's affinity back, through `sched_setaffinity` /
//! `sched_getaffinity` (rustix, no unsafe).
//!
//! ## Behavior
//! - The kernel checks permission: pinning another user's thread needs
//!   `CAP_SYS_NICE`; the refusal comes back as [`PinError::Syscall`].
//! - A CPU set that is empty or names a CPU beyond the kernel's set size is
//!   refused before any syscall.
//!
//! ## Limitations
//! - Thread ids are those of the daemon's PID namespace.
//! - libvirt re-applies its own `vcpupin` on some events; with libvirt the
//!   operator should pin through libvirt, and the inventory re-reads anyway.

use std::collections::BTreeSet;
use std::io;

use rustix::process::Pid as RawPid;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use vmpower_cpufreq::CpuId;
use vmpower_cpufreq::cpulist::format_cpu_list;

use super::Tid;

/// Why a thread could not be pinned or read.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The thread id is 0 or beyond what the kernel numbers.
    #[error("{tid} is not a valid thread id")]
    BadTid {
        /// The thread id.
        tid: Tid,
    },
    /// No CPU given.
    #[error("pinning {tid}: empty CPU set")]
    EmptySet {
        /// The thread.
        tid: Tid,
    },
    /// A CPU beyond the kernel's CPU set size.
    #[error("pinning {tid}: CPU {cpu} is beyond the CPU set size {max}")]
    CpuBeyondSet {
        /// The thread.
        tid: Tid,
        /// The CPU.
        cpu: u32,
        /// The set size.
        max: usize,
    },
    /// The syscall failed (no such thread, permission, no online CPU in set).
    #[error("{call} on {tid} (CPUs {cpus})")]
    Syscall {
        /// `sched_setaffinity` or `sched_getaffinity`.
        call: &'static str,
        /// The thread.
        tid: Tid,
        /// The CPUs asked for (empty for a read).
        cpus: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
}

fn raw_pid(tid: Tid) -> Result<RawPid, PinError> {
    i32::try_from(tid.0)
        .ok()
        .and_then(RawPid::from_raw)
        .ok_or(PinError::BadTid { tid })
}

/// Pins thread `tid` to `cpus`.
pub fn pin_thread(tid: Tid, cpus: &BTreeSet<CpuId>) -> Result<(), PinError> {
    let pid = raw_pid(tid)?;
    if cpus.is_empty() {
        return Err(PinError::EmptySet { tid });
    }
    let mut set = CpuSet::new();
    for cpu in cpus {
        let index = usize::try_from(cpu.0)
            .ok()
            .filter(|i| *i < CpuSet::MAX_CPU)
            .ok_or(PinError::CpuBeyondSet {
                tid,
                cpu: cpu.0,
                max: CpuSet::MAX_CPU,
            })?;
        set.set(index);
    }
    sched_setaffinity(Some(pid), &set).map_err(|e| PinError::Syscall {
        call: "sched_setaffinity",
        tid,
        cpus: format_cpu_list(cpus),
        source: e.into(),
    })
}

/// The CPUs thread `tid` may run on, from the kernel.
pub fn thread_affinity(tid: Tid) -> Result<BTreeSet<CpuId>, PinError> {
    let pid = raw_pid(tid)?;
    let set = sched_getaffinity(Some(pid)).map_err(|e| PinError::Syscall {
        call: "sched_getaffinity",
        tid,
        cpus: String::new(),
        source: e.into(),
    })?;
    Ok((0..CpuSet::MAX_CPU)
        .filter(|i| set.is_set(*i))
        .filter_map(|i| u32::try_from(i).ok().map(CpuId))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::ProcfsPlacement;
    use std::sync::mpsc;

    fn current_tid() -> Tid {
        Tid(u32::try_from(rustix::thread::gettid().as_raw_pid()).expect("tid > 0"))
    }

    #[test]
    fn pins_a_real_thread_and_reads_it_back_both_ways() {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            tid_tx.send(current_tid()).expect("send");
            let _ = stop_rx.recv();
        });
        let tid = tid_rx.recv().expect("tid");
        let before = thread_affinity(tid).expect("read");
        assert!(before.contains(&CpuId(0)), "CPU 0 allowed here: {before:?}");
        pin_thread(tid, &BTreeSet::from([CpuId(0)])).expect("pin to CPU 0");
        let kernel = thread_affinity(tid).expect("read back");
        let proc = ProcfsPlacement::new("/proc");
        let pid = crate::inventory::Pid(std::process::id());
        let status = proc.task_affinity(pid, tid);
        stop_tx.send(()).expect("stop");
        worker.join().expect("join");
        assert_eq!(kernel, BTreeSet::from([CpuId(0)]));
        assert_eq!(status.expect("status"), BTreeSet::from([CpuId(0)]));
    }

    #[test]
    fn refuses_bad_input_before_the_kernel() {
        let tid = current_tid();
        assert!(matches!(
            pin_thread(tid, &BTreeSet::new()),
            Err(PinError::EmptySet { .. })
        ));
        let huge = BTreeSet::from([CpuId(u32::MAX)]);
        assert!(matches!(
            pin_thread(tid, &huge),
            Err(PinError::CpuBeyondSet { cpu: u32::MAX, .. })
        ));
        assert!(matches!(
            pin_thread(Tid(0), &BTreeSet::from([CpuId(0)])),
            Err(PinError::BadTid { tid: Tid(0) })
        ));
        assert!(matches!(
            thread_affinity(Tid(u32::MAX)),
            Err(PinError::BadTid { .. })
        ));
    }

    #[test]
    fn a_gone_thread_is_a_syscall_error_naming_it() {
        // pid_max is at most 4194304, so this thread id cannot exist.
        let e = thread_affinity(Tid(4_194_305)).expect_err("no such thread");
        assert!(
            matches!(e, PinError::Syscall { source: ref s, .. } if s.raw_os_error() == Some(3))
        );
        assert!(e.to_string().contains("4194305"));
    }
}

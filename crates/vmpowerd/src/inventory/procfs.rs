//! The /proc inventory source: finds a VM's QEMU process, its vCPU threads
//! and their CPU affinity, under a configurable procfs root.
//!
//! ## Behavior
//! - The QEMU process is, in this order: the pid the daemon already knows
//!   ([`VmTarget::pid`]) while that process exists; the process holding one of the VM's channel
//!   sockets open (the channel socket is the VM's identity); the one process
//!   whose command line has `-name VM` (`-name vm0`,
//!   `-name vm0,debug-threads=on`, `-name guest=vm0,debug-threads=on`).
//! - A socket is matched by inode: `net/unix` lists the sockets bound to a
//!   path (QEMU's listening socket and the connections it accepted) with
//!   their inode; `PID/fd/*` links read `socket:[INODE]`.
//! - vCPU threads are those whose `comm` reads `CPU <n>/KVM` or
//!   `CPU <n>/TCG`; affinity is `Cpus_allowed_list` in the thread's `status`.
//! - Processes that vanish or are not readable (other users') while
//!   scanning are skipped; files of the chosen process that cannot be read
//!   are errors naming the path.
//!
//! ## Limitations
//! - Thread names exist only with `-name NAME,debug-threads=on` (libvirt
//!   always sets it); without it every thread is `qemu-system-x86`.
//! - `net/unix` shows the sockets of the daemon's network namespace only, and
//!   paths as QEMU bound them: a relative path or a symlinked directory
//!   matches only if the daemon is given the same spelling (the canonical
//!   path is tried too).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use vmpower_cpufreq::CpuId;
use vmpower_cpufreq::cpulist::{CpuListError, parse_cpu_list};
use vmpower_engine::{Placement, Vcpu};

use super::proc_text::{parse_net_unix, qemu_name, socket_inode, split_cmdline, vcpu_of_comm};
use super::{
    Pid, PlacementFuture, PlacementSourceError, SourceKind, SourcePlacement, Tid, VcpuPlacement,
    VmTarget,
};

/// What went wrong reading /proc.
#[derive(Debug, thiserror::Error)]
pub enum ProcfsError {
    /// No process matched the VM's channel sockets or its `-name`.
    #[error(
        "no QEMU process for VM {vm:?} under {proc_root}: none holds its channel sockets or runs with `-name {vm}`"
    )]
    NoProcess {
        /// The VM's name.
        vm: String,
        /// The procfs root searched.
        proc_root: PathBuf,
    },
    /// Several processes run with `-name VM` and none holds a channel socket.
    #[error("several processes run with `-name {vm}`: {pids:?}")]
    Ambiguous {
        /// The VM's name.
        vm: String,
        /// The candidates.
        pids: Vec<u32>,
    },
    /// The process has no thread named `CPU <n>/KVM` or `CPU <n>/TCG`.
    #[error(
        "{pid} has no vCPU threads named `CPU <n>/KVM`: start QEMU with `-name NAME,debug-threads=on`"
    )]
    NoVcpuThreads {
        /// The process.
        pid: Pid,
    },
    /// Two threads claim the same vCPU.
    #[error("{pid}: vCPU {vcpu} is named by both {first} and {second}")]
    DuplicateVcpu {
        /// The process.
        pid: Pid,
        /// The vCPU.
        vcpu: Vcpu,
        /// One thread.
        first: Tid,
        /// The other.
        second: Tid,
    },
    /// A file or directory could not be read.
    #[error("reading {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A status file has no `Cpus_allowed_list` line.
    #[error("{path}: no Cpus_allowed_list line")]
    NoAffinity {
        /// The status file.
        path: PathBuf,
    },
    /// `Cpus_allowed_list` is not a CPU list.
    #[error("{path}: bad Cpus_allowed_list")]
    BadAffinity {
        /// The status file.
        path: PathBuf,
        /// The parse error, with the text.
        #[source]
        source: CpuListError,
    },
}

/// Reads placements from a procfs root (the binary passes `/proc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcfsPlacement {
    root: PathBuf,
    /// Whether `root` is the kernel's procfs: only then are its thread ids
    /// real threads that `set-pcpu` may re-pin (a fake tree's ids could
    /// name any process of the host).
    kernel: bool,
}

/// `statfs`'s `f_type` of procfs.
const PROC_SUPER_MAGIC: u64 = 0x9FA0;

/// Whether `root` is a mounted procfs.
fn is_kernel_procfs(root: &Path) -> bool {
    rustix::fs::statfs(root)
        .is_ok_and(|s| u64::try_from(s.f_type).is_ok_and(|t| t == PROC_SUPER_MAGIC))
}

fn read(path: PathBuf) -> Result<Vec<u8>, ProcfsError> {
    fs::read(&path).map_err(|source| ProcfsError::Read { path, source })
}

/// Whether a scan should skip an entry that failed with `e` (vanished or
/// not ours) rather than fail.
fn skippable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(3) // ESRCH: the process exited mid-read
}

impl ProcfsPlacement {
    /// A reader of the procfs tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let kernel = is_kernel_procfs(&root);
        ProcfsPlacement { root, kernel }
    }

    /// The procfs root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every process id under the root, ascending.
    pub fn pids(&self) -> Result<Vec<Pid>, ProcfsError> {
        let dir = fs::read_dir(&self.root).map_err(|source| ProcfsError::Read {
            path: self.root.clone(),
            source,
        })?;
        let mut pids: Vec<Pid> = dir
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok().map(Pid))
            .filter(|p| p.0 > 0)
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// A process's command line, split at its NULs.
    pub fn cmdline(&self, pid: Pid) -> Result<Vec<Vec<u8>>, ProcfsError> {
        let raw = read(self.root.join(pid.0.to_string()).join("cmdline"))?;
        Ok(split_cmdline(&raw))
    }

    /// The processes whose command line has `-name NAME` (any QEMU form).
    pub fn find_by_name(&self, name: &str) -> Result<Vec<Pid>, ProcfsError> {
        let mut found = Vec::new();
        for pid in self.pids()? {
            match self.cmdline(pid) {
                Ok(args) if qemu_name(&args).as_deref() == Some(name) => found.push(pid),
                Ok(_) => {}
                Err(ProcfsError::Read { source, .. }) if skippable(&source) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// The inodes of the sockets bound to `socket` (`net/unix`), trying the
    /// path as given and canonicalized.
    pub fn socket_inodes(&self, socket: &Path) -> Result<BTreeSet<u64>, ProcfsError> {
        let raw = read(self.root.join("net").join("unix"))?;
        let mut names = vec![socket.as_os_str().as_bytes().to_vec()];
        if let Ok(canon) = fs::canonicalize(socket) {
            names.push(canon.into_os_string().into_encoded_bytes());
        }
        Ok(parse_net_unix(&raw)
            .filter(|(_, path)| names.iter().any(|n| n.as_slice() == *path))
            .map(|(inode, _)| inode)
            .collect())
    }

    /// The socket inodes a process has open (`fd/*` → `socket:[N]`).
    pub fn socket_fds(&self, pid: Pid) -> Result<BTreeSet<u64>, ProcfsError> {
        let dir = self.root.join(pid.0.to_string()).join("fd");
        let entries = fs::read_dir(&dir).map_err(|source| ProcfsError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut inodes = BTreeSet::new();
        for entry in entries.filter_map(Result::ok) {
            // An fd closed between readdir and readlink is simply gone.
            if let Ok(target) = fs::read_link(entry.path())
                && let Some(inode) = socket_inode(target.as_os_str())
            {
                inodes.insert(inode);
            }
        }
        Ok(inodes)
    }

    /// The process that has `socket` open (QEMU listening on it or serving
    /// a connection on it); the lowest pid if several do.
    pub fn find_by_socket(&self, socket: &Path) -> Result<Option<Pid>, ProcfsError> {
        let wanted = self.socket_inodes(socket)?;
        if wanted.is_empty() {
            return Ok(None);
        }
        for pid in self.pids()? {
            match self.socket_fds(pid) {
                Ok(open) if !open.is_disjoint(&wanted) => return Ok(Some(pid)),
                Ok(_) => {}
                Err(ProcfsError::Read { source, .. }) if skippable(&source) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The VM's QEMU process (see the module doc for the order).
    pub fn find_qemu(&self, target: &VmTarget) -> Result<Pid, ProcfsError> {
        // A remembered pid is used while its process exists; once QEMU has
        // exited (a restart has a new pid) the search starts over.
        if let Some(pid) = target.pid
            && self.root.join(pid.0.to_string()).is_dir()
        {
            return Ok(pid);
        }
        for socket in &target.channel_sockets {
            if let Some(pid) = self.find_by_socket(socket)? {
                return Ok(pid);
            }
        }
        let name = target.vm.as_str();
        let found = self.find_by_name(name)?;
        match found.as_slice() {
            [] => Err(ProcfsError::NoProcess {
                vm: name.to_owned(),
                proc_root: self.root.clone(),
            }),
            [one] => Ok(*one),
            many => Err(ProcfsError::Ambiguous {
                vm: name.to_owned(),
                pids: many.iter().map(|p| p.0).collect(),
            }),
        }
    }

    /// The process's vCPU threads, by vCPU number.
    pub fn vcpu_threads(&self, pid: Pid) -> Result<BTreeMap<Vcpu, Tid>, ProcfsError> {
        let dir = self.root.join(pid.0.to_string()).join("task");
        let entries = fs::read_dir(&dir).map_err(|source| ProcfsError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut threads: BTreeMap<Vcpu, Tid> = BTreeMap::new();
        let mut tids: Vec<Tid> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok().map(Tid))
            .collect();
        tids.sort_unstable();
        for tid in tids {
            let comm = match read(dir.join(tid.0.to_string()).join("comm")) {
                Ok(c) => c,
                Err(ProcfsError::Read { source, .. }) if skippable(&source) => continue,
                Err(e) => return Err(e),
            };
            let Some(vcpu) = vcpu_of_comm(&comm) else {
                continue;
            };
            if let Some(first) = threads.insert(vcpu, tid) {
                return Err(ProcfsError::DuplicateVcpu {
                    pid,
                    vcpu,
                    first,
                    second: tid,
                });
            }
        }
        if threads.is_empty() {
            return Err(ProcfsError::NoVcpuThreads { pid });
        }
        Ok(threads)
    }

    /// A thread's affinity from `PID/task/TID/status`.
    pub fn task_affinity(&self, pid: Pid, tid: Tid) -> Result<BTreeSet<CpuId>, ProcfsError> {
        let path = self
            .root
            .join(pid.0.to_string())
            .join("task")
            .join(tid.0.to_string())
            .join("status");
        affinity_from_status(path)
    }

    /// A thread's affinity from `TID/status` (the kernel serves any thread
    /// id at the top level, as QMP's `thread-id` needs).
    pub fn thread_affinity(&self, tid: Tid) -> Result<BTreeSet<CpuId>, ProcfsError> {
        affinity_from_status(self.root.join(tid.0.to_string()).join("status"))
    }

    /// The placement of the QEMU process `pid`: vCPU threads and affinities.
    pub fn placement_of_pid(&self, pid: Pid) -> Result<SourcePlacement, ProcfsError> {
        let threads = self.vcpu_threads(pid)?;
        let mut affinity = BTreeMap::new();
        for (vcpu, tid) in &threads {
            affinity.insert(*vcpu, self.task_affinity(pid, *tid)?);
        }
        let vcpus = threads
            .keys()
            .next_back()
            .and_then(|v| usize::try_from(*v).ok())
            .map_or(0, |v| v + 1);
        Ok(SourcePlacement {
            placement: Placement { vcpus, affinity },
            // A fake tree's thread ids are not threads to re-pin.
            threads: if self.kernel {
                threads
            } else {
                BTreeMap::new()
            },
            pid: Some(pid),
        })
    }

    /// The VM's placement: find its QEMU, then read its vCPU threads.
    pub fn placement_of(&self, target: &VmTarget) -> Result<SourcePlacement, ProcfsError> {
        let pid = self.find_qemu(target)?;
        self.placement_of_pid(pid)
    }
}

impl VcpuPlacement for ProcfsPlacement {
    fn kind(&self) -> SourceKind {
        SourceKind::Procfs
    }

    fn placement<'a>(&'a self, target: &'a VmTarget) -> PlacementFuture<'a> {
        let result =
            self.placement_of(target)
                .map(Some)
                .map_err(|source| PlacementSourceError::Procfs {
                    vm: target.vm.clone(),
                    source,
                });
        Box::pin(std::future::ready(result))
    }
}

fn affinity_from_status(path: PathBuf) -> Result<BTreeSet<CpuId>, ProcfsError> {
    let raw = read(path.clone())?;
    let text = String::from_utf8_lossy(&raw);
    let Some(list) = text
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
    else {
        return Err(ProcfsError::NoAffinity { path });
    };
    parse_cpu_list(list).map_err(|source| ProcfsError::BadAffinity { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::fake_proc::{FakeProc, FakeProcess};
    use vmpower_engine::VmId;

    fn qemu(pid: u32, name: &str) -> FakeProcess {
        FakeProcess::new(pid)
            .cmdline(&["qemu-system-x86_64", "-name", name, "-smp", "2"])
            .thread(pid, "qemu-system-x86", "0-3")
            .thread(pid + 1, "CPU 0/KVM", "2")
            .thread(pid + 2, "CPU 1/KVM", "1,3")
    }

    #[test]
    fn finds_by_name_and_reads_threads() {
        let fake = FakeProc::builder()
            .process(FakeProcess::new(1).cmdline(&["init"]))
            .process(qemu(100, "guest=vm0,debug-threads=on"))
            .process(qemu(200, "vm1,debug-threads=on"))
            .build()
            .expect("fake");
        let proc = ProcfsPlacement::new(fake.path());
        assert_eq!(proc.find_by_name("vm0").expect("scan"), vec![Pid(100)]);
        let got = proc
            .placement_of(&VmTarget::new(VmId::new("vm1")))
            .expect("found");
        assert_eq!(got.pid, Some(Pid(200)));
        assert_eq!(got.placement.vcpus, 2);
        assert_eq!(got.placement.affinity[&0], BTreeSet::from([CpuId(2)]));
        assert_eq!(
            got.placement.affinity[&1],
            BTreeSet::from([CpuId(1), CpuId(3)])
        );
        assert_eq!(
            proc.vcpu_threads(Pid(200)).expect("threads"),
            BTreeMap::from([(0, Tid(201)), (1, Tid(202))])
        );
        // A fake tree's thread ids are not offered for re-pinning: they
        // could name any process of the host.
        assert!(got.threads.is_empty(), "{:?}", got.threads);
        assert!(
            is_kernel_procfs(Path::new("/proc")) && !is_kernel_procfs(fake.path()),
            "procfs told apart from a fake tree"
        );
        assert_eq!(
            proc.thread_affinity(Tid(202)).expect("top-level tid"),
            BTreeSet::from([CpuId(1), CpuId(3)])
        );
    }

    #[test]
    fn the_channel_socket_owner_wins_over_the_name() {
        let fake = FakeProc::builder()
            .process(qemu(100, "vm0"))
            .process(qemu(300, "other").socket_fd(7, 5555))
            .unix_socket(5555, "/run/ch/vm0.0")
            .unix_socket(6666, "/run/ch/vm9.0")
            .build()
            .expect("fake");
        let proc = ProcfsPlacement::new(fake.path());
        assert_eq!(
            proc.find_by_socket(Path::new("/run/ch/vm0.0"))
                .expect("scan"),
            Some(Pid(300))
        );
        assert_eq!(
            proc.find_by_socket(Path::new("/run/ch/vm9.0"))
                .expect("scan"),
            None
        );
        assert_eq!(
            proc.find_by_socket(Path::new("/nowhere")).expect("scan"),
            None
        );
        let target = VmTarget::new(VmId::new("vm0")).with_channel_socket("/run/ch/vm0.0");
        assert_eq!(proc.find_qemu(&target).expect("found"), Pid(300));
        let by_name = VmTarget::new(VmId::new("vm0")).with_channel_socket("/run/ch/gone");
        assert_eq!(proc.find_qemu(&by_name).expect("found"), Pid(100));
        let known = VmTarget::new(VmId::new("zzz")).with_pid(Pid(100));
        assert_eq!(proc.find_qemu(&known).expect("given"), Pid(100));
        let stale = VmTarget::new(VmId::new("vm0")).with_pid(Pid(999));
        assert_eq!(proc.find_qemu(&stale).expect("searched again"), Pid(100));
    }

    #[test]
    fn typed_errors() {
        let fake = FakeProc::builder()
            .process(
                FakeProcess::new(10)
                    .cmdline(&["qemu", "-name", "plain"])
                    .thread(10, "qemu-system-x86", "0"),
            )
            .process(qemu(20, "twin"))
            .process(qemu(30, "twin"))
            .process(
                FakeProcess::new(40)
                    .cmdline(&["qemu", "-name", "dup"])
                    .thread(41, "CPU 0/KVM", "0")
                    .thread(42, "CPU 0/TCG", "1"),
            )
            .process(
                FakeProcess::new(50)
                    .cmdline(&["qemu", "-name", "bad"])
                    .thread(51, "CPU 0/KVM", "x-y"),
            )
            .build()
            .expect("fake");
        let proc = ProcfsPlacement::new(fake.path());
        let t = |n: &str| proc.placement_of(&VmTarget::new(VmId::new(n)));
        let e = t("absent").expect_err("no such VM");
        assert!(matches!(e, ProcfsError::NoProcess { .. }), "{e}");
        let e = t("plain").expect_err("no vcpu threads");
        assert!(matches!(e, ProcfsError::NoVcpuThreads { pid: Pid(10) }));
        assert!(e.to_string().contains("debug-threads=on"));
        let e = t("twin").expect_err("ambiguous");
        assert!(matches!(e, ProcfsError::Ambiguous { ref pids, .. } if *pids == [20, 30]));
        let e = t("dup").expect_err("duplicate");
        assert!(matches!(e, ProcfsError::DuplicateVcpu { vcpu: 0, .. }));
        let e = t("bad").expect_err("bad list");
        assert!(matches!(e, ProcfsError::BadAffinity { .. }));
        let e = proc.placement_of_pid(Pid(99)).expect_err("no such pid");
        let ProcfsError::Read { path, .. } = e else {
            panic!("want Read, got {e}");
        };
        assert!(path.ends_with("99/task"));
    }

    #[test]
    fn a_missing_root_names_the_path() {
        let proc = ProcfsPlacement::new("/nonexistent/proc-root");
        let e = proc.pids().expect_err("no root");
        assert!(e.to_string().contains("/nonexistent/proc-root"));
    }

    #[test]
    fn real_proc_finds_this_process_vcpu_thread() {
        use std::sync::mpsc;
        let allowed = rustix::thread::sched_getaffinity(None).expect("own affinity");
        let cpu = (0..rustix::thread::CpuSet::MAX_CPU)
            .rev()
            .find(|c| allowed.is_set(*c))
            .expect("some CPU allowed");
        let (tid_tx, tid_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("CPU 0/KVM".into())
            .spawn(move || {
                let mut set = rustix::thread::CpuSet::new();
                set.set(cpu);
                rustix::thread::sched_setaffinity(None, &set).expect("pin self");
                let tid = u32::try_from(rustix::thread::gettid().as_raw_pid()).expect("tid > 0");
                tid_tx.send(tid).expect("send");
                let _ = stop_rx.recv();
            })
            .expect("spawn");
        let tid = tid_rx.recv().expect("tid");
        let proc = ProcfsPlacement::new("/proc");
        let got = proc.placement_of_pid(Pid(std::process::id()));
        stop_tx.send(()).expect("stop");
        handle.join().expect("join");
        let got = got.expect("found the named thread");
        assert_eq!(got.threads, BTreeMap::from([(0, Tid(tid))]));
        assert_eq!(got.placement.vcpus, 1);
        let want = u32::try_from(cpu).expect("small");
        assert_eq!(got.placement.affinity[&0], BTreeSet::from([CpuId(want)]));
    }
}

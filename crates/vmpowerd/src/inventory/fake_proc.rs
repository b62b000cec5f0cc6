//! A fake procfs tree for tests: a real directory laid out like /proc with
//! the files the inventory reads, so [`super::ProcfsPlacement`] and a daemon
//! started with `--proc-root` see QEMU processes that do not exist.
//!
//! ```
//! use vmpowerd::inventory::fake_proc::{FakeProc, FakeProcess};
//! use vmpowerd::inventory::{Pid, ProcfsPlacement};
//!
//! let fake = FakeProc::builder()
//!     .process(
//!         FakeProcess::new(100)
//!             .cmdline(&["qemu-system-x86_64", "-name", "guest=vm0,debug-threads=on"])
//!             .thread(101, "CPU 0/KVM", "1"),
//!     )
//!     .build()
//!     .unwrap();
//! let found = ProcfsPlacement::new(fake.path()).placement_of_pid(Pid(100)).unwrap();
//! assert_eq!(found.placement.vcpus, 1);
//! ```
//!
//! ## Behavior
//! - Per process: `PID/cmdline` (NUL-separated, NUL-terminated),
//!   `PID/comm`, `PID/status`, `PID/task/TID/{comm,status}` (status carries
//!   `Cpus_allowed_list`), `PID/fd/N` symlinks to `socket:[INODE]`, and for
//!   each non-leader thread a top-level `TID` symlink to `PID/task/TID`, as
//!   the kernel serves any thread id at the top level.
//! - `net/unix` lists the sockets given with [`FakeProcBuilder::unix_socket`]
//!   in the kernel's format.
//! - Only for tests: nothing here checks what real QEMU would do.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A fake tree could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FakeProcError {
    /// Writing a file, directory or link failed.
    #[error("writing {path}")]
    Write {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// One fake process: command line, threads, open sockets.
#[derive(Debug, Clone)]
pub struct FakeProcess {
    pid: u32,
    cmdline: Vec<String>,
    threads: Vec<(u32, String, String)>,
    socket_fds: Vec<(u32, u64)>,
}

impl FakeProcess {
    /// A process with id `pid` and no arguments or threads yet.
    pub fn new(pid: u32) -> Self {
        FakeProcess {
            pid,
            cmdline: Vec::new(),
            threads: Vec::new(),
            socket_fds: Vec::new(),
        }
    }

    /// Sets its arguments.
    pub fn cmdline(mut self, args: &[&str]) -> Self {
        self.cmdline = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// Adds a thread named `comm` allowed on `cpus` (a CPU list, written
    /// as given, so tests can write garbage).
    pub fn thread(mut self, tid: u32, comm: &str, cpus: &str) -> Self {
        self.threads.push((tid, comm.to_owned(), cpus.to_owned()));
        self
    }

    /// Adds an open file descriptor `fd` on the socket with inode `inode`.
    pub fn socket_fd(mut self, fd: u32, inode: u64) -> Self {
        self.socket_fds.push((fd, inode));
        self
    }
}

/// Collects processes and sockets, then writes the tree.
#[derive(Debug, Default)]
pub struct FakeProcBuilder {
    processes: Vec<FakeProcess>,
    sockets: Vec<(u64, String)>,
    dir: Option<PathBuf>,
}

impl FakeProcBuilder {
    /// Adds a process.
    pub fn process(mut self, process: FakeProcess) -> Self {
        self.processes.push(process);
        self
    }

    /// Adds a socket bound to `path` (a listening socket or a connection
    /// accepted on it) to `net/unix`.
    pub fn unix_socket(mut self, inode: u64, path: &str) -> Self {
        self.sockets.push((inode, path.to_owned()));
        self
    }

    /// Writes into `dir` (which must exist) instead of a new temp dir.
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Writes the tree.
    pub fn build(self) -> Result<FakeProc, FakeProcError> {
        let (root, temp) = match self.dir {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::tempdir().map_err(|source| FakeProcError::Write {
                    path: std::env::temp_dir(),
                    source,
                })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let fake = FakeProc { root, _temp: temp };
        let mut table = String::from("Num       RefCount Protocol Flags    Type St Inode Path\n");
        for (inode, path) in &self.sockets {
            // A listening stream socket: flags __SO_ACCEPTCON, state 01.
            let _ = writeln!(
                table,
                "0000000000000000: 00000002 00000000 00010000 0001 01 {inode:5} {path}"
            );
        }
        fake.write(Path::new("net/unix"), table.as_bytes())?;
        for process in &self.processes {
            fake.write_process(process)?;
        }
        Ok(fake)
    }
}

/// A fake procfs tree in a directory (removed on drop if it made it).
#[derive(Debug)]
pub struct FakeProc {
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

fn status_text(comm: &str, cpus: &str) -> String {
    format!("Name:\t{comm}\nState:\tS (sleeping)\nCpus_allowed:\tff\nCpus_allowed_list:\t{cpus}\n")
}

impl FakeProc {
    /// Starts a tree.
    pub fn builder() -> FakeProcBuilder {
        FakeProcBuilder::default()
    }

    /// The root to pass as the procfs root.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn write(&self, rel: &Path, contents: &[u8]) -> Result<(), FakeProcError> {
        let path = self.root.join(rel);
        let err = |source| FakeProcError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        fs::write(&path, contents).map_err(err)
    }

    fn link(&self, rel: &Path, target: &Path) -> Result<(), FakeProcError> {
        let path = self.root.join(rel);
        let err = |source| FakeProcError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        std::os::unix::fs::symlink(target, &path).map_err(err)
    }

    fn write_process(&self, p: &FakeProcess) -> Result<(), FakeProcError> {
        let dir = PathBuf::from(p.pid.to_string());
        let mut cmdline = Vec::new();
        for arg in &p.cmdline {
            cmdline.extend_from_slice(arg.as_bytes());
            cmdline.push(0);
        }
        self.write(&dir.join("cmdline"), &cmdline)?;
        let leader = p.threads.iter().find(|(tid, _, _)| *tid == p.pid);
        let name = leader.map_or("qemu-system-x86", |(_, comm, _)| comm.as_str());
        let cpus = leader.map_or("0", |(_, _, cpus)| cpus.as_str());
        self.write(&dir.join("comm"), format!("{name}\n").as_bytes())?;
        self.write(&dir.join("status"), status_text(name, cpus).as_bytes())?;
        let task = dir.join("task");
        let leader_dir = self.root.join(&task);
        fs::create_dir_all(&leader_dir).map_err(|source| FakeProcError::Write {
            path: leader_dir,
            source,
        })?;
        for (tid, comm, cpus) in &p.threads {
            let t = task.join(tid.to_string());
            self.write(&t.join("comm"), format!("{comm}\n").as_bytes())?;
            self.write(&t.join("status"), status_text(comm, cpus).as_bytes())?;
            if *tid != p.pid {
                self.link(Path::new(&tid.to_string()), &t)?;
            }
        }
        let fd_dir = self.root.join(dir.join("fd"));
        fs::create_dir_all(&fd_dir).map_err(|source| FakeProcError::Write {
            path: fd_dir,
            source,
        })?;
        for (fd, inode) in &p.socket_fds {
            let target = PathBuf::from(format!("socket:[{inode}]"));
            self.link(&dir.join("fd").join(fd.to_string()), &target)?;
        }
        Ok(())
    }

    /// Changes a thread's affinity, as `taskset` would.
    pub fn set_affinity(
        &self,
        pid: u32,
        tid: u32,
        comm: &str,
        cpus: &str,
    ) -> Result<(), FakeProcError> {
        let rel = PathBuf::from(pid.to_string())
            .join("task")
            .join(tid.to_string())
            .join("status");
        self.write(&rel, status_text(comm, cpus).as_bytes())
    }

    /// Makes a process vanish, as when QEMU exits.
    pub fn remove_process(&self, pid: u32) -> Result<(), FakeProcError> {
        let path = self.root.join(pid.to_string());
        fs::remove_dir_all(&path).map_err(|source| FakeProcError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_files_the_kernel_would() {
        let fake = FakeProc::builder()
            .process(
                FakeProcess::new(10)
                    .cmdline(&["qemu", "-name", "vm0"])
                    .thread(10, "qemu-system-x86", "0-1")
                    .thread(11, "CPU 0/KVM", "1")
                    .socket_fd(3, 99),
            )
            .unix_socket(99, "/tmp/x/vm0.0")
            .build()
            .expect("fake");
        let root = fake.path();
        assert_eq!(
            fs::read(root.join("10/cmdline")).expect("cmdline"),
            b"qemu\0-name\0vm0\0"
        );
        assert_eq!(
            fs::read_to_string(root.join("10/task/11/comm")).expect("comm"),
            "CPU 0/KVM\n"
        );
        let status = fs::read_to_string(root.join("11/status")).expect("top-level tid");
        assert!(status.contains("Cpus_allowed_list:\t1\n"));
        assert_eq!(
            fs::read_link(root.join("10/fd/3")).expect("fd"),
            PathBuf::from("socket:[99]")
        );
        let unix = fs::read_to_string(root.join("net/unix")).expect("net/unix");
        assert!(
            unix.lines()
                .nth(1)
                .expect("one socket")
                .ends_with("   99 /tmp/x/vm0.0")
        );
        fake.set_affinity(10, 11, "CPU 0/KVM", "0")
            .expect("taskset");
        let status = fs::read_to_string(root.join("10/task/11/status")).expect("status");
        assert!(status.contains("Cpus_allowed_list:\t0\n"));
        fake.remove_process(10).expect("exit");
        assert!(!root.join("10").exists());
    }

    #[test]
    fn in_dir_writes_there_and_keeps_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = {
            let fake = FakeProc::builder()
                .in_dir(dir.path())
                .process(FakeProcess::new(5).cmdline(&["x"]))
                .build()
                .expect("fake");
            fake.path().to_path_buf()
        };
        assert_eq!(path, dir.path());
        assert!(path.join("5/cmdline").exists());
    }
}

//! Debian's `dpdk-testpmd` (DPDK 22.11, package `dpdk-dev`) as a real
//! DPDK application with a real telemetry socket: no hugepages, no PCI, one
//! `net_null` port forwarding in io mode from the first packets on
//! (`--tx-first`), quiet (`--stats-period 3600`) and with a file prefix of
//! its own so tests and other programs do not share a runtime directory.
//! Killed (and its runtime directory removed) when dropped.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program.
pub const TESTPMD: &str = "dpdk-testpmd";

/// Why the real-DPDK tests cannot run here, if they cannot: they need
/// root (DPDK's runtime directory under /var/run) and `dpdk-testpmd`.
pub fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (DPDK's runtime directory is /var/run/dpdk)".to_owned());
    }
    match Command::new(TESTPMD).arg("--version").output() {
        Ok(_) => None,
        Err(e) => Some(format!(
            "{TESTPMD} is not installed ({e}): run scripts/install-deps (Debian package dpdk-dev)"
        )),
    }
}

/// A running testpmd.
pub struct Testpmd {
    child: Option<Child>,
    /// Its `--file-prefix`.
    pub prefix: String,
    /// Its runtime directory, `/var/run/dpdk/<prefix>`.
    pub runtime_dir: PathBuf,
    /// Its telemetry socket.
    pub socket: PathBuf,
}

impl Testpmd {
    /// Starts testpmd and waits (bounded) for its telemetry socket.
    pub fn start(tag: &str) -> Testpmd {
        let prefix = format!("vmpower-{tag}-{}", std::process::id());
        let runtime_dir = PathBuf::from("/var/run/dpdk").join(&prefix);
        let socket = runtime_dir.join("dpdk_telemetry.v2");
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("{prefix}.log"))).unwrap();
        let child = Command::new(TESTPMD)
            .args(["--no-huge", "-m", "512", "--no-pci", "--vdev", "net_null0"])
            .args(["--file-prefix", &prefix, "--log-level", "lib.eal:error"])
            .args([
                "--",
                "--total-num-mbufs",
                "4096",
                "--tx-first",
                "--stats-period",
                "3600",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut pmd = Testpmd {
            child: Some(child),
            prefix,
            runtime_dir,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pmd.socket.exists() {
            if let Some(status) = pmd.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{TESTPMD} exited ({status}) before serving telemetry; see its log in /tmp");
            }
            assert!(
                Instant::now() < deadline,
                "{TESTPMD} did not serve telemetry within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pmd
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Stops it as Ctrl-C would (it removes its socket on the way out)
    /// and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

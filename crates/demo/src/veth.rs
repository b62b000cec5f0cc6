//! Real traffic's plumbing: for each traffic VM, a network namespace and a
//! veth pair, made with iproute2 and removed again.
//!
//! Pair `n` of run `pid` is named `vmpd-<pid>-<n>` on both sides of the
//! naming: the namespace and the pair's end in the demo's own namespace
//! (where the in-process daemon's rtnetlink counters look). That end
//! carries the policy's MAC, so the daemon finds it as a netdev and counts
//! what it receives. The other end, `eth0` inside the namespace, has
//! 192.0.2.2/24 (TEST-NET-1, only inside the namespace) and a default
//! route, for the sender (see [`crate::feed`]).
//!
//! ## Behavior
//! - Nothing is added to the demo's own namespace but the pair's end: no
//!   address, no route. The sender's frames are UDP to the limited
//!   broadcast address, which the kernel never forwards and never answers
//!   with ICMP; they go no further than the pair.
//! - [`Pairs::create`] removes what it made if a step fails; dropping
//!   [`Pairs`] removes everything (also on error or panic);
//!   [`Pairs::remove`] does it explicitly and then checks that no
//!   namespace or link with the run's prefix is left.
//! - [`sweep_stale`] removes the namespaces of runs whose process is gone
//!   (a demo killed with SIGKILL cannot clean up after itself).
//!
//! ## Limitations
//! Needs root and `ip` (iproute2). Names fit IFNAMSIZ for pids up to
//! 4,194,304 (Linux's maximum) and up to 100 pairs.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmpower_proto::MacAddr;

/// The prefix of every name the demo makes.
pub const PREFIX: &str = "vmpd-";

/// Why the pairs could not be made, or not removed.
#[derive(Debug, thiserror::Error)]
pub enum VethError {
    /// Namespaces and veth pairs need root.
    #[error("needs root")]
    NotRoot,
    /// `ip` could not be run.
    #[error("cannot run ip (iproute2): {0}")]
    NoIp(#[source] std::io::Error),
    /// An `ip` command failed.
    #[error("ip {args} failed: {stderr}")]
    Ip {
        /// The arguments (or the batch) given to `ip`.
        args: String,
        /// What `ip` said.
        stderr: String,
    },
    /// Something with the prefix is still there after removal.
    #[error("still present after removal: {0}")]
    Left(String),
    /// More pairs than the names allow.
    #[error("{0} traffic VMs: real traffic supports at most 100")]
    TooMany(usize),
}

/// Runs `ip ARGS` with `stdin` as its batch input (when given).
fn ip(args: &[&str], stdin: Option<&str>) -> Result<String, VethError> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(VethError::NoIp)?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        // A write error shows as ip's own failure below.
        let _ = input.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(VethError::NoIp)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(VethError::Ip {
            args: stdin.map_or_else(|| args.join(" "), |b| format!("-batch: {}", b.trim())),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Whether pairs can be made here: root and a working `ip`.
pub fn available() -> Result<(), VethError> {
    if !rustix::process::geteuid().is_root() {
        return Err(VethError::NotRoot);
    }
    ip(&["-V"], None).map(|_| ())
}

/// The name of pair `n` of run `pid` (namespace and host end alike).
pub fn name(pid: u32, n: usize) -> String {
    format!("{PREFIX}{pid}-{n}")
}

/// The run prefix of `pid`: every name of that run starts with it.
pub fn run_prefix(pid: u32) -> String {
    format!("{PREFIX}{pid}-")
}

/// The pid in a name made by [`name`], if it is one.
fn pid_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<usize>().ok()?;
    pid.parse().ok()
}

/// The names in `ip netns list` output (`name` or `name (id: 3)`).
fn netns_names(list: &str) -> Vec<&str> {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// The link names in `ip -o link show` output (`4: name@if2: <...`).
fn link_names(list: &str) -> Vec<&str> {
    list.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .collect()
}

/// One pair made for a traffic VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The namespace, and the pair's end in the demo's namespace.
    pub name: String,
    /// The MAC on that end (the policy's MAC).
    pub mac: MacAddr,
}

/// The pairs of one run; dropping removes them.
#[derive(Debug)]
pub struct Pairs {
    pid: u32,
    pairs: Vec<Pair>,
    removed: bool,
}

impl Pairs {
    /// Makes one namespace and pair per entry of `macs`, `(n, mac)` giving
    /// pair `n` of this process.
    pub fn create(macs: &[(usize, MacAddr)]) -> Result<Pairs, VethError> {
        if macs.len() > 100 {
            return Err(VethError::TooMany(macs.len()));
        }
        let mut pairs = Pairs {
            pid: std::process::id(),
            pairs: Vec::new(),
            removed: false,
        };
        for &(n, mac) in macs {
            let name = name(pairs.pid, n);
            // Recorded first, so a failed step below is still cleaned up.
            pairs.pairs.push(Pair {
                name: name.clone(),
                mac,
            });
            ip(&["netns", "add", &name], None)?;
            let outside = format!(
                "link add {name} address {mac} type veth peer name eth0 netns {name}\n\
                 link set {name} up\n"
            );
            ip(&["-batch", "-"], Some(&outside))?;
            let inside = "link set eth0 up\n\
                          addr add 192.0.2.2/24 dev eth0\n\
                          route add default dev eth0\n";
            ip(&["-n", &name, "-batch", "-"], Some(inside))?;
        }
        Ok(pairs)
    }

    /// The pairs.
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// Every name with this run's prefix.
    pub fn prefix(&self) -> String {
        run_prefix(self.pid)
    }

    /// Deletes every pair and namespace, then checks that nothing with the
    /// run's prefix is left; returns the names removed.
    pub fn remove(&mut self) -> Result<Vec<String>, VethError> {
        self.removed = true;
        for pair in &self.pairs {
            // Deleting our end deletes both ends at once; deleting the
            // namespace alone would leave the pair until the kernel's
            // namespace clean-up runs. A failed delete (e.g. of something
            // never made, or removed by hand) is not an error in itself:
            // what counts is that nothing is left, checked below.
            let _ = ip(&["link", "del", &pair.name], None);
            let _ = ip(&["netns", "del", &pair.name], None);
        }
        let left = leftovers(&self.prefix(), Duration::from_secs(2))?;
        if !left.is_empty() {
            return Err(VethError::Left(left.join(", ")));
        }
        Ok(self.pairs.iter().map(|p| p.name.clone()).collect())
    }
}

impl Drop for Pairs {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove();
        }
    }
}

/// The namespaces and links whose names start with `prefix`, waiting up to
/// `wait` for links still going away.
pub fn leftovers(prefix: &str, wait: Duration) -> Result<Vec<String>, VethError> {
    let deadline = Instant::now() + wait;
    loop {
        let netns = ip(&["netns", "list"], None)?;
        let links = ip(&["-o", "link", "show"], None)?;
        let mut left: Vec<String> = netns_names(&netns)
            .into_iter()
            .map(|n| format!("netns {n}"))
            .chain(link_names(&links).into_iter().map(|n| format!("link {n}")))
            .filter(|n| n.split(' ').nth(1).is_some_and(|n| n.starts_with(prefix)))
            .collect();
        left.dedup();
        if left.is_empty() || Instant::now() >= deadline {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` runs: `proc/<pid>/stat` exists and its state is
/// not zombie or dead (a killed demo is a zombie until it is reaped).
fn alive(proc: &Path, pid: u32) -> bool {
    std::fs::read_to_string(proc.join(pid.to_string()).join("stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_comm) = stat.rsplit_once(')')?;
            after_comm.split_whitespace().next().map(str::to_owned)
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Removes the namespaces (and with them the pairs) of demo runs whose
/// process no longer runs under `proc`, and any left with this process's
/// own pid (from an earlier process that had it): call before
/// [`Pairs::create`]. Returns the names removed.
pub fn sweep_stale(proc: &Path) -> Vec<String> {
    let own = std::process::id();
    let Ok(list) = ip(&["netns", "list"], None) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for name in netns_names(&list) {
        let stale = pid_of(name).is_some_and(|pid| pid == own || !alive(proc, pid));
        if stale {
            let _ = ip(&["link", "del", name], None);
            if ip(&["netns", "del", name], None).is_ok() {
                removed.push(name.to_owned());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_parse_back() {
        let longest = name(4_194_304, 99);
        assert_eq!(longest, "vmpd-4194304-99");
        assert!(longest.len() <= 15, "IFNAMSIZ less the NUL");
        assert_eq!(pid_of(&longest), Some(4_194_304));
        assert_eq!(pid_of("vmpd-12-0"), Some(12));
        assert!(name(12, 3).starts_with(&run_prefix(12)));
        assert!(!name(123, 3).starts_with(&run_prefix(12)));
        for other in ["vmpd-12", "vmpd-x-1", "vmpd-12-x", "vmpp12", "eth0"] {
            assert_eq!(pid_of(other), None, "{other}");
        }
    }

    #[test]
    fn ip_listings_parse() {
        let netns = "vmpd-12-0 (id: 3)\nother\nvmpd-12-3\n";
        assert_eq!(netns_names(netns), ["vmpd-12-0", "other", "vmpd-12-3"]);
        let links = "1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue\n\
                     4280: vmpd-12-0@if2: <BROADCAST,UP> mtu 1500 link-netns vmpd-12-0\n\
                     5: eth0: <BROADCAST> mtu 1500\n";
        assert_eq!(link_names(links), ["lo", "vmpd-12-0", "eth0"]);
    }

    #[test]
    fn zombies_and_missing_processes_are_not_alive() {
        let proc = tempfile::tempdir().unwrap();
        let stat = |pid: u32, text: &str| {
            let dir = proc.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("stat"), text).unwrap();
        };
        stat(10, "10 (vmpower-demo) S 1 10 10 0 -1");
        stat(11, "11 (a) b (c)) Z 1 11 11 0 -1");
        stat(12, "12 (x) X 1");
        assert!(alive(proc.path(), 10));
        assert!(!alive(proc.path(), 11), "zombie, with a ')' in its name");
        assert!(!alive(proc.path(), 12));
        assert!(!alive(proc.path(), 13), "no such process");
        assert!(alive(Path::new("/proc"), std::process::id()));
    }

    #[test]
    fn pairs_are_removed_explicitly_and_by_drop() {
        if available().is_err() {
            eprintln!("skipped: needs root and ip");
            return;
        }
        let prefix = run_prefix(std::process::id());
        let macs = [(0, MacAddr([2, 0x77, 0, 0, 0, 1]))];
        let mut pairs = match Pairs::create(&macs) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("skipped: network namespaces unavailable: {e}");
                return;
            }
        };
        let made = leftovers(&prefix, Duration::ZERO).unwrap();
        assert_eq!(
            made,
            [format!("netns {prefix}0"), format!("link {prefix}0")]
        );
        assert_eq!(pairs.remove().unwrap(), [format!("{prefix}0")]);
        assert!(leftovers(&prefix, Duration::ZERO).unwrap().is_empty());
        // Dropped without remove (an error path): gone all the same.
        let pairs = Pairs::create(&macs).unwrap();
        assert_eq!(leftovers(&prefix, Duration::ZERO).unwrap().len(), 2);
        drop(pairs);
        assert!(
            leftovers(&prefix, Duration::from_secs(2))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn too_many_pairs_are_refused_before_anything_is_made() {
        let macs: Vec<(usize, MacAddr)> = (0..101).map(|n| (n, MacAddr::default())).collect();
        assert!(matches!(Pairs::create(&macs), Err(VethError::TooMany(101))));
    }
}

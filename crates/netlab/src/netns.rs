//! Network namespaces holding veth pairs, behind a guard that removes them;
//! entering a namespace from a thread; sweeping what killed runs left.
//!
//! ## Behavior
//! - [`Netns::create`] makes the namespace; [`Netns::add_veths`] makes
//!   pairs whose host end stays in the caller's namespace (with the given
//!   MAC, up) and whose peer end is moved into this one (up). Each host
//!   end is recorded before it is made, so a failed step is cleaned up too.
//! - Dropping a [`Netns`] deletes its host ends (which deletes both ends at
//!   once) and then the namespace, also on error or panic;
//!   [`Netns::remove`] does the same and reports failures.
//! - [`sweep_stale`] deletes the namespaces named by [`crate::names::name`]
//!   whose run's process is gone (a run killed with SIGKILL cannot clean up
//!   after itself) or whose pid is this process's (an earlier process that
//!   had it).
//!
//! ## Limitations
//! Needs root and iproute2. [`enter`] moves only the calling thread.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::ip::{IpError, ip, ip_batch, netns_names};
use crate::names::{LinkNet, NameError, check_ifname, mac_text, parse_name};

/// Why a namespace or its pairs could not be made, entered or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A name that cannot be a namespace or interface name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// An `ip` command failed.
    #[error(transparent)]
    Ip(#[from] IpError),
    /// The namespace's file (under /run/netns) could not be opened.
    #[error("cannot open network namespace {name} at {}", path.display())]
    Open {
        /// The namespace.
        name: String,
        /// The path tried first.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// setns(2) into the namespace failed.
    #[error("cannot enter network namespace {name}")]
    Enter {
        /// The namespace.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One veth pair to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    /// The end in the caller's namespace (unique there; see
    /// [`crate::names::unique_name`]).
    pub host: String,
    /// The end inside the namespace.
    pub peer: String,
    /// The host end's MAC (the kernel picks one when `None`).
    pub mac: Option<[u8; 6]>,
}

/// A network namespace and the pairs made into it; removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    hosts: Vec<String>,
    removed: bool,
}

impl Netns {
    /// Makes namespace `name`.
    pub fn create(name: &str) -> Result<Netns, NetnsError> {
        check_ifname(name)?;
        ip(&["netns", "add", name])?;
        Ok(Netns {
            name: name.to_owned(),
            hosts: Vec::new(),
            removed: false,
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host ends made so far.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Makes the pairs (one `ip -batch` on each side), both ends up.
    pub fn add_veths(&mut self, specs: &[VethSpec]) -> Result<(), NetnsError> {
        if specs.is_empty() {
            return Ok(());
        }
        let (mut outside, mut inside) = (String::new(), String::new());
        for spec in specs {
            check_ifname(&spec.host)?;
            check_ifname(&spec.peer)?;
            let address = spec
                .mac
                .map(|m| format!(" address {}", mac_text(m)))
                .unwrap_or_default();
            outside.push_str(&format!(
                "link add {}{address} type veth peer name {} netns {}\nlink set {} up\n",
                spec.host, spec.peer, self.name, spec.host
            ));
            inside.push_str(&format!("link set {} up\n", spec.peer));
        }
        // Recorded first: a batch that fails halfway is still cleaned up.
        self.hosts.extend(specs.iter().map(|s| s.host.clone()));
        ip_batch(&[], &outside)?;
        self.batch(&inside)?;
        Ok(())
    }

    /// Makes one pair; see [`Netns::add_veths`].
    pub fn add_veth(&mut self, spec: &VethSpec) -> Result<(), NetnsError> {
        self.add_veths(std::slice::from_ref(spec))
    }

    /// Addresses `pair` with `net` (host end `.1`, peer `.2`) and gives the
    /// peer a permanent neighbour entry for the host end (when its MAC is
    /// known): no ARP, every datagram goes on the wire at once.
    pub fn address(&self, pair: &VethSpec, net: &LinkNet) -> Result<(), NetnsError> {
        ip(&["addr", "add", &net.host_cidr(), "dev", &pair.host])?;
        let mut inside = format!("addr add {} dev {}\n", net.peer_cidr(), pair.peer);
        if let Some(mac) = pair.mac {
            inside.push_str(&format!(
                "neigh replace {} lladdr {} dev {} nud permanent\n",
                net.host,
                mac_text(mac),
                pair.peer
            ));
        }
        self.batch(&inside)?;
        Ok(())
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String, IpError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `ip -n NAME -batch -` with `lines`.
    pub fn batch(&self, lines: &str) -> Result<String, IpError> {
        ip_batch(&["-n", &self.name], lines)
    }

    /// Deletes the pairs and the namespace; the first failure, if any (the
    /// rest is still tried).
    pub fn remove(mut self) -> Result<(), NetnsError> {
        self.removed = true;
        self.delete()
    }

    fn delete(&self) -> Result<(), NetnsError> {
        // `-force` goes on past a failed line: a pair already gone (removed
        // by hand, or never made) does not keep the others.
        let lines: String = self
            .hosts
            .iter()
            .map(|h| format!("link del {h}\n"))
            .collect();
        let links = if lines.is_empty() {
            Ok(())
        } else {
            ip_batch(&["-force"], &lines).map(|_| ())
        };
        // Deleted after the pairs: deleting the namespace alone would leave
        // them until the kernel's namespace clean-up runs.
        let netns = ip(&["netns", "del", &self.name]).map(|_| ());
        netns.and(links).map_err(NetnsError::from)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.delete();
        }
    }
}

/// Opens namespace `name`'s file, where `ip netns add` binds it
/// (iproute2's NETNS_RUN_DIR: /run/netns, or /var/run/netns where that is
/// not a link to it).
pub fn open(name: &str) -> Result<File, NetnsError> {
    check_ifname(name)?;
    let path = Path::new("/run/netns").join(name);
    File::open(&path)
        .or_else(|e| File::open(Path::new("/var/run/netns").join(name)).map_err(|_| e))
        .map_err(|source| NetnsError::Open {
            name: name.to_owned(),
            path,
            source,
        })
}

/// Moves the calling thread into the namespace of `file` (from [`open`]),
/// named `name` in errors.
pub fn enter_file(file: &File, name: &str) -> Result<(), NetnsError> {
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| NetnsError::Enter {
        name: name.to_owned(),
        source: e.into(),
    })
}

/// Moves the calling thread into namespace `name`.
pub fn enter(name: &str) -> Result<(), NetnsError> {
    enter_file(&open(name)?, name)
}

/// Whether process `pid` runs: `PROC/<pid>/stat` exists and its state is
/// not zombie or dead (a killed process is a zombie until it is reaped).
pub fn alive(proc: &Path, pid: u32) -> bool {
    std::fs::read_to_string(proc.join(pid.to_string()).join("stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_comm) = stat.rsplit_once(')')?;
            after_comm.split_whitespace().next().map(str::to_owned)
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Whether `name` (made with `prefix`) belongs to a run that is gone under
/// `proc`, or to this process's pid.
fn stale(prefix: &str, name: &str, proc: &Path) -> bool {
    let own = std::process::id();
    parse_name(prefix, name).is_some_and(|(pid, _)| pid == own || !alive(proc, pid))
}

/// Deletes the namespaces (and links of the same name, which take their
/// pairs with them) named `PREFIX<pid>-<n>` whose run is gone under `proc`
/// or whose pid is this process's: call before making new ones. Returns the
/// namespaces removed; finds none when `ip` fails.
pub fn sweep_stale(prefix: &str, proc: &Path) -> Vec<String> {
    let Ok(list) = ip(&["netns", "list"]) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for name in netns_names(&list) {
        if stale(prefix, name, proc) {
            let _ = ip(&["link", "del", name]);
            if ip(&["netns", "del", name]).is_ok() {
                removed.push(name.to_owned());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(stats: &[(u32, &str)]) -> tempfile::TempDir {
        let proc = tempfile::tempdir().unwrap();
        for (pid, text) in stats {
            let dir = proc.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("stat"), text).unwrap();
        }
        proc
    }

    #[test]
    fn zombies_and_missing_processes_are_not_alive() {
        let proc = fake_proc(&[
            (10, "10 (vmpower-demo) S 1 10 10 0 -1"),
            (11, "11 (a) b (c)) Z 1 11 11 0 -1"),
            (12, "12 (x) X 1"),
        ]);
        assert!(alive(proc.path(), 10));
        assert!(!alive(proc.path(), 11), "zombie, with a ')' in its name");
        assert!(!alive(proc.path(), 12));
        assert!(!alive(proc.path(), 13), "no such process");
        assert!(alive(Path::new("/proc"), std::process::id()));
    }

    #[test]
    fn only_names_of_gone_runs_or_our_pid_are_stale() {
        let proc = fake_proc(&[(10, "10 (demo) S 1"), (11, "11 (demo) Z 1")]);
        let own = format!("vmpd-{}-0", std::process::id());
        assert!(stale("vmpd-", &own, proc.path()), "our own pid");
        assert!(!stale("vmpd-", "vmpd-10-3", proc.path()), "still running");
        assert!(stale("vmpd-", "vmpd-11-0", proc.path()), "zombie");
        assert!(stale("vmpd-", "vmpd-12-0", proc.path()), "gone");
        for other in ["vmpx-12-0", "vmpd-12", "eth0"] {
            assert!(!stale("vmpd-", other, proc.path()), "{other}");
        }
    }

    #[test]
    fn bad_names_are_refused_before_ip_runs() {
        assert!(matches!(
            Netns::create("a-namespace-name-too-long"),
            Err(NetnsError::Name(NameError::TooLong { .. }))
        ));
        assert!(matches!(open("a/b"), Err(NetnsError::Name(_))));
    }

    #[test]
    fn a_missing_namespace_cannot_be_entered() {
        let err = enter("vmpnl-nosuch").unwrap_err();
        assert!(matches!(err, NetnsError::Open { ref name, .. } if name == "vmpnl-nosuch"));
        assert!(err.to_string().contains("/run/netns/vmpnl-nosuch"), "{err}");
    }
}

//! Running iproute2's `ip`, and reading its listings.
//!
//! ## Behavior
//! - [`ip`] and [`ip_batch`] return `ip`'s standard output; a failure names
//!   the command (for a batch, its lines) and carries what `ip` said on
//!   standard error, so a test's message tells which step failed and why.
//! - [`available`] is the one answer to "can this machine make namespaces
//!   and links?": effective root and a working `ip`. [`can_run`] prints the
//!   reason a root-only test is skipped.
//! - The parsers ([`netns_names`], [`link_names`]) are pure and never fail:
//!   lines they do not understand are skipped.
//!
//! Must not be used by the daemon: it spawns processes.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why an `ip` command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum IpError {
    /// Namespaces and links need (effective) root.
    #[error("needs root (effective uid {euid})")]
    NotRoot {
        /// The effective uid instead.
        euid: u32,
    },
    /// `ip` could not be started or waited for.
    #[error("cannot run `ip {args}` (is iproute2 installed?)")]
    Spawn {
        /// The command's arguments.
        args: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ip` ran and failed.
    #[error("`ip {args}` failed: {stderr}")]
    Failed {
        /// The command's arguments (for a batch, its lines too).
        args: String,
        /// What `ip` said on standard error.
        stderr: String,
    },
}

/// Runs `ip ARGS`; its standard output.
pub fn ip(args: &[&str]) -> Result<String, IpError> {
    run(args, None)
}

/// Runs `ip ARGS -batch -` with `lines` (one command a line) as input.
pub fn ip_batch(args: &[&str], lines: &str) -> Result<String, IpError> {
    let mut all = args.to_vec();
    all.extend(["-batch", "-"]);
    run(&all, Some(lines))
}

/// Runs `ip`, feeding `stdin` when given.
fn run(args: &[&str], stdin: Option<&str>) -> Result<String, IpError> {
    let shown = || match stdin {
        None => args.join(" "),
        Some(lines) => format!("{} <<< {:?}", args.join(" "), lines.trim()),
    };
    let spawn_error = |source| IpError::Spawn {
        args: shown(),
        source,
    };
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
        .map_err(spawn_error)?;
    if let (Some(lines), Some(mut input)) = (stdin, child.stdin.take()) {
        // A short write shows as ip's own failure (a command cut off).
        let _ = input.write_all(lines.as_bytes());
    }
    let out = child.wait_with_output().map_err(spawn_error)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(IpError::Failed {
            args: shown(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Whether namespaces and links can be made here: effective root and a
/// working `ip`; the first thing missing otherwise.
pub fn available() -> Result<(), IpError> {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        return Err(IpError::NotRoot {
            euid: euid.as_raw(),
        });
    }
    ip(&["-V"]).map(|_| ())
}

/// For root-only tests: true when [`available`]; otherwise prints
/// `skipped: needs root and ip netns (WHY)` and returns false.
pub fn can_run() -> bool {
    match available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skipped: needs root and ip netns ({why})");
            false
        }
    }
}

/// The names in `ip netns list` output (`name` or `name (id: 3)`).
pub fn netns_names(list: &str) -> Vec<&str> {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// The link names in `ip -o link show` output (`4: name@if2: <...>`),
/// without the `@peer` part.
pub fn link_names(list: &str) -> Vec<&str> {
    list.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .filter(|n| !n.is_empty())
        .collect()
}

/// The namespaces (`netns NAME`) and links in this namespace (`link NAME`)
/// whose names start with `prefix`, waiting up to `wait` for them to go
/// (a pair goes a moment after its namespace is deleted).
pub fn leftovers(prefix: &str, wait: Duration) -> Result<Vec<String>, IpError> {
    let deadline = Instant::now() + wait;
    loop {
        let netns = ip(&["netns", "list"])?;
        let links = ip(&["-o", "link", "show"])?;
        let left = matching(prefix, &netns, &links);
        if left.is_empty() || Instant::now() >= deadline {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The entries of the two listings whose names start with `prefix`.
fn matching(prefix: &str, netns: &str, links: &str) -> Vec<String> {
    let netns = netns_names(netns)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("netns {n}"));
    let links = link_names(links)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("link {n}"));
    netns.chain(links).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_listings_parse_with_and_without_ids() {
        let netns = "vmpd-12-0 (id: 3)\nother\n\nvmpd-12-3\n";
        assert_eq!(netns_names(netns), ["vmpd-12-0", "other", "vmpd-12-3"]);
        assert!(netns_names("").is_empty());
    }

    #[test]
    fn link_listings_parse_without_the_peer() {
        let links = "1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue\n\
                     4280: vmpd-12-0@if2: <BROADCAST,UP> mtu 1500 link-netns vmpd-12-0\n\
                     5: eth0: <BROADCAST> mtu 1500\n\
                     garbage\n";
        assert_eq!(link_names(links), ["lo", "vmpd-12-0", "eth0"]);
    }

    #[test]
    fn only_names_with_the_prefix_are_left_over() {
        let netns = "vmpd-12-0 (id: 3)\nvmpd-120-0\nother\n";
        let links = "7: vmpd-12-0@if2: <BROADCAST> mtu 1500\n8: eth0: <UP> mtu 1500\n";
        assert_eq!(
            matching("vmpd-12-", netns, links),
            ["netns vmpd-12-0", "link vmpd-12-0"]
        );
        assert!(matching("zz", netns, links).is_empty());
    }

    #[test]
    fn failures_name_the_command_and_what_ip_said() {
        let failed = IpError::Failed {
            args: "link del nosuch".into(),
            stderr: "Cannot find device \"nosuch\"".into(),
        };
        let text = failed.to_string();
        assert!(text.contains("ip link del nosuch"), "{text}");
        assert!(text.contains("Cannot find device"), "{text}");
        if available().is_ok() {
            let err = ip(&["link", "del", "vmpnl-nosuch"]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("ip link del vmpnl-nosuch"), "{text}");
            assert!(matches!(err, IpError::Failed { ref stderr, .. } if !stderr.is_empty()));
            let err = ip_batch(&[], "link del vmpnl-nosuch\n").unwrap_err();
            assert!(err.to_string().contains("link del vmpnl-nosuch"), "{err}");
        }
    }
}

//! Looking at the running daemon from outside: its CPU time, context
//! switches and memory from /proc (the real one), its counters through
//! the control socket.
//!
//! ## Limitations
//! - Context switches are summed over the threads alive at the time of
//!   reading (`/proc/PID/task/*/status`); a thread that exited in between
//!   takes its count with it. The daemon's threads are long-lived.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use vmpower_api::{Client, CtlRequest, CtlResponse};

/// CPU time and context switches of a process at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuSample {
    /// utime + stime, in clock ticks (whole process).
    pub ticks: u64,
    /// Time on CPU summed over threads, from schedstat, in ns (0 if the
    /// kernel has no schedstat).
    pub run_ns: u64,
    /// Voluntary context switches (sleeps: wakeups), summed over threads.
    pub voluntary: u64,
    /// Involuntary context switches, summed over threads.
    pub involuntary: u64,
}

impl CpuSample {
    /// Reads `/proc/<pid>`.
    pub fn read(pid: u32) -> anyhow::Result<Self> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let stat = read(&dir.join("stat"))?;
        let mut sample = CpuSample {
            ticks: stat_ticks(&stat).with_context(|| format!("odd /proc/{pid}/stat"))?,
            ..CpuSample::default()
        };
        let tasks = std::fs::read_dir(dir.join("task"))
            .with_context(|| format!("cannot list /proc/{pid}/task"))?;
        for task in tasks.flatten() {
            let status = read(&task.path().join("status")).unwrap_or_default();
            sample.voluntary += status_field(&status, "voluntary_ctxt_switches").unwrap_or(0);
            sample.involuntary += status_field(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
            let sched = read(&task.path().join("schedstat")).unwrap_or_default();
            sample.run_ns += sched
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(sample)
    }
}

/// The clock tick rate of /proc/PID/stat.
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = read(Path::new(&format!("/proc/{pid}/status")))?;
    let rss = status_field(&status, "VmRSS").context("no VmRSS")?;
    let hwm = status_field(&status, "VmHWM").context("no VmHWM")?;
    Ok((rss, hwm))
}

/// Number of threads of a process.
pub fn threads(pid: u32) -> anyhow::Result<u64> {
    let status = read(Path::new(&format!("/proc/{pid}/status")))?;
    status_field(&status, "Threads").context("no Threads")
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces: count after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The first number of a `Key:` line of a `/proc/.../status` file.
fn status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The daemon's counters, from `status` on its control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DaemonStats {
    /// Requests handled, all kinds and results.
    pub requests: u64,
    /// Requests answered with a NACK (rate-limited ones included).
    pub nacks: u64,
    /// sysfs writes done.
    pub sysfs_writes: u64,
    /// Replies dropped because a guest did not read them.
    pub replies_dropped: u64,
    /// Channel connections made.
    pub connects: u64,
    /// Channel sockets currently served.
    pub channels_served: u64,
}

impl DaemonStats {
    /// Asks the daemon.
    pub fn fetch(control: &Path) -> anyhow::Result<Self> {
        let mut client = Client::connect(control)?;
        match client.call(&CtlRequest::Status)? {
            CtlResponse::Ok(v) => Ok(Self::from_status(&v)),
            CtlResponse::Error(e) => bail!("status refused: {e:?}"),
        }
    }

    fn from_status(v: &Value) -> Self {
        let stats = &v["stats"];
        let num = |x: &Value| x.as_u64().unwrap_or(0);
        let (mut requests, mut nacks) = (0, 0);
        if let Some(map) = stats["requests"].as_object() {
            for (key, count) in map {
                requests += num(count);
                if key.ends_with("/nack") {
                    nacks += num(count);
                }
            }
        }
        DaemonStats {
            requests,
            nacks,
            sysfs_writes: num(&stats["sysfs_writes"]),
            replies_dropped: num(&stats["replies_dropped"]),
            connects: num(&stats["connects"]),
            channels_served: v["channels_served"]
                .as_array()
                .map_or(0, |a| u64::try_from(a.len()).unwrap_or(u64::MAX)),
        }
    }

    /// Asks the daemon and times the call: the counters, the middle of
    /// the call (the best guess of when they were read) and its duration.
    pub fn snapshot(control: &Path) -> anyhow::Result<(Self, Instant, Duration)> {
        let start = Instant::now();
        let stats = Self::fetch(control)?;
        let took = start.elapsed();
        Ok((stats, start + took / 2, took))
    }

    /// Waits (bounded) until the daemon has made `connects` connections.
    pub fn wait_connects(control: &Path, connects: u64, wait: Duration) -> anyhow::Result<Self> {
        let deadline = Instant::now() + wait;
        loop {
            let s = Self::fetch(control)?;
            if s.connects >= connects {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!(
                    "the daemon made {} of {connects} connections within {wait:?}",
                    s.connects
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stat_ticks_skip_a_name_with_spaces() {
        let stat = "42 (tokio (rt) 1) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 4 0";
        assert_eq!(stat_ticks(stat), Some(10));
        assert_eq!(stat_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tvmpowerd\nVmHWM:\t   5120 kB\nVmRSS:\t   4096 kB\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t2\n";
        assert_eq!(status_field(s, "VmRSS"), Some(4096));
        assert_eq!(status_field(s, "VmHWM"), Some(5120));
        assert_eq!(status_field(s, "voluntary_ctxt_switches"), Some(17));
        assert_eq!(status_field(s, "nonvoluntary_ctxt_switches"), Some(2));
        assert_eq!(status_field(s, "Threads"), None);
    }

    #[test]
    fn this_process_is_readable() {
        let me = std::process::id();
        let s = CpuSample::read(me).unwrap();
        assert!(s.voluntary + s.involuntary > 0 || s.ticks > 0 || s.run_ns > 0);
        let (rss, hwm) = memory_kib(me).unwrap();
        assert!(rss > 0 && hwm >= rss);
        assert!(threads(me).unwrap() >= 1);
    }

    #[test]
    fn counters_from_status() {
        let v = json!({
            "channels_served": ["/c/vm0.0", "/c/vm1.0"],
            "stats": {
                "requests": {"vm0/power/ok": 10, "vm1/power/nack": 3},
                "sysfs_writes": 4, "replies_dropped": 1, "connects": 2
            }
        });
        let s = DaemonStats::from_status(&v);
        assert_eq!(s.requests, 13);
        assert_eq!(s.nacks, 3);
        assert_eq!(s.sysfs_writes, 4);
        assert_eq!(s.replies_dropped, 1);
        assert_eq!(s.connects, 2);
        assert_eq!(s.channels_served, 2);
    }
}

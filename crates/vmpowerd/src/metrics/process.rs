//! Prometheus's standard process metrics for the daemon itself
//! (`process_open_fds`, `process_resident_memory_bytes`, ...), read at
//! each scrape from `<proc_root>/self` with the `procfs` crate.
//!
//! ## Behavior
//! - The procfs root is the daemon's `proc_root` setting, never a path
//!   of this module's: a test points it at a fake tree.
//! - A file that cannot be read or parsed leaves its families out of that
//!   scrape (they are gauges and a counter read from the kernel, not
//!   state of ours): the scrape still succeeds with everything else.
//! - CPU time is user + system, in seconds (clock ticks from the kernel's
//!   `sysconf(_SC_CLK_TCK)`); RSS is pages × the page size; the start time
//!   is the boot time (`btime` of `<proc_root>/stat`) plus the process's
//!   start in ticks since boot.

use std::fmt;
use std::path::{Path, PathBuf};

use procfs::FromReadSI;
use procfs::process::{LimitValue, Process};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};

use super::families::{Family, Kind};

/// CPU time.
pub const CPU_SECONDS: Family = Family {
    name: "process_cpu_seconds",
    kind: Kind::Counter,
    labels: &[],
    help: "Total user and system CPU time spent in seconds",
};
/// Open file descriptors.
pub const OPEN_FDS: Family = Family {
    name: "process_open_fds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Number of open file descriptors",
};
/// The descriptor limit.
pub const MAX_FDS: Family = Family {
    name: "process_max_fds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Maximum number of open file descriptors (the soft limit)",
};
/// Virtual memory.
pub const VIRTUAL_MEMORY: Family = Family {
    name: "process_virtual_memory_bytes",
    kind: Kind::Gauge,
    labels: &[],
    help: "Virtual memory size in bytes",
};
/// Resident memory.
pub const RESIDENT_MEMORY: Family = Family {
    name: "process_resident_memory_bytes",
    kind: Kind::Gauge,
    labels: &[],
    help: "Resident memory size in bytes",
};
/// Start time.
pub const START_TIME: Family = Family {
    name: "process_start_time_seconds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Start time of the process since unix epoch in seconds",
};

/// Every process family, in the order the endpoint writes them.
pub const PROCESS_FAMILIES: &[Family] = &[
    CPU_SECONDS,
    OPEN_FDS,
    MAX_FDS,
    VIRTUAL_MEMORY,
    RESIDENT_MEMORY,
    START_TIME,
];

/// One reading of the process's figures; `None` where a file failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSample {
    /// User + system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Open descriptors.
    pub open_fds: Option<u64>,
    /// The soft descriptor limit (`None` also when unlimited).
    pub max_fds: Option<u64>,
    /// Virtual memory, in bytes.
    pub virtual_bytes: Option<u64>,
    /// Resident memory, in bytes.
    pub resident_bytes: Option<u64>,
    /// Unix time of the process's start, in seconds.
    pub start_time_seconds: Option<f64>,
}

/// Reads `<proc_root>/self` at each scrape.
#[derive(Debug, Clone)]
pub struct ProcessCollector {
    proc_root: PathBuf,
}

impl ProcessCollector {
    /// A collector of the process that `<proc_root>/self` shows.
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        ProcessCollector {
            proc_root: proc_root.into(),
        }
    }

    /// Reads the figures now.
    pub fn sample(&self) -> ProcessSample {
        sample(
            &self.proc_root,
            procfs::ticks_per_second(),
            procfs::page_size(),
        )
    }
}

/// The figures of `<proc_root>/self` with the kernel's tick rate and page
/// size given.
fn sample(proc_root: &Path, ticks: u64, page: u64) -> ProcessSample {
    let mut out = ProcessSample::default();
    let Ok(process) = Process::new_with_root(proc_root.join("self")) else {
        return out;
    };
    let ticks_f = ticks.max(1) as f64;
    if let Ok(stat) = process.stat() {
        out.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks_f);
        out.virtual_bytes = Some(stat.vsize);
        out.resident_bytes = Some(stat.rss.saturating_mul(page));
        if let Ok(kernel) =
            procfs::KernelStats::from_file(proc_root.join("stat"), procfs::current_system_info())
        {
            out.start_time_seconds = Some(kernel.btime as f64 + stat.starttime as f64 / ticks_f);
        }
    }
    // Counted by listing `fd/`: procfs's fd_count() takes the size that
    // stat(2) gives the directory, which only the kernel's procfs sets to
    // the count (a fake tree's directory says 4096).
    out.open_fds = process.fd().ok().map(|fds| fds.count() as u64);
    if let Ok(limits) = process.limits()
        && let LimitValue::Value(n) = limits.max_open_files.soft_limit
    {
        out.max_fds = Some(n);
    }
    out
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.sample().encode(&mut encoder)
    }
}

impl ProcessSample {
    fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        if let Some(v) = self.cpu_seconds {
            super::collect::family(enc, &CPU_SECONDS)?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
        let gauges = [
            (&OPEN_FDS, self.open_fds.map(|v| v as f64)),
            (&MAX_FDS, self.max_fds.map(|v| v as f64)),
            (&VIRTUAL_MEMORY, self.virtual_bytes.map(|v| v as f64)),
            (&RESIDENT_MEMORY, self.resident_bytes.map(|v| v as f64)),
            (&START_TIME, self.start_time_seconds),
        ];
        for (f, value) in gauges {
            if let Some(v) = value {
                super::collect::family(enc, f)?.encode_gauge(&v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake procfs root: `stat`, and `self` (a link to `4242/`, as the
    /// kernel's names the pid) with `stat`, `limits` and three
    /// descriptors.
    fn fake_proc() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let me = dir.path().join("4242");
        std::fs::create_dir_all(me.join("fd")).unwrap();
        std::os::unix::fs::symlink("4242", dir.path().join("self")).unwrap();
        for fd in ["0", "1", "2"] {
            std::os::unix::fs::symlink("/dev/null", me.join("fd").join(fd)).unwrap();
        }
        // Fields 14/15 utime/stime = 250/50 ticks, 22 starttime = 1000
        // ticks, 23 vsize, 24 rss = 300 pages.
        std::fs::write(
            me.join("stat"),
            "4242 (vmpowerd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 1000 \
             123456789 300 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        )
        .unwrap();
        std::fs::write(
            me.join("limits"),
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max cpu time              unlimited            unlimited            seconds   \n\
             Max file size             unlimited            unlimited            bytes     \n\
             Max data size             unlimited            unlimited            bytes     \n\
             Max stack size            8388608              unlimited            bytes     \n\
             Max core file size        0                    unlimited            bytes     \n\
             Max resident set          unlimited            unlimited            bytes     \n\
             Max processes             63433                63433                processes \n\
             Max open files            1024                 524288               files     \n\
             Max locked memory         8388608              8388608              bytes     \n\
             Max address space         unlimited            unlimited            bytes     \n\
             Max file locks            unlimited            unlimited            locks     \n\
             Max pending signals       63433                63433                signals   \n\
             Max msgqueue size         819200               819200               bytes     \n\
             Max nice priority         0                    0                    \n\
             Max realtime priority     0                    0                    \n\
             Max realtime timeout      unlimited            unlimited            us        \n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("stat"),
            "cpu  1 2 3 4 5 6 7 0 0 0\ncpu0 1 2 3 4 5 6 7 0 0 0\nintr 0\nctxt 10\nbtime 1700000000\nprocesses 5\nprocs_running 1\nprocs_blocked 0\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn figures_come_from_the_given_root() {
        let root = fake_proc();
        let s = sample(root.path(), 100, 4096);
        assert_eq!(s.cpu_seconds, Some(3.0));
        assert_eq!(s.open_fds, Some(3));
        assert_eq!(s.max_fds, Some(1024));
        assert_eq!(s.virtual_bytes, Some(123_456_789));
        assert_eq!(s.resident_bytes, Some(300 * 4096));
        assert_eq!(s.start_time_seconds, Some(1_700_000_010.0));
    }

    #[test]
    fn a_missing_root_gives_no_figures_and_the_scrape_still_works() {
        let dir = tempfile::tempdir().unwrap();
        let c = ProcessCollector::new(dir.path().join("nope"));
        assert_eq!(c.sample(), ProcessSample::default());
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(c));
        let text = crate::metrics::render(&registry, true).unwrap();
        assert!(!text.contains("process_"), "{text}");
    }

    #[test]
    fn the_real_self_is_read_and_encoded() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector::new("/proc")));
        let text = crate::metrics::render(&registry, true).unwrap();
        let m = crate::metrics::parse::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for f in PROCESS_FAMILIES {
            assert_eq!(m.families[f.name].kind, f.kind.as_str(), "{}", f.name);
        }
        assert!(m.value("process_open_fds", &[]).is_some_and(|n| n >= 3.0));
        assert!(
            m.value("process_resident_memory_bytes", &[])
                .is_some_and(|n| n > 0.0)
        );
    }
}

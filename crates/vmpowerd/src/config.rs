//! vmpowerd's configuration: a TOML file (`--config`) with command-line
//! flags overriding it. Every setting, its default and its meaning is
//! listed in `docs/configuration.md`; the defaults are those of a real host
//! (`/sys`, `/proc`, DPDK's `/tmp/powermonitor`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use vmpower_engine::OtherHours;
use vmpower_engine::{BusyConfig, RateLimit, VmSettings};
use vmpower_proto::Layout;

/// The default busy-polling window: longer than a guest takes to read a
/// reply and send its next request (BENCHMARKS.md, latency).
pub const DEFAULT_BUSY_POLL_US: u64 = 50;
/// The default nice value of the channel thread: above the host's own
/// work, so that a reply is not queued behind busy CPUs' time slices
/// (BENCHMARKS.md, dpdk-reply: on a host whose every CPU spins, p99 of
/// DPDK's replies 3.1 ms at 0, 0.33 ms at -10; -20 did no better).
pub const DEFAULT_CHANNEL_THREAD_NICE: i32 = -10;
/// The engine's busyness defaults, which the file's defaults repeat.
const BUSY: BusyConfig = BusyConfig::DEFAULT;
/// The longest busy-polling window `channel_busy_poll_us` accepts.
const MAX_BUSY_POLL_US: u64 = 1000;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (the error names it).
    #[error("cannot read the config file")]
    Read(#[source] crate::files::ReadFileError),
    /// The file is not valid TOML of the expected shape.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (with line and column).
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting {key}: {reason}")]
    Invalid {
        /// The setting.
        key: String,
        /// Why.
        reason: String,
    },
}

/// The daemon's command line.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "vmpowerd",
    version,
    about = "vmpower host daemon: CPU frequency for KVM guests"
)]
pub struct Args {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory standing for /sys.
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// Directory standing for /proc.
    #[arg(long, value_name = "DIR")]
    pub proc_root: Option<PathBuf>,
    /// Directory of the guests' channel sockets (`<vm>.<n>`) and FIFOs.
    #[arg(long, value_name = "DIR")]
    pub channel_dir: Option<PathBuf>,
    /// Directory for the takeover record and state.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Unix socket of the control API (vmpowerctl).
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `vmpowerd=debug`.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// libvirt URI to learn VMs from, e.g. qemu:///system (feature libvirt).
    #[arg(long, value_name = "URI")]
    pub libvirt_uri: Option<String>,
    /// BRANCH_RATIO threshold for a set of pCPUs, e.g. `2-4:0.01`
    /// (repeatable; replaces the file's `core_branch_ratio`).
    #[arg(long, value_name = "CPULIST:RATIO")]
    pub core_branch_ratio: Vec<String>,
    /// Serve Prometheus metrics on this address, e.g. `127.0.0.1:9464`
    /// (off when unset).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Check the configuration and exit: parse it, check that every path
    /// the daemon writes is writable and that every policy file parses,
    /// print every problem; exit status 0 when there is none, 2 otherwise.
    #[arg(long)]
    pub check_config: bool,
}

/// One VM the operator declares in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// The byte layout its channels carry.
    #[serde(default)]
    pub layout: Layout,
    /// Answer its frequency and capability queries.
    #[serde(default)]
    pub queries: bool,
    /// Accept its physical-core requests (for its own pCPUs).
    #[serde(default)]
    pub physical_cores: bool,
    /// Let a vCPU with a multi-CPU affinity drive all those pCPUs.
    #[serde(default)]
    pub multi_pcpu: bool,
    /// Let direct requests take a core out of the VM's policy (otherwise
    /// they are refused while a policy owns the core).
    #[serde(default)]
    pub requests_override_policy: bool,
    /// vCPU → pCPU, by position (`pcpus = [2, 3]`: vCPU 0 on 2, 1 on 3).
    #[serde(default)]
    pub pcpus: Vec<u32>,
    /// QMP socket of its QEMU, to find its vCPU threads.
    #[serde(default)]
    pub qmp_socket: Option<PathBuf>,
}

impl VmConfig {
    /// The engine settings this VM entry grants.
    pub fn settings(&self) -> VmSettings {
        VmSettings {
            layout: self.layout,
            queries_allowed: self.queries,
            physical_allowed: self.physical_cores,
            multi_pcpu_allowed: self.multi_pcpu,
            requests_override_policy: self.requests_override_policy,
        }
    }
}

/// The whole configuration, as the file spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory standing for /sys.
    pub sysfs_root: PathBuf,
    /// Directory standing for /proc.
    pub proc_root: PathBuf,
    /// Directory of channel sockets and FIFOs.
    pub channel_dir: PathBuf,
    /// Directory for the takeover record and state.
    pub state_dir: PathBuf,
    /// Unix socket of the control API.
    pub control_socket: PathBuf,
    /// Permission bits of the control socket (octal in the file, e.g. 0o600).
    pub control_socket_mode: u32,
    /// Serve VMs whose sockets appear in the channel directory without
    /// being declared (their settings are the defaults).
    pub auto_add_vms: bool,
    /// Read DPDK's JSON FIFOs (`fifo<N>`) in the channel directory.
    pub fifos: bool,
    /// How often to re-read vCPU placement from /proc and QMP, in ms.
    pub placement_refresh_ms: u64,
    /// Per-channel rate limit.
    pub rate_limit: RateLimit,
    /// pCPUs reported as high-priority in CAPS replies (Intel SST-BF).
    pub high_priority_cpus: Vec<u32>,
    /// Log filter (tracing EnvFilter syntax).
    pub log: String,
    /// libvirt connection URI (e.g. `qemu:///system`): VMs, pins and
    /// channels from libvirt (needs the `libvirt` build feature).
    pub libvirt_uri: Option<String>,
    /// Directory of policy files the daemon applies and follows (ignored
    /// when it does not exist).
    pub policy_dir: PathBuf,
    /// TRAFFIC sampling interval in ms (at least 10).
    pub traffic_interval_ms: u64,
    /// Explicit MAC → network device map for TRAFFIC policies (wins over
    /// automatic discovery), e.g. `"52:54:00:12:34:56" = { ifname = "vnet3" }`.
    pub mac_devices: BTreeMap<String, crate::traffic::ConfiguredDevice>,
    /// BRANCH_RATIO thresholds per set of pCPUs, `"CPULIST:RATIO"` each
    /// (e.g. `["2-4:0.01"]`); other pCPUs use the policy's or 0.01.
    pub core_branch_ratio: Vec<String>,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`), e.g.
    /// `"127.0.0.1:9464"`; off when unset.
    pub metrics_address: Option<std::net::SocketAddr>,
    /// While a guest sends back to back, keep reading its channel for this
    /// many µs after each request before sleeping on epoll (busy polling;
    /// 0: off). Saves a wakeup when the guest's next request follows at
    /// once, at the cost of up to this much CPU per request.
    pub channel_busy_poll_us: u64,
    /// What a TIME policy does in hours of none of its sets, unless it
    /// says (a guest's never does): `unchanged` (as DPDK's host: the cores
    /// stay where they are), `min`, `medium` or `max`.
    pub time_other_hours: OtherHours,
    /// Nice value of the thread that serves the guest channels (-20..=19;
    /// 0: the daemon's own). Negative values need CAP_SYS_NICE; without
    /// it the daemon logs once and runs the thread at its own priority.
    pub channel_thread_nice: i32,
    /// What to do when another tool writes the cpufreq files of a CPU
    /// the daemon holds: take it back (`retake`) or give it up (`yield`).
    pub foreign_writer: ForeignWriter,
    /// How often the CPUs the daemon holds are checked for another
    /// writer's changes, in ms (at least 100).
    pub foreign_check_interval_ms: u64,
    /// The busyness controller's band: below this fraction busy, a
    /// reported vCPU steps down (after the cooldown).
    pub busyness_target_low: f64,
    /// ... above this one, it steps up at once.
    pub busyness_target_high: f64,
    /// Least time between a vCPU's last change and a step down, in ms.
    pub busyness_cooldown_ms: u64,
    /// Report intervals of silence before a VM's reported vCPUs go to max.
    pub busyness_stale_intervals: u32,
    /// A guest's report interval is clamped to at least this, in ms.
    pub busyness_interval_min_ms: u64,
    /// ... and at most this, in ms.
    pub busyness_interval_max_ms: u64,
    /// Busyness reports a VM may sustain per second (more are refused).
    pub busyness_max_reports_per_second: u32,
    /// Busyness reports a VM may send at once.
    pub busyness_report_burst: u32,
    /// Declared VMs, by name.
    pub vm: BTreeMap<String, VmConfig>,
}

/// What the daemon does when another tool (tuned, power-profiles-daemon,
/// cpupower, an operator's `echo`) changes the cpufreq files of a CPU it
/// holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForeignWriter {
    /// Take the CPU back: set our governor and the level the VMs want
    /// again. The originals restored later stay those recorded before the
    /// daemon first touched the CPU.
    #[default]
    Retake,
    /// Give the CPU up: stop driving it, drop it from the takeover record
    /// (the other writer's settings stay, at stop too), and refuse the
    /// guests' requests for it until an operator's `set-cpu-freq`.
    Yield,
}

impl ForeignWriter {
    /// The setting's value, as the file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ForeignWriter::Retake => "retake",
            ForeignWriter::Yield => "yield",
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sysfs_root: PathBuf::from("/sys"),
            proc_root: PathBuf::from("/proc"),
            channel_dir: PathBuf::from("/tmp/powermonitor"),
            state_dir: PathBuf::from("/var/lib/vmpower"),
            control_socket: PathBuf::from("/run/vmpower/control.sock"),
            control_socket_mode: 0o600,
            auto_add_vms: true,
            fifos: true,
            placement_refresh_ms: 5000,
            rate_limit: RateLimit::default(),
            high_priority_cpus: Vec::new(),
            log: "info".to_owned(),
            libvirt_uri: None,
            policy_dir: PathBuf::from("/etc/vmpower/policies.d"),
            traffic_interval_ms: 100,
            mac_devices: BTreeMap::new(),
            core_branch_ratio: Vec::new(),
            metrics_address: None,
            channel_busy_poll_us: DEFAULT_BUSY_POLL_US,
            time_other_hours: OtherHours::Unchanged,
            channel_thread_nice: DEFAULT_CHANNEL_THREAD_NICE,
            foreign_writer: ForeignWriter::Retake,
            foreign_check_interval_ms: 5000,
            busyness_target_low: BUSY.low,
            busyness_target_high: BUSY.high,
            busyness_cooldown_ms: 100,
            busyness_stale_intervals: BUSY.stale_intervals,
            busyness_interval_min_ms: 10,
            busyness_interval_max_ms: 1000,
            busyness_max_reports_per_second: BUSY.max_rate.per_second,
            busyness_report_burst: BUSY.max_rate.burst,
            vm: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Parses a TOML document (`origin` names it in errors).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Loads the file named by `--config` (if any), then applies the flags.
    pub fn load(args: &Args) -> Result<Self, ConfigError> {
        let mut config = match &args.config {
            Some(path) => {
                let text = crate::files::read_text(path, crate::files::MAX_FILE_LEN)
                    .map_err(ConfigError::Read)?;
                Config::from_toml(&text, path)?
            }
            None => Config::default(),
        };
        config.apply_args(args);
        config.validate()?;
        Ok(config)
    }

    /// Flags override the file.
    pub fn apply_args(&mut self, args: &Args) {
        let set = |slot: &mut PathBuf, flag: &Option<PathBuf>| {
            if let Some(v) = flag {
                slot.clone_from(v);
            }
        };
        set(&mut self.sysfs_root, &args.sysfs_root);
        set(&mut self.proc_root, &args.proc_root);
        set(&mut self.channel_dir, &args.channel_dir);
        set(&mut self.state_dir, &args.state_dir);
        set(&mut self.control_socket, &args.control_socket);
        if let Some(log) = &args.log {
            self.log.clone_from(log);
        }
        if let Some(uri) = &args.libvirt_uri {
            self.libvirt_uri = Some(uri.clone());
        }
        if !args.core_branch_ratio.is_empty() {
            self.core_branch_ratio.clone_from(&args.core_branch_ratio);
        }
        if args.metrics_address.is_some() {
            self.metrics_address = args.metrics_address;
        }
    }

    /// Checks ranges the types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if self.rate_limit.burst == 0 || self.rate_limit.per_second == 0 {
            return invalid("rate_limit", "burst and per_second must be at least 1");
        }
        if self.traffic_interval_ms < 10 {
            return invalid("traffic_interval_ms", "must be at least 10 ms");
        }
        for mac in self.mac_devices.keys() {
            if mac.parse::<vmpower_proto::MacAddr>().is_err() {
                return invalid(
                    &format!("mac_devices.{mac}"),
                    "not a MAC address (xx:xx:xx:xx:xx:xx)",
                );
            }
        }
        if let Err((i, e)) = self.branch_thresholds() {
            return invalid(&format!("core_branch_ratio[{i}]"), &e.to_string());
        }
        if !(-20..=19).contains(&self.channel_thread_nice) {
            return invalid("channel_thread_nice", "must be a nice value, -20 to 19");
        }
        if self.channel_busy_poll_us > MAX_BUSY_POLL_US {
            return invalid(
                "channel_busy_poll_us",
                "must be at most 1000 µs (it holds a worker thread that long)",
            );
        }
        if self.foreign_check_interval_ms < 100 {
            return invalid("foreign_check_interval_ms", "must be at least 100 ms");
        }
        if self.placement_refresh_ms < 100 {
            return invalid("placement_refresh_ms", "must be at least 100 ms");
        }
        if self.libvirt_uri.is_some() && !cfg!(feature = "libvirt") {
            return invalid(
                "libvirt_uri",
                "this vmpowerd was built without the libvirt feature (cargo build --features libvirt)",
            );
        }
        if self.control_socket_mode > 0o777 {
            return invalid(
                "control_socket_mode",
                "must be permission bits (0o000..=0o777)",
            );
        }
        if let Err(e) = self.busyness().validate() {
            return invalid("busyness_*", &e.to_string());
        }
        for (name, vm) in &self.vm {
            if crate::vm_name::check(name).is_err() {
                return invalid(&format!("vm.{name}"), crate::vm_name::RULE);
            }
            if vm.pcpus.len() > 256 {
                return invalid(&format!("vm.{name}.pcpus"), "more than 256 vCPUs");
            }
        }
        Ok(())
    }

    /// The busyness controller's settings.
    pub fn busyness(&self) -> BusyConfig {
        BusyConfig {
            low: self.busyness_target_low,
            high: self.busyness_target_high,
            cooldown: Duration::from_millis(self.busyness_cooldown_ms),
            stale_intervals: self.busyness_stale_intervals,
            interval_min: Duration::from_millis(self.busyness_interval_min_ms),
            interval_max: Duration::from_millis(self.busyness_interval_max_ms),
            max_rate: RateLimit {
                burst: self.busyness_report_burst,
                per_second: self.busyness_max_reports_per_second,
            },
            ..BusyConfig::DEFAULT
        }
    }

    /// The placement refresh period.
    pub fn placement_refresh(&self) -> Duration {
        Duration::from_millis(self.placement_refresh_ms)
    }

    /// How often held CPUs are checked for another writer's changes.
    pub fn foreign_check_interval(&self) -> Duration {
        Duration::from_millis(self.foreign_check_interval_ms)
    }

    /// The busy-polling window of guest channels (zero: off).
    pub fn channel_busy_poll(&self) -> Duration {
        Duration::from_micros(self.channel_busy_poll_us)
    }

    /// The TRAFFIC sampling interval.
    pub fn traffic_interval(&self) -> Duration {
        Duration::from_millis(self.traffic_interval_ms)
    }

    /// The explicit MAC → device map.
    pub fn mac_map(&self) -> crate::traffic::ConfiguredMap {
        self.mac_devices
            .iter()
            .filter_map(|(m, d)| Some((m.parse().ok()?, d.clone())))
            .collect()
    }

    /// The per-pCPU BRANCH_RATIO thresholds, or the index of the bad entry
    /// and why.
    pub fn branch_thresholds(
        &self,
    ) -> Result<
        BTreeMap<vmpower_cpufreq::CpuId, f64>,
        (usize, crate::branch::thresholds::ThresholdError),
    > {
        crate::branch::thresholds::parse_thresholds(&self.core_branch_ratio)
    }

    /// Where earlier versions kept the takeover record (restored at start
    /// if present; the record now lives in the state database).
    pub fn takeover_path(&self) -> PathBuf {
        self.state_dir.join("takeover.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_real_hosts() {
        let c = Config::default();
        assert_eq!(c.sysfs_root, PathBuf::from("/sys"));
        assert_eq!(c.channel_dir, PathBuf::from("/tmp/powermonitor"));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn busyness_keys_reach_the_engine_and_bad_ones_are_named() {
        let text = "busyness_target_low = 0.6\nbusyness_target_high = 0.7\nbusyness_cooldown_ms = 60\nbusyness_max_reports_per_second = 50\n";
        let c = Config::from_toml(text, Path::new("t.toml")).unwrap();
        let b = c.busyness();
        assert_eq!((b.low, b.high), (0.6, 0.7));
        assert_eq!(b.cooldown, Duration::from_millis(60));
        assert_eq!(b.max_rate.per_second, 50);
        assert_eq!(Config::default().busyness(), BusyConfig::default());
        for bad in [
            "busyness_target_low = 0.9",
            "busyness_stale_intervals = 0",
            "busyness_interval_min_ms = 0",
            "busyness_report_burst = 0",
        ] {
            let err = Config::from_toml(bad, Path::new("t.toml")).unwrap_err();
            assert!(err.to_string().contains("busyness"), "{bad}: {err}");
        }
    }

    #[test]
    fn file_then_flags() {
        let text = r#"
            channel_dir = "/srv/ch"
            state_dir = "/srv/state"
            [rate_limit]
            burst = 10
            per_second = 20
            [vm.vm1]
            layout = "dpdk-17.11"
            queries = true
            pcpus = [2, 3]
        "#;
        let mut c = Config::from_toml(text, Path::new("t.toml")).unwrap();
        assert_eq!(c.vm["vm1"].layout, Layout::Dpdk1711);
        assert_eq!(c.vm["vm1"].pcpus, vec![2, 3]);
        assert!(c.vm["vm1"].settings().queries_allowed);
        assert_eq!(c.rate_limit.burst, 10);
        let args = Args {
            channel_dir: Some("/x".into()),
            ..Args::default()
        };
        c.apply_args(&args);
        assert_eq!(c.channel_dir, PathBuf::from("/x"));
        assert_eq!(c.state_dir, PathBuf::from("/srv/state"));
    }

    #[test]
    fn errors_name_the_file_and_setting() {
        let err = Config::from_toml("chanel_dir = \"/x\"", Path::new("/etc/v.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/etc/v.toml") && msg.contains("chanel_dir"),
            "{msg}"
        );
        let err = Config::from_toml("[rate_limit]\nburst = 0\nper_second = 1", Path::new("c"))
            .unwrap_err();
        assert!(err.to_string().contains("rate_limit"), "{err}");
        let err = Config::from_toml("[vm.\"a/b\"]", Path::new("c")).unwrap_err();
        assert!(err.to_string().contains("vm.a/b"), "{err}");
        let err = Config::from_toml("[vm.v]\nlayout = \"old\"", Path::new("c")).unwrap_err();
        assert!(err.to_string().contains("layout"), "{err}");
    }

    #[test]
    fn channel_thread_nice_is_a_nice_value() {
        let c = Config::default();
        assert_eq!(c.channel_thread_nice, DEFAULT_CHANNEL_THREAD_NICE);
        let c = Config::from_toml("channel_thread_nice = -20", Path::new("c")).unwrap();
        assert_eq!(c.channel_thread_nice, -20);
        for bad in ["-21", "20"] {
            let err = Config::from_toml(&format!("channel_thread_nice = {bad}"), Path::new("c"))
                .unwrap_err();
            assert!(err.to_string().contains("channel_thread_nice"), "{err}");
        }
    }

    #[test]
    fn busy_poll_is_50_us_by_default_can_be_off_and_is_bounded() {
        let c = Config::default();
        assert_eq!(c.channel_busy_poll(), Duration::from_micros(50));
        let c = Config::from_toml("channel_busy_poll_us = 0", Path::new("c")).unwrap();
        assert_eq!(c.channel_busy_poll(), Duration::ZERO);
        Config::from_toml("channel_busy_poll_us = 1000", Path::new("c")).unwrap();
        let err = Config::from_toml("channel_busy_poll_us = 1001", Path::new("c")).unwrap_err();
        assert!(err.to_string().contains("channel_busy_poll_us"), "{err}");
    }
}

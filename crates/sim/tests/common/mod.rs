//! The real vmpowerd beside the simulator: its `run_with` on a fake sysfs
//! tree whose frequency table is a CPU model's, with a TRAFFIC policy from
//! its policy directory and traffic counters that read a trace at the time
//! the daemon samples them ([`TraceCounters`]).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::{Driver, Khz, SysfsIo};
use vmpower_proto::{MacAddr, TrafficThresholds};
use vmpower_sim::power::CpuModel;
use vmpowerd::config::{Config, VmConfig};
use vmpowerd::traffic::{MacReading, MacSample, SourceKind, TrafficCounters, TrafficError};

/// A MAC's receive counter: a trace's packets (rates per `step`) up to the
/// moment it is read (0 before `start`), so a stalled test thread cannot
/// bunch packets into one sample.
pub struct TraceCounters {
    pub start: Instant,
    pub step: Duration,
    pub rates: Arc<Vec<f64>>,
}

impl TraceCounters {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    fn packets_now(&self) -> u64 {
        let Some(t) = Instant::now().checked_duration_since(self.start) else {
            return 0;
        };
        let dt = self.step.as_secs_f64();
        let full = ((t.as_secs_f64() / dt) as usize).min(self.rates.len());
        let mut sum: f64 = self.rates[..full].iter().sum::<f64>() * dt;
        if let Some(r) = self.rates.get(full) {
            sum += r * (t.as_secs_f64() - full as f64 * dt);
        }
        sum as u64
    }
}

impl TrafficCounters for TraceCounters {
    fn sample(&mut self, macs: &[MacAddr]) -> Result<Vec<MacSample>, TrafficError> {
        let rx_packets = self.packets_now();
        Ok(macs
            .iter()
            .map(|&mac| MacSample {
                mac,
                reading: MacReading::Found {
                    source: SourceKind::Netdev {
                        ifname: "sim0".to_owned(),
                    },
                    rx_packets,
                    drops: None,
                },
            })
            .collect())
    }
}

/// A daemon on a fake host, VM `vm0` on pCPU 1 with a TRAFFIC policy on
/// vCPU 0 (`thresholds`), in a temp dir.
pub struct SimDaemon {
    pub fake: Arc<FakeSysfs>,
    pub config: Config,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl SimDaemon {
    /// The host, not yet running; `adjust` may change the config.
    pub fn new(
        model: &CpuModel,
        thresholds: TrafficThresholds,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::builder(2)
            .driver(Driver::AcpiCpufreq)
            .table(model.khz().into_iter().map(Khz).collect())
            .turbo(false)
            // A busy-polling core under any governor runs at max, where the
            // simulator starts every core.
            .governor("performance")
            .in_dir(dir.path().join("sys"))
            .build()
            .unwrap();
        let mut config = Config {
            sysfs_root: fake.path().to_owned(),
            proc_root: dir.path().join("proc"),
            channel_dir: dir.path().join("channels"),
            state_dir: dir.path().join("state"),
            control_socket: dir.path().join("control.sock"),
            policy_dir: dir.path().join("policies.d"),
            auto_add_vms: false,
            fifos: false,
            traffic_interval_ms: 100,
            ..Config::default()
        };
        config.vm.insert(
            "vm0".to_owned(),
            VmConfig {
                pcpus: vec![1],
                ..VmConfig::default()
            },
        );
        adjust(&mut config);
        std::fs::create_dir_all(&config.channel_dir).unwrap();
        std::fs::create_dir_all(&config.policy_dir).unwrap();
        let mac = MacAddr([0x02, 0, 0, 0, 0, 0]);
        std::fs::write(
            config.policy_dir.join("vm0.toml"),
            format!(
                "vm = \"vm0\"\nkind = \"TRAFFIC\"\ncores = [0]\nmacs = [\"{mac}\"]\n\
                 [traffic]\navg_pps = {}\nmax_pps = {}\n",
                thresholds.avg_pps, thresholds.max_pps
            ),
        )
        .unwrap();
        SimDaemon {
            fake: Arc::new(fake),
            config,
            dir,
            stop: None,
            task: None,
        }
    }

    /// Starts the daemon with `counters` and waits (at most 10 s) for its
    /// control socket to accept.
    pub async fn start(&mut self, counters: Box<dyn TrafficCounters>) {
        let io: Arc<dyn SysfsIo> = self.fake.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(vmpowerd::run::run_with(
            self.config.clone(),
            io,
            Some(counters),
            async {
                let _ = stopped.await;
            },
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&self.config.control_socket).is_err() {
            assert!(!task.is_finished(), "the daemon stopped at start-up");
            assert!(Instant::now() < deadline, "no control socket in 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop = Some(stop);
        self.task = Some(task);
    }

    /// Stops the daemon as SIGTERM would and waits (at most 10 s).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the daemon stops")
                .unwrap()
                .unwrap();
        }
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.config.control_socket.clone()
    }
}

//! The real vmpowerd beside the simulator, on the shared harness's fake
//! host with a CPU model's frequency table, with a TRAFFIC policy from
//! its policy directory and traffic counters that read a trace at the time
//! the daemon samples them ([`TraceCounters`]).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::{Driver, Khz};
use vmpower_proto::{MacAddr, TrafficThresholds};
use vmpower_sim::power::CpuModel;
use vmpower_testkit::{FakeHost, Host, vm};
use vmpowerd::config::Config;
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

/// A daemon on a fake host (the shared harness's [`Host`]) whose
/// frequency table is a CPU model's, VM `vm0` on pCPU 1 with a TRAFFIC
/// policy on vCPU 0 (`thresholds`) from its policy directory.
pub struct SimDaemon {
    pub host: Host,
}

impl SimDaemon {
    /// The host, not yet running; `adjust` may change the config.
    pub fn new(
        model: &CpuModel,
        thresholds: TrafficThresholds,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let builder = FakeSysfs::builder(2)
            .driver(Driver::AcpiCpufreq)
            .table(model.khz().into_iter().map(Khz).collect())
            .turbo(false)
            // A busy-polling core under any governor runs at max, where the
            // simulator starts every core.
            .governor("performance");
        let fake_host = FakeHost::build(builder).unwrap();
        std::fs::create_dir_all(&fake_host.dirs.policies).unwrap();
        let mac = MacAddr([0x02, 0, 0, 0, 0, 0]);
        std::fs::write(
            fake_host.dirs.policies.join("vm0.toml"),
            format!(
                "vm = \"vm0\"\nkind = \"TRAFFIC\"\ncores = [0]\nmacs = [\"{mac}\"]\n\
                 [traffic]\navg_pps = {}\nmax_pps = {}\n",
                thresholds.avg_pps, thresholds.max_pps
            ),
        )
        .unwrap();
        let host = Host::prepare(fake_host, &[("vm0", vm(&[1]))], |config| {
            config.auto_add_vms = false;
            config.fifos = false;
            config.traffic_interval_ms = 100;
            adjust(config);
        });
        SimDaemon { host }
    }

    /// Starts the daemon sampling `counters`; waits for its control
    /// socket.
    pub async fn start(&mut self, counters: Box<dyn TrafficCounters>) {
        self.host.sample(counters);
        self.host.launch().await;
    }

    /// Stops the daemon as SIGTERM would and waits for it.
    pub async fn stop(&mut self) {
        self.host.stop().await.unwrap();
    }

    /// The fake sysfs tree.
    pub fn fake(&self) -> Arc<FakeSysfs> {
        Arc::clone(&self.host.fake)
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.host.config.control_socket.clone()
    }
}

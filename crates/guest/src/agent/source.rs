//! Where the agent's busyness comes from, each interval: DPDK's lcore
//! usage over the application's telemetry socket, or the kernel's per-CPU
//! times; and the rx-missed count from DPDK's ethdev stats.
//!
//! ## Behavior
//! - With a telemetry socket, `/eal/lcore/usage` (DPDK ≥ 23.03) gives busy
//!   and total cycles per lcore; `/eal/lcore/info,N` gives the CPU each
//!   lcore is pinned to (asked once per lcore and connection). In a guest
//!   that CPU is the vCPU index. An lcore allowed on several CPUs cannot
//!   be attributed and is left out.
//! - When lcore usage is not served (`null`: DPDK 22.11; empty: the
//!   application registered no usage callback; no lcore pinned to one
//!   CPU) or the application is not there, busyness comes from `/proc/stat` for every CPU
//!   ([`super::procstat`]). The source in use is in every [`Sample`] and
//!   logged when it changes.
//! - rx-missed is the sum of `imissed` over `/ethdev/list`'s ports; unknown
//!   if any port does not answer.
//! - A telemetry failure (gone, closed, timeout, malformed reply) drops the
//!   connection; reconnecting waits a bounded backoff, with one log line
//!   when the socket goes and one when it comes back.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::deltas::{Counter, CounterDeltas, CpuBusyness};
use super::procstat;
use crate::telemetry::{TelemetryClient, TelemetryError, reply};

/// Where a sample's busyness came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// DPDK's `/eal/lcore/usage` busy cycles.
    DpdkLcoreUsage,
    /// The kernel's per-CPU times in `/proc/stat`.
    ProcStat,
}

impl SourceKind {
    /// A stable name for logs.
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::DpdkLcoreUsage => "DPDK lcore usage (/eal/lcore/usage)",
            SourceKind::ProcStat => "the kernel's CPU times (/proc/stat)",
        }
    }
}

/// One interval's observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Busyness per CPU (empty on a source's first sample).
    pub cpus: Vec<CpuBusyness>,
    /// Total rx-missed packets over the application's ports, if known.
    pub rx_missed: Option<u64>,
    /// Where `cpus` came from.
    pub source: SourceKind,
}

/// How the sampler is set up.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The DPDK application's telemetry socket; `None`: `/proc/stat` only.
    pub telemetry: Option<PathBuf>,
    /// Bound on each telemetry command.
    pub telemetry_timeout: Duration,
    /// The longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// The procfs root (`/proc`).
    pub proc_root: PathBuf,
}

/// The sampler: a telemetry connection when there is one, and the
/// counters' previous values.
#[derive(Debug)]
pub struct Sampler {
    config: SourceConfig,
    client: Option<TelemetryClient>,
    backoff: Backoff,
    /// The CPU of each lcore, for the current connection.
    lcore_cpu: BTreeMap<u32, Option<u32>>,
    lcores: CounterDeltas,
    cpus: CounterDeltas,
    last_source: Option<SourceKind>,
    /// The telemetry socket was reported unavailable (one line until it is back).
    said_gone: bool,
    /// The application last logged as answering (its pid).
    announced: Option<u32>,
    /// The last `/proc/stat` failure logged.
    proc_error: Option<String>,
}

impl Sampler {
    /// A sampler; connects at the first sample.
    pub fn new(config: SourceConfig) -> Sampler {
        let backoff = Backoff::new(Duration::from_millis(100), config.max_backoff);
        Sampler {
            config,
            client: None,
            backoff,
            lcore_cpu: BTreeMap::new(),
            lcores: CounterDeltas::default(),
            cpus: CounterDeltas::default(),
            last_source: None,
            said_gone: false,
            announced: None,
            proc_error: None,
        }
    }

    /// Takes one sample at `now`.
    pub fn sample(&mut self, now: Instant) -> Sample {
        let (lcores, rx_missed) = self.sample_telemetry(now);
        let sample = match lcores {
            Some(cpus) => Sample {
                cpus,
                rx_missed,
                source: SourceKind::DpdkLcoreUsage,
            },
            None => Sample {
                cpus: self.sample_proc_stat(),
                rx_missed,
                source: SourceKind::ProcStat,
            },
        };
        if self.last_source != Some(sample.source) {
            eprintln!(
                "vmpower-guest agent: busyness from {}",
                sample.source.label()
            );
            // The other source's counters are stale by now.
            match sample.source {
                SourceKind::DpdkLcoreUsage => self.cpus.reset(),
                SourceKind::ProcStat => self.lcores.reset(),
            }
            self.last_source = Some(sample.source);
        }
        sample
    }

    fn sample_proc_stat(&mut self) -> Vec<CpuBusyness> {
        match procstat::read(&self.config.proc_root) {
            Ok(counters) => {
                self.proc_error = None;
                self.cpus.update(&counters, Some)
            }
            Err(e) => {
                // Once per distinct failure, not once per interval.
                if self.proc_error.as_ref() != Some(&e) {
                    eprintln!("vmpower-guest agent: {e}");
                    self.proc_error = Some(e);
                }
                Vec::new()
            }
        }
    }

    /// Lcore busyness (`None` when not served) and rx-missed, from the
    /// telemetry socket if there is one and it answers.
    fn sample_telemetry(&mut self, now: Instant) -> (Option<Vec<CpuBusyness>>, Option<u64>) {
        let Some(path) = self.config.telemetry.clone() else {
            return (None, None);
        };
        if self.client.is_none() {
            if !self.backoff.ready(now) {
                return (None, None);
            }
            match TelemetryClient::connect(&path, self.config.telemetry_timeout) {
                Ok(client) => {
                    self.lcore_cpu.clear();
                    self.lcores.reset();
                    self.client = Some(client);
                }
                Err(e) => {
                    self.lost(now, &e);
                    return (None, None);
                }
            }
        }
        match self.query() {
            Ok(result) => {
                // Only a whole sample counts as the socket being back: an
                // application that greets and then answers garbage stays
                // on the backoff (and off the log).
                self.backoff.succeeded();
                let g = self.client.as_ref().expect("queried above").greeting();
                if self.said_gone || self.announced != Some(g.pid) {
                    eprintln!(
                        "vmpower-guest agent: DPDK telemetry at {} answers ({}, pid {})",
                        path.display(),
                        g.version,
                        g.pid
                    );
                    self.said_gone = false;
                    self.announced = Some(g.pid);
                }
                result
            }
            Err(e) => {
                self.client = None;
                self.lost(now, &e);
                (None, None)
            }
        }
    }

    fn lost(&mut self, now: Instant, e: &TelemetryError) {
        let wait = self.backoff.failed(now);
        if !self.said_gone {
            eprintln!(
                "vmpower-guest agent: DPDK telemetry unavailable: {e}; retrying (backoff up to {:?})",
                self.config.max_backoff
            );
            self.said_gone = true;
        } else if !e.is_gone() {
            eprintln!("vmpower-guest agent: {e}; next attempt in {wait:?}");
        }
    }

    fn query(&mut self) -> Result<(Option<Vec<CpuBusyness>>, Option<u64>), TelemetryError> {
        let client = self.client.as_mut().expect("connected above");
        let usage = match client.command("/eal/lcore/usage", None)? {
            None => None,
            Some(v) => {
                let cycles =
                    reply::lcore_usage(&v).map_err(|r| bad(client, "/eal/lcore/usage", r))?;
                (!cycles.is_empty()).then_some(cycles)
            }
        };
        let cpus = match usage {
            None => None,
            Some(cycles) => {
                for c in &cycles {
                    if let Entry::Vacant(slot) = self.lcore_cpu.entry(c.lcore) {
                        slot.insert(lcore_cpu(client, c.lcore)?);
                    }
                }
                let counters: Vec<Counter> = cycles
                    .iter()
                    .map(|c| Counter {
                        key: c.lcore,
                        busy: c.busy,
                        total: c.total,
                    })
                    .collect();
                let map = &self.lcore_cpu;
                let cpu_of = |l: u32| map.get(&l).copied().flatten();
                // No lcore pinned to one CPU: nothing to attribute, as if
                // usage were not served.
                counters
                    .iter()
                    .any(|c| cpu_of(c.key).is_some())
                    .then(|| self.lcores.update(&counters, cpu_of))
            }
        };
        Ok((cpus, rx_missed(client)?))
    }
}

/// The one CPU lcore `lcore` runs on, if it is pinned to one.
fn lcore_cpu(client: &mut TelemetryClient, lcore: u32) -> Result<Option<u32>, TelemetryError> {
    let param = lcore.to_string();
    let Some(v) = client.command("/eal/lcore/info", Some(&param))? else {
        return Ok(None);
    };
    let cpus = reply::lcore_cpus(&v, lcore).map_err(|r| bad(client, "/eal/lcore/info", r))?;
    if cpus.len() != 1 {
        eprintln!(
            "vmpower-guest agent: lcore {lcore} may run on CPUs {cpus:?}: its busyness is not reported"
        );
        return Ok(None);
    }
    Ok(Some(cpus[0]))
}

/// The sum of `imissed` over every port; `None` if a port does not say.
fn rx_missed(client: &mut TelemetryClient) -> Result<Option<u64>, TelemetryError> {
    let Some(v) = client.command("/ethdev/list", None)? else {
        return Ok(None);
    };
    let ports = reply::port_list(&v).map_err(|r| bad(client, "/ethdev/list", r))?;
    let mut sum = 0u64;
    for port in ports {
        let Some(v) = client.command("/ethdev/stats", Some(&port.to_string()))? else {
            return Ok(None);
        };
        let stats = reply::port_stats(&v).map_err(|r| bad(client, "/ethdev/stats", r))?;
        // u64::MAX means "unknown" on the wire.
        sum = sum.saturating_add(stats.imissed).min(u64::MAX - 1);
    }
    Ok(Some(sum))
}

fn bad(client: &TelemetryClient, command: &str, reason: String) -> TelemetryError {
    TelemetryError::BadReply {
        path: client.path().to_owned(),
        command: command.to_owned(),
        reason,
    }
}

//! The command line: `run` (compare controllers on a trace), `gen` (write
//! a generated trace as CSV), `tune` (TRAFFIC thresholds for a trace).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vmpower_proto::TrafficThresholds;
use vmpower_sim::host::SimHost;
use vmpower_sim::packet::PacketParams;
use vmpower_sim::power::CpuModel;
use vmpower_sim::run::{RunOptions, simulate};
use vmpower_sim::scenario::{self, Comparison};
use vmpower_sim::trace::generate::{GenSpec, Generated, Shape};
use vmpower_sim::trace::{Trace, csv};

/// Trace-driven evaluator of vmpower's frequency decisions.
#[derive(Debug, Parser)]
#[command(name = "vmpower-sim", version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare the controllers on a trace.
    Run {
        #[command(flatten)]
        trace: TraceArgs,
        #[command(flatten)]
        model: ModelArgs,
        /// TRAFFIC thresholds for both TRAFFIC controllers, `AVG,MAX` in
        /// packets/s per VM (default: 90 % of min's and medium's capacity).
        #[arg(long, value_parser = parse_thresholds)]
        thresholds: Option<TrafficThresholds>,
        /// The daemon's traffic sampling interval, ms.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Leave the oracle out.
        #[arg(long)]
        no_oracle: bool,
        /// Write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Write a generated trace as CSV (time_ms,vm,pps) to stdout.
    Gen {
        #[command(flatten)]
        trace: GenArgs,
    },
}

#[derive(Debug, clap::Args)]
struct TraceArgs {
    /// A CSV trace (time_ms,vm,pps); else a generated one.
    #[arg(long, conflicts_with = "shape")]
    trace: Option<PathBuf>,
    #[command(flatten)]
    generate: GenArgs,
}

#[derive(Debug, clap::Args)]
struct GenArgs {
    /// Generator: diurnal, onoff, step, flash, mmpp.
    #[arg(long, default_value = "diurnal")]
    shape: Shape,
    /// VMs.
    #[arg(long, default_value_t = 4)]
    vms: usize,
    /// Length, seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Step, ms (at least 10).
    #[arg(long, default_value_t = 10)]
    step_ms: u64,
    /// Peak rate per VM, packets/s.
    #[arg(long, default_value_t = 7e6)]
    peak_pps: f64,
    /// Diurnal period, seconds (default: the trace's length).
    #[arg(long)]
    period_s: Option<u64>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, clap::Args)]
struct ModelArgs {
    /// CPU model: a built-in name (xeon-gold-6230, epyc-7502) or a TOML file.
    #[arg(long, default_value = "xeon-gold-6230")]
    cpu: String,
    /// Use the cube-law fallback instead of the model's table.
    #[arg(long)]
    cube_law: bool,
    /// vCPUs per VM (each on a pCPU of its own).
    #[arg(long, default_value_t = 1)]
    vcpus: usize,
    /// Cycles per packet that scale with frequency.
    #[arg(long, default_value_t = PacketParams::default().cycles_per_packet)]
    cycles_per_packet: f64,
    /// Nanoseconds per packet that do not scale with frequency.
    #[arg(long, default_value_t = PacketParams::default().memory_ns_per_packet)]
    memory_ns: f64,
    /// RX ring descriptors.
    #[arg(long, default_value_t = PacketParams::default().ring_descriptors)]
    ring: u32,
    /// Packets per rx_burst.
    #[arg(long, default_value_t = PacketParams::default().burst)]
    burst: u32,
    /// Frequency transition latency, µs (default: the CPU model's).
    #[arg(long)]
    transition_us: Option<u64>,
}

fn parse_thresholds(s: &str) -> Result<TrafficThresholds, String> {
    let (a, m) = s.split_once(',').ok_or("expected AVG,MAX")?;
    let avg: u32 = a.trim().parse().map_err(|e| format!("AVG: {e}"))?;
    let max: u32 = m.trim().parse().map_err(|e| format!("MAX: {e}"))?;
    if avg > max {
        return Err("AVG must not exceed MAX".to_owned());
    }
    Ok(TrafficThresholds {
        min_pps: 0,
        avg_pps: avg,
        max_pps: max,
    })
}

impl GenArgs {
    fn spec(&self) -> GenSpec {
        let duration = Duration::from_secs(self.seconds);
        let mut spec = GenSpec::new(self.shape, self.vms, duration, self.peak_pps, self.seed);
        spec.step = Duration::from_millis(self.step_ms);
        spec.period = Duration::from_secs(self.period_s.unwrap_or(self.seconds));
        spec
    }
}

impl TraceArgs {
    fn load(&self) -> anyhow::Result<Trace> {
        match &self.trace {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                csv::parse(&text).with_context(|| format!("parsing {}", path.display()))
            }
            None => Ok(Trace::collect(&mut Generated::new(self.generate.spec()))?),
        }
    }
}

impl ModelArgs {
    fn host(&self, vms: Vec<String>) -> anyhow::Result<SimHost> {
        let mut model = CpuModel::load(&self.cpu)?;
        if self.cube_law {
            model = model.cube_law();
        }
        let params = PacketParams {
            cycles_per_packet: self.cycles_per_packet,
            memory_ns_per_packet: self.memory_ns,
            ring_descriptors: self.ring,
            burst: self.burst,
            transition_latency: Duration::from_micros(
                self.transition_us.unwrap_or(model.transition_latency_us),
            ),
        };
        Ok(SimHost::new(model, params, vms, self.vcpus))
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Gen { trace } => {
            let t = Trace::collect(&mut Generated::new(trace.spec()))?;
            print!("{}", csv::write(&t));
            Ok(())
        }
        Command::Run {
            trace,
            model,
            thresholds,
            interval_ms,
            no_oracle,
            json,
        } => {
            let trace = trace.load()?;
            let host = model.host(trace.vms.clone())?;
            let cmp = Comparison {
                thresholds,
                tuned: None,
                interval: Some(Duration::from_millis(interval_ms.max(1))),
                no_oracle,
            };
            let opts = RunOptions::default();
            let mut list = scenario::controllers(&host, &trace, opts.start_wall, &cmp);
            let report = simulate(&host, &mut trace.source(), Some(&trace), &mut list, opts)?;
            print!("{}", vmpower_sim::report::table::render(&report));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
    }
}

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
use vmpower_sim::standard::StandardSpec;
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
        /// Write plots (PNG and SVG) into this directory.
        #[arg(long)]
        plots: Option<PathBuf>,
        /// TTF font for the plots' text.
        #[arg(long, default_value = vmpower_sim::report::plots::DEFAULT_FONT)]
        font: PathBuf,
    },
    /// TRAFFIC thresholds and hysteresis of least energy with zero drops on
    /// the first part of a VM's trace, checked on the rest; prints the
    /// policy file.
    Tune {
        #[command(flatten)]
        trace: TraceArgs,
        #[command(flatten)]
        model: ModelArgs,
        /// The VM to tune (default: the trace's first).
        #[arg(long)]
        vm: Option<String>,
        /// The fraction of the trace to tune on; the rest validates.
        #[arg(long, default_value_t = 0.7)]
        train: f64,
        /// The daemon's traffic sampling interval, ms.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Also write the operator's policy file here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the guest's policy file (vmpower-guest send-policy --file)
        /// instead of the operator's.
        #[arg(long)]
        guest: bool,
    },
    /// The standard trace set: every controller on every generator shape,
    /// TRAFFIC tuned per trace, plots, and docs/energy.md from its template.
    Standard {
        /// Directory for the plots and results.json.
        #[arg(long, default_value = "docs/energy")]
        out_dir: PathBuf,
        /// The Markdown report to write.
        #[arg(long, default_value = "docs/energy.md")]
        doc: PathBuf,
        /// Its template ({{RESULTS}}, {{SENSITIVITY}}, {{SETTINGS}} replaced).
        #[arg(long, default_value = "crates/sim/energy.template.md")]
        template: PathBuf,
        /// VMs per trace.
        #[arg(long, default_value_t = 4)]
        vms: usize,
        /// Seconds per trace.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Skip the sensitivity reruns.
        #[arg(long)]
        no_sensitivity: bool,
        /// The CPU model of the main comparison (a built-in name or a TOML
        /// file); the sensitivity section reruns under every other built-in.
        #[arg(long, default_value = "xeon-gold-6230")]
        cpu: String,
        /// TTF font for the plots' text.
        #[arg(long, default_value = vmpower_sim::report::plots::DEFAULT_FONT)]
        font: PathBuf,
    },
    /// Speed: a streamed diurnal trace through vmpower TRAFFIC (the real
    /// engine), reporting VM-steps per second (median of the runs).
    Bench {
        /// VMs.
        #[arg(long, default_value_t = 64)]
        vms: usize,
        /// Simulated hours.
        #[arg(long, default_value_t = 24.0)]
        hours: f64,
        /// Step, ms.
        #[arg(long, default_value_t = 10)]
        step_ms: u64,
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
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
    #[arg(long, conflicts_with = "pcap")]
    trace: Option<PathBuf>,
    /// Packet captures (pcap or pcapng), one VM each, counted per
    /// --step-ms from their timestamps.
    #[arg(long, num_args = 1..)]
    pcap: Vec<PathBuf>,
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
    /// CPU model: a built-in name (xeon-gold-6230, epyc-7502, rk3399-a72,
    /// rk3588-a76) or a TOML file.
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
        if !self.pcap.is_empty() {
            let step = Duration::from_millis(self.generate.step_ms);
            return Ok(vmpower_sim::trace::pcap::read(&self.pcap, step)?);
        }
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
        Command::Tune {
            trace,
            model,
            vm,
            train,
            interval_ms,
            out,
            guest,
        } => tune(
            &trace,
            &model,
            vm.as_deref(),
            train,
            interval_ms,
            out.as_deref(),
            guest,
        ),
        Command::Standard {
            out_dir,
            doc,
            template,
            vms,
            seconds,
            seed,
            no_sensitivity,
            cpu,
            font,
        } => standard(
            &out_dir,
            &doc,
            &template,
            StandardSpec {
                vms,
                seconds,
                seed,
                cpu,
                ..StandardSpec::default()
            },
            no_sensitivity,
            &font,
        ),
        Command::Bench {
            vms,
            hours,
            step_ms,
            runs,
        } => bench(vms, hours, step_ms, runs),
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
            plots,
            font,
        } => {
            let trace_name = trace
                .trace
                .as_ref()
                .or(trace.pcap.first())
                .map(|p| p.display().to_string());
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
            if let Some(dir) = plots {
                vmpower_sim::report::plots::load_font(&font)?;
                let written = vmpower_sim::report::plots::write_all(
                    &dir,
                    "run",
                    &report,
                    "offered rate, VM 0",
                )?;
                for p in written {
                    eprintln!("wrote {}", p.display());
                }
                let source = trace_name.as_deref().unwrap_or("generated trace");
                let page = vmpower_sim::report::markdown::one_page(&report, "run", source);
                let path = dir.join("report.md");
                std::fs::write(&path, page)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}

fn bench(vms: usize, hours: f64, step_ms: u64, runs: usize) -> anyhow::Result<()> {
    use vmpower_sim::controller::Controller;
    use vmpower_sim::controller::engine::{DEFAULT_INTERVAL, EnginePolicies, VmPolicy};

    let duration = Duration::from_secs_f64(hours * 3600.0);
    let mut spec = GenSpec::new(Shape::Diurnal, vms, duration, 7e6, 1);
    spec.step = Duration::from_millis(step_ms);
    spec.period = duration;
    let names: Vec<String> = (0..vms).map(|i| format!("vm{i}")).collect();
    let host = SimHost::new(
        CpuModel::load("xeon-gold-6230")?,
        PacketParams::default(),
        names,
        1,
    );
    let t = scenario::default_thresholds(&host);
    let mut rates = Vec::new();
    for run in 0..runs.max(1) {
        let mut source = Generated::new(spec.clone());
        let mut list: Vec<Box<dyn Controller>> = vec![Box::new(EnginePolicies::new(
            "vmpower TRAFFIC",
            vec![VmPolicy::Traffic(t, None); vms],
            DEFAULT_INTERVAL,
        ))];
        let report = simulate(&host, &mut source, None, &mut list, RunOptions::default())?;
        #[allow(clippy::cast_precision_loss)]
        let vm_steps = (report.steps * vms) as f64;
        let rate = vm_steps / report.elapsed_s;
        eprintln!(
            "run {}: {} VMs x {} steps in {:.2} s: {:.3e} VM-steps/s (transitions {})",
            run + 1,
            vms,
            report.steps,
            report.elapsed_s,
            rate,
            report.results[0].transitions
        );
        rates.push((report.elapsed_s, rate));
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (secs, rate) = rates[rates.len() / 2];
    println!("median: {secs:.2} s, {rate:.3e} VM-steps/s");
    Ok(())
}

fn standard(
    out_dir: &std::path::Path,
    doc: &std::path::Path,
    template: &std::path::Path,
    spec: StandardSpec,
    no_sensitivity: bool,
    font: &std::path::Path,
) -> anyhow::Result<()> {
    use vmpower_sim::standard;

    let template = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let model = CpuModel::load(&spec.cpu)?;
    let main = standard::run_set(&spec, &model, standard::default_params(&model))?;
    vmpower_sim::report::plots::load_font(font)?;
    let prefix = format!(
        "{}/",
        out_dir
            .file_name()
            .map_or("energy".into(), |n| n.to_string_lossy())
    );
    let results = standard::markdown(&main, out_dir, &prefix, true)?;
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&main)?,
    )?;
    let sens = if no_sensitivity {
        String::new()
    } else {
        standard::sensitivity(
            &spec,
            &model,
            &main,
            &standard::sensitivity_models(&spec.cpu)?,
        )?
    };
    let settings = format!(
        "{} VMs x 1 vCPU per trace; each shape {} s at 10 ms, and diurnal-day 24 h at 1 s; peak {:.0} Mpps per VM, seed {}, CPU model {}; TRAFFIC tuned on vm0 of a training trace of the same case drawn with seed {}",
        spec.vms,
        spec.seconds,
        spec.peak_pps / 1e6,
        spec.seed,
        model.name,
        spec.seed + 1000
    );
    let text = template
        .replace("{{SETTINGS}}", &settings)
        .replace("{{RESULTS}}", &results)
        .replace("{{BUSYNESS}}", &standard::busyness_section(&main))
        .replace("{{SENSITIVITY}}", &sens);
    std::fs::write(doc, text).with_context(|| format!("writing {}", doc.display()))?;
    eprintln!("wrote {} and {}", doc.display(), out_dir.display());
    Ok(())
}

/// `tune`: the search on the first part of one VM's trace, the comparison
/// on the rest (on stderr), the policy file (on stdout and in `out`).
fn tune(
    trace: &TraceArgs,
    model: &ModelArgs,
    vm: Option<&str>,
    train: f64,
    interval_ms: u64,
    out: Option<&std::path::Path>,
    guest: bool,
) -> anyhow::Result<()> {
    let trace = trace.load()?;
    let index = match &vm {
        Some(name) => trace
            .vms
            .iter()
            .position(|v| v == name)
            .ok_or_else(|| anyhow::anyhow!("no VM {name:?} in the trace"))?,
        None => 0,
    };
    let one = Trace::new(
        trace.step,
        vec![trace.vms[index].clone()],
        vec![trace.rates[index].clone()],
    )?;
    let host = model.host(one.vms.clone())?;
    let (fit, check) = one.split(train);
    let interval = Duration::from_millis(interval_ms.max(1));
    let (best, tried, unavoidable) = vmpower_sim::tune::search(&host, &fit, interval)?;
    let cmp = Comparison {
        thresholds: None,
        tuned: Some((best.thresholds(), best.hysteresis())),
        interval: Some(interval),
        no_oracle: false,
    };
    let opts = RunOptions::default();
    let mut list = scenario::controllers(&host, &check, opts.start_wall, &cmp);
    let report = simulate(&host, &mut check.source(), Some(&check), &mut list, opts)?;
    eprintln!(
        "tuned on {:.0} s ({} candidates): avg {} max {} band {} dwell {} ms, {:.1} J, {:.0} dropped",
        fit.duration().as_secs_f64(),
        tried,
        best.avg_pps,
        best.max_pps,
        best.band,
        best.dwell_ms,
        best.energy_j,
        best.dropped
    );
    eprintln!("held-out {:.0} s:", check.duration().as_secs_f64());
    eprint!("{}", vmpower_sim::report::table::render(&report));
    let tuned = report
        .results
        .iter()
        .find(|r| r.controller.ends_with("tuned"));
    let note = format!(
        "tuned by vmpower-sim on {:.0} s of {}'s trace: no drop beyond static max's there{}; held-out {:.0} s: {}",
        fit.duration().as_secs_f64(),
        one.vms[0],
        if best.dropped > unavoidable + 0.5 {
            " NOT reached"
        } else {
            ""
        },
        check.duration().as_secs_f64(),
        tuned.map_or(String::new(), |r| format!(
            "{:.1} % of static max, {:.0} packets dropped",
            r.energy_pct_of_static_max, r.dropped
        ))
    );
    let file = vmpower_sim::tune::operator_policy_file(&one.vms[0], host.vcpus, &best, &note);
    if let Some(path) = out {
        std::fs::write(path, &file).with_context(|| format!("writing {}", path.display()))?;
    }
    if guest {
        print!(
            "{}",
            vmpower_sim::tune::guest_policy_file(host.vcpus, &best)
        );
    } else {
        print!("{file}");
    }
    Ok(())
}

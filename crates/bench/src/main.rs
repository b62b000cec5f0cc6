//! `vmpower-bench`: the benchmarks of issue 3 against the real `vmpowerd`
//! binary on a fake host (fake sysfs tree under /dev/shm, empty /proc),
//! with the bench playing QEMU and the guests.
//!
//! Build both first: `cargo build --release -p vmpowerd -p vmpower-bench`,
//! then e.g. `target/release/vmpower-bench latency`. Figures are reported,
//! never asserted: the exit code is 0 whether targets are met or not, and
//! non-zero only when the harness itself failed.

mod guest;
mod host;
mod load;
mod plain;
mod probe;
mod report;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use host::{DaemonOptions, RateLimitSetting};
use report::{Report, summarize};
use scenario::Ctx;

/// Benchmarks of vmpowerd (issue 3); see BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "vmpower-bench", version)]
struct Cli {
    /// The daemon binary.
    #[arg(long, value_name = "PATH", default_value = "target/release/vmpowerd")]
    vmpowerd: PathBuf,
    /// Small sizes and short windows, for smoke runs.
    #[arg(long)]
    quick: bool,
    /// Runs of the scenario (each on a fresh host); medians are printed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Host CPUs of the fake sysfs tree (acpi-cpufreq with turbo).
    #[arg(long, default_value_t = 8)]
    cpus: u32,
    /// Write the daemon's log here (default: discarded).
    #[arg(long, value_name = "FILE")]
    daemon_log: Option<PathBuf>,
    /// The daemon's `--log` filter (default: the daemon's, info).
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
    /// The daemon's `channel_busy_poll_us` (default: the daemon's, off).
    #[arg(long, value_name = "US")]
    busy_poll_us: Option<u64>,
    /// The daemon's `channel_thread_nice` (default: the daemon's).
    #[arg(long, value_name = "NICE", allow_hyphen_values = true)]
    channel_thread_nice: Option<i32>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// 1. Idle cost: CPU time of many connected, silent channels.
    Idle {
        /// VMs, one channel each [1024; quick 64].
        #[arg(long)]
        vms: Option<usize>,
        /// Measured window in seconds [60; quick 2].
        #[arg(long)]
        seconds: Option<f64>,
    },
    /// 2. Request latency: round trips that each write sysfs.
    Latency {
        /// Timed round trips [20000; quick 500].
        #[arg(long)]
        requests: Option<usize>,
        /// Untimed round trips first [1000; quick 50].
        #[arg(long)]
        warmup: Option<usize>,
        /// How the guest (and the echo baselines' guest) waits for a reply.
        #[arg(long, value_enum, default_value_t = guest::GuestWait::Read)]
        guest_wait: guest::GuestWait,
    },
    /// 3. Throughput of flooding channels, and a plain reader's.
    Throughput {
        /// Flooding VMs, one channel each [64; quick 8].
        #[arg(long)]
        vms: Option<usize>,
        /// Measured window in seconds, per reader [10; quick 1].
        #[arg(long)]
        seconds: Option<f64>,
        /// Records per write.
        #[arg(long, default_value_t = 128)]
        batch: usize,
    },
    /// 4. Flood isolation: a guest's latency while another floods.
    Isolation {
        /// Timed round trips of the measured guest per phase [5000; quick 200].
        #[arg(long)]
        requests: Option<usize>,
        /// Its pace in µs (stays within the default rate limit) [2000; quick 1000].
        #[arg(long)]
        interval_us: Option<u64>,
        /// Rate-limit settings to run.
        #[arg(long, value_enum, default_value_t = Limits::Both)]
        rate_limit: Limits,
        /// Records per write of the flood.
        #[arg(long, default_value_t = 128)]
        batch: usize,
    },
    /// 5. Memory with many VMs × channels connected.
    Memory {
        /// VMs [1024; quick 32].
        #[arg(long)]
        vms: Option<usize>,
        /// Channels per VM.
        #[arg(long, default_value_t = 8)]
        channels: u32,
    },
    /// Policies 2 (issue 4): reaction of a TRAFFIC policy to real packets.
    Reaction {
        /// Upward crossings per interval [30; quick 3].
        #[arg(long)]
        crossings: Option<usize>,
        /// Sampling intervals in ms, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,10")]
        intervals_ms: Vec<u64>,
    },
    /// Policies 3 (issue 4): daemon CPU with many TRAFFIC policies.
    TrafficCpu {
        /// VMs, one TRAFFIC policy each [1024; quick 32].
        #[arg(long)]
        vms: Option<usize>,
        /// veth pairs (VM i uses pair i mod pairs) [1024; quick 32].
        #[arg(long)]
        pairs: Option<usize>,
        /// Sampling interval in ms.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Measured window in seconds [60; quick 2].
        #[arg(long)]
        seconds: Option<f64>,
        /// Steady packets per second on pair 0.
        #[arg(long, default_value_t = 2_000)]
        pps: u64,
    },
    /// Issue 13: reply time on DPDK's wire (first touches, steady
    /// CPU_POWER, policy set, CPU_POWER after REMOVE, QUERY_FREQ_LIST),
    /// idle host then every CPU busy.
    DpdkReply {
        /// VMs of 2 vCPUs, on twice as many host CPUs [128; quick 4].
        #[arg(long)]
        vms: Option<usize>,
        /// Fresh hosts per phase (each gives 2 first touches per VM) [4; quick 1].
        #[arg(long)]
        rounds: Option<usize>,
        /// Steady CPU_POWER per VM per round [24; quick 4].
        #[arg(long)]
        steady: Option<usize>,
        /// QUERY_FREQ_LIST per VM per round [8; quick 2].
        #[arg(long)]
        queries: Option<usize>,
        /// Policy cycles (LOW, TIME, REMOVE + CPU_POWER) per VM per round [2; quick 1].
        #[arg(long)]
        cycles: Option<usize>,
        /// Timed round trips of each echo baseline per phase [5000; quick 100].
        #[arg(long)]
        echo: Option<usize>,
        /// How the guest waits for each reply.
        #[arg(long, value_enum, default_value_t = guest::GuestWait::Poll)]
        guest_wait: guest::GuestWait,
        /// Which phases to run.
        #[arg(long, value_enum, default_value_t = scenario::dpdk_reply::Phases::Both)]
        phases: scenario::dpdk_reply::Phases,
        /// Seconds to wait after the daemon connected every channel [1; quick 0.1].
        #[arg(long)]
        settle: Option<f64>,
        /// Nice value of the guest thread (diagnosis; default unchanged).
        #[arg(long, value_name = "NICE", allow_hyphen_values = true)]
        guest_nice: Option<i32>,
    },
    /// Issue 15: a busyness step (a saturated report) reaching sysfs.
    BusynessReaction {
        /// Steps timed [50; quick 5].
        #[arg(long)]
        steps: Option<usize>,
        /// The guest's report interval in ms.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
    },
    /// Issue 15: daemon CPU with many VMs reporting busyness.
    BusynessCost {
        /// VMs, each reporting [1024; quick 64].
        #[arg(long)]
        vms: Option<usize>,
        /// Each VM's report interval in ms.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Measured window in seconds [60; quick 3].
        #[arg(long)]
        seconds: Option<f64>,
    },
    /// (internal) The baselines: read and discard, or echo.
    #[command(hide = true)]
    PlainReader {
        /// Directory of the sockets `vm<i>.0`.
        #[arg(long)]
        dir: PathBuf,
        /// How many.
        #[arg(long)]
        count: usize,
        /// Echo each record instead of discarding.
        #[arg(long)]
        echo: bool,
        /// Echo with plain blocking threads instead of tokio.
        #[arg(long)]
        blocking: bool,
    },
}

/// Which rate-limit settings the isolation benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Limits {
    /// The daemon's default.
    Default,
    /// No limit.
    Off,
    /// Default, then off.
    Both,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmpower-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if let Scenario::PlainReader {
        dir,
        count,
        echo,
        blocking,
    } = &cli.scenario
    {
        return plain::run(dir, *count, *echo, *blocking);
    }
    let ctx = Ctx {
        daemon: DaemonOptions {
            binary: cli.vmpowerd.clone(),
            log_file: cli.daemon_log.clone(),
            log_filter: cli.log.clone(),
            busy_poll_us: cli.busy_poll_us,
            channel_thread_nice: cli.channel_thread_nice,
        },
        cpus: cli.cpus,
        quick: cli.quick,
    };
    let mut runs = Vec::new();
    for i in 0..cli.repeat {
        let report = run_once(&ctx, &cli.scenario)?;
        if !cli.json {
            println!("== run {} of {}", i + 1, cli.repeat);
            print!("{}", report.table());
        }
        runs.push(report);
    }
    let summary = if runs.len() > 1 {
        Some(summarize(&runs))
    } else {
        None
    };
    if cli.json {
        let all: Vec<_> = runs.iter().map(Report::json).collect();
        let out = serde_json::json!({
            "runs": all,
            "summary": summary.as_ref().map(Report::json),
        });
        println!("{out}");
    } else if let Some(s) = summary {
        println!("== summary");
        print!("{}", s.table());
    }
    Ok(())
}

fn run_once(ctx: &Ctx, scenario: &Scenario) -> anyhow::Result<Report> {
    use scenario::*;
    match scenario {
        Scenario::Idle { vms, seconds } => idle::run(
            ctx,
            idle::IdleArgs {
                vms: ctx.pick(*vms, 1024, 64),
                seconds: ctx.pick(*seconds, 60.0, 2.0),
                settle: ctx.pick(None, 3.0, 0.5),
            },
        ),
        Scenario::Latency {
            requests,
            warmup,
            guest_wait,
        } => latency::run(
            ctx,
            latency::LatencyArgs {
                requests: ctx.pick(*requests, 20_000, 500),
                warmup: ctx.pick(*warmup, 1000, 50),
                wait: *guest_wait,
            },
        ),
        Scenario::Throughput {
            vms,
            seconds,
            batch,
        } => throughput::run(
            ctx,
            throughput::ThroughputArgs {
                vms: ctx.pick(*vms, 64, 8),
                seconds: ctx.pick(*seconds, 10.0, 1.0),
                batch: *batch,
            },
        ),
        Scenario::Isolation {
            requests,
            interval_us,
            rate_limit,
            batch,
        } => isolation::run(
            ctx,
            &isolation::IsolationArgs {
                requests: ctx.pick(*requests, 5000, 200),
                warmup: ctx.pick(None, 200, 20),
                interval: Duration::from_micros(ctx.pick(*interval_us, 2000, 1000)),
                batch: *batch,
                limits: match rate_limit {
                    Limits::Default => vec![RateLimitSetting::Default],
                    Limits::Off => vec![RateLimitSetting::Off],
                    Limits::Both => vec![RateLimitSetting::Default, RateLimitSetting::Off],
                },
            },
        ),
        Scenario::Memory { vms, channels } => memory::run(
            ctx,
            memory::MemoryArgs {
                vms: ctx.pick(*vms, 1024, 32),
                channels: *channels,
                settle: ctx.pick(None, 3.0, 0.5),
            },
        ),
        Scenario::BusynessReaction { steps, interval_ms } => busyness::reaction(
            ctx,
            busyness::ReactionArgs {
                steps: ctx.pick(*steps, 50, 5),
                interval: Duration::from_millis(*interval_ms),
            },
        ),
        Scenario::BusynessCost {
            vms,
            interval_ms,
            seconds,
        } => busyness::cost(
            ctx,
            busyness::CostArgs {
                vms: ctx.pick(*vms, 1024, 64),
                interval: Duration::from_millis(*interval_ms),
                seconds: ctx.pick(*seconds, 60.0, 3.0),
            },
        ),
        Scenario::Reaction {
            crossings,
            intervals_ms,
        } => reaction::run(
            ctx,
            &reaction::ReactionArgs {
                crossings: ctx.pick(*crossings, 30, 3),
                intervals_ms: intervals_ms.clone(),
                low: Duration::from_millis(1_000),
                high: Duration::from_millis(300),
            },
        ),
        Scenario::TrafficCpu {
            vms,
            pairs,
            interval_ms,
            seconds,
            pps,
        } => traffic_cpu::run(
            ctx,
            traffic_cpu::TrafficCpuArgs {
                vms: ctx.pick(*vms, 1024, 32),
                pairs: ctx.pick(*pairs, 1024, 32),
                interval_ms: *interval_ms,
                seconds: ctx.pick(*seconds, 60.0, 2.0),
                pps: *pps,
            },
        ),
        Scenario::DpdkReply {
            vms,
            rounds,
            steady,
            queries,
            cycles,
            echo,
            guest_wait,
            phases,
            guest_nice,
            settle,
        } => dpdk_reply::run(
            ctx,
            dpdk_reply::DpdkReplyArgs {
                vms: ctx.pick(*vms, 128, 4),
                rounds: ctx.pick(*rounds, 4, 1),
                steady: ctx.pick(*steady, 24, 4),
                queries: ctx.pick(*queries, 8, 2),
                cycles: ctx.pick(*cycles, 2, 1),
                echo: ctx.pick(*echo, 5000, 100),
                wait: *guest_wait,
                phases: *phases,
                guest_nice: *guest_nice,
                settle: Duration::from_secs_f64(ctx.pick(*settle, 1.0, 0.1)),
            },
        ),
        Scenario::PlainReader { .. } => anyhow::bail!("plain-reader is not a benchmark"),
    }
}

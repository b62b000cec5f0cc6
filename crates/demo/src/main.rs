//! `vmpower-demo`: see vmpower work in a minute, unprivileged, with nothing
//! installed. A simulated host (fake sysfs tree in a temporary directory),
//! the real daemon in-process on it, simulated guests speaking the real
//! protocol over real unix sockets, a live view, and a summary.
//!
//! ```text
//! cargo run --release -p vmpower-demo -- [--duration 30s] [--vms 3] [--cpus 8] [--short]
//!                                         [--traffic auto|veth|synthetic]
//! ```
//!
//! As root with iproute2, the traffic VMs' packets are real (a veth pair
//! each, see [`feed`]); otherwise their counters are synthetic. The view
//! and the summary say which.
//!
//! Exit status: 0 when the host was restored and the temporary directory
//! removed, 1 otherwise (the summary says what is left).

mod feed;
mod guests;
mod host;
mod run;
mod sample;
mod scenario;
mod summary;
mod veth;
mod view;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "vmpower-demo",
    version,
    about = "vmpower on a simulated host: the real daemon, simulated guests, a live view"
)]
struct Args {
    /// How long to run (e.g. 30s, 2m, 500ms); Ctrl-C ends earlier.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Simulated VMs; roles rotate: traffic, time, direct.
    #[arg(long, default_value_t = 3)]
    vms: u32,
    /// CPUs of the simulated host (cpu0 stays with the host).
    #[arg(long, default_value_t = 8)]
    cpus: u32,
    /// A short run for CI (6 s unless --duration), without the live view.
    #[arg(long)]
    short: bool,
    /// Traffic for the TRAFFIC policies: real packets on a veth pair per
    /// traffic VM (needs root and iproute2), synthetic counters, or real
    /// when possible.
    #[arg(long, value_enum, default_value_t = feed::TrafficChoice::Auto)]
    traffic: feed::TrafficChoice,
}

/// `30s`, `2m`, `500ms` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, "s"), |i| t.split_at(i));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        other => return Err(format!("unknown unit {other:?} in {text:?} (ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = run::Options {
        duration: args.duration.unwrap_or(if args.short {
            Duration::from_secs(6)
        } else {
            Duration::from_secs(30)
        }),
        vms: args.vms,
        cpus: args.cpus,
        live: !args.short && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        traffic: args.traffic,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vmpower-demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(options)) {
        Ok(summary) => {
            print!("{}", summary.render());
            if summary.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("vmpower-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("s").is_err());
    }
}

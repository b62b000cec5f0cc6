//! `vmpower-guest agent`: the options of the long-running busyness
//! reporter and the glue from them to [`vmpower_guest::agent::run`].

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::json;
use vmpower_guest::agent::{self, AgentConfig, AgentError, SourceConfig};
use vmpower_guest::busyness::{MAX_INTERVAL, MIN_INTERVAL};
use vmpower_guest::telemetry::{DEFAULT_PREFIX, DEFAULT_RUNTIME_DIR, socket_path};

use super::output::{CmdError, Done};
use super::session::Session;

/// The agent's page text (`vmpower-guest agent --help`, its man page).
pub const LONG_ABOUT: &str = "Report per-vCPU busyness to the host every interval, until stopped.\n\n\
Busyness comes from the DPDK application's telemetry socket (/eal/lcore/usage, DPDK 23.03 \
and later; the CPU of each lcore from /eal/lcore/info). When the application does not serve \
lcore usage (DPDK 22.11, no usage callback registered, no lcore pinned to one CPU) or is not running, it comes from the \
kernel's per-CPU times in /proc/stat, where a DPDK poll loop reads as fully busy (the host then \
keeps its CPUs fast). The rx-missed count is summed over the application's ports \
(/ethdev/stats). The telemetry socket may go and come back (an application restart): the agent \
keeps reporting, retries with a bounded backoff and logs each change on stderr.\n\n\
The host must grant vmpower's native contract v2 to the HELLO the agent sends; DPDK's host or \
an older vmpowerd ends the agent with exit status 4. Applications that are not DPDK report \
their own busyness with the guest library's BusynessReporter instead.";

/// The agent's options.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// How often to report: a number of milliseconds, or with a unit
    /// (`100ms`, `0.5s`); 10 ms to 60 s.
    #[arg(long, default_value = "100ms", value_parser = parse_interval)]
    pub interval: Duration,
    /// Where busyness comes from.
    #[arg(long, value_enum, default_value_t = SourceArg::Dpdk)]
    pub source: SourceArg,
    /// The DPDK application's --file-prefix (its telemetry socket is
    /// `<dpdk-runtime-dir>/<prefix>/dpdk_telemetry.v2`).
    #[arg(long, default_value = DEFAULT_PREFIX)]
    pub dpdk_prefix: String,
    /// DPDK's runtime directory (root's; DPDK uses $RUNTIME_DIRECTORY or
    /// $XDG_RUNTIME_DIR for other users).
    #[arg(long, default_value = DEFAULT_RUNTIME_DIR)]
    pub dpdk_runtime_dir: PathBuf,
    /// The telemetry socket itself (overrides --dpdk-prefix and
    /// --dpdk-runtime-dir).
    #[arg(long)]
    pub telemetry_socket: Option<PathBuf>,
    /// procfs root (/proc/stat is the fallback source).
    #[arg(long, default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Open the channel again (and renegotiate the contract) this often,
    /// in seconds: a host that reconnected drops reports until then.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    pub renegotiate: Duration,
    /// The longest wait between attempts to reach the telemetry socket or
    /// the host again, in seconds.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub max_backoff: Duration,
}

/// The busyness sources, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// DPDK's lcore usage over its telemetry socket, else /proc/stat.
    Dpdk,
    /// The kernel's per-CPU times only.
    ProcStat,
}

impl AgentArgs {
    /// The agent's configuration.
    pub fn config(&self) -> AgentConfig {
        let telemetry = match self.source {
            SourceArg::ProcStat => None,
            SourceArg::Dpdk => Some(
                self.telemetry_socket
                    .clone()
                    .unwrap_or_else(|| socket_path(&self.dpdk_runtime_dir, &self.dpdk_prefix)),
            ),
        };
        AgentConfig {
            interval: self.interval,
            renegotiate: self.renegotiate,
            source: SourceConfig {
                telemetry,
                // A reply later than this would delay the next report.
                telemetry_timeout: self
                    .interval
                    .clamp(Duration::from_millis(50), Duration::from_secs(1)),
                max_backoff: self.max_backoff,
                proc_root: self.proc_root.clone(),
            },
        }
    }
}

/// Runs the agent with `session`'s channel options until `stop`.
pub fn run(session: &Session, args: &AgentArgs, stop: &Receiver<()>) -> Result<Done, CmdError> {
    let stats = agent::run(&args.config(), || session.open(), stop).map_err(|e| match e {
        AgentError::Open(e) => CmdError::Channel(e),
        AgentError::Reporter(e) => CmdError::Reporter(e),
    })?;
    Ok(Done {
        text: format!(
            "agent stopped: {} reports sent, {} failed, {} empty samples, channel opened {} times\n",
            stats.sent, stats.failed, stats.empty, stats.opened
        ),
        json: json!({
            "sent": stats.sent, "failed": stats.failed, "empty": stats.empty, "opened": stats.opened
        }),
    })
}

/// Parses `100`, `100ms`, `0.5s` into an interval within the bounds.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1e-3)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an interval (e.g. 100ms, 0.5s)"))?;
    let secs = value * scale;
    if !(MIN_INTERVAL.as_secs_f64()..=MAX_INTERVAL.as_secs_f64()).contains(&secs) {
        return Err(format!(
            "{text:?}: the interval must be within 10ms and 60s"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a number of seconds above 0 and at most a day.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{text:?}: must be above 0 and at most 86400 s"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_with_and_without_units() {
        let ms = Duration::from_millis;
        assert_eq!(parse_interval("100"), Ok(ms(100)));
        assert_eq!(parse_interval("20ms"), Ok(ms(20)));
        assert_eq!(parse_interval("0.5s"), Ok(ms(500)));
        assert_eq!(parse_interval("60s"), Ok(Duration::from_secs(60)));
        for bad in ["9ms", "61s", "0", "-5", "NaN", "fast", ""] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}

//! The command line of `vmpower-guest`, shared by one-shot use and the
//! interactive shell: DPDK guest_cli's commands as subcommands.

pub mod agent;
pub mod output;
pub mod policy;
pub mod session;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use vmpower_guest::QueryTarget;
use vmpower_proto::{Layout, ScalingUnit};

pub use agent::AgentArgs;
pub use policy::PolicyArgs;

/// Ask the host for CPU frequency changes, hand it a power policy, or
/// query frequencies, over a vmpower / DPDK vm_power_manager power channel.
#[derive(Debug, Parser)]
#[command(name = "vmpower-guest", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 done; 1 the host could not be reached (no answer, I/O error); \
2 usage or invalid request (nothing sent); 3 no such port; 4 refused by the host (NACK); \
5 the host's reply did not fit the request."
)]
pub struct Cli {
    /// Power channel index: the N of virtio.serial.port.poweragent.N.
    #[arg(
        long,
        short = 'c',
        global = true,
        default_value_t = 0,
        env = "VMPOWER_CHANNEL"
    )]
    pub channel: u32,
    /// Use this port instead of looking the channel up (a virtio port, a pty,
    /// or a unix socket to connect to).
    #[arg(long, global = true, env = "VMPOWER_PORT")]
    pub port: Option<PathBuf>,
    /// Device directory where the port is looked up.
    #[arg(long, global = true, default_value = "/dev")]
    pub dev_root: PathBuf,
    /// sysfs root (virtio port names, network interfaces).
    #[arg(long, global = true, default_value = "/sys")]
    pub sys_root: PathBuf,
    /// Byte layout the host expects on this channel.
    #[arg(long, global = true, value_enum, default_value_t = LayoutArg::Current)]
    pub layout: LayoutArg,
    /// How long to wait for the host, in seconds (e.g. 2 or 0.5).
    #[arg(long, global = true, default_value = "5", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// The VM name put in every packet (DPDK's host finds policies by it;
    /// vmpowerd knows the VM by its channel and only logs it).
    #[arg(long, global = true, default_value = "")]
    pub vm_name: String,
    /// Print results and errors as one JSON object per command (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The channel layouts, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// DPDK 18.x and later (464-byte packets).
    Current,
    /// DPDK 17.11 (456-byte packets, no core_type, no BRANCH_RATIO).
    #[value(name = "dpdk-17.11", alias = "dpdk1711")]
    Dpdk1711,
}

impl From<LayoutArg> for Layout {
    fn from(arg: LayoutArg) -> Layout {
        match arg {
            LayoutArg::Current => Layout::Current,
            LayoutArg::Dpdk1711 => Layout::Dpdk1711,
        }
    }
}

/// The subcommands (DPDK guest_cli's commands).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scale one vCPU: up, down, min, max, enable-turbo, disable-turbo.
    SetCpuFreq {
        /// The vCPU.
        vcpu: u64,
        /// The change.
        action: FreqAction,
    },
    /// Send a power policy (with no option: DPDK guest_cli's example profile).
    SendPolicy(PolicyArgs),
    /// Remove this VM's policy.
    RemovePolicy,
    /// Current frequency of one vCPU, or of all.
    QueryCpuFreq {
        /// A vCPU number or "all".
        #[arg(value_parser = parse_target)]
        target: QueryTarget,
    },
    /// Turbo and priority capabilities of one vCPU, or of all.
    QueryCpuCaps {
        /// A vCPU number or "all".
        #[arg(value_parser = parse_target)]
        target: QueryTarget,
    },
    /// Report per-vCPU busyness to the host every interval, until stopped
    /// (DPDK telemetry or /proc/stat; needs vmpower's native contract v2).
    #[command(long_about = agent::LONG_ABOUT)]
    Agent(AgentArgs),
    /// Interactive shell (prompt `vm_power(guest)>`), with line editing and history.
    Shell {
        /// Load and save the shell history in this file.
        #[arg(long)]
        history: Option<PathBuf>,
    },
}

/// The frequency changes of `set-cpu-freq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FreqAction {
    /// One step up.
    Up,
    /// One step down.
    Down,
    /// The lowest frequency.
    Min,
    /// The highest allowed frequency.
    Max,
    /// Allow turbo.
    EnableTurbo,
    /// Forbid turbo.
    DisableTurbo,
}

impl From<FreqAction> for ScalingUnit {
    fn from(action: FreqAction) -> ScalingUnit {
        match action {
            FreqAction::Up => ScalingUnit::ScaleUp,
            FreqAction::Down => ScalingUnit::ScaleDown,
            FreqAction::Min => ScalingUnit::ScaleMin,
            FreqAction::Max => ScalingUnit::ScaleMax,
            FreqAction::EnableTurbo => ScalingUnit::EnableTurbo,
            FreqAction::DisableTurbo => ScalingUnit::DisableTurbo,
        }
    }
}

/// Parses `VCPU|all`.
fn parse_target(text: &str) -> Result<QueryTarget, String> {
    if text.eq_ignore_ascii_case("all") {
        return Ok(QueryTarget::All);
    }
    text.parse()
        .map(QueryTarget::Vcpu)
        .map_err(|_| format!("{text:?} is neither a vCPU number nor \"all\""))
}

/// Parses a timeout in seconds (fractions allowed, at most a day).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{text:?}: the timeout must be above 0 and at most 86400 s"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One line of the shell: a subcommand, optionally with `--json`.
#[derive(Debug, Parser)]
#[command(name = "vm_power(guest)>", no_binary_name = true)]
pub struct ShellLine {
    /// Print this command's result as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_timeouts() {
        assert_eq!(parse_target("ALL"), Ok(QueryTarget::All));
        assert_eq!(parse_target("3"), Ok(QueryTarget::Vcpu(3)));
        assert!(parse_target("-1").is_err());
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("NaN").is_err());
    }

    #[test]
    fn command_line_parses() {
        let cli = Cli::try_parse_from([
            "vmpower-guest",
            "--layout",
            "dpdk-17.11",
            "set-cpu-freq",
            "2",
            "enable-turbo",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.layout, LayoutArg::Dpdk1711);
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::SetCpuFreq {
                vcpu: 2,
                action: FreqAction::EnableTurbo
            }
        ));
        assert!(Cli::try_parse_from(["vmpower-guest", "set-cpu-freq", "2", "sideways"]).is_err());
        let line = ShellLine::try_parse_from(["query-cpu-freq", "all", "--json"]).unwrap();
        assert!(line.json);
    }
}

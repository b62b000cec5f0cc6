//! The command line of vmpowerctl, shared by one-shot use and the shell.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vmpower_api::{ChannelSel, CtlRequest, FreqOp};

/// Operator CLI for vmpowerd.
#[derive(Debug, Parser)]
#[command(name = "vmpowerctl", version, about, propagate_version = true)]
pub struct Cli {
    /// Control socket of the daemon (vmpowerd --control-socket).
    #[arg(
        long,
        global = true,
        env = "VMPOWER_CONTROL_SOCKET",
        default_value = "/run/vmpower/control.sock"
    )]
    pub control_socket: PathBuf,
    /// Print the daemon's answer as JSON (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, mirroring DPDK's vm_power_manager CLI.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Daemon health: channels, VMs, managed CPUs, counters.
    Status,
    /// List the VMs the daemon knows.
    ListVms,
    /// Show one VM: settings, vCPU placement, channels.
    ShowVm {
        /// The VM.
        vm: String,
    },
    /// Declare a VM (no libvirt needed: known by its channel sockets' name).
    AddVm {
        /// The VM.
        vm: String,
    },
    /// Forget a VM and give back the CPUs only it used.
    RmVm {
        /// The VM.
        vm: String,
    },
    /// Connect channels of a VM: a list like 0,2-3, or "all". A channel
    /// already connected is left alone, as DPDK's add_channels does.
    AddChannels {
        /// The VM.
        vm: String,
        /// Channel numbers or "all".
        channels: String,
    },
    /// Close and re-make the connection of channels of a VM (bytes in
    /// flight are lost): realigns a misaligned channel at once.
    ReconnectChannels {
        /// The VM.
        vm: String,
        /// Channel numbers or "all".
        channels: String,
    },
    /// Enable or disable channels (disabled channels are read and ignored).
    SetChannelStatus {
        /// The VM.
        vm: String,
        /// Channel numbers or "all".
        channels: String,
        /// New status.
        status: ChannelStatus,
    },
    /// Record that a vCPU runs on a host CPU.
    SetPcpu {
        /// The VM.
        vm: String,
        /// The vCPU.
        vcpu: u32,
        /// The host CPU.
        pcpu: u32,
    },
    /// Allow or forbid a VM's frequency and capability queries.
    SetQuery {
        /// The VM.
        vm: String,
        /// enable or disable.
        status: Toggle,
    },
    /// Show host CPUs' frequency.
    ShowCpuFreq(CpuSel),
    /// Change host CPUs' frequency (an operator override; "release" hands
    /// the CPU back to the VMs).
    #[command(
        override_usage = "vmpowerctl set-cpu-freq <CORE> <ACTION>\n       vmpowerctl set-cpu-freq --mask <MASK> <ACTION>"
    )]
    SetCpuFreq {
        /// A CPU mask, e.g. 0x0f (instead of CORE).
        #[arg(long)]
        mask: Option<String>,
        /// CORE (a CPU number or list, e.g. 1,3-4) unless --mask is given,
        /// then ACTION: up, down, min, max, enable-turbo, disable-turbo or
        /// release.
        #[arg(required = true, num_args = 1..=2, value_name = "CORE ACTION")]
        args: Vec<String>,
    },
    /// Policies: create from a TOML/JSON file, destroy, list, show.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Frequency decisions taken, newest first.
    History {
        /// Only this VM's.
        #[arg(long)]
        vm: Option<String>,
        /// Only since this time: unix seconds, or an RFC 3339 time
        /// (2026-11-24T16:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// List a PF's SR-IOV VFs with their MACs and counters.
    ShowVfs {
        /// The PF's interface name.
        pf: String,
    },
    /// Set a VF's MAC address (so a guest's policy can name it).
    SetVfMac {
        /// The PF's interface name.
        pf: String,
        /// The VF index.
        vf: u32,
        /// The MAC, xx:xx:xx:xx:xx:xx.
        mac: String,
    },
    /// An interactive shell with DPDK's prompt (vm_power>) and history.
    Shell,
    /// A live table: each pCPU's frequency and level, each VM's rate,
    /// policy and last decision; Ctrl-C ends it.
    Top(TopArgs),
    /// The record of the packet rates the daemon sampled for TRAFFIC
    /// policies.
    #[command(subcommand)]
    Traffic(TrafficCommand),
}

/// `vmpowerctl traffic ...`.
#[derive(Debug, Subcommand)]
pub enum TrafficCommand {
    /// Print the rate record as a vmpower-sim trace (CSV `time_ms,vm,pps`)
    /// to replay with `vmpower-sim run --trace FILE` or tune a policy with
    /// `vmpower-sim tune --trace FILE`.
    Export(ExportArgs),
}

/// `vmpowerctl traffic export` options.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Only this VM's rates.
    #[arg(long)]
    pub vm: Option<String>,
    /// From this time: unix seconds, or an RFC 3339 time
    /// (2026-11-24T16:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Up to this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Write the trace to this file (replaced whole, only once complete)
    /// instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

impl ExportArgs {
    /// The request for the page after `after`.
    pub fn request(
        &self,
        after: Option<vmpower_api::rate_record::RateCursor>,
    ) -> Result<CtlRequest, UsageError> {
        let ms = |flag: &str, t: &Option<String>| {
            t.as_deref()
                .map(|text| {
                    parse_time(flag, text)
                        .map(|s| u64::try_from(s).unwrap_or(0).saturating_mul(1000))
                })
                .transpose()
        };
        Ok(CtlRequest::TrafficRecord {
            vm: self.vm.clone(),
            since_ms: ms("--since", &self.since)?,
            until_ms: ms("--until", &self.until)?,
            after,
        })
    }
}

/// `vmpowerctl top` options.
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Seconds between refreshes (at least 0.1).
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Stop after this many refreshes (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,
}

fn parse_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.1 => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds of at least 0.1"
        )),
    }
}

/// `vmpowerctl policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Install (or replace) a VM's policy from a TOML or JSON file.
    Create {
        /// The policy file.
        file: PathBuf,
    },
    /// Remove a VM's policy.
    Destroy {
        /// The VM.
        vm: String,
    },
    /// Every policy in force.
    List,
    /// One VM's policy: state (active, or waiting and why), levels, inputs.
    Show {
        /// The VM.
        vm: String,
    },
}

/// CPUs by number or by mask.
#[derive(Debug, Args)]
pub struct CpuSel {
    /// A CPU number (or list, e.g. 1,3-4).
    #[arg(required_unless_present = "mask", conflicts_with = "mask")]
    pub core: Option<String>,
    /// A CPU mask, e.g. 0x0f.
    #[arg(long)]
    pub mask: Option<String>,
}

/// Enabled or disabled.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChannelStatus {
    /// Requests are served.
    Enabled,
    /// Requests are read and ignored.
    Disabled,
}

/// enable or disable.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Toggle {
    /// Allow.
    Enable,
    /// Forbid.
    Disable,
}

/// A frequency action.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FreqAction {
    /// One step up.
    Up,
    /// One step down.
    Down,
    /// Lowest frequency.
    Min,
    /// Highest frequency.
    Max,
    /// Allow turbo.
    EnableTurbo,
    /// Forbid turbo.
    DisableTurbo,
    /// Hand back to the VMs' arbitration.
    Release,
}

/// A usage error found before asking the daemon.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parses "0,2-3" into numbers (or None for "all").
pub fn parse_list(text: &str) -> Result<Option<Vec<u32>>, UsageError> {
    if text == "all" {
        return Ok(None);
    }
    let bad = |part: &str| UsageError(format!("{part:?} in {text:?} is not a number or range"));
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().map_err(|_| bad(part))?;
                let b: u32 = b.parse().map_err(|_| bad(part))?;
                if a > b || b - a > 4096 {
                    return Err(bad(part));
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad(part))?),
        }
    }
    Ok(Some(out))
}

/// Parses a hex mask ("0xf" or "f") into CPU numbers.
pub fn parse_mask(text: &str) -> Result<Vec<u32>, UsageError> {
    let digits = text.trim_start_matches("0x").trim_start_matches("0X");
    let mask = u128::from_str_radix(digits, 16)
        .map_err(|_| UsageError(format!("{text:?} is not a hex CPU mask")))?;
    if mask == 0 {
        return Err(UsageError(format!("mask {text:?} selects no CPU")));
    }
    Ok((0..128).filter(|i| mask & (1u128 << i) != 0).collect())
}

fn cpus(sel: &CpuSel) -> Result<Vec<u32>, UsageError> {
    match (&sel.core, &sel.mask) {
        (_, Some(mask)) => parse_mask(mask),
        (Some(core), None) => match parse_list(core)? {
            Some(list) => Ok(list),
            None => Ok(Vec::new()),
        },
        (None, None) => Err(UsageError("give a CPU or --mask".into())),
    }
}

/// `--since`: unix seconds or an RFC 3339 time.
fn parse_since(text: &str) -> Result<i64, UsageError> {
    parse_time("--since", text)
}

/// A time flag (`flag` names it in errors): unix seconds or an RFC 3339
/// time.
fn parse_time(flag: &str, text: &str) -> Result<i64, UsageError> {
    let time = match text.parse::<i64>() {
        // Unix seconds, within the years a time can name (1-9999).
        Ok(secs) => jiff::Timestamp::from_second(secs)
            .map_err(|e| UsageError(format!("{flag} {text:?}: {e}")))?,
        Err(_) => text.parse::<jiff::Timestamp>().map_err(|e| {
            UsageError(format!(
                "{flag} {text:?}: not unix seconds or an RFC 3339 time ({e})"
            ))
        })?,
    };
    Ok(time.as_second())
}

/// Splits `set-cpu-freq`'s words: `CORE ACTION`, or `ACTION` with --mask.
fn set_cpu_freq_args(
    mask: Option<&str>,
    args: &[String],
) -> Result<(CpuSel, FreqAction), UsageError> {
    let (core, action) = match (mask, args) {
        (Some(_), [action]) => (None, action),
        (None, [core, action]) => (Some(core.clone()), action),
        (Some(_), _) => return Err(UsageError("with --mask, give only the action".into())),
        (None, _) => return Err(UsageError("give a CPU (or --mask) and an action".into())),
    };
    let action = FreqAction::from_str(action, true).map_err(|_| {
        UsageError(format!(
            "{action:?} is not an action (up, down, min, max, enable-turbo, disable-turbo, release)"
        ))
    })?;
    let sel = CpuSel {
        core,
        mask: mask.map(str::to_owned),
    };
    Ok((sel, action))
}

fn channels(text: &str) -> Result<ChannelSel, UsageError> {
    Ok(match parse_list(text)? {
        None => ChannelSel::All,
        Some(list) => ChannelSel::List(list),
    })
}

impl Command {
    /// The request this command sends (`None` for `shell`).
    pub fn request(&self) -> Result<Option<CtlRequest>, UsageError> {
        Ok(Some(match self {
            Command::Status => CtlRequest::Status,
            Command::ListVms => CtlRequest::ListVms,
            Command::ShowVm { vm } => CtlRequest::ShowVm { vm: vm.clone() },
            Command::AddVm { vm } => CtlRequest::AddVm { vm: vm.clone() },
            Command::RmVm { vm } => CtlRequest::RmVm { vm: vm.clone() },
            Command::AddChannels { vm, channels: c } => CtlRequest::AddChannels {
                vm: vm.clone(),
                channels: channels(c)?,
            },
            Command::ReconnectChannels { vm, channels: c } => CtlRequest::ReconnectChannels {
                vm: vm.clone(),
                channels: channels(c)?,
            },
            Command::SetChannelStatus {
                vm,
                channels: c,
                status,
            } => CtlRequest::SetChannelStatus {
                vm: vm.clone(),
                channels: channels(c)?,
                enabled: matches!(status, ChannelStatus::Enabled),
            },
            Command::SetPcpu { vm, vcpu, pcpu } => CtlRequest::SetPcpu {
                vm: vm.clone(),
                vcpu: *vcpu,
                pcpu: *pcpu,
            },
            Command::SetQuery { vm, status } => CtlRequest::SetQuery {
                vm: vm.clone(),
                enabled: matches!(status, Toggle::Enable),
            },
            Command::ShowCpuFreq(sel) => CtlRequest::ShowCpuFreq { cpus: cpus(sel)? },
            Command::SetCpuFreq { mask, args } => {
                let (sel, op) = set_cpu_freq_args(mask.as_deref(), args)?;
                CtlRequest::SetCpuFreq {
                    cpus: cpus(&sel)?,
                    op: match op {
                        FreqAction::Up => FreqOp::Up,
                        FreqAction::Down => FreqOp::Down,
                        FreqAction::Min => FreqOp::Min,
                        FreqAction::Max => FreqOp::Max,
                        FreqAction::EnableTurbo => FreqOp::EnableTurbo,
                        FreqAction::DisableTurbo => FreqOp::DisableTurbo,
                        FreqAction::Release => FreqOp::Release,
                    },
                }
            }
            Command::Policy(PolicyCommand::Create { file }) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
                let policy = vmpower_api::PolicyFile::parse_named(file, &text)
                    .map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
                CtlRequest::PolicyCreate {
                    policy: Box::new(policy),
                }
            }
            Command::Policy(PolicyCommand::Destroy { vm }) => {
                CtlRequest::PolicyDestroy { vm: vm.clone() }
            }
            Command::Policy(PolicyCommand::List) => CtlRequest::PolicyList,
            Command::Policy(PolicyCommand::Show { vm }) => {
                CtlRequest::PolicyShow { vm: vm.clone() }
            }
            Command::History { vm, since, limit } => CtlRequest::History {
                vm: vm.clone(),
                since: since.as_deref().map(parse_since).transpose()?,
                limit: *limit,
            },
            Command::ShowVfs { pf } => CtlRequest::ShowVfs { pf: pf.clone() },
            Command::SetVfMac { pf, vf, mac } => CtlRequest::SetVfMac {
                pf: pf.clone(),
                vf: *vf,
                mac: mac.clone(),
            },
            Command::Top(_) => CtlRequest::Top,
            Command::Traffic(TrafficCommand::Export(args)) => args.request(None)?,
            Command::Shell => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_masks() {
        assert_eq!(parse_list("0,2-4").unwrap(), Some(vec![0, 2, 3, 4]));
        assert_eq!(parse_list("all").unwrap(), None);
        assert!(parse_list("1,x").unwrap_err().to_string().contains("\"x\""));
        assert!(parse_list("4-2").is_err());
        assert_eq!(parse_mask("0x5").unwrap(), vec![0, 2]);
        assert!(parse_mask("0x0").is_err());
        assert!(parse_mask("zz").unwrap_err().to_string().contains("zz"));
    }

    #[test]
    fn since_takes_seconds_or_rfc3339_within_the_years_a_time_names() {
        assert_eq!(parse_since("1764000000").unwrap(), 1_764_000_000);
        assert_eq!(parse_since("2026-11-24T16:00:00Z").unwrap(), 1_795_536_000);
        let err = parse_since("9223372036854775807").unwrap_err().to_string();
        assert!(err.contains("--since \"9223372036854775807\""), "{err}");
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

//! Runs commands against one channel, opened on first use and kept open
//! (the shell sends many commands over one port, as DPDK's guest_cli does).

use serde_json::json;
use vmpower_guest::describe::{policy_kind_name, unit_name};
use vmpower_guest::{Channel, ChannelConfig, ChannelError, ErrorClass, PortRoots, QueryTarget};
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{CapsReply, FreqListReply, Policy, Request, RequestBody, ScalingUnit, VmName};

use super::output::{CmdError, Done};
use super::policy::{self, Source};
use super::{Cli, Command};

/// The options that stay the same for every command, and the open channel.
#[derive(Debug)]
pub struct Session {
    index: u32,
    port: Option<std::path::PathBuf>,
    roots: PortRoots,
    config: ChannelConfig,
    channel: Option<Channel>,
}

impl Session {
    /// A session with the global options of `cli`; opens nothing yet.
    pub fn new(cli: &Cli) -> Result<Session, CmdError> {
        let vm_name =
            VmName::new(&cli.vm_name).map_err(|e| CmdError::Usage(format!("--vm-name: {e}")))?;
        Ok(Session {
            index: cli.channel,
            port: cli.port.clone(),
            roots: PortRoots {
                dev: cli.dev_root.clone(),
                sys: cli.sys_root.clone(),
            },
            config: ChannelConfig {
                layout: cli.layout.into(),
                timeout: cli.timeout,
                vm_name,
                connect: true,
                native: ChannelConfig::default().native,
            },
            channel: None,
        })
    }

    /// Opens a new channel with the session's options (CONNECT, HELLO).
    pub fn open(&self) -> Result<Channel, ChannelError> {
        match &self.port {
            Some(path) => Channel::open_path(path, self.index, self.config),
            None => Channel::open(self.index, &self.roots, self.config),
        }
    }

    fn channel(&mut self) -> Result<&mut Channel, ChannelError> {
        if self.channel.is_none() {
            self.channel = Some(self.open()?);
        }
        Ok(self.channel.as_mut().expect("opened just above"))
    }

    /// Runs one command. After an I/O failure the port is reopened next time.
    pub fn execute(&mut self, command: &Command) -> Result<Done, CmdError> {
        let result = self.dispatch(command);
        if let Err(CmdError::Channel(e @ (ChannelError::Io { .. } | ChannelError::Open { .. }))) =
            &result
        {
            debug_assert_eq!(e.class(), ErrorClass::Unreachable);
            self.channel = None;
        }
        result
    }

    fn dispatch(&mut self, command: &Command) -> Result<Done, CmdError> {
        match command {
            Command::SetCpuFreq { vcpu, action } => {
                let unit = ScalingUnit::from(*action);
                self.channel()?.set_cpu_freq(*vcpu, unit)?;
                Ok(Done {
                    text: format!("vCPU {vcpu}: {} acknowledged\n", unit_name(unit)),
                    json: json!({"vcpu": vcpu, "unit": unit, "reply": "ACK"}),
                })
            }
            Command::SendPolicy(args) => {
                let (policy, source) = policy::build(args, &self.roots.sys)
                    .map_err(|e| CmdError::Usage(e.to_string()))?;
                self.preflight(&policy)?;
                if source == Source::DpdkExample {
                    eprintln!(
                        "vmpower-guest: no policy options given: {}",
                        example_note(&policy)
                    );
                }
                self.channel()?.send_policy(&policy)?;
                let source_name = match source {
                    Source::DpdkExample => "dpdk-example",
                    Source::Options => "options",
                    Source::File => "file",
                };
                Ok(Done {
                    text: format!(
                        "policy {} for vCPUs {:?} acknowledged\n",
                        policy_kind_name(policy.kind),
                        policy.cores.as_slice()
                    ),
                    json: json!({"policy": policy, "source": source_name, "reply": "ACK"}),
                })
            }
            Command::RemovePolicy => {
                self.channel()?.remove_policy()?;
                Ok(Done {
                    text: "policy removal acknowledged\n".to_owned(),
                    json: json!({"reply": "ACK"}),
                })
            }
            Command::QueryCpuFreq { target } => {
                let reply = self.channel()?.query_freq(*target)?;
                Ok(freq_done(*target, &reply))
            }
            Command::QueryCpuCaps { target } => {
                let reply = self.channel()?.query_caps(*target)?;
                Ok(caps_done(*target, &reply))
            }
            Command::Shell { .. } => Err(CmdError::Usage("already in the shell".to_owned())),
            Command::Agent(_) => Err(CmdError::Usage(
                "the agent runs until stopped: start it as `vmpower-guest agent`, not in the shell"
                    .to_owned(),
            )),
        }
    }

    /// Checks that the policy can be encoded in this layout before sending.
    fn preflight(&self, policy: &Policy) -> Result<(), CmdError> {
        let request = Request {
            vm_name: self.config.vm_name,
            body: RequestBody::SetPolicy(*policy),
        };
        encode_request_record(&request, self.config.layout)
            .map(|_| ())
            .map_err(|e| CmdError::Usage(format!("this policy cannot be sent: {e}")))
    }
}

/// The announcement of the example profile.
fn example_note(policy: &Policy) -> String {
    let mac = policy
        .macs
        .as_slice()
        .first()
        .map_or("no MAC (no network interface found)".to_owned(), |m| {
            format!("MAC {m}")
        });
    format!(
        "sending DPDK guest_cli's example profile: vCPUs 0-1, TIME, busy hours 3-5, \
         quiet hours 11-13, traffic hours 8 and 10, thresholds 96000/1800000/2000000 pps, {mac}"
    )
}

/// The vCPUs a reply covers: the one asked, or all `num_vcpu`.
fn vcpus(target: QueryTarget, num_vcpu: u8) -> Vec<usize> {
    match target {
        QueryTarget::Vcpu(v) => usize::try_from(v)
            .ok()
            .filter(|v| *v < 8)
            .into_iter()
            .collect(),
        QueryTarget::All => (0..usize::from(num_vcpu).min(8)).collect(),
    }
}

fn freq_done(target: QueryTarget, reply: &FreqListReply) -> Done {
    let mut text = String::new();
    let mut rows = Vec::new();
    for v in vcpus(target, reply.num_vcpu) {
        let khz = reply.freqs_khz[v];
        text.push_str(&format!("vCPU {v}: {khz} kHz\n"));
        rows.push(json!({"vcpu": v, "khz": khz}));
    }
    Done {
        text,
        json: json!({"vcpus": rows}),
    }
}

fn caps_done(target: QueryTarget, reply: &CapsReply) -> Done {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut text = String::new();
    let mut rows = Vec::new();
    for v in vcpus(target, reply.num_vcpu) {
        let (turbo, priority) = (reply.turbo[v], reply.priority[v]);
        text.push_str(&format!(
            "vCPU {v}: turbo {}, high priority {}\n",
            yes(turbo),
            yes(priority)
        ));
        rows.push(json!({"vcpu": v, "turbo": turbo, "priority": priority}));
    }
    Done {
        text,
        json: json!({"vcpus": rows}),
    }
}

//! The control protocol of vmpowerd: one JSON object per line over a unix
//! socket, a [`CtlRequest`] from the client answered by one
//! [`CtlResponse`] whose data is the request's typed answer (see
//! [`answers`]). Kept apart from the daemon so that `vmpowerctl` depends
//! on nothing but this.

pub mod answers;
mod client;
mod located;
mod policy_file;
pub mod queries;
pub mod rate_record;

use serde::{Deserialize, Serialize};

pub use client::{Client, ClientError};
pub use policy_file::{HysteresisFile, PolicyFile, PolicyFileError, PolicyFormat};

/// Which channels of a VM a command applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelSel {
    /// Every channel of the VM.
    All,
    /// These channel numbers.
    List(Vec<u32>),
}

/// A frequency command on host CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FreqOp {
    /// One step up.
    Up,
    /// One step down.
    Down,
    /// The lowest frequency.
    Min,
    /// The highest frequency.
    Max,
    /// Allow turbo.
    EnableTurbo,
    /// Forbid turbo.
    DisableTurbo,
    /// Hand the CPU back to the VMs' arbitration.
    Release,
}

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CtlRequest {
    /// Daemon health and counters.
    Status,
    /// One frame of the live view: each pCPU's frequency and level, each
    /// VM's policy, rate, channels and last decision.
    Top,
    /// Every known VM.
    ListVms,
    /// One VM in detail.
    ShowVm {
        /// The VM.
        vm: String,
    },
    /// Declares a VM (known by its name; channels by socket name).
    AddVm {
        /// The VM.
        vm: String,
    },
    /// Forgets a VM and gives back the pCPUs only it used.
    RmVm {
        /// The VM.
        vm: String,
    },
    /// Connects channels of a VM that are not connected; a connected
    /// channel is left alone (as DPDK's `add_channels`).
    AddChannels {
        /// The VM.
        vm: String,
        /// Which channels.
        channels: ChannelSel,
    },
    /// Closes and re-makes the connection of channels of a VM (bytes in
    /// flight are lost; realigns a misaligned channel at once).
    ReconnectChannels {
        /// The VM.
        vm: String,
        /// Which channels.
        channels: ChannelSel,
    },
    /// Enables or disables channels (disabled: read and ignored).
    SetChannelStatus {
        /// The VM.
        vm: String,
        /// Which channels.
        channels: ChannelSel,
        /// Enabled or not.
        enabled: bool,
    },
    /// Records that a vCPU runs on a pCPU (and re-pins it where live).
    SetPcpu {
        /// The VM.
        vm: String,
        /// The vCPU.
        vcpu: u32,
        /// The host CPU.
        pcpu: u32,
    },
    /// Allows or forbids frequency/capability queries for a VM.
    SetQuery {
        /// The VM.
        vm: String,
        /// Allowed or not.
        enabled: bool,
    },
    /// Frequencies of host CPUs.
    ShowCpuFreq {
        /// The CPUs (empty: all).
        cpus: Vec<u32>,
    },
    /// Changes host CPUs' frequency as an operator override.
    SetCpuFreq {
        /// The CPUs.
        cpus: Vec<u32>,
        /// What to do.
        op: FreqOp,
    },
    /// Installs (or replaces) a VM's policy.
    PolicyCreate {
        /// The policy.
        policy: Box<PolicyFile>,
    },
    /// Removes a VM's policy.
    PolicyDestroy {
        /// The VM.
        vm: String,
    },
    /// Every policy in force.
    PolicyList,
    /// One VM's policy, its state and inputs.
    PolicyShow {
        /// The VM.
        vm: String,
    },
    /// Decisions taken, newest first.
    History {
        /// Only this VM's.
        vm: Option<String>,
        /// Only since this time (unix seconds).
        since: Option<i64>,
        /// At most this many.
        limit: Option<u32>,
    },
    /// A page of the record of sampled packet rates
    /// ([`rate_record::RatePage`]), oldest first.
    TrafficRecord {
        /// Only this VM's.
        vm: Option<String>,
        /// Only blocks that start at or after this time (unix ms).
        since_ms: Option<u64>,
        /// Only blocks that start before this time (unix ms).
        until_ms: Option<u64>,
        /// Continue after this block (the previous page's `next`).
        after: Option<rate_record::RateCursor>,
    },
    /// The VFs of a PF, with MACs and counters.
    ShowVfs {
        /// The PF's interface name.
        pf: String,
    },
    /// Sets a VF's MAC address.
    SetVfMac {
        /// The PF's interface name.
        pf: String,
        /// The VF index.
        vf: u32,
        /// The MAC.
        mac: String,
    },
}

/// Where a VM's policy came from: `source` in the answers to `policy show`,
/// `policy list` and `policy create`, e.g. `{"kind":"policy-file","path":
/// "/etc/vmpower/policies.d/vm4.toml"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PolicyOrigin {
    /// Sent by the guest over one of its channels.
    GuestChannel {
        /// The channel, `<vm>.<n>`.
        channel: String,
    },
    /// Installed by the operator with `vmpowerctl policy create`.
    Operator,
    /// A file in the policy directory.
    PolicyFile {
        /// The file's path.
        path: std::path::PathBuf,
    },
    /// DPDK's JSON FIFO.
    Fifo {
        /// The FIFO's path.
        path: std::path::PathBuf,
    },
}

impl std::fmt::Display for PolicyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyOrigin::GuestChannel { channel } => write!(f, "guest channel {channel}"),
            PolicyOrigin::Operator => f.write_str("operator (vmpowerctl)"),
            PolicyOrigin::PolicyFile { path } => write!(f, "policy file {}", path.display()),
            PolicyOrigin::Fifo { path } => write!(f, "DPDK FIFO {}", path.display()),
        }
    }
}

/// Why the daemon refused a request; the kind decides vmpowerctl's exit
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The request is malformed (exit 2).
    Invalid,
    /// A VM, channel or CPU does not exist (exit 3).
    NotFound,
    /// The daemon refused or failed to carry it out (exit 4).
    Refused,
}

/// A refusal with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CtlError {
    /// What kind of refusal.
    pub kind: ErrorKind,
    /// The reason, for a person.
    pub message: String,
}

impl CtlError {
    /// A refusal of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CtlError {
            kind,
            message: message.into(),
        }
    }
}

/// The daemon's answer: the data asked for, or why not. The daemon sends
/// a `CtlResponse<`[`answers::Answer`]`>`; a client reads the type its
/// request is answered with (see [`answers`]), or the JSON as it came
/// (the default, for `--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CtlResponse<T = serde_json::Value> {
    /// Done; the data depends on the request.
    Ok(T),
    /// Refused.
    Error(CtlError),
}

impl<T: Serialize> CtlResponse<T> {
    /// The response as one line of JSON (without its newline), with every
    /// object's keys in sorted order: the order the daemon has always
    /// sent them in (serde_json's maps are sorted), whatever the order of
    /// the answer types' fields.
    pub fn to_line(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&serde_json::to_value(self)?)
    }
}

impl<T> CtlResponse<T> {
    /// The same refusal, or the data mapped by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> CtlResponse<U> {
        match self {
            CtlResponse::Ok(v) => CtlResponse::Ok(f(v)),
            CtlResponse::Error(e) => CtlResponse::Error(e),
        }
    }
}

impl CtlRequest {
    /// Decodes one request line as the daemon reads it from the control
    /// socket (its newline, if any, included). The daemon caps the line's
    /// length before calling this; the fuzz target `control_line` feeds it
    /// arbitrary bytes.
    pub fn from_line(line: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_origins_are_tagged_and_named_for_people() {
        for (origin, wire, shown) in [
            (
                PolicyOrigin::GuestChannel {
                    channel: "vm3.0".into(),
                },
                r#"{"kind":"guest-channel","channel":"vm3.0"}"#,
                "guest channel vm3.0",
            ),
            (
                PolicyOrigin::Operator,
                r#"{"kind":"operator"}"#,
                "operator (vmpowerctl)",
            ),
            (
                PolicyOrigin::PolicyFile {
                    path: "/p/vm4.toml".into(),
                },
                r#"{"kind":"policy-file","path":"/p/vm4.toml"}"#,
                "policy file /p/vm4.toml",
            ),
            (
                PolicyOrigin::Fifo {
                    path: "/c/fifo6".into(),
                },
                r#"{"kind":"fifo","path":"/c/fifo6"}"#,
                "DPDK FIFO /c/fifo6",
            ),
        ] {
            assert_eq!(serde_json::to_string(&origin).unwrap(), wire);
            assert_eq!(serde_json::from_str::<PolicyOrigin>(wire).unwrap(), origin);
            assert_eq!(origin.to_string(), shown);
        }
    }

    #[test]
    fn a_response_maps_its_data_and_keeps_a_refusal() {
        let ok: CtlResponse<u32> = CtlResponse::Ok(2);
        assert_eq!(ok.map(|n| n * 10), CtlResponse::Ok(20));
        let refusal = CtlError::new(ErrorKind::NotFound, "no VM named vm9");
        let refused: CtlResponse<u32> = CtlResponse::Error(refusal.clone());
        assert_eq!(refused.map(|n| n * 10), CtlResponse::Error(refusal));
    }

    #[test]
    fn wire_form_is_tagged_and_strict() {
        let r = CtlRequest::SetPcpu {
            vm: "vm1".into(),
            vcpu: 0,
            pcpu: 3,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"cmd":"set-pcpu","vm":"vm1","vcpu":0,"pcpu":3}"#);
        assert_eq!(serde_json::from_str::<CtlRequest>(&s).unwrap(), r);
        let sel: ChannelSel = serde_json::from_str(r#""all""#).unwrap();
        assert_eq!(sel, ChannelSel::All);
        let sel: ChannelSel = serde_json::from_str(r#"{"list":[0,2]}"#).unwrap();
        assert_eq!(sel, ChannelSel::List(vec![0, 2]));
        let err =
            serde_json::from_str::<CtlRequest>(r#"{"cmd":"show-vm","vm":"a","x":1}"#).unwrap_err();
        assert!(err.to_string().contains('x'), "{err}");
    }
}

//! The answers about policies: `policy show`, `policy create` and
//! `policy list` describe a policy (what it says, its state, the levels
//! it decided, its inputs, its MACs and where it came from);
//! `policy destroy` answers [`crate::answers::Removed`].

use serde::{Deserialize, Serialize};
use vmpower_proto::Policy;

use super::status::PolicyStateName;
use crate::PolicyOrigin;

/// The answer to [`crate::CtlRequest::PolicyShow`] and
/// [`crate::CtlRequest::PolicyCreate`]; `policy list` answers a list of
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyDescription {
    /// The VM.
    pub vm: String,
    /// The policy as sent.
    pub policy: Policy,
    /// What the binary layout cannot carry.
    pub extensions: PolicyExtensions,
    /// Deciding or waiting.
    pub state: PolicyStateName,
    /// What it waits for, when it waits.
    pub waiting_for: Option<String>,
    /// The cores it owns (`vcpu0`, or a host CPU's number).
    pub cores: Vec<String>,
    /// The level it wants per core, where it decided one.
    pub levels: Vec<CoreLevel>,
    /// The last packet rate measured.
    pub rate_pps: Option<f64>,
    /// The last drop rate measured (packets the guest did not keep up
    /// with, per second), for TRAFFIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops_pps: Option<f64>,
    /// The capacities learned from drops, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedCapacities>,
    /// The TRAFFIC thresholds in force (`null` inside: none learned yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds_pps: Option<ThresholdsInForce>,
    /// The local hour last evaluated.
    pub hour: Option<u8>,
    /// Its MACs and where each one's counter was found.
    pub macs: Vec<PolicyMac>,
    /// Where it came from, when the state database records it.
    pub source: Option<PolicyOrigin>,
}

/// The answer to [`crate::CtlRequest::PolicyList`].
pub type PolicyList = Vec<PolicyDescription>;

/// What a policy says beyond DPDK's binary layout.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PolicyExtensions {
    /// IANA time zone of a TIME policy's hours (`None`: the host's).
    pub time_zone: Option<String>,
    /// What hours in none of the TIME sets do (`None`: the daemon's
    /// setting).
    pub other_hours: Option<OtherHours>,
    /// TRAFFIC hysteresis (`None`: the default).
    pub hysteresis: Option<Hysteresis>,
    /// BRANCH_RATIO threshold (`None`: the daemon's setting).
    pub branch_threshold: Option<f64>,
    /// TRAFFIC thresholds learned from drops only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adaptive: bool,
}

/// What a TRAFFIC policy learned from drops, per level below max.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LearnedCapacities {
    /// The capacity at min.
    pub min: Option<Capacity>,
    /// The capacity at medium.
    pub medium: Option<Capacity>,
}

/// A level's capacity: the rate the guest received while it dropped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Packets per second.
    pub rate_pps: f64,
}

/// The TRAFFIC thresholds in force, pps (`None`: not known yet, an
/// adaptive policy before it learned).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdsInForce {
    /// From here at least medium.
    pub avg: Option<f64>,
    /// From here max.
    pub max: Option<f64>,
}

/// What a TIME policy does in an hour none of its sets lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherHours {
    /// Leave the cores where they are.
    Unchanged,
    /// The lowest frequency.
    Min,
    /// The middle of the table.
    Medium,
    /// The highest allowed frequency.
    Max,
}

/// TRAFFIC hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hysteresis {
    /// How far below a threshold (a fraction of it) the rate must fall
    /// before the level goes down.
    pub band: f64,
    /// How long it must stay below, in milliseconds.
    pub dwell: u64,
}

/// The level a policy wants for one core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreLevel {
    /// The core (`vcpu0`, or a host CPU's number).
    pub core: String,
    /// The level (`Min`, `Medium`, `Max`, `Index(2)`).
    pub level: String,
}

/// One MAC of a TRAFFIC policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyMac {
    /// The MAC.
    pub mac: String,
    /// Where its counter was found, or why not; `None` before the first
    /// sample.
    pub source: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::pin;
    use vmpower_proto::{PolicyKind, VcpuList};

    #[test]
    fn a_policy_keeps_its_wire_form() {
        let described = PolicyDescription {
            vm: "vm1".into(),
            policy: Policy::new(PolicyKind::Workload, VcpuList::from_slice(&[0]).unwrap()),
            extensions: PolicyExtensions {
                time_zone: Some("UTC".into()),
                other_hours: Some(OtherHours::Min),
                hysteresis: Some(Hysteresis {
                    band: 0.1,
                    dwell: 700,
                }),
                branch_threshold: None,
                adaptive: false,
            },
            state: PolicyStateName::Waiting,
            waiting_for: Some("vCPU 0 of vm1 is not placed".into()),
            cores: vec!["vcpu0".into()],
            levels: vec![CoreLevel {
                core: "vcpu0".into(),
                level: "Max".into(),
            }],
            rate_pps: None,
            drops_pps: None,
            learned: None,
            thresholds_pps: None,
            hour: Some(5),
            macs: vec![PolicyMac {
                mac: "02:00:5e:00:99:07".into(),
                source: None,
            }],
            source: Some(PolicyOrigin::Operator),
        };
        pin(&vec![described], POLICY);
    }

    /// A policy description as the daemon sends it.
    const POLICY: &str = concat!(
        r#"[{"cores":["vcpu0"],"extensions":{"branch_threshold":null,"#,
        r#""hysteresis":{"band":0.1,"dwell":700},"other_hours":"min","time_zone":"UTC"},"#,
        r#""hour":5,"levels":[{"core":"vcpu0","level":"Max"}],"#,
        r#""macs":[{"mac":"02:00:5e:00:99:07","source":null}],"#,
        r#""policy":{"core_type":"virtual","cores":[0],"#,
        r#""hours":{"busy":[],"quiet":[],"traffic":[]},"kind":"WORKLOAD","macs":[],"#,
        r#""traffic":{"avg_pps":0,"max_pps":0,"min_pps":0},"turbo_boost":false,"#,
        r#""workload":"HIGH"},"#,
        r#""rate_pps":null,"source":{"kind":"operator"},"state":"waiting","vm":"vm1","#,
        r#""waiting_for":"vCPU 0 of vm1 is not placed"}]"#
    );
}

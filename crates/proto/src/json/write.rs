//! [`Request`] → DPDK's JSON: the inverse of [`super::parse_request`] for
//! every request the JSON forms can express.
//!
//! ## Behavior
//! - Output is one line of compact JSON, without a trailing newline; keys
//!   come in DPDK's documented order (`name`, `command`, then the rest).
//! - `command` is written in lower case, enumerated words in upper case.
//! - Optional policy keys at their default (empty lists and hour sets, zero
//!   thresholds) are left out; `workload` is written when it is not HIGH or
//!   the policy is a WORKLOAD policy.
//!
//! ## Limitations
//! The JSON forms cannot carry CONNECT, queries, vCPU numbers (their cores
//! are host cores), traffic hours, `min_packet_thresh`, turbo boost, an
//! empty name, or repeated cores or MACs (the parser refuses them). Such a
//! request is an error, never silently changed, so that
//! `parse_request(to_json(r)?) == r` holds for every request `to_json`
//! accepts.

use serde::Serialize;

use crate::{CoreType, HourSet, MacList, Policy, Request, RequestBody, VcpuList};

use super::JsonError;
use super::parse::{POLICY_TYPES, UNITS, WORKLOADS};

/// Serialises a request as DPDK's JSON object, or says why it has no JSON
/// form ([`JsonError::NotExpressible`]).
pub fn to_json(req: &Request) -> Result<String, JsonError> {
    let name = req.vm_name.as_str();
    if name.is_empty() {
        return Err(not_expressible("an empty VM name (the FIFO names the VM)"));
    }
    let message = match &req.body {
        RequestBody::Connect { .. } => return Err(not_expressible("CONNECT has no JSON form")),
        RequestBody::Hello { .. } => return Err(not_expressible("HELLO has no JSON form")),
        RequestBody::Busyness(_) => {
            return Err(not_expressible("BUSYNESS has no JSON form"));
        }
        RequestBody::Query { .. } => return Err(not_expressible("queries have no JSON form")),
        RequestBody::RemovePolicy => Message::Policy(PolicyJson::destroy(name)),
        RequestBody::SetPolicy(policy) => Message::Policy(PolicyJson::create(name, policy)?),
        RequestBody::Power {
            resource_id,
            core_type,
            unit,
        } => {
            if *core_type != CoreType::Physical {
                return Err(not_expressible("a vCPU number (JSON cores are host cores)"));
            }
            Message::Instruction(InstructionJson {
                name,
                command: "power",
                unit: word_of(&UNITS, *unit),
                resource_id: *resource_id,
            })
        }
    };
    Ok(serde_json::to_string(&message).expect("plain structs of strings and integers serialise"))
}

#[derive(Serialize)]
enum Message<'a> {
    #[serde(rename = "policy")]
    Policy(PolicyJson<'a>),
    #[serde(rename = "instruction")]
    Instruction(InstructionJson<'a>),
}

#[derive(Serialize)]
struct InstructionJson<'a> {
    name: &'a str,
    command: &'static str,
    unit: &'static str,
    resource_id: u64,
}

#[derive(Serialize)]
struct PolicyJson<'a> {
    name: &'a str,
    command: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_type: Option<&'static str>,
    #[serde(skip_serializing_if = "no_hours")]
    busy_hours: HourSet,
    #[serde(skip_serializing_if = "no_hours")]
    quiet_hours: HourSet,
    #[serde(skip_serializing_if = "VcpuList::is_empty")]
    core_list: VcpuList,
    #[serde(skip_serializing_if = "MacList::is_empty")]
    mac_list: MacList,
    #[serde(skip_serializing_if = "is_zero")]
    avg_packet_thresh: u32,
    #[serde(skip_serializing_if = "is_zero")]
    max_packet_thresh: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<&'static str>,
}

impl<'a> PolicyJson<'a> {
    fn destroy(name: &'a str) -> Self {
        PolicyJson {
            name,
            command: "destroy",
            policy_type: None,
            busy_hours: HourSet::EMPTY,
            quiet_hours: HourSet::EMPTY,
            core_list: VcpuList::default(),
            mac_list: MacList::default(),
            avg_packet_thresh: 0,
            max_packet_thresh: 0,
            workload: None,
        }
    }

    fn create(name: &'a str, p: &Policy) -> Result<Self, JsonError> {
        if p.core_type != CoreType::Physical {
            return Err(not_expressible("vCPU numbers (JSON cores are host cores)"));
        }
        if !p.hours.traffic.is_empty() {
            return Err(not_expressible("traffic hours (no JSON key carries them)"));
        }
        if p.traffic.min_pps != 0 {
            return Err(not_expressible(
                "a min_packet_thresh (no JSON key carries it)",
            ));
        }
        if p.turbo_boost {
            return Err(not_expressible("turbo boost (no JSON key carries it)"));
        }
        if has_repeats(p.cores.as_slice()) {
            return Err(not_expressible("a core listed twice"));
        }
        if has_repeats(p.macs.as_slice()) {
            return Err(not_expressible("a MAC address listed twice"));
        }
        let show_workload =
            p.kind == crate::PolicyKind::Workload || p.workload != Default::default();
        Ok(PolicyJson {
            name,
            command: "create",
            policy_type: Some(word_of(&POLICY_TYPES, p.kind)),
            busy_hours: p.hours.busy,
            quiet_hours: p.hours.quiet,
            core_list: p.cores,
            mac_list: p.macs,
            avg_packet_thresh: p.traffic.avg_pps,
            max_packet_thresh: p.traffic.max_pps,
            workload: show_workload.then(|| word_of(&WORKLOADS, p.workload)),
        })
    }
}

/// The JSON word of `value`; every value of the model's enums has one.
fn word_of<T: PartialEq + Copy>(table: &[(&'static str, T)], value: T) -> &'static str {
    table
        .iter()
        .find(|(_, v)| *v == value)
        .map(|(w, _)| *w)
        .expect("the word tables cover every variant")
}

fn has_repeats<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, x)| items[..i].contains(x))
}

fn no_hours(set: &HourSet) -> bool {
    set.is_empty()
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn not_expressible(reason: &'static str) -> JsonError {
    JsonError::NotExpressible { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PolicyKind, ScalingUnit, VmName, WorkloadLevel};

    #[test]
    fn every_variant_has_a_word() {
        for code in 1..=6 {
            let unit = ScalingUnit::from_code(code).expect("codes 1..=6");
            assert!(!word_of(&UNITS, unit).is_empty());
        }
        for code in 0..=3 {
            let kind = PolicyKind::from_code(code).expect("codes 0..=3");
            assert!(!word_of(&POLICY_TYPES, kind).is_empty());
        }
        assert_eq!(word_of(&WORKLOADS, WorkloadLevel::Low), "LOW");
    }

    #[test]
    fn workload_is_written_for_workload_policies_even_at_high() {
        let policy = Policy {
            kind: PolicyKind::Workload,
            cores: VcpuList::default(),
            core_type: CoreType::Physical,
            macs: MacList::default(),
            traffic: Default::default(),
            hours: Default::default(),
            workload: WorkloadLevel::High,
            turbo_boost: false,
        };
        let req = Request {
            vm_name: VmName::new("w").expect("short name"),
            body: RequestBody::SetPolicy(policy),
        };
        assert_eq!(
            to_json(&req).expect("expressible"),
            r#"{"policy":{"name":"w","command":"create","policy_type":"WORKLOAD","workload":"HIGH"}}"#
        );
        let time = Request {
            body: RequestBody::SetPolicy(Policy {
                kind: PolicyKind::Time,
                ..policy
            }),
            ..req
        };
        assert!(!to_json(&time).expect("expressible").contains("workload"));
    }
}

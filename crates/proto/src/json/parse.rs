//! JSON objects → [`Request`]: the checks that turn DPDK's loosely typed
//! `{"policy": {...}}` and `{"instruction": {...}}` into the typed model.
//!
//! ## Behavior
//! - The top level is an object with exactly one key, `policy` or
//!   `instruction`. Unknown and repeated keys are refused, by name, at every
//!   level; checks run in key order, and the first fault is reported.
//! - `command` is matched in any ASCII case, and so are the enumerated words
//!   (`policy_type`, `workload`, `unit`): DPDK's guide spells them in both.
//!   `command` must belong to its object: `create`/`destroy` only in a
//!   `policy`, `power` only in an `instruction`.
//! - Cores are HOST cores: the FIFO is a host-side channel, so `core_list`
//!   and `resource_id` yield [`CoreType::Physical`] (as DPDK marks packets it
//!   builds from JSON).
//! - Missing optional policy keys take their defaults: empty hour sets,
//!   empty core and MAC lists, zero thresholds, workload HIGH. JSON cannot
//!   carry traffic hours, `min_packet_thresh` or turbo boost; they are empty,
//!   zero and false.
//! - `destroy` checks the whole object like `create` (a bad value is still
//!   an error) but needs no `policy_type` and uses only the name.
//! - `name` must be non-empty: on the host FIFO the name is the only thing
//!   that says which VM is meant.
//! - Hours may repeat (they form a set); cores and MACs may not (a repeated
//!   MAC would count its traffic twice).
//!
//! This module does no I/O and never panics on any input.

use crate::{
    CoreType, HourSchedule, HourSet, Policy, PolicyKind, Request, RequestBody, ScalingUnit,
    TrafficThresholds, WorkloadLevel,
};

use super::JsonError;
use super::node::Node;
use super::object::{Command, Object, int_in, out_of_range, refuse_duplicates, word};

/// JSON names of policy kinds.
pub(super) const POLICY_TYPES: [(&str, PolicyKind); 4] = [
    ("TIME", PolicyKind::Time),
    ("TRAFFIC", PolicyKind::Traffic),
    ("WORKLOAD", PolicyKind::Workload),
    ("BRANCH_RATIO", PolicyKind::BranchRatio),
];

/// JSON names of scaling units.
pub(super) const UNITS: [(&str, ScalingUnit); 6] = [
    ("SCALE_UP", ScalingUnit::ScaleUp),
    ("SCALE_DOWN", ScalingUnit::ScaleDown),
    ("SCALE_MAX", ScalingUnit::ScaleMax),
    ("SCALE_MIN", ScalingUnit::ScaleMin),
    ("ENABLE_TURBO", ScalingUnit::EnableTurbo),
    ("DISABLE_TURBO", ScalingUnit::DisableTurbo),
];

/// JSON names of workload levels.
pub(super) const WORKLOADS: [(&str, WorkloadLevel); 3] = [
    ("HIGH", WorkloadLevel::High),
    ("MEDIUM", WorkloadLevel::Medium),
    ("LOW", WorkloadLevel::Low),
];

const POLICY_KEYS: [&str; 10] = [
    "name",
    "command",
    "policy_type",
    "busy_hours",
    "quiet_hours",
    "core_list",
    "mac_list",
    "avg_packet_thresh",
    "max_packet_thresh",
    "workload",
];

const INSTRUCTION_KEYS: [&str; 4] = ["name", "command", "unit", "resource_id"];

/// Parses exactly one JSON object (surrounding whitespace allowed) into a
/// request.
pub fn parse_request(input: impl AsRef<[u8]>) -> Result<Request, JsonError> {
    let node: Node = serde_json::from_slice(input.as_ref()).map_err(|e| syntax_error(&e))?;
    request_from_node(node)
}

/// Converts a `serde_json` error into [`JsonError::Syntax`], keeping the
/// position out of the message text (it is in the fields).
pub(super) fn syntax_error(e: &serde_json::Error) -> JsonError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    JsonError::Syntax {
        line,
        column,
        message,
    }
}

/// Converts one parsed top-level value into a request.
pub(super) fn request_from_node(node: Node) -> Result<Request, JsonError> {
    let Node::Obj(pairs) = node else {
        return Err(JsonError::NotAnObject { got: node.kind() });
    };
    refuse_duplicates("top level", &pairs)?;
    if pairs.len() != 1 {
        let keys = pairs.into_iter().map(|(k, _)| k).collect();
        return Err(JsonError::NotOneMessage { keys });
    }
    let Some((key, body)) = pairs.into_iter().next() else {
        return Err(JsonError::NotOneMessage { keys: Vec::new() });
    };
    match key.as_str() {
        "policy" => policy(Object::new("policy", &POLICY_KEYS, body)?),
        "instruction" => instruction(Object::new("instruction", &INSTRUCTION_KEYS, body)?),
        _ => Err(JsonError::UnknownTopLevel(key)),
    }
}

fn policy(obj: Object) -> Result<Request, JsonError> {
    let vm_name = obj.name()?;
    let command = obj.command()?;
    if command == Command::Power {
        return Err(
            obj.misplaced_command("is an instruction command; a policy takes create or destroy")
        );
    }
    let kind = match obj.get("policy_type") {
        Some(n) => Some(word(
            &obj.path("policy_type"),
            n,
            &POLICY_TYPES,
            "a policy type",
        )?),
        None => None,
    };
    let busy = obj.hours("busy_hours")?;
    let quiet = obj.hours("quiet_hours")?;
    let cores = obj.cores()?;
    let macs = obj.macs()?;
    let avg_pps = obj.threshold("avg_packet_thresh")?;
    let max_pps = obj.threshold("max_packet_thresh")?;
    let workload = match obj.get("workload") {
        Some(n) => word(&obj.path("workload"), n, &WORKLOADS, "a workload level")?,
        None => WorkloadLevel::default(),
    };
    let body = if command == Command::Destroy {
        RequestBody::RemovePolicy
    } else {
        let kind = kind.ok_or(JsonError::MissingKey {
            object: obj.name,
            key: "policy_type",
        })?;
        RequestBody::SetPolicy(Policy {
            kind,
            cores,
            core_type: CoreType::Physical,
            macs,
            traffic: TrafficThresholds {
                min_pps: 0,
                avg_pps,
                max_pps,
            },
            hours: HourSchedule {
                busy,
                quiet,
                traffic: HourSet::EMPTY,
            },
            workload,
            turbo_boost: false,
        })
    };
    Ok(Request { vm_name, body })
}

fn instruction(obj: Object) -> Result<Request, JsonError> {
    let vm_name = obj.name()?;
    if obj.command()? != Command::Power {
        return Err(obj.misplaced_command("is a policy command; an instruction takes power"));
    }
    let unit = word(
        &obj.path("unit"),
        obj.require("unit")?,
        &UNITS,
        "a scaling unit",
    )?;
    let max = i128::from(u64::MAX);
    let id = int_in(
        &obj.path("resource_id"),
        obj.require("resource_id")?,
        max,
        "an integer core number",
    )?;
    let resource_id = u64::try_from(id)
        .map_err(|_| out_of_range(&obj.path("resource_id"), &Node::Int(id), max))?;
    Ok(Request {
        vm_name,
        body: RequestBody::Power {
            resource_id,
            core_type: CoreType::Physical,
            unit,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON words are the model's own serde names, so the FIFO and the
    /// control API spell every kind, unit and level the same way.
    #[test]
    fn word_tables_match_the_model_serde_names() {
        fn check<T: serde::Serialize>(table: &[(&str, T)]) {
            for (word, value) in table {
                let json = serde_json::to_string(value).expect("unit variant");
                assert_eq!(json, format!("\"{word}\""));
            }
        }
        check(&POLICY_TYPES);
        check(&UNITS);
        check(&WORKLOADS);
        for code in 0..4 {
            let kind = PolicyKind::from_code(code).expect("codes 0..=3");
            assert!(POLICY_TYPES.iter().any(|(_, k)| *k == kind));
        }
    }

    #[test]
    fn syntax_error_keeps_the_position_out_of_the_message() {
        let e = serde_json::from_str::<Node>("{\n  x").expect_err("invalid");
        assert_eq!(
            syntax_error(&e),
            JsonError::Syntax {
                line: 2,
                column: 3,
                message: "key must be a string".to_owned()
            }
        );
    }

    #[test]
    fn checks_run_in_key_order_and_report_the_first_fault() {
        let text = r#"{"policy": {"busy_hours": [99], "name": 5, "command": "create"}}"#;
        assert!(matches!(
            parse_request(text),
            Err(JsonError::WrongType { key, .. }) if key == "policy.name"
        ));
        let text = r#"{"policy": {"bogus": 1, "name": 5}}"#;
        assert!(matches!(
            parse_request(text),
            Err(JsonError::UnknownKey { key, .. }) if key == "bogus"
        ));
    }
}

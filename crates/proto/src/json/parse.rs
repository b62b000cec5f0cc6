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
    CoreType, HourSchedule, HourSet, MacAddr, MacList, ModelError, Policy, PolicyKind, Request,
    RequestBody, ScalingUnit, TrafficThresholds, VcpuList, VmName, WorkloadLevel,
};

use super::JsonError;
use super::node::Node;

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

/// What `command` asks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Create,
    Destroy,
    Power,
}

const COMMANDS: [(&str, Command); 3] = [
    ("create", Command::Create),
    ("destroy", Command::Destroy),
    ("power", Command::Power),
];

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

/// The body of a `policy` or `instruction`, its keys checked.
struct Object {
    name: &'static str,
    pairs: Vec<(String, Node)>,
}

impl Object {
    /// Checks that `body` is an object whose keys are all known and unique.
    fn new(name: &'static str, known: &[&str], body: Node) -> Result<Self, JsonError> {
        let Node::Obj(pairs) = body else {
            return Err(JsonError::WrongType {
                key: name.to_owned(),
                expected: "an object",
                got: body.kind(),
            });
        };
        if let Some((key, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(JsonError::UnknownKey {
                object: name,
                key: key.clone(),
            });
        }
        refuse_duplicates(name, &pairs)?;
        Ok(Object { name, pairs })
    }

    fn get(&self, key: &str) -> Option<&Node> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn require(&self, key: &'static str) -> Result<&Node, JsonError> {
        self.get(key).ok_or(JsonError::MissingKey {
            object: self.name,
            key,
        })
    }

    fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    fn name(&self) -> Result<VmName, JsonError> {
        let node = self.require("name")?;
        let Node::Str(s) = node else {
            return Err(wrong_type(self.path("name"), "a string", node));
        };
        let reason = match VmName::new(s) {
            Ok(_) if s.is_empty() => "is empty",
            Ok(name) => return Ok(name),
            Err(ModelError::NameHasNul(_)) => "contains a NUL byte",
            Err(_) => "is longer than 31 bytes",
        };
        Err(bad_value(self.path("name"), node, reason))
    }

    fn command(&self) -> Result<Command, JsonError> {
        word(
            &self.path("command"),
            self.require("command")?,
            &COMMANDS,
            "a command",
        )
    }

    fn misplaced_command(&self, reason: &str) -> JsonError {
        let node = self.get("command").unwrap_or(&Node::Null);
        bad_value(self.path("command"), node, reason)
    }

    fn array(&self, key: &str, expected: &'static str) -> Result<&[Node], JsonError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Node::Arr(items)) => Ok(items),
            Some(other) => Err(wrong_type(self.path(key), expected, other)),
        }
    }

    fn hours(&self, key: &str) -> Result<HourSet, JsonError> {
        let mut set = HourSet::EMPTY;
        for (i, n) in self
            .array(key, "an array of hours (0..=23)")?
            .iter()
            .enumerate()
        {
            let path = format!("{}[{i}]", self.path(key));
            let hour = match n {
                Node::Int(v) => u8::try_from(*v).ok(),
                Node::Float(_) => None,
                _ => return Err(wrong_type(path, "an integer hour (0..=23)", n)),
            };
            // `insert` refuses hours above 23.
            hour.and_then(|h| set.insert(h).ok())
                .ok_or_else(|| bad_value(path, n, "is not an hour (0..=23)"))?;
        }
        Ok(set)
    }

    fn cores(&self) -> Result<VcpuList, JsonError> {
        let items = self.array("core_list", "an array of core numbers")?;
        let ids = self.list("core_list", items, VcpuList::CAPACITY, |path, n| {
            let id = int_in(path, n, i128::from(u8::MAX), "an integer core number")?;
            u8::try_from(id).map_err(|_| out_of_range(path, n, i128::from(u8::MAX)))
        })?;
        Ok(VcpuList::from_slice(&ids).expect("list() caps the length at CAPACITY"))
    }

    fn macs(&self) -> Result<MacList, JsonError> {
        let items = self.array("mac_list", "an array of MAC address strings")?;
        let macs = self.list("mac_list", items, MacList::CAPACITY, |path, n| match n {
            Node::Str(s) => s.parse::<MacAddr>().map_err(|_| {
                bad_value(
                    path.to_owned(),
                    n,
                    "is not a MAC address (xx:xx:xx:xx:xx:xx)",
                )
            }),
            _ => Err(wrong_type(path.to_owned(), "a MAC address string", n)),
        })?;
        Ok(MacList::from_slice(&macs).expect("list() caps the length at CAPACITY"))
    }

    /// Converts each entry of a list of at most `cap` distinct entries.
    fn list<T: PartialEq>(
        &self,
        key: &str,
        items: &[Node],
        cap: usize,
        mut convert: impl FnMut(&str, &Node) -> Result<T, JsonError>,
    ) -> Result<Vec<T>, JsonError> {
        if items.len() > cap {
            let reason = format!("has {} entries, at most {cap} allowed", items.len());
            return Err(bad_value(
                self.path(key),
                &Node::Arr(items.to_vec()),
                &reason,
            ));
        }
        let mut out: Vec<T> = Vec::with_capacity(items.len());
        for (i, n) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.path(key));
            let value = convert(&path, n)?;
            if out.contains(&value) {
                return Err(bad_value(path, n, "is listed twice"));
            }
            out.push(value);
        }
        Ok(out)
    }

    fn threshold(&self, key: &str) -> Result<u32, JsonError> {
        let Some(n) = self.get(key) else { return Ok(0) };
        let path = self.path(key);
        let max = i128::from(u32::MAX);
        let v = int_in(&path, n, max, "an integer packet rate")?;
        u32::try_from(v).map_err(|_| out_of_range(&path, n, max))
    }
}

/// An integer in `0..=max`, or the error that says why `n` is not one.
fn int_in(path: &str, n: &Node, max: i128, expected: &'static str) -> Result<i128, JsonError> {
    match n {
        Node::Int(v) if (0..=max).contains(v) => Ok(*v),
        Node::Int(_) | Node::Float(_) => Err(out_of_range(path, n, max)),
        _ => Err(wrong_type(path.to_owned(), expected, n)),
    }
}

fn out_of_range(path: &str, n: &Node, max: i128) -> JsonError {
    let reason = match n {
        Node::Int(v) if *v < 0 => format!("is negative (allowed: 0..={max})"),
        Node::Int(_) => format!("is too large (allowed: 0..={max})"),
        _ => format!("is not an integer in 0..={max}"),
    };
    bad_value(path.to_owned(), n, &reason)
}

/// One of the words of `table`, in any ASCII case.
fn word<T: Copy>(path: &str, n: &Node, table: &[(&str, T)], what: &str) -> Result<T, JsonError> {
    let Node::Str(s) = n else {
        return Err(wrong_type(path.to_owned(), "a string", n));
    };
    if let Some((_, v)) = table.iter().find(|(w, _)| w.eq_ignore_ascii_case(s)) {
        return Ok(*v);
    }
    let words: Vec<&str> = table.iter().map(|(w, _)| *w).collect();
    let reason = format!("is not {what} ({})", words.join(", "));
    Err(bad_value(path.to_owned(), n, &reason))
}

fn refuse_duplicates(object: &'static str, pairs: &[(String, Node)]) -> Result<(), JsonError> {
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err(JsonError::DuplicateKey {
                object,
                key: k.clone(),
            });
        }
    }
    Ok(())
}

fn wrong_type(key: String, expected: &'static str, got: &Node) -> JsonError {
    JsonError::WrongType {
        key,
        expected,
        got: got.kind(),
    }
}

fn bad_value(key: String, n: &Node, reason: &str) -> JsonError {
    JsonError::BadValue {
        key,
        value: n.quoted(),
        reason: reason.to_owned(),
    }
}

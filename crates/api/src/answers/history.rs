//! The answer to `history`: frequency decisions, newest first, with what
//! each was based on.

use serde::{Deserialize, Serialize};

/// One decision in the answer to [`crate::CtlRequest::History`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When, unix milliseconds.
    pub at_ms: u64,
    /// The VM it was for; `None` for the daemon's own (a CPU given back).
    pub vm: Option<String>,
    /// The host CPU written.
    pub pcpu: u32,
    /// Its frequency before, in kHz, when known.
    pub old_khz: Option<u32>,
    /// Its frequency after, in kHz.
    pub new_khz: u32,
    /// Why, in words, then who won the arbitration.
    pub reason: String,
    /// What the decision was based on.
    pub inputs: DecisionInputs,
}

/// The answer to [`crate::CtlRequest::History`].
pub type History = Vec<HistoryEntry>;

/// What a decision was based on, as the history records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DecisionInputs {
    /// `null`: nothing measured (a guest's request, a placement, the
    /// operator, a VM or policy removed).
    Unmeasured,
    /// `{}`: a CPU given back to its original governor.
    GivenBack(GivenBack),
    /// What a policy read.
    Policy(PolicyInputs),
    /// Any other form (recorded by another version), kept as it is.
    Other(serde_json::Value),
}

/// The inputs of a CPU given back: none (`{}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GivenBack {}

/// What a policy read when it decided. Every field is always present
/// (`null` when the policy does not read it). The fields are in sorted
/// order, as the state database has always stored them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInputs {
    /// The branch ratio of a BRANCH_RATIO policy.
    #[serde(deserialize_with = "present")]
    pub branch_ratio: Option<f64>,
    /// The drops per second that raised a TRAFFIC policy's cores (absent
    /// when the decision was not taken on drops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops_pps: Option<f64>,
    /// The local hour of a TIME policy.
    #[serde(deserialize_with = "present")]
    pub hour: Option<u8>,
    /// The packet rate of a TRAFFIC policy's MACs.
    #[serde(deserialize_with = "present")]
    pub rate_pps: Option<f64>,
}

/// A field that must be present, `null` or not (so that `{}` is not read
/// as policy inputs).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::pin;

    fn entry(vm: Option<&str>, old_khz: Option<u32>, inputs: DecisionInputs) -> HistoryEntry {
        HistoryEntry {
            at_ms: 1_700_000_000_123,
            vm: vm.map(str::to_owned),
            pcpu: 2,
            old_khz,
            new_khz: 800_000,
            reason: "policy Traffic rate 120000 pps; decided by want of vm1".into(),
            inputs,
        }
    }

    #[test]
    fn history_keeps_its_wire_form() {
        let history = vec![
            entry(
                Some("vm1"),
                Some(2_000_000),
                DecisionInputs::Policy(PolicyInputs {
                    rate_pps: Some(120_000.0),
                    hour: None,
                    branch_ratio: None,
                    drops_pps: None,
                }),
            ),
            entry(Some("vm1"), Some(2_000_000), DecisionInputs::Unmeasured),
            entry(None, None, DecisionInputs::GivenBack(GivenBack {})),
        ];
        pin(
            &history,
            concat!(
                r#"[{"at_ms":1700000000123,"inputs":{"branch_ratio":null,"hour":null,"#,
                r#""rate_pps":120000.0},"new_khz":800000,"old_khz":2000000,"pcpu":2,"#,
                r#""reason":"policy Traffic rate 120000 pps; decided by want of vm1","vm":"vm1"},"#,
                r#"{"at_ms":1700000000123,"inputs":null,"new_khz":800000,"old_khz":2000000,"#,
                r#""pcpu":2,"reason":"policy Traffic rate 120000 pps; decided by want of vm1","#,
                r#""vm":"vm1"},"#,
                r#"{"at_ms":1700000000123,"inputs":{},"new_khz":800000,"old_khz":null,"#,
                r#""pcpu":2,"reason":"policy Traffic rate 120000 pps; decided by want of vm1","#,
                r#""vm":null}]"#
            ),
        );
    }

    #[test]
    fn inputs_of_another_form_are_kept_as_they_are() {
        let text = r#"{"mac":"52:54:00:12:34:56","rate_pps":10}"#;
        let read: DecisionInputs = serde_json::from_str(text).unwrap();
        assert!(matches!(read, DecisionInputs::Other(_)), "{read:?}");
        assert_eq!(serde_json::to_string(&read).unwrap(), text);
        // Policy inputs lacking a field are another form, not a policy's.
        let partial: DecisionInputs = serde_json::from_str(r#"{"hour":3}"#).unwrap();
        assert!(matches!(partial, DecisionInputs::Other(_)), "{partial:?}");
    }
}

//! The ways a JSON message can be wrong, for parsing, serialising and the
//! FIFO stream decoder alike.
//!
//! Every message starts with where the fault is — `policy.busy_hours[3]`,
//! `instruction`, `top level` — so that an operator reading one log line
//! knows exactly which key of which object to fix. Offending values are
//! quoted as JSON text (escaped, cut at [`MAX_QUOTED_LEN`] bytes), so a
//! hostile value cannot forge log lines.

/// Longest rendering of an offending value kept in an error, in bytes.
pub const MAX_QUOTED_LEN: usize = 64;

/// Why a JSON object is not a vmpower request, or a request has no JSON
/// form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The bytes are not JSON (or not exactly one JSON value).
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the fault, counted from the start of the input
        /// (in a stream: from the object's `{`).
        line: usize,
        /// 1-based byte column of the fault within its line.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// The top-level value is valid JSON but not an object.
    #[error("top level: expected an object, got {got}")]
    NotAnObject {
        /// The kind of value found ("an array", "a string", ...).
        got: &'static str,
    },
    /// The top-level object does not hold exactly one key.
    #[error(
        "top level: expected exactly one key, \"policy\" or \"instruction\", found {}",
        quote_keys(keys)
    )]
    NotOneMessage {
        /// The keys found (none, or several).
        keys: Vec<String>,
    },
    /// The one top-level key is neither `policy` nor `instruction`.
    #[error("top level: unknown message {0:?} (expected \"policy\" or \"instruction\")")]
    UnknownTopLevel(String),
    /// A key this object does not have.
    #[error("{object}: unknown key {key:?} (known keys: {})", known_keys(object))]
    UnknownKey {
        /// `policy`, `instruction` or `top level`.
        object: &'static str,
        /// The key as sent.
        key: String,
    },
    /// A key given twice in one object (JSON leaves the meaning open).
    #[error("{object}: key {key:?} given twice")]
    DuplicateKey {
        /// `policy`, `instruction` or `top level`.
        object: &'static str,
        /// The repeated key.
        key: String,
    },
    /// A required key is absent.
    #[error("{object}: missing required key {key:?}")]
    MissingKey {
        /// `policy` or `instruction`.
        object: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A value of the wrong JSON type.
    #[error("{key}: expected {expected}, got {got}")]
    WrongType {
        /// Path of the value, e.g. `policy.core_list[2]`.
        key: String,
        /// What the key takes ("a string", "an array of hours", ...).
        expected: &'static str,
        /// The kind of value found.
        got: &'static str,
    },
    /// A value of the right type that the key does not allow.
    #[error("{key}: {value} {reason}")]
    BadValue {
        /// Path of the value, e.g. `policy.busy_hours[3]`.
        key: String,
        /// The value as JSON text, cut at [`MAX_QUOTED_LEN`] bytes.
        value: String,
        /// Why it is refused, as a predicate ("is not an hour (0..=23)").
        reason: String,
    },
    /// `to_json` was given a request that DPDK's JSON cannot express.
    #[error("request has no JSON form: {reason}")]
    NotExpressible {
        /// What cannot be expressed.
        reason: &'static str,
    },
    /// Stream: an object grew past the decoder's limit; it was dropped.
    #[error("object exceeds {limit} bytes; dropped, skipping to the next '{{'")]
    ObjectTooLarge {
        /// The configured maximum object size in bytes.
        limit: usize,
    },
    /// Stream: a byte other than whitespace where an object must start.
    #[error("expected '{{' starting an object, found {}; skipping to the next '{{'", show_byte(*found))]
    Garbage {
        /// The first unexpected byte.
        found: u8,
    },
    /// Stream: the writer went away in the middle of an object.
    #[error("stream ended inside an object after {len} bytes; dropped")]
    Truncated {
        /// Bytes of the partial object that were dropped.
        len: usize,
    },
}

/// The keys an object accepts, for error messages.
pub(crate) fn known_keys(object: &str) -> &'static str {
    match object {
        "policy" => {
            "name, command, policy_type, busy_hours, quiet_hours, core_list, mac_list, \
             avg_packet_thresh, max_packet_thresh, workload"
        }
        "instruction" => "name, command, unit, resource_id",
        _ => "policy, instruction",
    }
}

fn quote_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        return "none".to_owned();
    }
    let quoted: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    quoted.join(", ")
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("{:?}", char::from(b))
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_value_reads_as_one_sentence() {
        let e = JsonError::BadValue {
            key: "policy.busy_hours[3]".into(),
            value: "24".into(),
            reason: "is not an hour (0..=23)".into(),
        };
        assert_eq!(
            e.to_string(),
            "policy.busy_hours[3]: 24 is not an hour (0..=23)"
        );
    }

    #[test]
    fn unknown_key_lists_the_known_ones() {
        let e = JsonError::UnknownKey {
            object: "instruction",
            key: "speed".into(),
        };
        assert_eq!(
            e.to_string(),
            "instruction: unknown key \"speed\" (known keys: name, command, unit, resource_id)"
        );
    }

    #[test]
    fn garbage_shows_control_bytes_as_hex() {
        assert!(
            JsonError::Garbage { found: 0 }
                .to_string()
                .contains("byte 0x00")
        );
        assert!(
            JsonError::Garbage { found: b'x' }
                .to_string()
                .contains("'x'")
        );
    }

    #[test]
    fn not_one_message_names_the_keys() {
        let e = JsonError::NotOneMessage { keys: vec![] };
        assert!(e.to_string().ends_with("found none"));
        let e = JsonError::NotOneMessage {
            keys: vec!["policy".into(), "instruction".into()],
        };
        assert!(e.to_string().ends_with("found \"policy\", \"instruction\""));
    }
}

//! A parsed JSON value that, unlike `serde_json::Value`, keeps every key of
//! an object in the order given — duplicates included — so that the
//! parser can reject a repeated key instead of silently keeping the last.
//!
//! This module only builds and describes values; it decides nothing about
//! what they mean. Nesting depth is bounded by `serde_json`'s recursion
//! limit (128), so building or dropping a `Node` cannot overflow the stack.

use std::fmt::{self, Write as _};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::MAX_QUOTED_LEN;

/// One JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits `u64` or `i64`.
    Int(i128),
    /// Any other number (fraction, exponent, or an integer beyond 64 bits).
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Node>),
    /// An object, keys in the order given, duplicates kept.
    Obj(Vec<(String, Node)>),
}

impl Node {
    /// The kind of value, as an error message names it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a number with a fraction or exponent",
            Node::Str(_) => "a string",
            Node::Arr(_) => "an array",
            Node::Obj(_) => "an object",
        }
    }

    /// The value as compact JSON text, cut at [`MAX_QUOTED_LEN`] bytes
    /// (with a trailing `…` when cut).
    pub(crate) fn quoted(&self) -> String {
        let mut out = Bounded(String::new());
        // Bounded refuses to grow past the limit; the error only means "cut".
        let cut = write!(out, "{self}").is_err();
        let mut s = out.0;
        if cut {
            s.push('…');
        }
        s
    }
}

/// A string writer that fails once the limit is reached.
struct Bounded(String);

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_QUOTED_LEN.saturating_sub(self.0.len());
        if s.len() <= room {
            self.0.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.push_str(&s[..end]);
        Err(fmt::Error)
    }
}

/// Compact JSON.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Null => f.write_str("null"),
            Node::Bool(b) => write!(f, "{b}"),
            Node::Int(i) => write!(f, "{i}"),
            Node::Float(x) => write!(f, "{x}"),
            Node::Str(s) => write_json_str(f, s),
            Node::Arr(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Node::Obj(pairs) => {
                f.write_char('{')?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_json_str(f, k)?;
                    write!(f, ":{v}")?;
                }
                f.write_char('}')
            }
        }
    }
}

/// Writes `s` as a JSON string literal, escaping quotes, backslashes and
/// every control character.
fn write_json_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(i128::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut pairs = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Node>()? {
            pairs.push((k, v));
        }
        Ok(Node::Obj(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> Node {
        serde_json::from_str(text).expect("valid JSON in test")
    }

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let n = node(r#"{"b": 1, "a": 2, "b": 3}"#);
        let Node::Obj(pairs) = n else {
            panic!("not an object: {n:?}")
        };
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "b"]);
    }

    #[test]
    fn integers_beyond_64_bits_are_floats() {
        assert_eq!(
            node("18446744073709551615"),
            Node::Int(i128::from(u64::MAX))
        );
        assert_eq!(
            node("-9223372036854775808"),
            Node::Int(i128::from(i64::MIN))
        );
        assert!(matches!(node("18446744073709551616"), Node::Float(_)));
        assert!(matches!(node("1.5"), Node::Float(_)));
    }

    #[test]
    fn quoted_is_compact_escaped_and_bounded() {
        assert_eq!(
            node(r#"{"a": [1, "x\"\u0001"]}"#).quoted(),
            r#"{"a":[1,"x\"\u0001"]}"#
        );
        let long = Node::Str("é".repeat(100));
        let q = long.quoted();
        assert!(q.ends_with('…'));
        assert!(q.len() <= MAX_QUOTED_LEN + '…'.len_utf8());
    }
}

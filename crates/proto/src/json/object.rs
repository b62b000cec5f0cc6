//! The checks of one JSON object's keys and values: known and unique
//! keys, types, ranges, list limits, enumerated words. Each check returns
//! the [`JsonError`] that names the key path and quotes the bad value.
//!
//! Which keys an object has, and what a request means, is decided in
//! [`super::parse`]; this module only checks values.

use crate::{HourSet, MacAddr, MacList, ModelError, VcpuList, VmName};

use super::JsonError;
use super::node::Node;

/// What `command` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    /// `create`: install a policy.
    Create,
    /// `destroy`: remove a policy.
    Destroy,
    /// `power`: change a core's frequency.
    Power,
}

pub(super) const COMMANDS: [(&str, Command); 3] = [
    ("create", Command::Create),
    ("destroy", Command::Destroy),
    ("power", Command::Power),
];

/// The body of a `policy` or `instruction`, its keys checked.
pub(super) struct Object {
    /// `policy` or `instruction`.
    pub(super) name: &'static str,
    pairs: Vec<(String, Node)>,
}

impl Object {
    /// Checks that `body` is an object whose keys are all known and unique.
    pub(super) fn new(name: &'static str, known: &[&str], body: Node) -> Result<Self, JsonError> {
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

    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(super) fn require(&self, key: &'static str) -> Result<&Node, JsonError> {
        self.get(key).ok_or(JsonError::MissingKey {
            object: self.name,
            key,
        })
    }

    pub(super) fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    pub(super) fn name(&self) -> Result<VmName, JsonError> {
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

    pub(super) fn command(&self) -> Result<Command, JsonError> {
        word(
            &self.path("command"),
            self.require("command")?,
            &COMMANDS,
            "a command",
        )
    }

    pub(super) fn misplaced_command(&self, reason: &str) -> JsonError {
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

    pub(super) fn hours(&self, key: &str) -> Result<HourSet, JsonError> {
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

    pub(super) fn cores(&self) -> Result<VcpuList, JsonError> {
        let items = self.array("core_list", "an array of core numbers")?;
        let ids = self.list("core_list", items, VcpuList::CAPACITY, |path, n| {
            let id = int_in(path, n, i128::from(u8::MAX), "an integer core number")?;
            u8::try_from(id).map_err(|_| out_of_range(path, n, i128::from(u8::MAX)))
        })?;
        Ok(VcpuList::from_slice(&ids).expect("list() caps the length at CAPACITY"))
    }

    pub(super) fn macs(&self) -> Result<MacList, JsonError> {
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

    pub(super) fn threshold(&self, key: &str) -> Result<u32, JsonError> {
        let Some(n) = self.get(key) else { return Ok(0) };
        let path = self.path(key);
        let max = i128::from(u32::MAX);
        let v = int_in(&path, n, max, "an integer packet rate")?;
        u32::try_from(v).map_err(|_| out_of_range(&path, n, max))
    }
}

/// An integer in `0..=max`, or the error that says why `n` is not one.
pub(super) fn int_in(
    path: &str,
    n: &Node,
    max: i128,
    expected: &'static str,
) -> Result<i128, JsonError> {
    match n {
        Node::Int(v) if (0..=max).contains(v) => Ok(*v),
        Node::Int(_) | Node::Float(_) => Err(out_of_range(path, n, max)),
        _ => Err(wrong_type(path.to_owned(), expected, n)),
    }
}

pub(super) fn out_of_range(path: &str, n: &Node, max: i128) -> JsonError {
    let reason = match n {
        Node::Int(v) if *v < 0 => format!("is negative (allowed: 0..={max})"),
        Node::Int(_) => format!("is too large (allowed: 0..={max})"),
        _ => format!("is not an integer in 0..={max}"),
    };
    bad_value(path.to_owned(), n, &reason)
}

/// One of the words of `table`, in any ASCII case.
pub(super) fn word<T: Copy>(
    path: &str,
    n: &Node,
    table: &[(&str, T)],
    what: &str,
) -> Result<T, JsonError> {
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

pub(super) fn refuse_duplicates(
    object: &'static str,
    pairs: &[(String, Node)],
) -> Result<(), JsonError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_in_covers_both_ends_and_beyond() {
        assert_eq!(int_in("k", &Node::Int(0), 23, "an hour"), Ok(0));
        assert_eq!(int_in("k", &Node::Int(23), 23, "an hour"), Ok(23));
        let e = int_in("k", &Node::Int(24), 23, "an hour").expect_err("too large");
        assert_eq!(e.to_string(), "k: 24 is too large (allowed: 0..=23)");
        let e = int_in("k", &Node::Int(-1), 23, "an hour").expect_err("negative");
        assert_eq!(e.to_string(), "k: -1 is negative (allowed: 0..=23)");
        let e = int_in("k", &Node::Float(0.5), 23, "an hour").expect_err("fraction");
        assert_eq!(e.to_string(), "k: 0.5 is not an integer in 0..=23");
        let e = int_in("k", &Node::Bool(true), 23, "an hour").expect_err("type");
        assert_eq!(e.to_string(), "k: expected an hour, got a boolean");
    }

    #[test]
    fn word_ignores_ascii_case_only() {
        assert!(word("c", &Node::Str("PoWeR".into()), &COMMANDS, "a command").is_ok());
        let e =
            word("c", &Node::Str("pöwer".into()), &COMMANDS, "a command").expect_err("not ASCII");
        assert_eq!(
            e.to_string(),
            "c: \"pöwer\" is not a command (create, destroy, power)"
        );
    }

    #[test]
    fn duplicates_are_found_after_the_first_occurrence() {
        let pairs = vec![
            ("a".to_owned(), Node::Null),
            ("b".to_owned(), Node::Null),
            ("a".to_owned(), Node::Null),
        ];
        assert_eq!(
            refuse_duplicates("policy", &pairs),
            Err(JsonError::DuplicateKey {
                object: "policy",
                key: "a".into()
            })
        );
        assert_eq!(refuse_duplicates("policy", &pairs[..2]), Ok(()));
    }
}

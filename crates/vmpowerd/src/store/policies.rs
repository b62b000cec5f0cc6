//! Accepted policies: one per VM, with where it came from, when it was
//! accepted, and the extensions the binary layout cannot carry.
//!
//! ## Invariants
//! - At most one policy per VM: [`Store::put_policy`] replaces.
//! - A policy is in the database when `put_policy` returns `Ok`: the
//!   daemon ACKs only then. An operator's policy (control API, policy
//!   file, FIFO) is fsynced too; a guest's is not (see "Durability" in
//!   [`super`]: a guest's policy needs to survive the daemon, not the host).
//!
//! ## Behavior
//! The policy is stored as the JSON of [`vmpower_proto::Policy`] (explicit
//! hour sets, so DPDK's zero-filled arrays never become "hour 0"), tagged
//! with [`POLICY_FORMAT`]; a row with another format, bad JSON, an
//! unparsable source or a negative time is an error naming the VM and
//! the row, never a panic and never skipped silently.
//!
//! ## Extensions
//! [`StoredPolicy::extensions`] is a JSON object the store keeps verbatim;
//! the engine owns its meaning. The daemon stores the serde form of
//! `vmpower_engine::PolicyExtensions` there: `time_zone` (IANA name),
//! `other_hours` (`"unchanged"|"min"|"medium"|"max"`, filled in with the
//! daemon's default when the policy was accepted), `hysteresis`
//! (`{"band", "dwell"}`, dwell in ms) and `branch_threshold`; absent keys
//! take their defaults.

use std::fmt;

use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};
use vmpower_engine::{ChannelId, VmId};
use vmpower_proto::Policy;

use super::{Store, StoreError, Synchronous};

/// The encoding of the `policy` column this build writes and reads.
pub const POLICY_FORMAT: i64 = 1;

const TABLE: &str = "policies";

/// Where a policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// A guest's channel, `guest channel <vm>.<n>`.
    GuestChannel(ChannelId),
    /// DPDK's JSON FIFO number N, `fifo<N>`.
    Fifo(u32),
    /// `vmpowerctl policy create`, `operator`.
    Operator,
    /// A file in the watched policy directory, `policy-dir <file>`.
    PolicyDir(String),
}

impl PolicySource {
    /// Parses the text [`fmt::Display`] writes; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "operator" {
            return Some(PolicySource::Operator);
        }
        if let Some(channel) = text.strip_prefix("guest channel ") {
            let (vm, index) = channel.rsplit_once('.')?;
            if vm.is_empty() {
                return None;
            }
            return Some(PolicySource::GuestChannel(ChannelId {
                vm: VmId::new(vm),
                index: index.parse().ok()?,
            }));
        }
        if let Some(n) = text.strip_prefix("fifo") {
            return n.parse().ok().map(PolicySource::Fifo);
        }
        text.strip_prefix("policy-dir ")
            .map(|file| PolicySource::PolicyDir(file.to_owned()))
    }
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::GuestChannel(channel) => write!(f, "guest channel {channel}"),
            PolicySource::Fifo(n) => write!(f, "fifo{n}"),
            PolicySource::Operator => f.write_str("operator"),
            PolicySource::PolicyDir(file) => write!(f, "policy-dir {file}"),
        }
    }
}

/// An accepted policy as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPolicy {
    /// The policy.
    pub policy: Policy,
    /// Where it came from.
    pub source: PolicySource,
    /// When it was accepted, unix seconds (passed in by the caller).
    pub accepted_at: u64,
    /// What the binary layout cannot carry; see the module doc for keys.
    pub extensions: Map<String, Value>,
}

impl StoredPolicy {
    /// A policy without extensions.
    pub fn new(policy: Policy, source: PolicySource, accepted_at: u64) -> Self {
        StoredPolicy {
            policy,
            source,
            accepted_at,
            extensions: Map::new(),
        }
    }
}

/// One `policies` row as read, before decoding.
struct RawPolicy {
    rowid: i64,
    vm: String,
    format: i64,
    policy: String,
    source: String,
    accepted_at: i64,
    extensions: String,
}

const SELECT: &str =
    "SELECT rowid, vm, format, policy, source, accepted_at, extensions FROM policies";

fn raw(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawPolicy> {
    Ok(RawPolicy {
        rowid: row.get(0)?,
        vm: row.get(1)?,
        format: row.get(2)?,
        policy: row.get(3)?,
        source: row.get(4)?,
        accepted_at: row.get(5)?,
        extensions: row.get(6)?,
    })
}

impl Store {
    /// Stores `policy` as `vm`'s, replacing any earlier one: committed
    /// before returning, and fsynced unless it came from the guest.
    pub fn put_policy(&mut self, vm: &VmId, policy: &StoredPolicy) -> Result<(), StoreError> {
        let sync = match policy.source {
            PolicySource::GuestChannel(_) => Synchronous::Normal,
            _ => Synchronous::Full,
        };
        let json = self.encode("policy", &policy.policy)?;
        let extensions = self.encode("policy extensions", &policy.extensions)?;
        let accepted_at = self.to_sql_int("accepted_at", policy.accepted_at)?;
        let source = policy.source.to_string();
        self.write(sync, "put policy", |tx| {
            tx.execute(
                "INSERT INTO policies (vm, format, policy, source, accepted_at, extensions)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (vm) DO UPDATE SET format = excluded.format,
                    policy = excluded.policy, source = excluded.source,
                    accepted_at = excluded.accepted_at, extensions = excluded.extensions",
                params![
                    vm.as_str(),
                    POLICY_FORMAT,
                    json,
                    source,
                    accepted_at,
                    extensions
                ],
            )
        })?;
        Ok(())
    }

    /// Sets the extension `key` of `vm`'s stored policy to `value` (what a
    /// TRAFFIC policy learned), keeping the rest; false when `vm` has no
    /// stored policy. Not fsynced: learning again costs some drops, not
    /// correctness.
    pub fn put_policy_extension(
        &mut self,
        vm: &VmId,
        key: &str,
        value: Value,
    ) -> Result<bool, StoreError> {
        let Some(mut stored) = self.policy(vm)? else {
            return Ok(false);
        };
        stored.extensions.insert(key.to_owned(), value);
        let extensions = self.encode("policy extensions", &stored.extensions)?;
        let changed = self.write(Synchronous::Normal, "put policy extension", |tx| {
            tx.execute(
                "UPDATE policies SET extensions = ?2 WHERE vm = ?1",
                params![vm.as_str(), extensions],
            )
        })?;
        Ok(changed > 0)
    }

    /// Withdraws `vm`'s policy, durably; whether there was one.
    pub fn remove_policy(&mut self, vm: &VmId) -> Result<bool, StoreError> {
        self.delete_policy(vm, Synchronous::Full)
    }

    /// Withdraws `vm`'s policy at its guest's request: committed, not
    /// fsynced (as a guest's policy is stored).
    pub fn remove_guest_policy(&mut self, vm: &VmId) -> Result<bool, StoreError> {
        self.delete_policy(vm, Synchronous::Normal)
    }

    fn delete_policy(&mut self, vm: &VmId, sync: Synchronous) -> Result<bool, StoreError> {
        let n = self.write(sync, "remove policy", |tx| {
            tx.execute("DELETE FROM policies WHERE vm = ?1", [vm.as_str()])
        })?;
        Ok(n > 0)
    }

    /// `vm`'s policy, if any.
    pub fn policy(&self, vm: &VmId) -> Result<Option<StoredPolicy>, StoreError> {
        let raw = self.read("read policy", |conn| {
            conn.prepare_cached(&format!("{SELECT} WHERE vm = ?1"))?
                .query_row([vm.as_str()], raw)
                .optional()
        })?;
        raw.map(|r| self.decode_policy(r).map(|(_, p)| p))
            .transpose()
    }

    /// Every stored policy, ordered by VM name. One corrupt row makes the
    /// whole call fail (naming the row): the daemon must not start with a
    /// policy silently missing.
    pub fn policies(&self) -> Result<Vec<(VmId, StoredPolicy)>, StoreError> {
        let rows = self.read("read policies", |conn| {
            conn.prepare_cached(&format!("{SELECT} ORDER BY vm"))?
                .query_map([], raw)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(|r| self.decode_policy(r)).collect()
    }

    fn decode_policy(&self, raw: RawPolicy) -> Result<(VmId, StoredPolicy), StoreError> {
        let row = format!("row {} (VM {})", raw.rowid, raw.vm);
        if raw.format != POLICY_FORMAT {
            return Err(self.corrupt(
                TABLE,
                &row,
                format!(
                    "policy format {} unknown (this build reads {POLICY_FORMAT})",
                    raw.format
                ),
            ));
        }
        let policy: Policy = self.decode(TABLE, &row, "policy", &raw.policy)?;
        let extensions: Map<String, Value> =
            self.decode(TABLE, &row, "extensions", &raw.extensions)?;
        let source = PolicySource::parse(&raw.source)
            .ok_or_else(|| self.corrupt(TABLE, &row, format!("source {:?} unknown", raw.source)))?;
        let accepted_at = u64::try_from(raw.accepted_at).map_err(|_| {
            self.corrupt(
                TABLE,
                &row,
                format!("accepted_at {} negative", raw.accepted_at),
            )
        })?;
        Ok((
            VmId::new(&raw.vm),
            StoredPolicy {
                policy,
                source,
                accepted_at,
                extensions,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_through_text() {
        let cases = [
            PolicySource::GuestChannel(ChannelId {
                vm: VmId::new("web.prod.1"),
                index: 3,
            }),
            PolicySource::Fifo(0),
            PolicySource::Fifo(17),
            PolicySource::Operator,
            PolicySource::PolicyDir("web 1.toml".to_owned()),
        ];
        for source in cases {
            let text = source.to_string();
            assert_eq!(PolicySource::parse(&text), Some(source), "{text}");
        }
        assert_eq!(
            PolicySource::Fifo(2).to_string(),
            "fifo2",
            "the documented spelling"
        );
    }

    #[test]
    fn unknown_source_texts_are_none() {
        for text in [
            "",
            "fifo",
            "fifo-1",
            "guest channel vm",
            "guest channel .3",
            "guest channel vm.x",
            "operators",
            "policy-dir",
        ] {
            assert_eq!(PolicySource::parse(text), None, "{text:?}");
        }
    }
}

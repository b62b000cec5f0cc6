//! The typed model of every message on the guest channel.
//!
//! These types say what a message means, not how it is laid out: the byte
//! layouts live in [`crate::layout`], DPDK's JSON forms in [`crate::json`].
//! Every type here can only hold values the protocol allows (at most 8
//! vCPUs, at most 10 MACs, hours 0..=23, a VM name that fits its 32-byte
//! field with its NUL), so a value of these types can always be encoded.
//!
//! Nothing here allocates: lists are fixed-capacity inline arrays, so
//! decoding a record on the hot path costs no heap traffic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Which of the two binary layouts a channel carries. A stream carries no
/// length, so this must be configured per VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// DPDK 18.x and later: 464-byte records with `core_type`.
    #[default]
    Current,
    /// DPDK 17.11, the original policy patch set: 456-byte records, no
    /// `core_type`, no BRANCH_RATIO.
    #[serde(rename = "dpdk-17.11", alias = "dpdk1711")]
    Dpdk1711,
}

impl Layout {
    /// Size in bytes of one request/policy record in this layout.
    pub const fn record_len(self) -> usize {
        match self {
            Layout::Current => 464,
            Layout::Dpdk1711 => 456,
        }
    }
}

/// How a guest wants a core's frequency changed (`unit` with CPU_POWER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScalingUnit {
    /// One step up the frequency table (code 1).
    ScaleUp,
    /// One step down the frequency table (code 2).
    ScaleDown,
    /// The highest allowed frequency (code 3).
    ScaleMax,
    /// The lowest frequency (code 4).
    ScaleMin,
    /// Allow the turbo pseudo-frequency on this core (code 5).
    EnableTurbo,
    /// Forbid turbo on this core (code 6).
    DisableTurbo,
}

impl ScalingUnit {
    /// Every unit, in wire-code order.
    pub const ALL: [ScalingUnit; 6] = [
        ScalingUnit::ScaleUp,
        ScalingUnit::ScaleDown,
        ScalingUnit::ScaleMax,
        ScalingUnit::ScaleMin,
        ScalingUnit::EnableTurbo,
        ScalingUnit::DisableTurbo,
    ];

    /// The wire code of this unit.
    pub const fn code(self) -> u32 {
        match self {
            ScalingUnit::ScaleUp => 1,
            ScalingUnit::ScaleDown => 2,
            ScalingUnit::ScaleMax => 3,
            ScalingUnit::ScaleMin => 4,
            ScalingUnit::EnableTurbo => 5,
            ScalingUnit::DisableTurbo => 6,
        }
    }

    /// The unit with this wire code, if there is one.
    pub const fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => ScalingUnit::ScaleUp,
            2 => ScalingUnit::ScaleDown,
            3 => ScalingUnit::ScaleMax,
            4 => ScalingUnit::ScaleMin,
            5 => ScalingUnit::EnableTurbo,
            6 => ScalingUnit::DisableTurbo,
            _ => return None,
        })
    }
}

/// Whether `resource_id` names a vCPU of the guest or a host CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoreType {
    /// A vCPU of the sending VM (byte 0).
    #[default]
    Virtual,
    /// A physical CPU of the host (byte 1); refused unless the operator
    /// allowed it for that VM.
    Physical,
}

/// Which policy a PKT_POLICY record asks for (`policy_to_use`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyKind {
    /// Frequency follows the received packet rate of the policy's MACs (0).
    Traffic,
    /// Frequency follows busy/quiet/traffic hours of the day (1).
    Time,
    /// Frequency follows a declared workload level (2).
    Workload,
    /// Frequency follows the branch-miss ratio of the cores (3; current
    /// layout only).
    BranchRatio,
}

impl PolicyKind {
    /// The wire code of this policy kind.
    pub const fn code(self) -> i32 {
        match self {
            PolicyKind::Traffic => 0,
            PolicyKind::Time => 1,
            PolicyKind::Workload => 2,
            PolicyKind::BranchRatio => 3,
        }
    }

    /// The policy kind with this wire code, if there is one.
    pub const fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => PolicyKind::Traffic,
            1 => PolicyKind::Time,
            2 => PolicyKind::Workload,
            3 => PolicyKind::BranchRatio,
            _ => return None,
        })
    }
}

/// A declared workload level (`workload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadLevel {
    /// Run at max (0).
    #[default]
    High,
    /// Run at medium (1).
    Medium,
    /// Run at min (2).
    Low,
}

impl WorkloadLevel {
    /// The wire code of this level.
    pub const fn code(self) -> i32 {
        match self {
            WorkloadLevel::High => 0,
            WorkloadLevel::Medium => 1,
            WorkloadLevel::Low => 2,
        }
    }

    /// The level with this wire code, if there is one.
    pub const fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => WorkloadLevel::High,
            1 => WorkloadLevel::Medium,
            2 => WorkloadLevel::Low,
            _ => return None,
        })
    }
}

/// What a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueryKind {
    /// Current frequency of one vCPU (QUERY_FREQ, 8).
    Freq,
    /// Current frequency of every vCPU of the VM (QUERY_FREQ_LIST, 7).
    FreqList,
    /// Turbo/priority capabilities of one vCPU (QUERY_CAPS, 10).
    Caps,
    /// Capabilities of every vCPU of the VM (QUERY_CAPS_LIST, 9).
    CapsList,
}

/// A MAC address, as carried in the low six bytes of a `vfid` slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = ModelError;

    /// Parses `xx:xx:xx:xx:xx:xx` (hex, either case; `-` also accepted as
    /// separator).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ModelError::BadMac(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of hours of the day (0..=23). Never a zero-filled array: an hour is
/// in the set or it is not.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HourSet(u32);

impl HourSet {
    /// The empty set.
    pub const EMPTY: HourSet = HourSet(0);

    /// Builds a set from hours, refusing any outside 0..=23.
    pub fn from_hours(hours: impl IntoIterator<Item = u8>) -> Result<Self, ModelError> {
        let mut set = HourSet::EMPTY;
        for h in hours {
            set.insert(h)?;
        }
        Ok(set)
    }

    /// Adds an hour, refusing one outside 0..=23.
    pub fn insert(&mut self, hour: u8) -> Result<(), ModelError> {
        if hour > 23 {
            return Err(ModelError::BadHour(i64::from(hour)));
        }
        self.0 |= 1 << hour;
        Ok(())
    }

    /// Whether `hour` is in the set.
    pub const fn contains(self, hour: u8) -> bool {
        hour < 24 && self.0 & (1 << hour) != 0
    }

    /// Whether the set has no hour.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of hours in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The hours in ascending order.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0u8..24).filter(move |h| self.contains(*h))
    }
}

impl fmt::Debug for HourSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for HourSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for HourSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hours = Vec::<i64>::deserialize(d)?;
        let mut set = HourSet::EMPTY;
        for h in hours {
            let hour = u8::try_from(h)
                .ok()
                .filter(|h| *h <= 23)
                .ok_or(ModelError::BadHour(h))
                .map_err(serde::de::Error::custom)?;
            set.insert(hour).map_err(serde::de::Error::custom)?;
        }
        Ok(set)
    }
}

/// Up to [`VcpuList::CAPACITY`] vCPU (or core) numbers, in the order given.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VcpuList {
    len: u8,
    ids: [u8; 8],
}

impl VcpuList {
    /// The most cores one policy can name (DPDK's MAX_VCPU_PER_VM).
    pub const CAPACITY: usize = 8;

    /// Builds a list, refusing more than [`Self::CAPACITY`] entries.
    pub fn from_slice(ids: &[u8]) -> Result<Self, ModelError> {
        if ids.len() > Self::CAPACITY {
            return Err(ModelError::TooManyVcpus(ids.len()));
        }
        let mut list = VcpuList::default();
        list.ids[..ids.len()].copy_from_slice(ids);
        list.len = u8::try_from(ids.len()).expect("at most 8");
        Ok(list)
    }

    /// The entries.
    pub fn as_slice(&self) -> &[u8] {
        &self.ids[..usize::from(self.len)]
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for VcpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Serialize for VcpuList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for VcpuList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ids = Vec::<u8>::deserialize(d)?;
        VcpuList::from_slice(&ids).map_err(serde::de::Error::custom)
    }
}

/// Up to [`MacList::CAPACITY`] MAC addresses to monitor, in the order given.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacList {
    len: u8,
    macs: [MacAddr; 10],
}

impl MacList {
    /// The most MACs one policy can name (DPDK's MAX_VFS).
    pub const CAPACITY: usize = 10;

    /// Builds a list, refusing more than [`Self::CAPACITY`] entries.
    pub fn from_slice(macs: &[MacAddr]) -> Result<Self, ModelError> {
        if macs.len() > Self::CAPACITY {
            return Err(ModelError::TooManyMacs(macs.len()));
        }
        let mut list = MacList::default();
        list.macs[..macs.len()].copy_from_slice(macs);
        list.len = u8::try_from(macs.len()).expect("at most 10");
        Ok(list)
    }

    /// The entries.
    pub fn as_slice(&self) -> &[MacAddr] {
        &self.macs[..usize::from(self.len)]
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for MacList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Serialize for MacList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for MacList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let macs = Vec::<MacAddr>::deserialize(d)?;
        MacList::from_slice(&macs).map_err(serde::de::Error::custom)
    }
}

/// The name a guest puts in its packets: UTF-8, at most 31 bytes so that it
/// fits the 32-byte field with its NUL. Informational only: the host
/// identifies a VM by its channel, never by this name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VmName {
    len: u8,
    bytes: [u8; 31],
}

impl VmName {
    /// The longest name in bytes (the field is 32 bytes with its NUL).
    pub const MAX_LEN: usize = 31;

    /// Builds a name, refusing one longer than [`Self::MAX_LEN`] bytes or
    /// containing a NUL.
    pub fn new(name: &str) -> Result<Self, ModelError> {
        if name.len() > Self::MAX_LEN {
            return Err(ModelError::NameTooLong(name.to_owned()));
        }
        if name.contains('\0') {
            return Err(ModelError::NameHasNul(name.to_owned()));
        }
        let mut out = VmName::default();
        out.bytes[..name.len()].copy_from_slice(name.as_bytes());
        out.len = u8::try_from(name.len()).expect("at most 31");
        Ok(out)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("built only from a str")
    }
}

impl fmt::Debug for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for VmName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for VmName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        VmName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Packet-rate thresholds of a TRAFFIC policy, in packets per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrafficThresholds {
    /// `min_packet_thresh`: carried, unused by DPDK.
    pub min_pps: u32,
    /// `avg_max_packet_thresh`: at or above → medium.
    pub avg_pps: u32,
    /// `max_max_packet_thresh`: at or above → max.
    pub max_pps: u32,
}

/// The hours of a TIME policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HourSchedule {
    /// Hours at max.
    pub busy: HourSet,
    /// Hours at min.
    pub quiet: HourSet,
    /// Hours that follow the TRAFFIC thresholds.
    pub traffic: HourSet,
}

/// A power policy, as a PKT_POLICY record or a JSON `policy` object carries
/// it. Which fields matter depends on `kind`; all are kept so that a policy
/// survives a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Policy {
    /// Which policy to apply.
    pub kind: PolicyKind,
    /// The cores it governs (`vcpu_to_control`).
    pub cores: VcpuList,
    /// Whether `cores` are vCPUs or host CPUs.
    pub core_type: CoreType,
    /// The MACs whose traffic drives a TRAFFIC policy (`vfid`).
    pub macs: MacList,
    /// Thresholds of a TRAFFIC policy.
    pub traffic: TrafficThresholds,
    /// Hours of a TIME policy.
    pub hours: HourSchedule,
    /// Level of a WORKLOAD policy.
    pub workload: WorkloadLevel,
    /// `t_boost_status.tbEnabled`.
    pub turbo_boost: bool,
}

impl Policy {
    /// A policy of `kind` on the vCPUs `cores`, every other field at its
    /// default (virtual cores, no MACs, zero thresholds, no hours,
    /// workload HIGH, no turbo boost): set the fields the kind uses with
    /// struct-update syntax.
    pub fn new(kind: PolicyKind, cores: VcpuList) -> Self {
        Policy {
            kind,
            cores,
            core_type: CoreType::Virtual,
            macs: MacList::default(),
            traffic: TrafficThresholds::default(),
            hours: HourSchedule::default(),
            workload: WorkloadLevel::High,
            turbo_boost: false,
        }
    }
}

/// What a guest (or DPDK's JSON FIFO) asks of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestBody {
    /// CPU_POWER_CONNECT: a sign of life when the guest opens its port.
    Connect {
        /// The core the guest's library opened the port for.
        resource_id: u64,
    },
    /// CPU_POWER: change one core's frequency.
    Power {
        /// The core (vCPU unless `core_type` is physical).
        resource_id: u64,
        /// Whether `resource_id` is a vCPU or a host CPU.
        core_type: CoreType,
        /// The change.
        unit: ScalingUnit,
    },
    /// PKT_POLICY: install (or replace) the VM's policy.
    SetPolicy(Policy),
    /// PKT_POLICY_REMOVE: drop the VM's policy.
    RemovePolicy,
    /// QUERY_*: ask for frequencies or capabilities.
    Query {
        /// What is asked.
        kind: QueryKind,
        /// The vCPU asked about (for the single-core queries).
        resource_id: u64,
    },
    /// vmpower's native-contract handshake (not a DPDK command): the guest
    /// asks for the native reply contract, up to `version`
    /// ([`crate::contract`]).
    Hello {
        /// The highest native contract version the guest speaks.
        version: u32,
    },
    /// vmpower's native-contract (v2) busyness report (not a DPDK
    /// command): how busy the guest's vCPUs are. Never answered.
    Busyness(crate::BusynessReport),
}

/// One decoded guest request: the name the guest claims, and what it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Request {
    /// `vm_name` as sent; never trusted as identity.
    pub vm_name: VmName,
    /// The request itself.
    pub body: RequestBody,
}

/// Frequency in kHz, as cpufreq and the frequency-list reply carry it.
pub type Khz = u32;

/// The 88-byte FREQ_LIST reply: current frequency per vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FreqListReply {
    /// Echo of the request's `resource_id`.
    pub resource_id: u64,
    /// Echo of the request's `unit` field.
    pub unit: u32,
    /// The VM's name.
    pub vm_name: VmName,
    /// kHz, indexed by vCPU; entries past `num_vcpu` are zero.
    pub freqs_khz: [Khz; 8],
    /// How many entries of `freqs_khz` are meaningful (0..=8).
    pub num_vcpu: u8,
}

/// The 184-byte CAPS_LIST reply: turbo and priority per vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CapsReply {
    /// Echo of the request's `resource_id`.
    pub resource_id: u64,
    /// Echo of the request's `unit` field.
    pub unit: u32,
    /// The VM's name.
    pub vm_name: VmName,
    /// Turbo available, indexed by vCPU.
    pub turbo: [bool; 8],
    /// A higher-priority core (e.g. Intel SST-BF), indexed by vCPU.
    pub priority: [bool; 8],
    /// How many entries are meaningful (0..=8).
    pub num_vcpu: u8,
}

/// The host's verdict on a request: ACK (1) or NACK (2), sent as a full
/// request-size record echoing the request with `command` replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// The request took effect.
    Ack,
    /// The request was refused or failed.
    Nack,
}

impl Verdict {
    /// The wire code (`command` field of the reply).
    pub const fn code(self) -> u32 {
        match self {
            Verdict::Ack => 1,
            Verdict::Nack => 2,
        }
    }
}

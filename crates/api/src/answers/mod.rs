//! The daemon's answers, one type per request, in files named for what
//! they answer about. Each serialises to the JSON the daemon has always
//! sent (the tests here pin it), so scripts reading `--json` keep working
//! while the daemon and vmpowerctl share one definition the compiler
//! checks.
//!
//! | request | answer |
//! |---|---|
//! | `status` | [`Status`] |
//! | `top` | [`TopFrame`] |
//! | `list-vms` / `show-vm` | [`VmList`] / [`VmInfo`] |
//! | `add-vm` / `rm-vm` | [`VmAdded`] / [`Removed`] |
//! | `add-channels` / `reconnect-channels` | [`ChannelsAdded`] / [`ChannelsReconnected`] |
//! | `set-channel-status` | [`ChannelStatusSet`] |
//! | `set-pcpu` / `set-query` | [`PcpuSet`] / [`QueriesSet`] |
//! | `show-cpu-freq` / `set-cpu-freq` | `Vec<`[`CpuFreq`]`>` / `Vec<`[`CpuFreqSet`]`>` |
//! | `policy create` / `policy show` | [`PolicyDescription`] |
//! | `policy list` / `policy destroy` | [`PolicyList`] / [`Removed`] |
//! | `history` | [`History`] |
//! | `show-vfs` / `set-vf-mac` | `Vec<`[`VfInfo`]`>` / [`VfMacSet`] |
//! | `traffic-record` | [`RatePage`](crate::rate_record::RatePage) |

mod channels;
mod cpufreq;
mod history;
mod policy;
mod status;
mod top;
mod vfs;
mod vm;

use serde::Serialize;

pub use channels::{ChannelStatusSet, ChannelsAdded, ChannelsReconnected};
pub use cpufreq::{CpuFreq, CpuFreqSet};
pub use history::{DecisionInputs, GivenBack, History, HistoryEntry, PolicyInputs};
pub use policy::{
    Capacity, CoreLevel, Hysteresis, LearnedCapacities, OtherHours, PolicyDescription,
    PolicyExtensions, PolicyList, PolicyMac, ThresholdsInForce,
};
pub use status::{
    BusyVcpu, BusynessControl, Counters, ForeignWrites, PolicyBrief, PolicyStateName, RecentError,
    RecentErrorKind, RefusedFile, Status,
};
pub use top::{ChannelState, LastDecision, TopFrame, TopPcpu, TopVm, Totals};
pub use vfs::{VfInfo, VfMacSet};
pub use vm::{
    PcpuSet, QueriesSet, Removed, VcpuPlacement, VmAdded, VmChannel, VmInfo, VmList, VmSettings,
};

/// Any answer, as the daemon sends it: the variant's data alone, untagged
/// (the client knows which one to expect from its request, so this is
/// only serialised).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// `status`.
    Status(Box<Status>),
    /// `top`.
    Top(TopFrame),
    /// `list-vms`.
    Vms(VmList),
    /// `show-vm`.
    Vm(VmInfo),
    /// `add-vm`.
    VmAdded(VmAdded),
    /// `rm-vm`, `policy destroy`.
    Removed(Removed),
    /// `add-channels`.
    ChannelsAdded(ChannelsAdded),
    /// `reconnect-channels`.
    ChannelsReconnected(ChannelsReconnected),
    /// `set-channel-status`.
    ChannelStatusSet(ChannelStatusSet),
    /// `set-pcpu`.
    PcpuSet(PcpuSet),
    /// `set-query`.
    QueriesSet(QueriesSet),
    /// `show-cpu-freq`.
    CpuFreqs(Vec<CpuFreq>),
    /// `set-cpu-freq`.
    CpuFreqsSet(Vec<CpuFreqSet>),
    /// `policy create`, `policy show`.
    Policy(Box<PolicyDescription>),
    /// `policy list`.
    Policies(PolicyList),
    /// `history`.
    History(History),
    /// `show-vfs`.
    Vfs(Vec<VfInfo>),
    /// `set-vf-mac`.
    VfMacSet(VfMacSet),
    /// `traffic-record`.
    RatePage(crate::rate_record::RatePage),
}

/// Asserts that `answer` goes on the wire exactly as `wire` (keys sorted,
/// as the daemon sends them) and that `wire` reads back as `answer`.
#[cfg(test)]
#[track_caller]
pub(crate) fn pin<T>(answer: &T, wire: &str)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Clone,
{
    let sent = crate::CtlResponse::Ok(answer.clone())
        .to_line()
        .expect("encodes");
    assert_eq!(sent, format!("{{\"ok\":{wire}}}"));
    let read: T = serde_json::from_str(wire).expect("the daemon's JSON reads back");
    assert_eq!(&read, answer);
}

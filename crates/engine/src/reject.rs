//! Why the engine refuses or ignores what a guest sent. Every reason has a
//! stable label for metrics and a message for logs and operators.

use vmpower_cpufreq::CpuId;

use crate::ids::Vcpu;

/// A refused request. The daemon answers NACK (or stays silent where the
/// variant says so), logs the message (rate-limited) and counts the label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The record could not be decoded.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The channel belongs to no VM the engine knows.
    #[error("no VM named {0:?} is known")]
    UnknownVm(String),
    /// The channel was disabled by the operator: requests are read and
    /// ignored, without a reply (as DPDK).
    #[error("channel disabled by the operator")]
    ChannelDisabled,
    /// The channel sent faster than its rate limit.
    #[error("rate limit exceeded")]
    RateLimited,
    /// The vCPU is beyond the VM's vCPUs.
    #[error("vCPU {vcpu} out of range: the VM has {count} vCPUs")]
    VcpuOutOfRange {
        /// The vCPU asked for.
        vcpu: u64,
        /// How many vCPUs the VM has.
        count: usize,
    },
    /// Where the vCPU runs is not known yet.
    #[error("vCPU {0} has no known pCPU")]
    NoPlacement(Vcpu),
    /// The vCPU may run on several pCPUs and the VM may not drive them all.
    #[error("vCPU {vcpu} may run on pCPUs {pcpus}; the VM is not allowed to drive several pCPUs")]
    AffinitySpansPcpus {
        /// The vCPU.
        vcpu: Vcpu,
        /// Its affinity, as a CPU list.
        pcpus: String,
    },
    /// A physical-core request from a VM without that grant.
    #[error("physical-core requests are not allowed for this VM")]
    PhysicalNotAllowed,
    /// A physical-core request for a pCPU none of the VM's vCPUs runs on.
    #[error("pCPU {0} is not one of the VM's pCPUs")]
    PhysicalNotOwned(u64),
    /// The pCPU has no frequency control (no cpufreq, unknown driver).
    #[error("pCPU {0} has no frequency control")]
    NotControllable(CpuId),
    /// The operator holds the pCPU at a level of its own.
    #[error("pCPU {0} is held at a fixed level by the operator")]
    OperatorPinned(CpuId),
    /// The pCPU was given up to another writer of its cpufreq files
    /// (`foreign_writer = "yield"`).
    #[error(
        "pCPU {0} was given up to another writer of its cpufreq files (foreign_writer = \"yield\"); an operator's set-cpu-freq takes it back"
    )]
    Yielded(CpuId),
    /// The operation does not apply to the core (e.g. turbo where none).
    #[error("{0}")]
    NotApplicable(String),
    /// Queries are not allowed for this VM (`set-query`).
    #[error("queries are not allowed for this VM")]
    QueriesNotAllowed,
    /// The core is driven by the VM's policy.
    #[error("vCPU/pCPU {0} is driven by the VM's policy")]
    PolicyOwnsCore(String),
    /// The policy cannot be carried out as sent.
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// BRANCH_RATIO needs hardware branch counters, which the host lacks.
    #[error(
        "BRANCH_RATIO needs hardware performance counters (perf_event_open), which this host does not offer"
    )]
    NoBranchCounters,
    /// The request kind is not handled (yet).
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// A BUSYNESS report on a channel not granted native v2 or later.
    #[error("BUSYNESS report on a channel not granted the native contract v2 (HELLO first)")]
    BusynessNotNegotiated,
    /// The VM sent busyness reports faster than the host's limit.
    #[error("busyness reports above the host's rate limit")]
    ReportRateExceeded,
}

impl Rejection {
    /// A stable, low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::UnknownVm(_) => "unknown_vm",
            Rejection::ChannelDisabled => "channel_disabled",
            Rejection::RateLimited => "rate_limited",
            Rejection::VcpuOutOfRange { .. } => "vcpu_out_of_range",
            Rejection::NoPlacement(_) => "no_placement",
            Rejection::AffinitySpansPcpus { .. } => "affinity_spans_pcpus",
            Rejection::PhysicalNotAllowed => "physical_not_allowed",
            Rejection::PhysicalNotOwned(_) => "physical_not_owned",
            Rejection::NotControllable(_) => "not_controllable",
            Rejection::Yielded(_) => "yielded_to_foreign_writer",
            Rejection::OperatorPinned(_) => "operator_pinned",
            Rejection::NotApplicable(_) => "not_applicable",
            Rejection::QueriesNotAllowed => "queries_not_allowed",
            Rejection::PolicyOwnsCore(_) => "policy_owns_core",
            Rejection::InvalidPolicy(_) => "invalid_policy",
            Rejection::NoBranchCounters => "no_branch_counters",
            Rejection::Unsupported(_) => "unsupported",
            Rejection::BusynessNotNegotiated => "busyness_not_negotiated",
            Rejection::ReportRateExceeded => "report_rate_exceeded",
        }
    }

    /// The reason code a native-contract NACK carries.
    pub fn nack_reason(&self) -> vmpower_proto::contract::NackReason {
        use vmpower_proto::contract::NackReason as N;
        match self {
            Rejection::Malformed(_) => N::Malformed,
            Rejection::UnknownVm(_) => N::UnknownVm,
            Rejection::ChannelDisabled | Rejection::RateLimited => N::Other,
            Rejection::VcpuOutOfRange { .. } => N::VcpuOutOfRange,
            Rejection::NoPlacement(_) => N::NoPlacement,
            Rejection::AffinitySpansPcpus { .. } => N::AffinitySpansPcpus,
            Rejection::PhysicalNotAllowed => N::PhysicalNotAllowed,
            Rejection::PhysicalNotOwned(_) => N::PhysicalNotOwned,
            Rejection::NotControllable(_) | Rejection::Yielded(_) => N::NotControllable,
            Rejection::OperatorPinned(_) => N::OperatorPinned,
            Rejection::NotApplicable(_) => N::NotApplicable,
            Rejection::QueriesNotAllowed => N::QueriesNotAllowed,
            Rejection::PolicyOwnsCore(_) => N::PolicyOwnsCore,
            Rejection::InvalidPolicy(_) => N::InvalidPolicy,
            Rejection::NoBranchCounters => N::NoBranchCounters,
            Rejection::Unsupported(_) | Rejection::BusynessNotNegotiated => N::Unsupported,
            Rejection::ReportRateExceeded => N::Other,
        }
    }

    /// Whether the guest gets a NACK (false: silently ignored). A disabled
    /// channel is ignored as in DPDK; a flooding channel gets no answer
    /// either, so that a flood does not also cost a reply per request.
    pub fn nacked(&self) -> bool {
        !matches!(self, Rejection::ChannelDisabled | Rejection::RateLimited)
    }
}

//! Human-readable names of requests and replies, for error messages and
//! the CLI's output. Pure functions; no I/O.

use vmpower_proto::layout::ReplyKind;
use vmpower_proto::{CoreType, PolicyKind, QueryKind, RequestBody, ScalingUnit, Verdict};

/// DPDK's name of a scaling unit (`SCALE_UP`, ...).
pub fn unit_name(unit: ScalingUnit) -> &'static str {
    match unit {
        ScalingUnit::ScaleUp => "SCALE_UP",
        ScalingUnit::ScaleDown => "SCALE_DOWN",
        ScalingUnit::ScaleMax => "SCALE_MAX",
        ScalingUnit::ScaleMin => "SCALE_MIN",
        ScalingUnit::EnableTurbo => "ENABLE_TURBO",
        ScalingUnit::DisableTurbo => "DISABLE_TURBO",
    }
}

/// DPDK's name of a policy kind (`TIME`, ...).
pub fn policy_kind_name(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Traffic => "TRAFFIC",
        PolicyKind::Time => "TIME",
        PolicyKind::Workload => "WORKLOAD",
        PolicyKind::BranchRatio => "BRANCH_RATIO",
    }
}

/// DPDK's name of a reply kind (`ACK`, `FREQ_LIST`, ...).
pub fn reply_kind_name(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::Verdict(Verdict::Ack) => "ACK",
        ReplyKind::Verdict(Verdict::Nack) => "NACK",
        ReplyKind::FreqList => "FREQ_LIST",
        ReplyKind::CapsList => "CAPS_LIST",
    }
}

/// A request as one line, e.g. `CPU_POWER SCALE_UP vCPU 1`.
pub fn request_name(body: &RequestBody) -> String {
    match body {
        RequestBody::Connect { resource_id } => format!("CPU_POWER_CONNECT {resource_id}"),
        RequestBody::Power {
            resource_id,
            core_type,
            unit,
        } => {
            let core = match core_type {
                CoreType::Virtual => "vCPU",
                CoreType::Physical => "pCPU",
            };
            format!("CPU_POWER {} {core} {resource_id}", unit_name(*unit))
        }
        RequestBody::SetPolicy(policy) => {
            format!("PKT_POLICY {}", policy_kind_name(policy.kind))
        }
        RequestBody::RemovePolicy => "PKT_POLICY_REMOVE".to_owned(),
        RequestBody::Query { kind, resource_id } => match kind {
            QueryKind::Freq => format!("QUERY_FREQ vCPU {resource_id}"),
            QueryKind::FreqList => "QUERY_FREQ_LIST".to_owned(),
            QueryKind::Caps => format!("QUERY_CAPS vCPU {resource_id}"),
            QueryKind::CapsList => "QUERY_CAPS_LIST".to_owned(),
        },
        RequestBody::Hello { version } => format!("HELLO (native contract v{version})"),
        RequestBody::Busyness(report) => {
            format!("BUSYNESS ({} vCPUs)", report.entries().len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let body = RequestBody::Power {
            resource_id: 1,
            core_type: CoreType::Virtual,
            unit: ScalingUnit::EnableTurbo,
        };
        assert_eq!(request_name(&body), "CPU_POWER ENABLE_TURBO vCPU 1");
        let q = RequestBody::Query {
            kind: QueryKind::Caps,
            resource_id: 3,
        };
        assert_eq!(request_name(&q), "QUERY_CAPS vCPU 3");
        assert_eq!(reply_kind_name(ReplyKind::CapsList), "CAPS_LIST");
    }
}

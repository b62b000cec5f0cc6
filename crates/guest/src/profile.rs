//! DPDK guest_cli's example policy, sent by `vmpower-guest send-policy`
//! when no policy option is given, and the guest MAC it monitors.
//!
//! The profile: vCPUs 0 and 1, policy TIME, busy hours 3–5, quiet hours
//! 11–13, traffic-profile hours 8 and 10, packet thresholds 96000 (min),
//! 1800000 (avg), 2000000 (max), virtual cores, turbo boost off, and the MAC
//! of the guest's first network interface if it has one. `workload` is not
//! used by TIME and keeps its default.
//!
//! Reading `/sys/class/net` is the only I/O here; its root is a parameter.

use std::path::Path;

use vmpower_proto::{
    HourSchedule, HourSet, MacAddr, MacList, Policy, PolicyKind, TrafficThresholds, VcpuList,
    WorkloadLevel,
};

/// DPDK guest_cli's example policy, monitoring `mac` if given.
pub fn dpdk_example_policy(mac: Option<MacAddr>) -> Policy {
    let hours = |h: &[u8]| HourSet::from_hours(h.iter().copied()).expect("hours below 24");
    Policy {
        macs: MacList::from_slice(mac.as_slice()).expect("1 MAC fits"),
        traffic: TrafficThresholds {
            min_pps: 96_000,
            avg_pps: 1_800_000,
            max_pps: 2_000_000,
        },
        hours: HourSchedule {
            busy: hours(&[3, 4, 5]),
            quiet: hours(&[11, 12, 13]),
            traffic: hours(&[8, 10]),
        },
        workload: WorkloadLevel::default(),
        ..Policy::new(
            PolicyKind::Time,
            VcpuList::from_slice(&[0, 1]).expect("2 vCPUs fit"),
        )
    }
}

/// The MAC of the guest's first network interface: the first entry of
/// `<sys>/class/net` in name order, other than `lo`, whose `address` is a
/// MAC that is not all zeros.
pub fn first_interface_mac(sys_root: &Path) -> Option<(String, MacAddr)> {
    let net = sys_root.join("class/net");
    let mut names: Vec<String> = std::fs::read_dir(&net)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let text = std::fs::read_to_string(net.join(&name).join("address")).ok()?;
        let mac: MacAddr = text.trim().parse().ok()?;
        (mac != MacAddr::default()).then_some((name, mac))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(root: &Path, name: &str, addr: &str) {
        let d = root.join("class/net").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("address"), format!("{addr}\n")).unwrap();
    }

    #[test]
    fn first_real_interface_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(first_interface_mac(dir.path()), None);
        iface(dir.path(), "lo", "00:00:00:00:00:00");
        iface(dir.path(), "dummy0", "00:00:00:00:00:00");
        iface(dir.path(), "eth1", "52:54:00:00:00:02");
        iface(dir.path(), "eth0", "52:54:00:00:00:01");
        let (name, mac) = first_interface_mac(dir.path()).unwrap();
        assert_eq!(name, "eth0");
        assert_eq!(mac.to_string(), "52:54:00:00:00:01");
    }

    #[test]
    fn example_profile_matches_dpdk() {
        let mac: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let p = dpdk_example_policy(Some(mac));
        assert_eq!(p.kind, PolicyKind::Time);
        assert_eq!(p.cores.as_slice(), [0, 1]);
        assert_eq!(p.hours.busy.iter().collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(p.hours.quiet.iter().collect::<Vec<_>>(), [11, 12, 13]);
        assert_eq!(p.hours.traffic.iter().collect::<Vec<_>>(), [8, 10]);
        assert_eq!(p.traffic.min_pps, 96_000);
        assert_eq!(p.traffic.avg_pps, 1_800_000);
        assert_eq!(p.traffic.max_pps, 2_000_000);
        assert_eq!(p.macs.as_slice(), [mac]);
        assert!(dpdk_example_policy(None).macs.is_empty());
    }
}

//! The answers about VMs: `list-vms` and `show-vm` (a VM's settings,
//! placement and channels), `add-vm`, `rm-vm`, `set-pcpu` and
//! `set-query`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vmpower_proto::Layout;

/// The answer to [`crate::CtlRequest::ShowVm`]; `list-vms` answers a list
/// of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    /// The VM.
    pub name: String,
    /// Its operator settings.
    pub settings: VmSettings,
    /// Where each of its vCPUs runs.
    pub vcpus: Vec<VcpuPlacement>,
    /// Its channel sockets.
    pub channels: Vec<VmChannel>,
}

/// The answer to [`crate::CtlRequest::ListVms`].
pub type VmList = Vec<VmInfo>;

/// A VM's operator settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VmSettings {
    /// The byte layout its channels carry.
    pub layout: Layout,
    /// Frequency and capability queries are answered.
    pub queries_allowed: bool,
    /// Requests for its own physical cores are accepted.
    pub physical_allowed: bool,
    /// A vCPU spanning several pCPUs drives all of them.
    pub multi_pcpu_allowed: bool,
    /// A direct request for a core its policy owns takes the core out of
    /// the policy.
    pub requests_override_policy: bool,
}

/// Where one vCPU runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuPlacement {
    /// The vCPU.
    pub vcpu: usize,
    /// The host CPUs it may run on (empty: not known yet).
    pub pcpus: Vec<u32>,
}

/// One channel socket of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmChannel {
    /// The channel number.
    pub index: u32,
    /// Its socket.
    pub path: PathBuf,
    /// The daemon serves it.
    pub served: bool,
    /// Its requests are served (not read and ignored).
    pub enabled: bool,
}

/// The answer to [`crate::CtlRequest::AddVm`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmAdded {
    /// The VM declared.
    pub added: String,
}

/// The answer to [`crate::CtlRequest::RmVm`] and to
/// [`crate::CtlRequest::PolicyDestroy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The VM whose entry (or policy) was removed.
    pub removed: String,
}

/// The answer to [`crate::CtlRequest::SetPcpu`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcpuSet {
    /// The VM.
    pub vm: String,
    /// The vCPU.
    pub vcpu: u32,
    /// The host CPU it is recorded on.
    pub pcpu: u32,
    /// The thread re-pinned through /proc or QMP, when one was.
    pub repinned_thread: Option<u32>,
    /// Re-pinned through libvirt instead.
    pub repinned_by_libvirt: bool,
}

/// The answer to [`crate::CtlRequest::SetQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueriesSet {
    /// The VM.
    pub vm: String,
    /// Its queries are answered now.
    pub queries: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::pin;

    #[test]
    fn a_vm_keeps_its_wire_form() {
        let vm = VmInfo {
            name: "vm1".into(),
            settings: VmSettings {
                layout: Layout::Dpdk1711,
                queries_allowed: true,
                ..VmSettings::default()
            },
            vcpus: vec![
                VcpuPlacement {
                    vcpu: 0,
                    pcpus: vec![2],
                },
                VcpuPlacement {
                    vcpu: 1,
                    pcpus: vec![],
                },
            ],
            channels: vec![VmChannel {
                index: 0,
                path: "/c/vm1.0".into(),
                served: true,
                enabled: false,
            }],
        };
        pin(
            &vec![vm],
            concat!(
                r#"[{"channels":[{"enabled":false,"index":0,"path":"/c/vm1.0","served":true}],"#,
                r#""name":"vm1","settings":{"layout":"dpdk-17.11","multi_pcpu_allowed":false,"#,
                r#""physical_allowed":false,"queries_allowed":true,"#,
                r#""requests_override_policy":false},"#,
                r#""vcpus":[{"pcpus":[2],"vcpu":0},{"pcpus":[],"vcpu":1}]}]"#
            ),
        );
    }

    #[test]
    fn the_short_answers_keep_their_wire_form() {
        pin(
            &VmAdded {
                added: "vm2".into(),
            },
            r#"{"added":"vm2"}"#,
        );
        pin(
            &Removed {
                removed: "vm2".into(),
            },
            r#"{"removed":"vm2"}"#,
        );
        pin(
            &QueriesSet {
                vm: "vm1".into(),
                queries: true,
            },
            r#"{"queries":true,"vm":"vm1"}"#,
        );
        pin(
            &PcpuSet {
                vm: "vm1".into(),
                vcpu: 0,
                pcpu: 3,
                repinned_thread: Some(4242),
                repinned_by_libvirt: false,
            },
            r#"{"pcpu":3,"repinned_by_libvirt":false,"repinned_thread":4242,"vcpu":0,"vm":"vm1"}"#,
        );
        pin(
            &PcpuSet {
                vm: "vm1".into(),
                vcpu: 1,
                pcpu: 2,
                repinned_thread: None,
                repinned_by_libvirt: true,
            },
            r#"{"pcpu":2,"repinned_by_libvirt":true,"repinned_thread":null,"vcpu":1,"vm":"vm1"}"#,
        );
    }
}

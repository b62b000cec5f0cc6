//! Identities: a VM is known by the name of its channel sockets
//! (`<vm>.<n>`), never by what its packets claim.

use std::fmt;
use std::sync::Arc;

/// A VM, named as its channel sockets and the operator name it.
///
/// One word (a pointer to a shared `String`, not a fat `Arc<str>`): the
/// engine keeps one in each vote of each pCPU, which the traffic tick
/// walks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmId(Arc<String>);

impl VmId {
    /// The VM called `name`.
    pub fn new(name: &str) -> Self {
        VmId(Arc::new(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both are the same allocation (so surely the same VM): a
    /// cheap test before comparing names.
    pub(crate) fn same(&self, other: &VmId) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One virtio-serial channel of a VM (`<vm>.<index>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId {
    /// The VM the channel belongs to: the identity of whatever arrives on it.
    pub vm: VmId,
    /// The number after the dot in the socket name.
    pub index: u32,
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.vm, self.index)
    }
}

/// A vCPU number within its VM.
pub type Vcpu = u32;

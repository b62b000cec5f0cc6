//! The libvirt inventory source (cargo feature `libvirt`): where libvirt
//! pinned each vCPU of a domain, how many vCPUs it runs, and the domain's
//! virtio-serial channel sockets from its live XML; plus domain events
//! ([`events`]) so the daemon refreshes a VM when libvirt changes it.
//!
//! The VM name the daemon uses is the libvirt domain name.
//!
//! ## Behavior
//! - [`LibvirtPlacement`] holds one connection to its URI (`qemu:///system`,
//!   or `test:///ABS/node.xml` in tests) and reopens it when libvirt says it
//!   is no longer alive (libvirtd restarted). Every libvirt call blocks, so
//!   the async methods run them on tokio's blocking pool.
//! - Pinning comes from virDomainGetVcpuPinInfo on the live domain, with CPU
//!   maps sized for the larger of virNodeGetCPUMap's and virNodeGetInfo's
//!   CPU counts (libvirt's test driver reports fewer in the first).
//! - A domain libvirt does not know, or one that is not running, is not this
//!   source's: [`VcpuPlacement::placement`] answers `Ok(None)`.
//!
//! ## Limitations
//! - libvirt does not name the vCPU threads or the QEMU pid through its
//!   public API: [`SourcePlacement::threads`] and `pid` stay empty, so /proc
//!   or QMP supply them where `set-pcpu` must re-pin a thread.
//! - The virt crate's `Domain` panics on drop if libvirt cannot free it
//!   (only for a corrupt pointer); domains are dropped right after use.

pub mod events;
mod sys;
pub mod xml;

use std::ffi::c_int;
use std::sync::{Arc, Mutex, PoisonError};

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::{Error as VirtError, ErrorNumber};
use vmpower_engine::{Placement, VmId};

use super::{
    PlacementFuture, PlacementSourceError, SourceKind, SourcePlacement, VcpuPlacement, VmTarget,
};

pub use self::events::{LibvirtEvent, LibvirtWatcher, Lifecycle};
pub use self::xml::{DomainChannel, DomainXmlError};

/// The most vCPUs or host CPUs believed from libvirt (bounds the pin buffer).
pub const MAX_CPUS: u32 = 1 << 16;

/// What failed talking to libvirt, naming the URI, the domain and the step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LibvirtError {
    /// Opening the connection failed.
    #[error("libvirt {uri}: connecting")]
    Connect {
        /// The URI.
        uri: String,
        /// libvirt's error.
        #[source]
        source: VirtError,
    },
    /// A call about the host or connection failed.
    #[error("libvirt {uri}: {what}")]
    Host {
        /// The URI.
        uri: String,
        /// What was being done.
        what: &'static str,
        /// libvirt's error.
        #[source]
        source: VirtError,
    },
    /// A call about one domain failed.
    #[error("libvirt {uri}, domain {domain}: {what}")]
    Domain {
        /// The URI.
        uri: String,
        /// The domain.
        domain: String,
        /// What was being done.
        what: &'static str,
        /// libvirt's error.
        #[source]
        source: VirtError,
    },
    /// The domain's XML did not parse.
    #[error("libvirt {uri}, domain {domain}: reading its XML")]
    Xml {
        /// The URI.
        uri: String,
        /// The domain.
        domain: String,
        /// What was wrong.
        #[source]
        source: DomainXmlError,
    },
    /// libvirt reported a count beyond [`MAX_CPUS`].
    #[error("libvirt {uri}, domain {domain}: {what} is {value}, more than {MAX_CPUS}")]
    TooMany {
        /// The URI.
        uri: String,
        /// The domain.
        domain: String,
        /// Which count.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// libvirt's event loop could not be set up.
    #[error("libvirt event loop: {reason}")]
    EventLoop {
        /// Why.
        reason: String,
    },
    /// The blocking task running a libvirt call panicked or was cancelled.
    #[error("libvirt {uri}: the blocking task failed")]
    TaskFailed {
        /// The URI.
        uri: String,
    },
}

/// An open connection that is closed on drop (the virt crate's `Connect`
/// does not close itself).
#[derive(Debug)]
struct Conn {
    uri: String,
    conn: Connect,
}

impl Conn {
    /// Opens `uri` (blocking).
    fn open(uri: &str) -> Result<Self, LibvirtError> {
        let conn = Connect::open(Some(uri)).map_err(|source| LibvirtError::Connect {
            uri: uri.to_owned(),
            source,
        })?;
        Ok(Conn {
            uri: uri.to_owned(),
            conn,
        })
    }

    fn raw(&self) -> &Connect {
        &self.conn
    }

    fn uri(&self) -> &str {
        &self.uri
    }

    fn error(&self, what: &'static str, source: VirtError) -> LibvirtError {
        LibvirtError::Host {
            uri: self.uri.clone(),
            what,
            source,
        }
    }

    fn domain_error(&self, domain: &str, what: &'static str, source: VirtError) -> LibvirtError {
        LibvirtError::Domain {
            uri: self.uri.clone(),
            domain: domain.to_owned(),
            what,
            source,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Err(e) = self.conn.close() {
            tracing::warn!(uri = %self.uri, error = %e, "closing the libvirt connection");
        }
    }
}

/// What libvirt says about one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibvirtDomain {
    /// The domain name (the VM's name in the daemon).
    pub vm: VmId,
    /// Whether it runs (a defined, stopped domain has no placement).
    pub active: bool,
    /// Its pinning and current vCPU count; empty when not active.
    pub placement: Placement,
    /// Its unix virtio channels, from the live XML when active.
    pub channels: Vec<DomainChannel>,
}

impl LibvirtDomain {
    /// The power agent's channel sockets (`virtio.serial.port.poweragent.N`),
    /// by `N`.
    pub fn agent_channels(&self) -> impl Iterator<Item = (u32, &DomainChannel)> {
        self.channels
            .iter()
            .filter_map(|c| c.agent_index.map(|n| (n, c)))
    }

    /// A [`VmTarget`] naming the VM and its power agent channel sockets.
    pub fn target(&self) -> VmTarget {
        self.agent_channels()
            .fold(VmTarget::new(self.vm.clone()), |t, (_, c)| {
                t.with_channel_socket(&c.path)
            })
    }
}

/// The libvirt source of vCPU placements and channel paths.
#[derive(Debug, Clone)]
pub struct LibvirtPlacement {
    uri: Arc<str>,
    conn: Arc<Mutex<Arc<Conn>>>,
}

impl LibvirtPlacement {
    /// Connects to `uri` (blocking; call it before the runtime or from
    /// `spawn_blocking`). Registers libvirt's event loop first, so
    /// keepalives work and watchers may share the process.
    pub fn connect(uri: &str) -> Result<Self, LibvirtError> {
        events::ensure_event_loop()?;
        let conn = Conn::open(uri)?;
        Ok(LibvirtPlacement {
            uri: Arc::from(uri),
            conn: Arc::new(Mutex::new(Arc::new(conn))),
        })
    }

    /// The URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The connection, reopened if libvirt says it died (blocking).
    fn live(&self) -> Result<Arc<Conn>, LibvirtError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if !conn.raw().is_alive().unwrap_or(false) {
            tracing::info!(uri = %self.uri, "reconnecting to libvirt");
            *conn = Arc::new(Conn::open(&self.uri)?);
        }
        Ok(Arc::clone(&conn))
    }

    /// Every domain's name, running or not (blocking).
    pub fn list_domains_blocking(&self) -> Result<Vec<VmId>, LibvirtError> {
        let conn = self.live()?;
        let domains = conn
            .raw()
            .list_all_domains(0)
            .map_err(|e| conn.error("listing domains", e))?;
        let mut names = Vec::with_capacity(domains.len());
        for dom in domains {
            let name = dom
                .get_name()
                .map_err(|e| conn.error("reading a domain's name", e))?;
            names.push(VmId::new(&name));
        }
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(names)
    }

    /// What libvirt says about `vm`; `None` if it has no such domain
    /// (blocking).
    pub fn domain_blocking(&self, vm: &VmId) -> Result<Option<LibvirtDomain>, LibvirtError> {
        let conn = self.live()?;
        query(&conn, vm)
    }

    /// [`LibvirtPlacement::list_domains_blocking`] on the blocking pool.
    pub async fn list_domains(&self) -> Result<Vec<VmId>, LibvirtError> {
        let this = self.clone();
        self.blocking(move || this.list_domains_blocking()).await
    }

    /// [`LibvirtPlacement::domain_blocking`] on the blocking pool.
    pub async fn domain(&self, vm: &VmId) -> Result<Option<LibvirtDomain>, LibvirtError> {
        let (this, vm) = (self.clone(), vm.clone());
        self.blocking(move || this.domain_blocking(&vm)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, LibvirtError> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| LibvirtError::TaskFailed {
                uri: self.uri.to_string(),
            })?
    }
}

/// Reads one domain (blocking).
fn query(conn: &Conn, vm: &VmId) -> Result<Option<LibvirtDomain>, LibvirtError> {
    let name = vm.as_str();
    let dom = match Domain::lookup_by_name(conn.raw(), name) {
        Ok(d) => d,
        Err(e) if e.code() == ErrorNumber::NoDomain => return Ok(None),
        Err(e) => return Err(conn.domain_error(name, "looking it up", e)),
    };
    let active = dom
        .is_active()
        .map_err(|e| conn.domain_error(name, "asking whether it runs", e))?;
    let xml = dom
        .get_xml_desc(0)
        .map_err(|e| conn.domain_error(name, "reading its XML", e))?;
    let channels = xml::channels(&xml).map_err(|source| LibvirtError::Xml {
        uri: conn.uri().to_owned(),
        domain: name.to_owned(),
        source,
    })?;
    let mut placement = Placement::default();
    if active {
        let vcpus = dom
            .get_vcpus_flags(virt::sys::VIR_DOMAIN_AFFECT_LIVE)
            .map_err(|e| conn.domain_error(name, "counting its vCPUs", e))?;
        let host_cpus = host_cpus(conn, name)?;
        let too_many = |what, value: u32| LibvirtError::TooMany {
            uri: conn.uri().to_owned(),
            domain: name.to_owned(),
            what,
            value: value.into(),
        };
        let vcpus_c = bounded(vcpus).ok_or_else(|| too_many("its vCPU count", vcpus))?;
        let pins = sys::vcpu_pin_info(&dom, vcpus_c, host_cpus)
            .map_err(|e| conn.domain_error(name, "reading its vCPU pinning", e))?;
        placement.vcpus = usize::try_from(vcpus).map_err(|_| too_many("its vCPU count", vcpus))?;
        placement.affinity = (0..).zip(pins).filter(|(_, s)| !s.is_empty()).collect();
    }
    Ok(Some(LibvirtDomain {
        vm: vm.clone(),
        active,
        placement,
        channels,
    }))
}

/// The host's CPU count for CPU maps: the larger of virNodeGetCPUMap's and
/// virNodeGetInfo's.
fn host_cpus(conn: &Conn, domain: &str) -> Result<c_int, LibvirtError> {
    let map = sys::node_cpu_map_len(conn.raw())
        .map_err(|e| conn.error("counting host CPUs (virNodeGetCPUMap)", e))?;
    let info = conn
        .raw()
        .get_node_info()
        .map_err(|e| conn.error("reading node info", e))?;
    let cpus = bounded(info.cpus).ok_or_else(|| LibvirtError::TooMany {
        uri: conn.uri().to_owned(),
        domain: domain.to_owned(),
        what: "the host CPU count",
        value: info.cpus.into(),
    })?;
    Ok(map.max(cpus))
}

/// `n` as a C int when at most [`MAX_CPUS`].
fn bounded(n: u32) -> Option<c_int> {
    (n <= MAX_CPUS).then(|| c_int::try_from(n).ok()).flatten()
}

impl VcpuPlacement for LibvirtPlacement {
    fn kind(&self) -> SourceKind {
        SourceKind::Libvirt
    }

    fn placement<'a>(&'a self, target: &'a VmTarget) -> PlacementFuture<'a> {
        Box::pin(async move {
            let found =
                self.domain(&target.vm)
                    .await
                    .map_err(|source| PlacementSourceError::Libvirt {
                        vm: target.vm.clone(),
                        source,
                    })?;
            Ok(found.filter(|d| d.active).map(|d| SourcePlacement {
                placement: d.placement,
                threads: Default::default(),
                pid: None,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded() {
        assert_eq!(bounded(0), Some(0));
        assert_eq!(bounded(MAX_CPUS), Some(1 << 16));
        assert_eq!(bounded(MAX_CPUS + 1), None);
        assert_eq!(bounded(u32::MAX), None);
    }

    #[test]
    fn target_lists_only_agent_channels() {
        let d = LibvirtDomain {
            vm: VmId::new("vm1"),
            active: true,
            placement: Placement::default(),
            channels: xml::channels(
                "<domain><devices>\
                 <channel type='unix'><source mode='bind' path='/c/vm1.1'/>\
                 <target type='virtio' name='virtio.serial.port.poweragent.1'/></channel>\
                 <channel type='unix'><source mode='bind' path='/c/ga'/>\
                 <target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
                 </devices></domain>",
            )
            .expect("well-formed"),
        };
        let t = d.target();
        assert_eq!(t.vm, VmId::new("vm1"));
        assert_eq!(
            t.channel_sockets,
            vec![std::path::PathBuf::from("/c/vm1.1")]
        );
        assert_eq!(d.agent_channels().map(|(n, _)| n).collect::<Vec<_>>(), [1]);
    }
}

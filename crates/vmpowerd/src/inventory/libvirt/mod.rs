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
//! - Pinning comes from virDomainGetVcpuPinInfo (the private `domain`
//!   module reads one domain).
//! - A domain libvirt does not know, or one that is not running, is not this
//!   source's: [`VcpuPlacement::placement`] answers `Ok(None)`.
//!
//! ## Limitations
//! - libvirt does not name the vCPU threads or the QEMU pid through its
//!   public API: [`SourcePlacement::threads`] and `pid` stay empty. For
//!   `set-pcpu` on a libvirt VM, pin through libvirt
//!   ([`LibvirtPlacement::pin_vcpu`]), which libvirt then remembers.
//! - The virt crate's `Domain` panics on drop if libvirt cannot free it
//!   (only for a corrupt pointer); domains are dropped right after use.

mod domain;
pub mod events;
mod sys;
pub mod xml;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::Error as VirtError;
use vmpower_cpufreq::CpuId;
use vmpower_engine::{Vcpu, VmId};

use super::{
    PlacementFuture, PlacementSourceError, SourceKind, SourcePlacement, VcpuPlacement, VmTarget,
};

use self::domain::{host_cpus, query};

pub use self::domain::LibvirtDomain;
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
    /// A vCPU cannot be pinned to these CPUs (none, or beyond the host's).
    #[error(
        "libvirt {uri}, domain {domain}: cannot pin vCPU {vcpu} to CPUs {cpus:?} of a {host_cpus}-CPU host"
    )]
    BadPin {
        /// The URI.
        uri: String,
        /// The domain.
        domain: String,
        /// The vCPU.
        vcpu: Vcpu,
        /// The CPUs asked for.
        cpus: Vec<u32>,
        /// How many CPUs libvirt says the host has.
        host_cpus: i32,
    },
    /// The domain does not run (so it has no vCPU to pin).
    #[error("libvirt {uri}, domain {domain}: not running")]
    NotRunning {
        /// The URI.
        uri: String,
        /// The domain.
        domain: String,
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

    /// Pins `vcpu` of the running `vm` to `cpus` through libvirt (live
    /// only: the domain's persistent definition is left alone), as
    /// `virsh vcpupin --live` does (blocking).
    pub fn pin_vcpu_blocking(
        &self,
        vm: &VmId,
        vcpu: Vcpu,
        cpus: &BTreeSet<CpuId>,
    ) -> Result<(), LibvirtError> {
        let conn = self.live()?;
        let name = vm.as_str();
        let dom = Domain::lookup_by_name(conn.raw(), name)
            .map_err(|e| conn.domain_error(name, "looking it up", e))?;
        let host_cpus = host_cpus(&conn, name)?;
        let map = sys::set_to_cpumap(cpus, host_cpus).ok_or_else(|| LibvirtError::BadPin {
            uri: conn.uri().to_owned(),
            domain: name.to_owned(),
            vcpu,
            cpus: cpus.iter().map(|c| c.0).collect(),
            host_cpus,
        })?;
        let active = dom
            .is_active()
            .map_err(|e| conn.domain_error(name, "asking whether it runs", e))?;
        if !active {
            return Err(LibvirtError::NotRunning {
                uri: conn.uri().to_owned(),
                domain: name.to_owned(),
            });
        }
        // AFFECT_CURRENT, which is the live domain once it runs: not every
        // driver takes AFFECT_LIVE (the test driver refuses it).
        dom.pin_vcpu_flags(vcpu, &map, virt::sys::VIR_DOMAIN_AFFECT_CURRENT)
            .map_err(|e| conn.domain_error(name, "pinning a vCPU", e))?;
        Ok(())
    }

    /// [`LibvirtPlacement::pin_vcpu_blocking`] on the blocking pool.
    pub async fn pin_vcpu(
        &self,
        vm: &VmId,
        vcpu: Vcpu,
        cpus: &BTreeSet<CpuId>,
    ) -> Result<(), LibvirtError> {
        let (this, vm, cpus) = (self.clone(), vm.clone(), cpus.clone());
        self.blocking(move || this.pin_vcpu_blocking(&vm, vcpu, &cpus))
            .await
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

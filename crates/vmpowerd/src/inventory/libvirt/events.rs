//! libvirt domain events, bridged to async code: [`LibvirtWatcher::start`]
//! registers for lifecycle and TUNABLE events on its own connection and
//! delivers [`LibvirtEvent`]s on a tokio mpsc channel. The daemon refreshes
//! the named VM's placement (and channel paths) on each.
//!
//! ## Behavior
//! - libvirt's default event loop is registered once per process (and its
//!   default error printer silenced: errors come back typed), before any
//!   connection of this module is opened, and run by one blocking thread
//!   (`libvirt-events`) for the life of the process: libvirt offers no way to
//!   unregister it.
//! - Callbacks run on that thread and never block: an event that does not
//!   fit in the channel is dropped and counted, and the next one that fits is
//!   preceded by [`LibvirtEvent::Lagged`] (refresh every VM then).
//! - Dropping the [`LibvirtWatcher`] deregisters its callbacks and closes
//!   its connection; the receiver then ends once libvirt has freed the
//!   callbacks' state.
//!
//! ## Limitations
//! - If the connection to libvirtd breaks, no more events come; the watcher
//!   does not reconnect (start a new one; [`LibvirtWatcher::is_alive`] says).
//! - Dropping a watcher deregisters over its connection, a call to libvirtd
//!   for remote URIs: drop it where blocking briefly is acceptable.
//! - TUNABLE events other than `cputune.vcpupinN` (emulator pins, shares)
//!   are not forwarded.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;
use virt::sys;
use vmpower_cpufreq::CpuId;
use vmpower_engine::{Vcpu, VmId};

use super::sys::{EventId, deregister, register};
use super::xml::parse_cpuset;
use super::{Conn, LibvirtError};

/// The TUNABLE parameter prefix of a vCPU's pinning (`cputune.vcpupin3`).
pub const VCPUPIN_PREFIX: &str = "cputune.vcpupin";

/// A lifecycle event's kind (virDomainEventType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Defined or updated.
    Defined,
    /// Undefined.
    Undefined,
    /// Started (also restored, migrated in).
    Started,
    /// Paused.
    Suspended,
    /// Unpaused.
    Resumed,
    /// Stopped (shut off, destroyed, crashed, migrated out).
    Stopped,
    /// The guest is shutting down.
    Shutdown,
    /// Suspended by the guest's power management.
    PmSuspended,
    /// The guest crashed.
    Crashed,
}

impl Lifecycle {
    /// The kind of a virDomainEventType value; `None` for one newer than
    /// this code.
    pub fn from_raw(event: c_int) -> Option<Self> {
        Some(match u32::try_from(event).ok()? {
            sys::VIR_DOMAIN_EVENT_DEFINED => Lifecycle::Defined,
            sys::VIR_DOMAIN_EVENT_UNDEFINED => Lifecycle::Undefined,
            sys::VIR_DOMAIN_EVENT_STARTED => Lifecycle::Started,
            sys::VIR_DOMAIN_EVENT_SUSPENDED => Lifecycle::Suspended,
            sys::VIR_DOMAIN_EVENT_RESUMED => Lifecycle::Resumed,
            sys::VIR_DOMAIN_EVENT_STOPPED => Lifecycle::Stopped,
            sys::VIR_DOMAIN_EVENT_SHUTDOWN => Lifecycle::Shutdown,
            sys::VIR_DOMAIN_EVENT_PMSUSPENDED => Lifecycle::PmSuspended,
            sys::VIR_DOMAIN_EVENT_CRASHED => Lifecycle::Crashed,
            _ => return None,
        })
    }
}

/// Something changed in libvirt that may move a VM's vCPUs or channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibvirtEvent {
    /// A domain's lifecycle changed.
    Lifecycle {
        /// The domain.
        vm: VmId,
        /// What happened.
        event: Lifecycle,
        /// libvirt's detail code for `event` (e.g. STOPPED_DESTROYED).
        detail: i32,
    },
    /// vCPUs were re-pinned (TUNABLE `cputune.vcpupinN`): the new affinity
    /// of each vCPU named; values libvirt sent that do not parse are left out.
    VcpuPinned {
        /// The domain.
        vm: VmId,
        /// The new pinning.
        pins: BTreeMap<Vcpu, BTreeSet<CpuId>>,
    },
    /// Events were dropped because the receiver fell behind: refresh all.
    Lagged {
        /// How many were dropped since the last `Lagged`.
        dropped: u64,
    },
}

impl LibvirtEvent {
    /// The VM the event is about; `None` for [`LibvirtEvent::Lagged`].
    pub fn vm(&self) -> Option<&VmId> {
        match self {
            LibvirtEvent::Lifecycle { vm, .. } | LibvirtEvent::VcpuPinned { vm, .. } => Some(vm),
            LibvirtEvent::Lagged { .. } => None,
        }
    }
}

/// The `cputune.vcpupinN` entries of a TUNABLE event as a pinning; `None`
/// when there is none (the event is about something else).
pub fn vcpu_pins(params: &[(String, String)]) -> Option<BTreeMap<Vcpu, BTreeSet<CpuId>>> {
    let mut any = false;
    let mut pins = BTreeMap::new();
    for (field, value) in params {
        let Some(n) = field.strip_prefix(VCPUPIN_PREFIX) else {
            continue;
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        any = true;
        match (n.parse::<Vcpu>(), parse_cpuset(value)) {
            (Ok(vcpu), Ok(cpus)) => {
                pins.insert(vcpu, cpus);
            }
            (_, Err(e)) => tracing::debug!(%field, error = %e, "ignoring a TUNABLE value"),
            (Err(_), _) => tracing::debug!(%field, "ignoring a TUNABLE vCPU number"),
        }
    }
    any.then_some(pins)
}

/// Where the libvirt callbacks deliver: one per watcher, shared by its
/// registrations.
#[derive(Debug)]
pub(super) struct EventSink {
    tx: mpsc::Sender<LibvirtEvent>,
    dropped: AtomicU64,
    lagged: AtomicBool,
}

impl EventSink {
    /// A sink sending on `tx`.
    pub(super) fn new(tx: mpsc::Sender<LibvirtEvent>) -> Self {
        EventSink {
            tx,
            dropped: AtomicU64::new(0),
            lagged: AtomicBool::new(false),
        }
    }

    /// A lifecycle callback fired.
    pub(super) fn lifecycle(&self, name: &str, event: c_int, detail: c_int) {
        let Some(event) = Lifecycle::from_raw(event) else {
            tracing::debug!(vm = name, event, "ignoring an unknown lifecycle event");
            return;
        };
        self.deliver(LibvirtEvent::Lifecycle {
            vm: VmId::new(name),
            event,
            detail,
        });
    }

    /// A TUNABLE callback fired with these string parameters.
    pub(super) fn tunable(&self, name: &str, params: &[(String, String)]) {
        if let Some(pins) = vcpu_pins(params) {
            self.deliver(LibvirtEvent::VcpuPinned {
                vm: VmId::new(name),
                pins,
            });
        }
    }

    /// Sends without blocking; counts what does not fit.
    fn deliver(&self, event: LibvirtEvent) {
        if self.lagged.load(Ordering::Acquire) {
            let dropped = self.dropped.load(Ordering::Acquire);
            if self.tx.try_send(LibvirtEvent::Lagged { dropped }).is_err() {
                self.dropped.fetch_add(1, Ordering::AcqRel);
                return;
            }
            self.dropped.fetch_sub(dropped, Ordering::AcqRel);
            self.lagged.store(false, Ordering::Release);
        }
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::AcqRel);
            self.lagged.store(true, Ordering::Release);
        }
    }

    /// Events dropped and not yet reported by a `Lagged`.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Acquire)
    }
}

/// Registers libvirt's default event loop and starts the thread running it,
/// once per process. Must run before opening a connection that wants events.
pub(super) fn ensure_event_loop() -> Result<(), LibvirtError> {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            // Errors are returned typed; libvirt's default handler would also
            // print each to stderr (process-wide setting).
            virt::error::clear_error_callback();
            virt::event::event_register_default_impl().map_err(|e| e.to_string())?;
            std::thread::Builder::new()
                .name("libvirt-events".into())
                .spawn(|| {
                    loop {
                        if let Err(e) = virt::event::event_run_default_impl() {
                            tracing::warn!(error = %e, "libvirt event loop iteration failed");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| LibvirtError::EventLoop { reason })
}

/// A running registration for domain events on one connection. Dropping it
/// stops the events.
#[derive(Debug)]
pub struct LibvirtWatcher {
    conn: Conn,
    callbacks: Vec<c_int>,
    sink: Arc<EventSink>,
}

impl LibvirtWatcher {
    /// The channel capacity [`LibvirtWatcher::start`] uses.
    pub const CAPACITY: usize = 256;

    /// Connects to `uri` and registers for lifecycle and TUNABLE events of
    /// every domain. Blocking (it opens a connection): call it from
    /// `spawn_blocking` in async code, or see [`LibvirtWatcher::start_async`].
    pub fn start(uri: &str) -> Result<(Self, mpsc::Receiver<LibvirtEvent>), LibvirtError> {
        Self::start_with_capacity(uri, Self::CAPACITY)
    }

    /// [`LibvirtWatcher::start`] on a blocking thread.
    pub async fn start_async(
        uri: &str,
    ) -> Result<(Self, mpsc::Receiver<LibvirtEvent>), LibvirtError> {
        let owned = uri.to_owned();
        tokio::task::spawn_blocking(move || Self::start(&owned))
            .await
            .map_err(|_| LibvirtError::TaskFailed {
                uri: uri.to_owned(),
            })?
    }

    /// [`LibvirtWatcher::start`] with a channel of `capacity` events (at
    /// least 1).
    pub fn start_with_capacity(
        uri: &str,
        capacity: usize,
    ) -> Result<(Self, mpsc::Receiver<LibvirtEvent>), LibvirtError> {
        ensure_event_loop()?;
        let conn = Conn::open(uri)?;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sink = Arc::new(EventSink::new(tx));
        let mut watcher = LibvirtWatcher {
            conn,
            callbacks: Vec::new(),
            sink,
        };
        for (id, what) in [
            (EventId::Lifecycle, "registering for lifecycle events"),
            (EventId::Tunable, "registering for TUNABLE events"),
        ] {
            let cb = register(watcher.conn.raw(), id, Arc::clone(&watcher.sink))
                .map_err(|source| watcher.conn.error(what, source))?;
            watcher.callbacks.push(cb);
        }
        Ok((watcher, rx))
    }

    /// The URI watched.
    pub fn uri(&self) -> &str {
        self.conn.uri()
    }

    /// The watcher's own connection, to act on domains over it where a URI's
    /// state is private to each connection (libvirt's `test:///PATH` URIs).
    pub fn connect(&self) -> &virt::connect::Connect {
        self.conn.raw()
    }

    /// Whether the connection still works (false after libvirtd went away).
    pub fn is_alive(&self) -> bool {
        self.conn.raw().is_alive().unwrap_or(false)
    }

    /// Events dropped because the receiver was full, not yet reported by a
    /// [`LibvirtEvent::Lagged`].
    pub fn dropped(&self) -> u64 {
        self.sink.dropped()
    }
}

impl Drop for LibvirtWatcher {
    fn drop(&mut self) {
        for cb in self.callbacks.drain(..) {
            if let Err(e) = deregister(self.conn.raw(), cb) {
                tracing::warn!(uri = self.conn.uri(), error = %e, "deregistering a libvirt event callback");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(f: &str, v: &str) -> (String, String) {
        (f.to_owned(), v.to_owned())
    }

    #[test]
    fn vcpupin_params_become_pins_and_others_are_ignored() {
        let pins = vcpu_pins(&[
            p("cputune.vcpupin0", "1"),
            p("cputune.vcpupin3", "0-2,^1"),
            p("cputune.emulatorpin", "0"),
            p("cputune.vcpupinX", "0"),
        ])
        .expect("has vcpupin entries");
        assert_eq!(
            pins,
            BTreeMap::from([
                (0, BTreeSet::from([CpuId(1)])),
                (3, BTreeSet::from([CpuId(0), CpuId(2)])),
            ])
        );
        assert_eq!(vcpu_pins(&[p("cputune.emulatorpin", "0")]), None);
        assert_eq!(vcpu_pins(&[]), None);
        let bad = vcpu_pins(&[p("cputune.vcpupin1", "x")]).expect("names a vCPU");
        assert!(bad.is_empty());
    }

    #[test]
    fn lifecycle_codes_map_and_unknown_ones_do_not() {
        let all = (0..=8).filter_map(Lifecycle::from_raw).count();
        assert_eq!(all, 9);
        assert_eq!(Lifecycle::from_raw(5), Some(Lifecycle::Stopped));
        assert_eq!(Lifecycle::from_raw(2), Some(Lifecycle::Started));
        assert_eq!(Lifecycle::from_raw(9), None);
        assert_eq!(Lifecycle::from_raw(-1), None);
    }

    #[test]
    fn a_full_channel_drops_counts_and_then_reports_lagged() {
        let (tx, mut rx) = mpsc::channel(1);
        let sink = EventSink::new(tx);
        sink.lifecycle("vm1", 2, 0);
        sink.lifecycle("vm1", 5, 0);
        sink.lifecycle("vm1", 3, 0);
        assert_eq!(sink.dropped(), 2);
        assert!(matches!(
            rx.try_recv(),
            Ok(LibvirtEvent::Lifecycle {
                event: Lifecycle::Started,
                ..
            })
        ));
        sink.lifecycle("vm2", 4, 0);
        assert_eq!(
            rx.try_recv().ok(),
            Some(LibvirtEvent::Lagged { dropped: 2 })
        );
        // vm2's event did not fit behind `Lagged` (capacity 1): counted anew.
        assert_eq!(sink.dropped(), 1);
        assert!(rx.try_recv().is_err());
    }
}

//! The small FFI over `virt::sys` for what the virt crate does not wrap:
//! virNodeGetCPUMap, virDomainGetVcpuPinInfo and domain event registration.
//! The only module of the crate with `unsafe`; every block says why it is
//! sound.
//!
//! ## Invariants
//! - Every pointer handed to libvirt comes from a live `Connect`/`Domain`
//!   borrowed for the whole call, or from a buffer sized as libvirt requires.
//! - An event registration owns one `Box<Arc<EventSink>>`, turned into the
//!   `opaque` pointer; libvirt gives it back to [`free_sink`] exactly once
//!   (after deregistration), or, when registration fails, it is freed here.
//! - Callbacks never panic (a panic may not unwind into C): they copy what
//!   libvirt lends them into owned values and hand them to the sink.

#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use std::sync::Arc;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::Error as VirtError;
use virt::sys;
use vmpower_cpufreq::CpuId;

use super::events::EventSink;

/// How many CPUs the host has as `virNodeGetCPUMap` counts them (highest
/// CPU number + 1, online or not).
pub(super) fn node_cpu_map_len(conn: &Connect) -> Result<c_int, VirtError> {
    // SAFETY: `conn` holds a live connection for the call; null `cpumap`
    // and `online` ask libvirt for the count only, so nothing is allocated.
    let n = unsafe { sys::virNodeGetCPUMap(conn.as_ptr(), ptr::null_mut(), ptr::null_mut(), 0) };
    if n < 0 {
        return Err(VirtError::last_error());
    }
    Ok(n)
}

/// Each vCPU's CPU affinity in the live domain, for vCPUs `0..vcpus`, with
/// CPU maps of `host_cpus` bits. Returns as many sets as libvirt filled.
pub(super) fn vcpu_pin_info(
    dom: &Domain,
    vcpus: c_int,
    host_cpus: c_int,
) -> Result<Vec<BTreeSet<CpuId>>, VirtError> {
    let maplen = host_cpus.max(1).saturating_add(7) / 8;
    let (Ok(rows), Ok(cols)) = (usize::try_from(vcpus), usize::try_from(maplen)) else {
        return Ok(Vec::new());
    };
    let mut buf = vec![0u8; rows.saturating_mul(cols)];
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    // SAFETY: `dom` is a live domain for the call; `buf` holds exactly
    // `vcpus * maplen` bytes, the size libvirt writes at most.
    let n = unsafe {
        sys::virDomainGetVcpuPinInfo(
            dom.as_ptr(),
            vcpus,
            buf.as_mut_ptr(),
            maplen,
            sys::VIR_DOMAIN_AFFECT_LIVE,
        )
    };
    let Ok(filled) = usize::try_from(n) else {
        return Err(VirtError::last_error());
    };
    Ok(buf
        .chunks(cols)
        .take(filled.min(rows))
        .map(cpumap_to_set)
        .collect())
}

/// Decodes a libvirt CPU map: bit `i` of byte `j` set means CPU `8j + i`.
pub(super) fn cpumap_to_set(map: &[u8]) -> BTreeSet<CpuId> {
    let mut set = BTreeSet::new();
    for (j, byte) in map.iter().enumerate() {
        for i in 0..8 {
            if byte & (1 << i) != 0
                && let Ok(cpu) = u32::try_from(j * 8 + i)
            {
                set.insert(CpuId(cpu));
            }
        }
    }
    set
}

/// Encodes `cpus` as a libvirt CPU map for a host of `host_cpus` CPUs;
/// `None` if the set is empty or names a CPU the host does not have.
pub(super) fn set_to_cpumap(cpus: &BTreeSet<CpuId>, host_cpus: c_int) -> Option<Vec<u8>> {
    let host = u32::try_from(host_cpus).ok()?;
    if cpus.is_empty() || cpus.iter().any(|c| c.0 >= host) {
        return None;
    }
    let mut map = vec![0u8; usize::try_from(host.div_ceil(8)).ok()?];
    for CpuId(c) in cpus {
        let byte = usize::try_from(c / 8).ok()?;
        *map.get_mut(byte)? |= 1 << (c % 8);
    }
    Some(map)
}

/// Which domain events to register for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventId {
    /// VIR_DOMAIN_EVENT_ID_LIFECYCLE.
    Lifecycle,
    /// VIR_DOMAIN_EVENT_ID_TUNABLE.
    Tunable,
}

/// Registers `sink` for `id` events of every domain of `conn`; returns the
/// callback id for [`deregister`].
pub(super) fn register(
    conn: &Connect,
    id: EventId,
    sink: Arc<EventSink>,
) -> Result<c_int, VirtError> {
    let (event_id, cb) = match id {
        // SAFETY: libvirt calls a callback with the signature matching the
        // event id it was registered for (VIR_DOMAIN_EVENT_CALLBACK in C is
        // this very cast); the lifecycle id gets the lifecycle signature.
        EventId::Lifecycle => (sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE, unsafe {
            std::mem::transmute::<LifecycleFn, GenericFn>(on_lifecycle)
        }),
        // SAFETY: as above, the tunable id gets the tunable signature.
        EventId::Tunable => (sys::VIR_DOMAIN_EVENT_ID_TUNABLE, unsafe {
            std::mem::transmute::<TunableFn, GenericFn>(on_tunable)
        }),
    };
    let event_id = c_int::try_from(event_id).expect("event ids are small constants");
    let opaque = Box::into_raw(Box::new(sink)).cast::<c_void>();
    // SAFETY: `conn` is live; a null domain means every domain; `opaque` is
    // a leaked `Box<Arc<EventSink>>` that `free_sink` reclaims.
    let ret = unsafe {
        sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            ptr::null_mut(),
            event_id,
            Some(cb),
            opaque,
            Some(free_sink),
        )
    };
    if ret < 0 {
        let err = VirtError::last_error();
        // SAFETY: registration failed, so libvirt kept no copy of `opaque`
        // and will never call `free_sink` on it: reclaim it here, once.
        drop(unsafe { Box::from_raw(opaque.cast::<Arc<EventSink>>()) });
        return Err(err);
    }
    Ok(ret)
}

/// Removes a registration made by [`register`]; libvirt then frees its sink.
pub(super) fn deregister(conn: &Connect, callback_id: c_int) -> Result<(), VirtError> {
    // SAFETY: `conn` is live; an unknown id is reported as an error, not UB.
    let ret = unsafe { sys::virConnectDomainEventDeregisterAny(conn.as_ptr(), callback_id) };
    if ret < 0 {
        return Err(VirtError::last_error());
    }
    Ok(())
}

type GenericFn = unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void);
type LifecycleFn =
    unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, c_int, c_int, *mut c_void) -> c_int;
type TunableFn = unsafe extern "C" fn(
    sys::virConnectPtr,
    sys::virDomainPtr,
    sys::virTypedParameterPtr,
    c_int,
    *mut c_void,
);

/// The domain's name, copied; `None` for a null domain or name.
///
/// # Safety
/// `dom` is null or a domain libvirt keeps alive for the call.
unsafe fn domain_name(dom: sys::virDomainPtr) -> Option<String> {
    if dom.is_null() {
        return None;
    }
    // SAFETY: `dom` is a live domain (caller); the name it returns lives as
    // long as the domain and is NUL-terminated.
    let name = unsafe { sys::virDomainGetName(dom) };
    if name.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated, alive for this call.
    Some(
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The sink behind an `opaque` pointer made by [`register`].
///
/// # Safety
/// `opaque` came from [`register`] and [`free_sink`] has not run on it.
unsafe fn sink<'a>(opaque: *mut c_void) -> Option<&'a EventSink> {
    // SAFETY: per the contract, a live `Box<Arc<EventSink>>` or null.
    unsafe { opaque.cast::<Arc<EventSink>>().as_ref() }.map(|a| &**a)
}

/// VIR_DOMAIN_EVENT_ID_LIFECYCLE callback.
pub(super) unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: c_int,
    detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    // SAFETY: libvirt passes the opaque given at registration, still
    // registered, and a domain alive for the callback.
    if let (Some(sink), Some(name)) = unsafe { (sink(opaque), domain_name(dom)) } {
        sink.lifecycle(&name, event, detail);
    }
    0
}

/// VIR_DOMAIN_EVENT_ID_TUNABLE callback: hands the string parameters
/// (`cputune.vcpupinN` values are strings) to the sink.
pub(super) unsafe extern "C" fn on_tunable(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    params: sys::virTypedParameterPtr,
    nparams: c_int,
    opaque: *mut c_void,
) {
    // SAFETY: as in `on_lifecycle`.
    let (Some(sink), Some(name)) = (unsafe { (sink(opaque), domain_name(dom)) }) else {
        return;
    };
    let params = match usize::try_from(nparams) {
        Ok(n) if n > 0 && !params.is_null() => {
            // SAFETY: libvirt passes `nparams` initialised parameters at
            // `params`, alive for the callback.
            unsafe { std::slice::from_raw_parts(params, n) }
        }
        _ => &[],
    };
    let strings: Vec<(String, String)> = params.iter().filter_map(string_param).collect();
    sink.tunable(&name, &strings);
}

/// A string-typed parameter as (field, value), copied.
fn string_param(p: &sys::virTypedParameter) -> Option<(String, String)> {
    if u32::try_from(p.type_).ok()? != sys::VIR_TYPED_PARAM_STRING {
        return None;
    }
    let field: Vec<u8> = p
        .field
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| c.to_ne_bytes()[0])
        .collect();
    // SAFETY: the type says the union holds `s`, a NUL-terminated string
    // (or null) owned by libvirt for the callback.
    let s: *mut c_char = unsafe { p.value.s };
    if s.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated, alive for the callback.
    let value = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
    Some((String::from_utf8_lossy(&field).into_owned(), value))
}

/// `virFreeCallback` for the opaque of [`register`].
unsafe extern "C" fn free_sink(opaque: *mut c_void) {
    if !opaque.is_null() {
        // SAFETY: libvirt calls this once per successful registration with
        // the `Box<Arc<EventSink>>` leaked in `register`.
        drop(unsafe { Box::from_raw(opaque.cast::<Arc<EventSink>>()) });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio::sync::mpsc;
    use tokio::sync::mpsc::error::TryRecvError;
    use vmpower_engine::VmId;

    use super::super::events::{LibvirtEvent, Lifecycle};
    use super::*;

    #[test]
    fn cpumaps_decode_bit_by_bit() {
        assert!(cpumap_to_set(&[]).is_empty());
        assert!(cpumap_to_set(&[0, 0]).is_empty());
        let got = cpumap_to_set(&[0b1000_0010, 0b0000_0001]);
        assert_eq!(got, BTreeSet::from([CpuId(1), CpuId(7), CpuId(8)]));
    }

    #[test]
    fn cpumaps_encode_and_round_trip() {
        let set = BTreeSet::from([CpuId(0), CpuId(9), CpuId(15)]);
        let map = set_to_cpumap(&set, 16).expect("in range");
        assert_eq!(map, vec![0b0000_0001, 0b1000_0010]);
        assert_eq!(cpumap_to_set(&map), set);
        assert_eq!(set_to_cpumap(&set, 12), None);
        assert_eq!(set_to_cpumap(&BTreeSet::new(), 16), None);
        assert_eq!(set_to_cpumap(&set, -1), None);
    }

    /// A string-typed parameter; `value` must outlive its use.
    fn param(field: &str, value: &CStr) -> sys::virTypedParameter {
        let mut name: [c_char; 80] = [0; 80];
        for (dst, src) in name.iter_mut().zip(field.bytes()) {
            *dst = c_char::from_ne_bytes([src]);
        }
        sys::virTypedParameter {
            field: name,
            type_: c_int::try_from(sys::VIR_TYPED_PARAM_STRING).expect("small"),
            value: sys::_virTypedParameterValue {
                s: value.as_ptr().cast_mut(),
            },
        }
    }

    /// Calls the callbacks the way libvirt does, with a real domain of the
    /// test driver (which itself never sends TUNABLE events).
    #[test]
    fn callbacks_turn_libvirt_arguments_into_events() {
        let mut conn = Connect::open(Some("test:///default")).expect("test driver");
        let dom = Domain::lookup_by_name(&conn, "test").expect("test:///default has 'test'");
        let (v0, v2, emu) = (c"0-1", c"3", c"0");
        let mut params = [
            param("cputune.vcpupin0", v0),
            param("cputune.emulatorpin", emu),
            param("cputune.vcpupin2", v2),
            sys::virTypedParameter {
                field: [0; 80],
                type_: c_int::try_from(sys::VIR_TYPED_PARAM_ULLONG).expect("small"),
                value: sys::_virTypedParameterValue { ul: 1024 },
            },
        ];
        let (tx, mut rx) = mpsc::channel(8);
        let opaque = Box::into_raw(Box::new(Arc::new(EventSink::new(tx)))).cast::<c_void>();
        let n = c_int::try_from(params.len()).expect("small");
        // SAFETY: live connection and domain, `n` parameters at `params`
        // alive for the call, `opaque` a leaked `Box<Arc<EventSink>>`.
        unsafe { on_tunable(conn.as_ptr(), dom.as_ptr(), params.as_mut_ptr(), n, opaque) };
        // SAFETY: as above; only the emulator pin: no event.
        unsafe {
            on_tunable(
                conn.as_ptr(),
                dom.as_ptr(),
                params[1..].as_mut_ptr(),
                1,
                opaque,
            )
        };
        // SAFETY: as above; no domain: ignored.
        unsafe {
            on_tunable(
                conn.as_ptr(),
                ptr::null_mut(),
                params.as_mut_ptr(),
                n,
                opaque,
            )
        };
        // SAFETY: as above; 5 is VIR_DOMAIN_EVENT_STOPPED, 1 its DESTROYED.
        let ret = unsafe { on_lifecycle(conn.as_ptr(), dom.as_ptr(), 5, 1, opaque) };
        assert_eq!(ret, 0);
        // SAFETY: as above; an event id unknown to this code: ignored.
        unsafe { on_lifecycle(conn.as_ptr(), dom.as_ptr(), 99, 0, opaque) };
        // SAFETY: `opaque` came from `Box::into_raw` above and is freed once.
        unsafe { free_sink(opaque) };

        assert_eq!(
            rx.try_recv().ok(),
            Some(LibvirtEvent::VcpuPinned {
                vm: VmId::new("test"),
                pins: BTreeMap::from([
                    (0, BTreeSet::from([CpuId(0), CpuId(1)])),
                    (2, BTreeSet::from([CpuId(3)])),
                ]),
            })
        );
        assert_eq!(
            rx.try_recv().ok(),
            Some(LibvirtEvent::Lifecycle {
                vm: VmId::new("test"),
                event: Lifecycle::Stopped,
                detail: 1,
            })
        );
        // The sink was freed: its sender is gone.
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        drop(dom);
        conn.close().expect("close");
    }
}

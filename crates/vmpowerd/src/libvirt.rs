//! With the `libvirt` feature and `libvirt_uri` set: the daemon learns
//! VMs, their vCPU pins and their channel sockets from libvirt alone, and
//! follows libvirt's events (domain started or stopped, `virsh vcpupin`).
//!
//! ## Behavior
//! - At start every domain is read; each running domain's
//!   `virtio.serial.port.poweragent.N` channel sockets are served (as
//!   channel N), wherever the live XML puts them.
//! - On a lifecycle or tunable event the domain is read again; after
//!   dropped events (`Lagged`) every domain is.
//! - If the event connection dies (libvirtd restarted), a new watcher is
//!   started; until then the periodic placement refresh still runs.

use std::time::Duration;

use tracing::{info, warn};
use vmpower_engine::{ChannelId, VmId};

use crate::inventory::libvirt::{LibvirtEvent, LibvirtPlacement, LibvirtWatcher};
use crate::state::State;

/// How often the event connection's health is checked.
const WATCH_CHECK: Duration = Duration::from_secs(10);

/// Reads every domain, then follows libvirt's events until aborted.
pub async fn follow(daemon: State, source: LibvirtPlacement) {
    discover_all(&daemon, &source).await;
    loop {
        let (watcher, mut events) = match LibvirtWatcher::start_async(source.uri()).await {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "cannot watch libvirt events; retrying");
                tokio::time::sleep(WATCH_CHECK).await;
                continue;
            }
        };
        info!(uri = source.uri(), "following libvirt events");
        let mut check = tokio::time::interval(WATCH_CHECK);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(LibvirtEvent::Lagged { dropped }) => {
                        warn!(dropped, "libvirt events were dropped; re-reading every domain");
                        discover_all(&daemon, &source).await;
                    }
                    Some(event) => {
                        if let Some(vm) = event.vm() {
                            info!(%vm, ?event, "libvirt event");
                            discover(&daemon, &source, vm).await;
                        }
                    }
                    None => break,
                },
                _ = check.tick() => if !watcher.is_alive() { break },
            }
        }
        warn!("libvirt event connection lost; reconnecting");
        let _ = tokio::task::spawn_blocking(move || drop(watcher)).await;
        discover_all(&daemon, &source).await;
    }
}

async fn discover_all(daemon: &State, source: &LibvirtPlacement) {
    match source.list_domains().await {
        Ok(vms) => {
            for vm in vms {
                discover(daemon, source, &vm).await;
            }
        }
        Err(e) => warn!(error = %e, "cannot list libvirt domains"),
    }
}

/// Reads one domain: serves its agent channels and refreshes its placement.
async fn discover(daemon: &State, source: &LibvirtPlacement, vm: &VmId) {
    let domain = match source.domain(vm).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            daemon.placer().refresh(vm, daemon.core()).await;
            return;
        }
        Err(e) => {
            warn!(%vm, error = %e, "cannot read libvirt domain");
            return;
        }
    };
    if !domain.active || !daemon.ensure_vm(vm) {
        return;
    }
    for (index, channel) in domain.agent_channels() {
        if !daemon.serves(&channel.path) && channel.path.exists() {
            info!(%vm, index, path = %channel.path.display(), "channel from libvirt");
            let id = ChannelId {
                vm: vm.clone(),
                index,
            };
            daemon.serve_channel(&channel.path, id);
        }
    }
    daemon.placer().refresh(vm, daemon.core()).await;
}

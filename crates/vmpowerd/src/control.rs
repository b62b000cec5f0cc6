//! The control API: a unix socket (mode from the config, 0600 by default,
//! so only root or the daemon's user may use it) speaking the JSON-lines
//! protocol of `vmpower-api`, one task per client. A request line is read
//! up to 64 KiB and no further: a longer one is answered with an error and
//! the client disconnected, so a client cannot make the daemon allocate
//! more.

use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use vmpower_api::answers::{self, Answer};
use vmpower_api::{ChannelSel, CtlError, CtlRequest, CtlResponse, ErrorKind, FreqOp};
use vmpower_cpufreq::CpuId;
use vmpower_engine::{ChannelId, VmId};
use vmpower_proto::ScalingUnit;

use crate::channels::ChannelName;
use crate::inventory::{PlacementSourceError, StaticMapError};
use crate::placement::SetPcpuError;
use crate::run::Daemon;

/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;

/// Binds the control socket and serves it in the background.
pub fn listen(daemon: Arc<Daemon>) -> anyhow::Result<JoinHandle<()>> {
    let path = daemon.config.control_socket.clone();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // A socket left by a crashed run is replaced; anything else is not ours.
    if std::fs::symlink_metadata(&path).is_ok() {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::symlink_metadata(&path)?;
        anyhow::ensure!(
            meta.file_type().is_socket(),
            "{} exists and is not a socket",
            path.display()
        );
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot bind control socket {}", path.display()))?;
    daemon
        .secure_control_socket()
        .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve_client(stream, daemon.clone()));
                }
                Err(e) => warn!(error = %e, "control socket accept failed"),
            }
        }
    }))
}

async fn serve_client(stream: UnixStream, daemon: Arc<Daemon>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_request_line(&mut lines, &mut line).await {
            Ok(0) => return,
            Ok(_) if line.len() > MAX_LINE => {
                let message = format!("request line longer than {MAX_LINE} bytes: disconnected");
                let _ = reply(&mut write, &invalid(&message)).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "control client read failed");
                return;
            }
        }
        let response = match CtlRequest::from_line(&line) {
            Ok(request) => {
                info!(?request, "control request");
                match handle(&daemon, request).await {
                    Ok(v) => CtlResponse::Ok(v),
                    Err(e) => CtlResponse::Error(e),
                }
            }
            Err(e) => invalid(&format!("invalid request: {e}")),
        };
        if reply(&mut write, &response).await.is_err() {
            return;
        }
    }
}

/// Reads one request line into `line`, but never more than
/// [`MAX_LINE`] + 1 bytes: a longer line (or bytes without a newline) is
/// cut there, before it is allocated whole.
async fn read_request_line(
    lines: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let cap = u64::try_from(MAX_LINE + 1).expect("the cap fits u64");
    (&mut *lines).take(cap).read_until(b'\n', line).await
}

async fn reply(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &CtlResponse<Answer>,
) -> std::io::Result<()> {
    let mut text = response.to_line().unwrap_or_else(|e| {
        format!(r#"{{"error":{{"kind":"refused","message":"cannot encode answer: {e}"}}}}"#)
    });
    text.push('\n');
    write.write_all(text.as_bytes()).await
}

fn invalid(message: &str) -> CtlResponse<Answer> {
    CtlResponse::Error(CtlError::new(ErrorKind::Invalid, message))
}

fn not_found(what: impl Into<String>) -> CtlError {
    CtlError::new(ErrorKind::NotFound, what)
}

fn refused(what: impl Into<String>) -> CtlError {
    CtlError::new(ErrorKind::Refused, what)
}

/// Carries out one request.
pub async fn handle(daemon: &Arc<Daemon>, request: CtlRequest) -> Result<Answer, CtlError> {
    match request {
        CtlRequest::Status => Ok(Answer::Status(Box::new(status(daemon)))),
        CtlRequest::Top => Ok(Answer::Top(crate::health::top(daemon))),
        CtlRequest::ListVms => {
            let vms = crate::lock(&daemon.core).engine.vm_ids();
            Ok(Answer::Vms(
                vms.iter().map(|v| show_vm(daemon, v)).collect(),
            ))
        }
        CtlRequest::ShowVm { vm } => {
            let id = known_vm(daemon, &vm)?;
            Ok(Answer::Vm(show_vm(daemon, &id)))
        }
        CtlRequest::AddVm { vm } => {
            crate::vm_name::check(&vm)
                .map_err(|e| CtlError::new(ErrorKind::Invalid, e.to_string()))?;
            let id = VmId::new(&vm);
            let mut core = crate::lock(&daemon.core);
            if core.engine.settings(&id).is_some() {
                return Err(refused(format!("VM {vm} is already known")));
            }
            core.engine.add_vm(id.clone(), Default::default());
            core.persist_settings(&id);
            Ok(Answer::VmAdded(answers::VmAdded { added: vm }))
        }
        CtlRequest::RmVm { vm } => {
            let id = known_vm(daemon, &vm)?;
            for path in vm_channel_paths(daemon, &id) {
                daemon.stop_serving(&path);
            }
            daemon.placer.forget(&id);
            let mut core = crate::lock(&daemon.core);
            let actions = core.engine.remove_vm(&id);
            core.execute(&actions);
            core.stats.forget_vm(&id);
            if let Some(store) = core.store.as_mut() {
                let gone = store
                    .remove_settings(&id)
                    .and_then(|_| store.remove_pcpus(&id))
                    .and_then(|_| store.remove_policy(&id));
                if let Err(e) = gone {
                    return Err(refused(format!(
                        "VM removed but not from the state database: {:#}",
                        anyhow::Error::from(e)
                    )));
                }
            }
            Ok(Answer::Removed(answers::Removed { removed: vm }))
        }
        CtlRequest::AddChannels { vm, channels } => {
            let id = known_vm(daemon, &vm)?;
            let paths = select_sockets(daemon, &id, &channels)?;
            // DPDK's add_channels skips a channel that exists: a connected
            // channel keeps its connection and the bytes in flight.
            let (up, down): (Vec<_>, Vec<_>) = {
                let core = crate::lock(&daemon.core);
                paths.into_iter().partition(|p| {
                    guest_index(p).is_some_and(|index| {
                        core.stats.channel_is_up(&ChannelId {
                            vm: id.clone(),
                            index,
                        })
                    })
                })
            };
            for path in &down {
                daemon.appeared(path);
            }
            for path in &up {
                info!(path = %path.display(), "add-channels: channel already connected, left alone (reconnect-channels makes a new connection)");
            }
            Ok(Answer::ChannelsAdded(answers::ChannelsAdded {
                connected: down,
                already_connected: up,
            }))
        }
        CtlRequest::ReconnectChannels { vm, channels } => {
            let id = known_vm(daemon, &vm)?;
            let paths = select_sockets(daemon, &id, &channels)?;
            for path in &paths {
                daemon.appeared(path);
            }
            Ok(Answer::ChannelsReconnected(answers::ChannelsReconnected {
                reconnected: paths,
            }))
        }
        CtlRequest::SetChannelStatus {
            vm,
            channels,
            enabled,
        } => {
            let id = known_vm(daemon, &vm)?;
            let indices = match channels {
                ChannelSel::All => socket_indices(daemon, &id),
                ChannelSel::List(l) => l,
            };
            let mut core = crate::lock(&daemon.core);
            let now = core.now();
            for index in &indices {
                let channel = ChannelId {
                    vm: id.clone(),
                    index: *index,
                };
                core.engine.set_channel_enabled(&channel, enabled, now);
            }
            Ok(Answer::ChannelStatusSet(answers::ChannelStatusSet {
                channels: indices,
                enabled,
            }))
        }
        CtlRequest::SetPcpu { vm, vcpu, pcpu } => {
            let id = known_vm(daemon, &vm)?;
            let repinned = daemon
                .placer
                .set_pcpu(&id, vcpu, CpuId(pcpu), &daemon.core)
                .await
                .map_err(set_pcpu_error)?;
            // A libvirt domain's vCPU is re-pinned through libvirt (which
            // keeps its cgroups and live XML right) when /proc or QMP did
            // not already move the thread.
            #[cfg(feature = "libvirt")]
            let repinned_by_libvirt = match (&repinned, daemon.libvirt()) {
                (None, Some(source)) => match source
                    .pin_vcpu(&id, vcpu, &std::collections::BTreeSet::from([CpuId(pcpu)]))
                    .await
                {
                    Ok(()) => {
                        daemon.placer.refresh(&id, &daemon.core).await;
                        true
                    }
                    Err(e) => {
                        debug!(%vm, error = %e, "not re-pinned through libvirt");
                        false
                    }
                },
                _ => false,
            };
            #[cfg(not(feature = "libvirt"))]
            let repinned_by_libvirt = false;
            if let Some(store) = crate::lock(&daemon.core).store.as_mut() {
                store.put_pcpu(&id, vcpu, CpuId(pcpu)).map_err(|e| {
                    refused(format!(
                        "mapping in force but not stored: {:#}",
                        anyhow::Error::from(e)
                    ))
                })?;
            }
            Ok(Answer::PcpuSet(answers::PcpuSet {
                vm,
                vcpu,
                pcpu,
                repinned_thread: repinned.map(|t| t.0),
                repinned_by_libvirt,
            }))
        }
        CtlRequest::SetQuery { vm, enabled } => {
            let id = known_vm(daemon, &vm)?;
            let mut core = crate::lock(&daemon.core);
            let mut settings = core.engine.settings(&id).unwrap_or_default();
            settings.queries_allowed = enabled;
            core.engine.add_vm(id.clone(), settings);
            core.persist_settings(&id);
            Ok(Answer::QueriesSet(answers::QueriesSet {
                vm,
                queries: enabled,
            }))
        }
        CtlRequest::PolicyCreate { policy } => {
            let vm = crate::policy_ops::apply(daemon, &policy).map_err(|e| match e {
                crate::policy_ops::PolicyOpError::UnknownVm(_) => not_found(e.to_string()),
                crate::policy_ops::PolicyOpError::Invalid(_) => {
                    CtlError::new(ErrorKind::Invalid, e.to_string())
                }
                other => refused(other.to_string()),
            })?;
            daemon.persist_policy(&vm, crate::store::PolicySource::Operator);
            let core = crate::lock(&daemon.core);
            let st = core
                .engine
                .policy_status(&vm)
                .ok_or_else(|| refused("policy vanished"))?;
            drop(core);
            Ok(Answer::Policy(Box::new(crate::policy_ops::describe(
                daemon, &vm, &st,
            ))))
        }
        CtlRequest::PolicyDestroy { vm } => {
            let id = known_vm(daemon, &vm)?;
            if !crate::policy_ops::remove(daemon, &id) {
                return Err(not_found(format!("VM {vm} has no policy")));
            }
            daemon.forget_policy(&id);
            Ok(Answer::Removed(answers::Removed { removed: vm }))
        }
        CtlRequest::PolicyList => {
            let core = crate::lock(&daemon.core);
            let all: Vec<_> = core
                .engine
                .vm_ids()
                .into_iter()
                .filter_map(|v| core.engine.policy_status(&v).map(|st| (v, st)))
                .collect();
            drop(core);
            Ok(Answer::Policies(
                all.iter()
                    .map(|(v, st)| crate::policy_ops::describe(daemon, v, st))
                    .collect(),
            ))
        }
        CtlRequest::PolicyShow { vm } => {
            let id = known_vm(daemon, &vm)?;
            let st = crate::lock(&daemon.core)
                .engine
                .policy_status(&id)
                .ok_or_else(|| not_found(format!("VM {vm} has no policy")))?;
            Ok(Answer::Policy(Box::new(crate::policy_ops::describe(
                daemon, &id, &st,
            ))))
        }
        CtlRequest::History { vm, since, limit } => {
            let entries = daemon.history(vm.clone(), since, limit)?;
            // A VM the daemon does not know and that never had a decision
            // recorded is a typo, not an empty history; a removed VM's
            // rows are still listed.
            if let Some(vm) = vm.filter(|_| entries.is_empty())
                && known_vm(daemon, &vm).is_err()
                && daemon.history(Some(vm.clone()), None, Some(1))?.is_empty()
            {
                return Err(not_found(format!(
                    "no VM named {vm}, and no history for it"
                )));
            }
            Ok(Answer::History(entries))
        }
        CtlRequest::TrafficRecord {
            vm,
            since_ms,
            until_ms,
            after,
        } => crate::rate_export::page(&daemon.core, vm.as_deref(), since_ms, until_ms, after)
            .map(Answer::RatePage),
        CtlRequest::ShowVfs { pf } => {
            let mut vfs = daemon.vf.open().map_err(|e| refused(format!("{e:#}")))?;
            let list = vfs.list_vfs(&pf).map_err(|e| match e {
                crate::traffic::TrafficError::NoSuchDevice { .. } => not_found(e.to_string()),
                other => refused(format!("{:#}", anyhow::Error::from(other))),
            })?;
            Ok(Answer::Vfs(
                list.iter()
                    .map(|v| answers::VfInfo {
                        vf: v.vf,
                        mac: v.mac.to_string(),
                        rx_packets: v.rx_packets,
                        tx_packets: v.tx_packets,
                    })
                    .collect(),
            ))
        }
        CtlRequest::SetVfMac { pf, vf, mac } => {
            let parsed: vmpower_proto::MacAddr =
                mac.parse().map_err(|e: vmpower_proto::ModelError| {
                    CtlError::new(ErrorKind::Invalid, e.to_string())
                })?;
            let mut vfs = daemon.vf.open().map_err(|e| refused(format!("{e:#}")))?;
            vfs.set_vf_mac(&pf, vf, parsed).map_err(|e| match e {
                crate::traffic::TrafficError::NoSuchDevice { .. }
                | crate::traffic::TrafficError::NoSuchVf { .. } => not_found(e.to_string()),
                other => refused(format!("{:#}", anyhow::Error::from(other))),
            })?;
            Ok(Answer::VfMacSet(answers::VfMacSet {
                pf,
                vf,
                mac: parsed.to_string(),
            }))
        }
        CtlRequest::ShowCpuFreq { cpus } => show_cpu_freq(daemon, &cpus).map(Answer::CpuFreqs),
        CtlRequest::SetCpuFreq { cpus, op } => {
            set_cpu_freq(daemon, &cpus, op).map(Answer::CpuFreqsSet)
        }
    }
}

fn known_vm(daemon: &Daemon, vm: &str) -> Result<VmId, CtlError> {
    let id = VmId::new(vm);
    if crate::lock(&daemon.core).engine.settings(&id).is_some() {
        Ok(id)
    } else {
        Err(not_found(format!("no VM named {vm}")))
    }
}

fn vm_channel_paths(daemon: &Daemon, vm: &VmId) -> Vec<std::path::PathBuf> {
    let dir = &daemon.config.channel_dir;
    crate::channels::watch::scan(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| matches!(ChannelName::of_path(p), Some(ChannelName::Guest { vm: v, .. }) if v == vm.as_str()))
        .collect()
}

fn socket_indices(daemon: &Daemon, vm: &VmId) -> Vec<u32> {
    vm_channel_paths(daemon, vm)
        .iter()
        .filter_map(|p| guest_index(p))
        .collect()
}

/// The channel number of a guest channel socket's path (`<vm>.<n>`).
fn guest_index(path: &std::path::Path) -> Option<u32> {
    match ChannelName::of_path(path) {
        Some(ChannelName::Guest { index, .. }) => Some(index),
        _ => None,
    }
}

fn select_sockets(
    daemon: &Daemon,
    vm: &VmId,
    sel: &ChannelSel,
) -> Result<Vec<std::path::PathBuf>, CtlError> {
    let all = vm_channel_paths(daemon, vm);
    let chosen: Vec<_> = match sel {
        ChannelSel::All => all,
        ChannelSel::List(list) => {
            let mut out = Vec::new();
            for index in list {
                let path = daemon.config.channel_dir.join(format!("{vm}.{index}"));
                if !all.contains(&path) {
                    return Err(not_found(format!("no channel socket {}", path.display())));
                }
                out.push(path);
            }
            out
        }
    };
    if chosen.is_empty() {
        return Err(not_found(format!(
            "no channel socket for {vm} in {}",
            daemon.config.channel_dir.display()
        )));
    }
    Ok(chosen)
}

fn show_vm(daemon: &Daemon, vm: &VmId) -> answers::VmInfo {
    let served = daemon.channel_paths();
    let core = crate::lock(&daemon.core);
    let settings = core.engine.settings(vm).unwrap_or_default();
    let placement = core.engine.placement(vm).cloned().unwrap_or_default();
    let vcpus: Vec<answers::VcpuPlacement> = (0..placement.vcpus)
        .map(|v| {
            let pcpus: Vec<u32> = u32::try_from(v)
                .ok()
                .and_then(|v| placement.affinity.get(&v))
                .map(|a| a.iter().map(|c| c.0).collect())
                .unwrap_or_default();
            answers::VcpuPlacement { vcpu: v, pcpus }
        })
        .collect();
    let channels: Vec<answers::VmChannel> = socket_indices(daemon, vm)
        .into_iter()
        .map(|index| {
            let path = daemon.config.channel_dir.join(format!("{vm}.{index}"));
            let channel = ChannelId {
                vm: vm.clone(),
                index,
            };
            answers::VmChannel {
                index,
                served: served.contains(&path),
                path,
                enabled: core.engine.channel_enabled(&channel),
            }
        })
        .collect();
    answers::VmInfo {
        name: vm.as_str().to_owned(),
        settings: answers::VmSettings {
            layout: settings.layout,
            queries_allowed: settings.queries_allowed,
            physical_allowed: settings.physical_allowed,
            multi_pcpu_allowed: settings.multi_pcpu_allowed,
            requests_override_policy: settings.requests_override_policy,
        },
        vcpus,
        channels,
    }
}

/// How a refused `set-pcpu` is answered: a vCPU past the 4096 any VM can
/// have is a usage error (`invalid`, exit 2); a vCPU the VM does not have,
/// or a pCPU the host does not have, is `not-found` (exit 3); a mapping
/// recorded but not applied to the live thread is `refused` (exit 4).
fn set_pcpu_error(e: SetPcpuError) -> CtlError {
    match e {
        SetPcpuError::NoSuchVcpu { .. } => not_found(e.to_string()),
        // The whole chain: the top alone names only the source.
        SetPcpuError::Source(
            e @ PlacementSourceError::Operator {
                source: StaticMapError::VcpuTooLarge { .. },
                ..
            },
        ) => CtlError::new(ErrorKind::Invalid, format!("{:#}", anyhow::Error::from(e))),
        SetPcpuError::Source(e @ PlacementSourceError::Operator { .. }) => {
            not_found(format!("{:#}", anyhow::Error::from(e)))
        }
        SetPcpuError::Source(other) => refused(format!(
            "{:#} (the mapping is recorded)",
            anyhow::Error::from(other)
        )),
    }
}

/// Health: channels, policies, last errors, counters (see [`crate::health`]).
fn status(daemon: &Daemon) -> answers::Status {
    crate::health::status(daemon)
}

fn target_cpus(daemon: &Daemon, cpus: &[u32]) -> Result<Vec<CpuId>, CtlError> {
    let known = crate::lock(&daemon.core).engine.pcpus();
    if cpus.is_empty() {
        return Ok(known);
    }
    cpus.iter()
        .map(|c| {
            let cpu = CpuId(*c);
            if known.contains(&cpu) {
                Ok(cpu)
            } else {
                Err(not_found(format!(
                    "CPU {c} has no frequency control on this host"
                )))
            }
        })
        .collect()
}

fn show_cpu_freq(daemon: &Daemon, cpus: &[u32]) -> Result<Vec<answers::CpuFreq>, CtlError> {
    let cpus = target_cpus(daemon, cpus)?;
    let core = crate::lock(&daemon.core);
    let rows = cpus
        .iter()
        .map(|cpu| {
            let table = core.cpufreq.table(*cpu).ok();
            let hw = core.cpufreq.current(*cpu).ok().flatten();
            answers::CpuFreq {
                cpu: cpu.0,
                khz: hw.or(core.engine.known_khz(*cpu)).map(|k| k.0),
                managed: core.engine.is_managed(*cpu),
                operator: core.engine.operator_holds(*cpu),
                table_khz: table.map(|t| t.freqs().iter().map(|f| f.0).collect()),
            }
        })
        .collect();
    Ok(rows)
}

fn set_cpu_freq(
    daemon: &Daemon,
    cpus: &[u32],
    op: FreqOp,
) -> Result<Vec<answers::CpuFreqSet>, CtlError> {
    let cpus = target_cpus(daemon, cpus)?;
    let mut core = crate::lock(&daemon.core);
    for cpu in &cpus {
        let result = match op {
            FreqOp::Release => core.operator_release(*cpu),
            FreqOp::Up => core.operator(*cpu, ScalingUnit::ScaleUp),
            FreqOp::Down => core.operator(*cpu, ScalingUnit::ScaleDown),
            FreqOp::Min => core.operator(*cpu, ScalingUnit::ScaleMin),
            FreqOp::Max => core.operator(*cpu, ScalingUnit::ScaleMax),
            FreqOp::EnableTurbo => core.operator(*cpu, ScalingUnit::EnableTurbo),
            FreqOp::DisableTurbo => core.operator(*cpu, ScalingUnit::DisableTurbo),
        };
        result.map_err(|e| refused(format!("CPU {}: {e}", cpu.0)))?;
    }
    Ok(cpus
        .iter()
        .map(|c| answers::CpuFreqSet {
            cpu: c.0,
            khz: core.engine.known_khz(*c).map(|k| k.0),
        })
        .collect())
}

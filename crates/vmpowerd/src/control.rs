//! The control API: a unix socket (mode from the config, 0600 by default,
//! so only root or the daemon's user may use it) speaking the JSON-lines
//! protocol of `vmpower-api`, one task per client (ended when the daemon
//! stops, whatever it was doing). A request line is read
//! up to 64 KiB and no further: a longer one is answered with an error and
//! the client disconnected, so a client cannot make the daemon allocate
//! more.

use std::future::Future;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use vmpower_api::answers::{self, Answer};
use vmpower_api::{ChannelSel, CtlError, CtlRequest, CtlResponse, ErrorKind, FreqOp};
use vmpower_cpufreq::CpuId;
use vmpower_engine::{ChannelId, OperatorAction, VmId};
use vmpower_proto::ScalingUnit;

use crate::channels::ChannelName;
use crate::inventory::{PlacementSourceError, StaticMapError};
use crate::placement::SetPcpuError;
use crate::state::{PolicyError, PolicyFrom, State, VmError};

/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;

/// Binds the control socket; returns the task that serves it (each
/// client's task ends when it is dropped).
pub fn listen(daemon: State) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let path = daemon.config().control_socket.clone();
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
    Ok(async move {
        // The clients' tasks live as long as this one: when the daemon
        // stops, no client is served past the restore.
        let mut clients = JoinSet::new();
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    clients.spawn(serve_client(stream, daemon.clone()));
                }
                Err(e) => warn!(error = %e, "control socket accept failed"),
            }
            while clients.try_join_next().is_some() {}
        }
    })
}

async fn serve_client(stream: UnixStream, daemon: State) {
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
pub async fn handle(daemon: &State, request: CtlRequest) -> Result<Answer, CtlError> {
    match request {
        CtlRequest::Status => Ok(Answer::Status(Box::new(status(daemon)))),
        CtlRequest::Top => Ok(Answer::Top(crate::health::top(daemon))),
        CtlRequest::ListVms => {
            let vms = daemon.lock().engine.vm_ids();
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
            daemon
                .add_vm(&VmId::new(&vm))
                .map_err(|e| refused(e.to_string()))?;
            Ok(Answer::VmAdded(answers::VmAdded { added: vm }))
        }
        CtlRequest::RmVm { vm } => {
            let id = known_vm(daemon, &vm)?;
            daemon.remove_vm(&id).map_err(|e| refused(e.to_string()))?;
            Ok(Answer::Removed(answers::Removed { removed: vm }))
        }
        CtlRequest::AddChannels { vm, channels } => {
            let id = known_vm(daemon, &vm)?;
            let paths = select_sockets(daemon, &id, &channels)?;
            // DPDK's add_channels skips a channel that exists: a connected
            // channel keeps its connection and the bytes in flight.
            let (up, down): (Vec<_>, Vec<_>) = {
                let core = daemon.lock();
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
            // A new connection even where one is live (appeared() leaves
            // a served path to its task).
            for path in &paths {
                daemon.stop_serving(path);
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
            daemon.set_channels_enabled(&id, &indices, enabled);
            Ok(Answer::ChannelStatusSet(answers::ChannelStatusSet {
                channels: indices,
                enabled,
            }))
        }
        CtlRequest::SetPcpu { vm, vcpu, pcpu } => {
            let id = known_vm(daemon, &vm)?;
            let repinned =
                daemon
                    .set_placement(&id, vcpu, CpuId(pcpu))
                    .await
                    .map_err(|e| match e {
                        VmError::Placement(e) => set_pcpu_error(e),
                        other => refused(other.to_string()),
                    })?;
            Ok(Answer::PcpuSet(answers::PcpuSet {
                vm,
                vcpu,
                pcpu,
                repinned_thread: repinned.thread.map(|t| t.0),
                repinned_by_libvirt: repinned.by_libvirt,
            }))
        }
        CtlRequest::SetQuery { vm, enabled } => {
            let id = known_vm(daemon, &vm)?;
            daemon.set_queries(&id, enabled);
            Ok(Answer::QueriesSet(answers::QueriesSet {
                vm,
                queries: enabled,
            }))
        }
        CtlRequest::PolicyCreate { policy } => {
            let vm = daemon
                .apply_policy_file(&PolicyFrom::Control, &policy)
                .map_err(|e| match e {
                    PolicyError::UnknownVm(_) => not_found(e.to_string()),
                    PolicyError::Invalid(_) => CtlError::new(ErrorKind::Invalid, e.to_string()),
                    other => refused(other.to_string()),
                })?;
            let core = daemon.lock();
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
            if !daemon.remove_policy(&PolicyFrom::Control, &id) {
                return Err(not_found(format!("VM {vm} has no policy")));
            }
            Ok(Answer::Removed(answers::Removed { removed: vm }))
        }
        CtlRequest::PolicyList => {
            let core = daemon.lock();
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
            let st = daemon
                .lock()
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
        } => crate::rate_export::page(daemon.core(), vm.as_deref(), since_ms, until_ms, after)
            .map(Answer::RatePage),
        CtlRequest::ShowVfs { pf } => {
            let mut vfs = daemon.vf().open().map_err(|e| refused(format!("{e:#}")))?;
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
            let mut vfs = daemon.vf().open().map_err(|e| refused(format!("{e:#}")))?;
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

fn known_vm(daemon: &State, vm: &str) -> Result<VmId, CtlError> {
    let id = VmId::new(vm);
    if daemon.lock().engine.settings(&id).is_some() {
        Ok(id)
    } else {
        Err(not_found(format!("no VM named {vm}")))
    }
}

fn socket_indices(daemon: &State, vm: &VmId) -> Vec<u32> {
    daemon
        .vm_channel_paths(vm)
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
    daemon: &State,
    vm: &VmId,
    sel: &ChannelSel,
) -> Result<Vec<std::path::PathBuf>, CtlError> {
    let all = daemon.vm_channel_paths(vm);
    let chosen: Vec<_> = match sel {
        ChannelSel::All => all,
        ChannelSel::List(list) => {
            let mut out = Vec::new();
            for index in list {
                let path = daemon.config().channel_dir.join(format!("{vm}.{index}"));
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
            daemon.config().channel_dir.display()
        )));
    }
    Ok(chosen)
}

fn show_vm(daemon: &State, vm: &VmId) -> answers::VmInfo {
    let served = daemon.channel_paths();
    let core = daemon.lock();
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
            let path = daemon.config().channel_dir.join(format!("{vm}.{index}"));
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
fn status(daemon: &State) -> answers::Status {
    crate::health::status(daemon)
}

fn target_cpus(daemon: &State, cpus: &[u32]) -> Result<Vec<CpuId>, CtlError> {
    let known = daemon.lock().engine.pcpus();
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

fn show_cpu_freq(daemon: &State, cpus: &[u32]) -> Result<Vec<answers::CpuFreq>, CtlError> {
    let cpus = target_cpus(daemon, cpus)?;
    let core = daemon.lock();
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
    daemon: &State,
    cpus: &[u32],
    op: FreqOp,
) -> Result<Vec<answers::CpuFreqSet>, CtlError> {
    let cpus = target_cpus(daemon, cpus)?;
    let action = match op {
        FreqOp::Release => OperatorAction::Release,
        FreqOp::Up => OperatorAction::Unit(ScalingUnit::ScaleUp),
        FreqOp::Down => OperatorAction::Unit(ScalingUnit::ScaleDown),
        FreqOp::Min => OperatorAction::Unit(ScalingUnit::ScaleMin),
        FreqOp::Max => OperatorAction::Unit(ScalingUnit::ScaleMax),
        FreqOp::EnableTurbo => OperatorAction::Unit(ScalingUnit::EnableTurbo),
        FreqOp::DisableTurbo => OperatorAction::Unit(ScalingUnit::DisableTurbo),
    };
    for cpu in &cpus {
        daemon
            .set_cpu_freq(*cpu, action)
            .map_err(|e| refused(format!("CPU {}: {e}", cpu.0)))?;
    }
    let core = daemon.lock();
    Ok(cpus
        .iter()
        .map(|c| answers::CpuFreqSet {
            cpu: c.0,
            khz: core.engine.known_khz(*c).map(|k| k.0),
        })
        .collect())
}

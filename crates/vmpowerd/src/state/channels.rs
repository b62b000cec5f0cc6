//! The tasks serving the channel directory's files: one per guest channel
//! socket (its connection runs on the channel thread) and one per FIFO,
//! keyed by path so that a file gone, `rm-vm` or `reconnect-channels`
//! stops or replaces its own.

use std::collections::HashMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::task::JoinHandle;
use tracing::{info, warn};
use vmpower_engine::{ChannelId, VmId};

use super::State;
use crate::channels::thread::{AbortOnDrop, ChannelThread};
use crate::channels::{ChannelName, conn, fifo};

/// The channel tasks, the thread their connections run on, and the FIFOs
/// to remove at stop.
#[derive(Debug)]
pub(super) struct Channels {
    tasks: Mutex<HashMap<PathBuf, JoinHandle<()>>>,
    /// Where the guest channels are served.
    thread: ChannelThread,
    /// The FIFOs this daemon made or adopted (a crashed run's), removed
    /// at stop.
    fifos_made: Mutex<Vec<PathBuf>>,
}

impl Channels {
    /// No task yet; connections will run on `thread`.
    pub(super) fn new(thread: ChannelThread) -> Self {
        Channels {
            tasks: Mutex::new(HashMap::new()),
            thread,
            fifos_made: Mutex::new(Vec::new()),
        }
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<PathBuf, JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn fifos_made(&self, made: Vec<PathBuf>) {
        *self
            .fifos_made
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = made;
    }

    /// Stops every task and the channel thread: no channel is served
    /// past this point. Returns the FIFOs to remove.
    pub(super) fn stop(&self) -> Vec<PathBuf> {
        for (_, task) in self.tasks().drain() {
            task.abort();
        }
        self.thread.stop();
        std::mem::take(
            &mut *self
                .fifos_made
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

impl State {
    /// A file appeared in the channel directory. A socket is (re)served:
    /// QEMU made it anew, so the connection to the old one is replaced at
    /// once. A FIFO a live reader already serves is left to it: the
    /// start-up scan and the watch both report the FIFOs the daemon makes
    /// itself, and a second reader would start with a fresh log budget
    /// and cut the first one's partial message.
    pub fn appeared(&self, path: &Path) {
        let Some(name) = ChannelName::of_path(path) else {
            return;
        };
        if matches!(name, ChannelName::Fifo(_)) && self.serves(path) {
            return;
        }
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        match name {
            ChannelName::Guest { vm, index } if meta.file_type().is_socket() => {
                if let Err(e) = crate::vm_name::check(&vm) {
                    warn!(path = %path.display(), error = %e, "channel socket ignored");
                    return;
                }
                let id = VmId::new(&vm);
                if !self.ensure_vm(&id) {
                    info!(path = %path.display(), "socket of an undeclared VM ignored (auto_add_vms = false)");
                    return;
                }
                self.serve_channel(path, ChannelId { vm: id, index });
            }
            ChannelName::Fifo(_) if self.config().fifos && meta.file_type().is_fifo() => {
                let task = tokio::spawn(fifo::serve_fifo(path.to_owned(), self.clone()));
                self.track(path, task);
            }
            _ => {}
        }
    }

    /// Serves the guest channel socket at `path` (from the channel
    /// directory or, with libvirt, wherever the domain's XML puts it), and
    /// refreshes the VM's placement: the QEMU holding the socket is its.
    pub fn serve_channel(&self, path: &Path, channel: ChannelId) {
        self.placer().note_socket(&channel.vm, path);
        let state = self.clone();
        let owned = path.to_owned();
        // The placement is read before the channel is connected, so that a
        // guest's first request does not meet an unplaced vCPU. The
        // connection is served on the channel thread; aborting this task
        // aborts it.
        let task = tokio::spawn(async move {
            state.placer().refresh(&channel.vm, state.core()).await;
            let mut serving = AbortOnDrop(state.shared.channels.thread.spawn(conn::serve_socket(
                owned,
                channel,
                state.core().clone(),
            )));
            let _ = (&mut serving.0).await;
        });
        self.track(path, task);
    }

    fn track(&self, path: &Path, task: JoinHandle<()>) {
        if let Some(old) = self.shared.channels.tasks().insert(path.to_owned(), task) {
            old.abort();
        }
    }

    /// Whether a live task serves `path`.
    pub fn serves(&self, path: &Path) -> bool {
        self.shared
            .channels
            .tasks()
            .get(path)
            .is_some_and(|t| !t.is_finished())
    }

    /// A file went away from the channel directory. A FIFO's reader is
    /// stopped; a socket's connection is left to end by itself (QEMU
    /// closing it), so that what it read is accounted for and a VM whose
    /// socket file alone was removed keeps being served.
    pub fn gone(&self, path: &Path) {
        if matches!(ChannelName::of_path(path), Some(ChannelName::Fifo(_)))
            && let Some(task) = self.shared.channels.tasks().remove(path)
        {
            task.abort();
        }
    }

    /// Stops serving `path` whatever it is (rm-vm).
    pub fn stop_serving(&self, path: &Path) {
        if let Some(task) = self.shared.channels.tasks().remove(path) {
            task.abort();
        }
    }

    /// The channel sockets being served, by path.
    pub fn channel_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .shared
            .channels
            .tasks()
            .iter()
            .filter(|(_, t)| !t.is_finished())
            .map(|(p, _)| p.clone())
            .collect();
        paths.sort();
        paths
    }

    /// The VM's channel sockets in the channel directory.
    pub fn vm_channel_paths(&self, vm: &VmId) -> Vec<PathBuf> {
        let dir = &self.config().channel_dir;
        crate::channels::watch::scan(dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| matches!(ChannelName::of_path(p), Some(ChannelName::Guest { vm: v, .. }) if v == vm.as_str()))
            .collect()
    }
}

//! The thread that serves every guest channel socket: a single-threaded
//! tokio runtime of its own, apart from the runtime that serves the
//! control socket, the metrics, the directory watch and the samplers.
//!
//! ## Why
//! - A request wakes this thread and no other: it alone waits on the
//!   channel sockets' epoll. On the shared multi-threaded runtime a
//!   request could wake a second worker to steal the channel's task, and
//!   while a channel busy-polls (`channel_busy_poll_us`) the worker parked
//!   in `epoll_wait` was woken by every request the poller had already
//!   read.
//! - A guest flood keeps this thread busy, not the control socket's: an
//!   operator can still reach the daemon.
//!
//! ## Behavior
//! - With a non-zero `nice` (`channel_thread_nice`), the thread sets its
//!   own nice value (`setpriority` on its thread id: on Linux a nice value
//!   is per thread) before it serves anything. Raising the priority
//!   (a negative value) needs CAP_SYS_NICE; without it the thread logs
//!   one warning and serves at the default priority.
//! - Tasks spawned here are aborted through their `JoinHandle` like any
//!   other; [`ChannelThread::stop`] (or dropping it) ends the runtime on
//!   its own thread, dropping whatever tasks are left, and joins it.

use std::future::Future;
use std::io;
use std::sync::Mutex;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The channel-serving thread and its runtime.
#[derive(Debug)]
pub struct ChannelThread {
    handle: Handle,
    /// The stop signal and the thread, taken by the first stop.
    running: Mutex<Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>>,
}

impl ChannelThread {
    /// Starts the thread (`vmpowerd-chan`) at nice value `nice` (0: the
    /// process's own, left as it is).
    pub fn start(nice: i32) -> io::Result<Self> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vmpowerd-chan".into())
            .spawn(move || {
                if nice != 0 {
                    set_own_nice(nice);
                }
                // Runs the spawned tasks until told to stop (or until the
                // sender is dropped); the runtime is dropped here, on its
                // own thread.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(ChannelThread {
            handle,
            running: Mutex::new(Some((stop, thread))),
        })
    }

    /// Runs `task` on the channel thread.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }

    /// Ends the runtime (its remaining tasks are dropped) and joins the
    /// thread.
    pub fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((stop, thread)) = running {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// Sets the calling thread's nice value; a failure is logged, once per
/// call (the daemon calls it once), and the thread goes on as it is.
fn set_own_nice(nice: i32) {
    let tid = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(tid), nice) {
        Ok(()) => tracing::debug!(nice, "channel thread priority set"),
        Err(e) => tracing::warn!(
            nice,
            error = %e,
            "cannot set the channel thread's nice value (raising it needs CAP_SYS_NICE); \
             guest channels are served at the default priority"
        ),
    }
}

/// A task aborted when this is dropped: a task on another runtime that
/// lives as long as the task awaiting it.
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for ChannelThread {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn runs_tasks_on_its_own_thread_until_stopped() {
        let chan = ChannelThread::start(0).unwrap();
        let name = chan.spawn(async { std::thread::current().name().map(str::to_owned) });
        let rt = Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(name).unwrap();
        assert_eq!(got.as_deref(), Some("vmpowerd-chan"));

        // A task still pending at stop is dropped, not left running.
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        let _pending = chan.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        chan.stop();
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn a_nice_value_is_set_on_the_thread_alone() {
        // Lowering the priority needs no privilege.
        let chan = ChannelThread::start(5).unwrap();
        let nice = chan.spawn(async {
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        });
        let rt = Builder::new_current_thread().build().unwrap();
        assert_eq!(rt.block_on(nice).unwrap(), 5);
        let own = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_ne!(own, 5, "the caller's priority changed too");
    }
}

//! The daemon's background tasks and the one signal that stops them all.
//!
//! ## Behavior
//! - Every task `run` starts goes through [`Tasks`]: a future of its own
//!   ([`Tasks::spawn`]), a task a module spawned ([`Tasks::adopt`]), or
//!   something that is stopped by being dropped, like the traffic
//!   sampler's thread ([`Tasks::hold`]).
//! - [`Tasks::stop`] sends the stop signal once and waits until every
//!   task has ended: each is dropped at its next await point (a step of
//!   work runs under the core's lock without awaiting, so none is left
//!   half done), and what it held is dropped with it.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::channels::thread::AbortOnDrop;

/// The running tasks and their stop signal.
#[derive(Debug)]
pub struct Tasks {
    stop: watch::Sender<bool>,
    set: JoinSet<()>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            stop: watch::Sender::new(false),
            set: JoinSet::new(),
        }
    }
}

impl Tasks {
    /// Runs `task` until it ends or the daemon stops.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        let mut stopped = self.stop.subscribe();
        self.set.spawn(async move {
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => {}
                () = task => {}
            }
        });
    }

    /// Takes over a task spawned elsewhere: it is aborted at stop.
    pub fn adopt(&mut self, task: JoinHandle<()>) {
        self.spawn(async move {
            let mut task = AbortOnDrop(task);
            let _ = (&mut task.0).await;
        });
    }

    /// Keeps `held` until the daemon stops, then drops it (a thread that
    /// stops when its handle is dropped).
    pub fn hold(&mut self, held: impl Send + 'static) {
        self.spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
    }

    /// Stops every task and waits until each has ended.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        while self.set.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Sets its flag when dropped.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn stop_ends_every_kind_of_task_and_drops_what_it_held() {
        let mut tasks = Tasks::default();
        let (spawned, adopted, held) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let flag = Dropped(spawned.clone());
        tasks.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        let flag = Dropped(adopted.clone());
        let elsewhere = tokio::spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        let aborted = elsewhere.abort_handle();
        tasks.adopt(elsewhere);
        tasks.hold(Dropped(held.clone()));
        // Every task has started (and is parked) before the stop.
        tokio::task::yield_now().await;
        tasks.stop().await;
        assert!(spawned.load(Ordering::SeqCst), "spawned task dropped");
        assert!(held.load(Ordering::SeqCst), "held value dropped");
        while !aborted.is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(adopted.load(Ordering::SeqCst), "adopted task aborted");
    }
}

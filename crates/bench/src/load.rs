//! The bench's own CPU load, so that a "loaded host" figure is
//! reproducible: one busy-spinning thread per online CPU, at normal
//! priority, until stopped.
//!
//! ## Behavior
//! - "Online CPUs" are those this process may run on
//!   (`std::thread::available_parallelism`, i.e. its affinity mask).
//! - The threads only spin on an atomic flag (no system calls), so they
//!   compete for CPU time and nothing else.
//! - Dropping [`Spinners`] stops and joins them, also on error paths.

use std::hint::spin_loop;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::Context;

/// Busy-spinning threads, one per online CPU.
#[derive(Debug)]
pub struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Spinners {
    /// Starts one spinner per CPU this process may run on.
    pub fn per_cpu() -> anyhow::Result<Self> {
        let n = std::thread::available_parallelism()
            .context("cannot count the online CPUs")?
            .get();
        Self::start(n)
    }

    /// Starts `n` spinners.
    pub fn start(n: usize) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut spinners = Spinners {
            stop: stop.clone(),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("spin{i}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        spin_loop();
                    }
                })
                .context("cannot start a spinner")?;
            spinners.threads.push(thread);
        }
        Ok(spinners)
    }

    /// How many spin.
    pub fn count(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinners_start_and_stop() {
        let s = Spinners::start(2).unwrap();
        assert_eq!(s.count(), 2);
        drop(s);
        assert!(Spinners::per_cpu().unwrap().count() >= 1);
    }
}

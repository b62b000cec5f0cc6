//! A guest that does not keep up: a thread attached to a tap as its
//! queue (as QEMU is), reading at most a given number of frames per
//! second. What the host sends faster fills the tap's queue
//! (`txqueuelen` frames), and the kernel drops the rest, counting them in
//! the tap's `tx_dropped`; what was read counts in its `tx_packets`.
//!
//! ## Behavior
//! - [`SlowReader::start`] attaches to the tap before it returns (the tap
//!   then has carrier), then reads one frame every `1 / rate` seconds.
//! - Dropping the reader stops and joins the thread (within one read
//!   interval plus one blocking read: the tap is non-blocking, so no
//!   read waits).
//!
//! ## Limitations
//! Needs root (`/dev/net/tun`).

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};

use crate::tun_sys::attach_tap;

/// A rate-limited reader of a tap's queue; stopped and joined on drop.
#[derive(Debug)]
pub struct SlowReader {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SlowReader {
    /// Attaches to tap `name` and reads at most `frames_per_second`
    /// frames per second (at least 1).
    pub fn start(name: &str, frames_per_second: u32) -> io::Result<SlowReader> {
        let file = attach_tap(name)?;
        let flags = fcntl_getfl(&file)?;
        fcntl_setfl(&file, flags | OFlags::NONBLOCK)?;
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let interval = Duration::from_secs(1) / frames_per_second.max(1);
        let thread = {
            let (stop, frames) = (Arc::clone(&stop), Arc::clone(&frames));
            std::thread::Builder::new()
                .name(format!("slow-{name}"))
                .spawn(move || read_slowly(file, interval, &stop, &frames))?
        };
        Ok(SlowReader {
            stop,
            frames,
            thread: Some(thread),
        })
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

fn read_slowly(mut file: File, interval: Duration, stop: &AtomicBool, frames: &AtomicU64) {
    let mut buf = vec![0u8; 65_536];
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // An error (nothing queued, or the tap went): try again at the
        // next step.
        if file.read(&mut buf).is_ok() {
            frames.fetch_add(1, Ordering::Relaxed);
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Behind: never catch up in a burst (a slow guest stays slow).
            next = now;
        }
    }
}

impl Drop for SlowReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

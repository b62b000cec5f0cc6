//! Rate limiting of log lines a guest can trigger: a hostile guest must not
//! be able to flood the host's journal.
//!
//! Each VM (or whatever the budget is kept by, e.g. a pCPU) may cause
//! [`LOG_LINES`] lines per [`LOG_WINDOW`]; past that, lines are suppressed
//! and counted, and the next line allowed reports how many were
//! suppressed.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use vmpower_engine::VmId;

/// Lines allowed per key per window.
pub const LOG_LINES: u32 = 10;
/// The window.
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

/// A log budget per key (per VM by default).
#[derive(Debug)]
pub struct LogLimiter<K = VmId> {
    windows: HashMap<K, Window>,
}

impl<K> Default for LogLimiter<K> {
    fn default() -> Self {
        LogLimiter {
            windows: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Duration,
    lines: u32,
    suppressed: u64,
}

impl<K: Hash + Eq + Clone> LogLimiter<K> {
    /// Whether a line about `key` may be logged at `now`; `Some(n)` with the
    /// number of lines suppressed since the last one allowed. A suppressed
    /// line is also counted in `suppressed_total` (the daemon's count of
    /// them all).
    pub fn allow(&mut self, key: &K, now: Duration, suppressed_total: &mut u64) -> Option<u64> {
        let fresh = Window {
            start: now,
            lines: 0,
            suppressed: 0,
        };
        // Looked up first: the request path clones no name once the VM has
        // a window.
        let w = match self.windows.get_mut(key) {
            Some(w) => w,
            None => self.windows.entry(key.clone()).or_insert(fresh),
        };
        if now.saturating_sub(w.start) >= LOG_WINDOW {
            w.start = now;
            w.lines = 0;
        }
        if w.lines < LOG_LINES {
            w.lines += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            *suppressed_total += 1;
            None
        }
    }
}

/// One budget of its own (a FIFO's, a channel's connection lines), with
/// its own clock.
#[derive(Debug)]
pub struct Budget {
    limiter: LogLimiter<()>,
    start: std::time::Instant,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            limiter: LogLimiter::default(),
            start: std::time::Instant::now(),
        }
    }
}

impl Budget {
    /// [`LogLimiter::allow`] now.
    pub fn allow(&mut self, suppressed_total: &mut u64) -> Option<u64> {
        let now = self.start.elapsed();
        self.limiter.allow(&(), now, suppressed_total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_vm_per_window_with_suppressed_count() {
        let mut l: LogLimiter = LogLimiter::default();
        let mut total = 0;
        let (a, b) = (VmId::new("a"), VmId::new("b"));
        let t = Duration::from_secs(100);
        for _ in 0..LOG_LINES {
            assert_eq!(l.allow(&a, t, &mut total), Some(0));
        }
        assert_eq!(l.allow(&a, t, &mut total), None);
        assert_eq!(l.allow(&a, t + Duration::from_secs(1), &mut total), None);
        assert_eq!(
            l.allow(&b, t, &mut total),
            Some(0),
            "another VM has its own budget"
        );
        assert_eq!(l.allow(&a, t + LOG_WINDOW, &mut total), Some(2));
        assert_eq!(total, 2);
    }
}

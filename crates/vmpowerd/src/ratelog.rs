//! Rate limiting of log lines a guest can trigger: a hostile guest must not
//! be able to flood the host's journal.
//!
//! Each VM may cause [`LogLimiter::LINES`] lines per
//! [`LogLimiter::WINDOW`]; past that, lines are suppressed and counted, and
//! the next line allowed reports how many were suppressed.

use std::collections::HashMap;
use std::time::Duration;

use vmpower_engine::VmId;

/// Per-VM log budget.
#[derive(Debug, Default)]
pub struct LogLimiter {
    windows: HashMap<VmId, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Duration,
    lines: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// Lines allowed per VM per window.
    pub const LINES: u32 = 10;
    /// The window.
    pub const WINDOW: Duration = Duration::from_secs(10);

    /// Whether a line about `vm` may be logged at `now`; `Some(n)` with the
    /// number of lines suppressed since the last one allowed.
    pub fn allow(&mut self, vm: &VmId, now: Duration) -> Option<u64> {
        let fresh = Window {
            start: now,
            lines: 0,
            suppressed: 0,
        };
        // Looked up first: the request path clones no name once the VM has
        // a window.
        let w = match self.windows.get_mut(vm) {
            Some(w) => w,
            None => self.windows.entry(vm.clone()).or_insert(fresh),
        };
        if now.saturating_sub(w.start) >= Self::WINDOW {
            w.start = now;
            w.lines = 0;
        }
        if w.lines < Self::LINES {
            w.lines += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_vm_per_window_with_suppressed_count() {
        let mut l = LogLimiter::default();
        let (a, b) = (VmId::new("a"), VmId::new("b"));
        let t = Duration::from_secs(100);
        for _ in 0..LogLimiter::LINES {
            assert_eq!(l.allow(&a, t), Some(0));
        }
        assert_eq!(l.allow(&a, t), None);
        assert_eq!(l.allow(&a, t + Duration::from_secs(1)), None);
        assert_eq!(l.allow(&b, t), Some(0), "another VM has its own budget");
        assert_eq!(l.allow(&a, t + LogLimiter::WINDOW), Some(2));
    }
}

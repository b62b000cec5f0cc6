//! Bounded waits: poll a condition until it holds, and fail loudly when it
//! does not within the bound. A poll interval here is not a sleep that
//! proves an absence: every wait ends on the condition it names.

use std::time::{Duration, Instant};

/// The bound on every wait for the in-process daemon.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `cond` (every 5 ms of the runtime's clock) until it holds; panics
/// after [`WAIT`].
#[cfg(feature = "daemon")]
pub async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `cond` from a plain thread (every 10 ms) until it holds; panics
/// with `what` after `bound`.
pub fn wait_within(bound: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

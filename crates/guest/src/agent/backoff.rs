//! When to try again after a failure: doubling from a first delay up to
//! a bound, back to the first delay after a success. Pure; time passed in.

use std::time::{Duration, Instant};

/// A bounded exponential backoff.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    delay: Duration,
    next: Option<Instant>,
}

impl Backoff {
    /// Starts at `first`, doubles up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            delay: first,
            next: None,
        }
    }

    /// Whether an attempt may be made at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// Records a failed attempt at `now`; returns the wait until the next.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.delay;
        self.next = Some(now + wait);
        self.delay = (self.delay * 2).min(self.max);
        wait
    }

    /// Records a success: the next failure waits `first` again.
    pub fn succeeded(&mut self) {
        self.delay = self.first;
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_bound_and_resets() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut b = Backoff::new(ms(100), ms(350));
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0), ms(100));
        assert!(!b.ready(t0 + ms(99)));
        assert!(b.ready(t0 + ms(100)));
        assert_eq!(b.failed(t0), ms(200));
        assert_eq!(b.failed(t0), ms(350));
        assert_eq!(b.failed(t0), ms(350));
        b.succeeded();
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0), ms(100));
    }
}

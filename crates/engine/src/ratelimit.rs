//! A token bucket per channel, fed the time by its caller.

use std::time::Duration;

use crate::settings::RateLimit;

/// A token bucket; tokens are counted in millionths to stay exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    limit: RateLimit,
    micro_tokens: u64,
    last: Duration,
}

const MICRO: u64 = 1_000_000;

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn new(limit: RateLimit, now: Duration) -> Self {
        TokenBucket {
            limit,
            micro_tokens: u64::from(limit.burst) * MICRO,
            last: now,
        }
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        // per_second tokens per second = per_second micro-tokens per µs.
        let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let refill = elapsed_us.saturating_mul(u64::from(self.limit.per_second));
        let cap = u64::from(self.limit.burst) * MICRO;
        self.micro_tokens = self.micro_tokens.saturating_add(refill).min(cap);
    }

    /// How long until a token is available at time `now` (zero if one is).
    pub fn wait(&mut self, now: Duration) -> Duration {
        self.refill(now);
        let missing = MICRO.saturating_sub(self.micro_tokens);
        let per_us = u64::from(self.limit.per_second).max(1);
        Duration::from_micros(missing.div_ceil(per_us))
    }

    /// Whole tokens available at time `now`.
    pub fn available(&mut self, now: Duration) -> u64 {
        self.refill(now);
        self.micro_tokens / MICRO
    }

    /// Takes one token if there is one at time `now`.
    pub fn try_take(&mut self, now: Duration) -> bool {
        self.refill(now);
        if self.micro_tokens >= MICRO {
            self.micro_tokens -= MICRO;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_rate() {
        let limit = RateLimit {
            burst: 3,
            per_second: 10,
        };
        let t0 = Duration::from_secs(5);
        let mut b = TokenBucket::new(limit, t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0), "burst exhausted");
        assert!(!b.try_take(t0 + Duration::from_millis(99)), "0.99 token");
        assert!(
            b.try_take(t0 + Duration::from_millis(100)),
            "one token after 100 ms"
        );
        assert!(!b.try_take(t0 + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        let taken = (0..10).filter(|_| b.try_take(later)).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn wait_says_when_the_next_token_comes() {
        let limit = RateLimit {
            burst: 1,
            per_second: 10,
        };
        let t0 = Duration::from_secs(1);
        let mut b = TokenBucket::new(limit, t0);
        assert_eq!(b.wait(t0), Duration::ZERO);
        assert!(b.try_take(t0));
        assert_eq!(b.wait(t0), Duration::from_millis(100));
        assert_eq!(
            b.wait(t0 + Duration::from_millis(60)),
            Duration::from_millis(40)
        );
        assert_eq!(b.wait(t0 + Duration::from_millis(100)), Duration::ZERO);
    }

    #[test]
    fn time_going_backwards_does_not_refill() {
        let limit = RateLimit {
            burst: 1,
            per_second: 1,
        };
        let mut b = TokenBucket::new(limit, Duration::from_secs(10));
        assert!(b.try_take(Duration::from_secs(10)));
        assert!(!b.try_take(Duration::from_secs(3)));
        assert!(!b.try_take(Duration::from_millis(10_500)));
        assert!(b.try_take(Duration::from_secs(11)));
    }
}

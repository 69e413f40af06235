//! Token buckets: the flood-control arithmetic shared by the server and the P2P coordinator.
//!
//! A bucket holds up to `burst` tokens and gains `per_second` tokens per second; an action costing `n`
//! tokens takes them if they are there, and otherwise learns how long until they will be. Pure: time
//! comes in as `now`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use chat_core::rate::{Rate, TokenBucket};
//! let rate = Rate { per_second: 10, burst: 2 };
//! let t0 = Instant::now();
//! let mut bucket = TokenBucket::full(rate, t0);
//! assert!(bucket.take(t0, 1).is_ok());
//! assert!(bucket.take(t0, 1).is_ok());
//! assert_eq!(bucket.take(t0, 1), Err(Duration::from_millis(100)));
//! assert!(bucket.take(t0 + Duration::from_millis(100), 1).is_ok());
//! ```

use std::time::{Duration, Instant};

/// A sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens gained per second.
    pub per_second: u64,
    /// Most tokens held (what may be spent at once after a quiet period).
    pub burst: u64,
}

/// A token bucket for one [`Rate`].
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: Rate,
    /// Tokens held, in millionths (integer arithmetic: deterministic in tests).
    micro: u128,
    last: Instant,
}

const MICRO: u128 = 1_000_000;

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(rate: Rate, now: Instant) -> Self {
        TokenBucket { rate, micro: u128::from(rate.burst) * MICRO, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        let gained = elapsed.as_micros() * u128::from(self.rate.per_second);
        self.micro = (self.micro + gained).min(u128::from(self.rate.burst) * MICRO);
    }

    /// Takes `n` tokens at `now`, or says how long until `n` will be there (`n` is capped at the
    /// burst, so any single action can eventually pass).
    pub fn take(&mut self, now: Instant, n: u64) -> Result<(), Duration> {
        self.refill(now);
        let need = u128::from(n.min(self.rate.burst)) * MICRO;
        if self.micro >= need {
            self.micro -= need;
            return Ok(());
        }
        let missing = need - self.micro;
        let per_second = u128::from(self.rate.per_second.max(1));
        // micro-tokens / (tokens per second) = microseconds, rounded up.
        let micros = missing.div_ceil(per_second);
        Err(Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(Rate { per_second: 50, burst: 200 }, t0);
        for _ in 0..200 {
            assert!(b.take(t0, 1).is_ok());
        }
        assert_eq!(b.take(t0, 1), Err(Duration::from_millis(20)));
        let later = t0 + Duration::from_secs(1);
        for _ in 0..50 {
            assert!(b.take(later, 1).is_ok());
        }
        assert!(b.take(later, 1).is_err());
        // A long quiet period refills only up to the burst.
        let much_later = t0 + Duration::from_secs(3600);
        for _ in 0..200 {
            assert!(b.take(much_later, 1).is_ok());
        }
        assert!(b.take(much_later, 1).is_err());
    }

    #[test]
    fn byte_costs_are_capped_at_the_burst_and_time_never_runs_backwards() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(Rate { per_second: 1000, burst: 4000 }, t0);
        assert!(b.take(t0, 10_000).is_ok(), "a cost above the burst costs the burst");
        assert_eq!(b.take(t0, 1000), Err(Duration::from_secs(1)));
        assert!(b.take(t0 - Duration::from_secs(5), 1).is_err(), "an earlier now gains nothing");
    }
}

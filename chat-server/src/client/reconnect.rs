//! The reconnection policy of a client session: when to try again after the connection is lost.
//!
//! Exponential backoff with "equal jitter": attempt `n` (from 1) waits a uniformly random time
//! between half and all of `min(cap, first × 2^(n-1))`, so clients that lost the same server do not
//! come back in one wave. After `give_up` without a session the client stops trying.
//!
//! The [`Session`] methods here are the reconnection half of the session core: the connection is
//! lost, the wait, the shell's report of a dial.

use std::time::{Duration, Instant};

use chat_core::{ErrorCode, Event};

use super::session::{Output, Session, State};

/// Default wait before the first attempt (before jitter).
pub const DEFAULT_FIRST_RETRY: Duration = Duration::from_millis(100);
/// Default longest wait between attempts (before jitter).
pub const DEFAULT_MAX_RETRY: Duration = Duration::from_secs(10);
/// Default time after which a client that cannot get its session back stops trying.
pub const DEFAULT_GIVE_UP: Duration = Duration::from_secs(300);
/// Default number of requests (sends, queries) queued while disconnected; more are refused.
pub const DEFAULT_AWAY_QUEUE: usize = 1024;

/// How a session reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// Wait before the first attempt (before jitter).
    pub first: Duration,
    /// Longest wait (before jitter).
    pub cap: Duration,
    /// Stop trying after this long without a session.
    pub give_up: Duration,
    /// Requests queued while disconnected.
    pub queue: usize,
    /// Seed of the jitter (any value; a fixed one makes a test's waits predictable).
    pub seed: u64,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            first: DEFAULT_FIRST_RETRY,
            cap: DEFAULT_MAX_RETRY,
            give_up: DEFAULT_GIVE_UP,
            queue: DEFAULT_AWAY_QUEUE,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// The jitter's random numbers (xorshift64*: small, seeded, good enough to spread clients).
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    policy: Reconnect,
    state: u64,
}

impl Backoff {
    pub(super) fn new(policy: Reconnect) -> Self {
        Backoff { policy, state: policy.seed | 1 }
    }

    /// The policy.
    pub(super) fn policy(&self) -> &Reconnect {
        &self.policy
    }

    fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The wait before attempt `attempt` (from 1).
    pub(super) fn wait(&mut self, attempt: u32) -> Duration {
        let doubled = self.policy.first.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let full = doubled.min(self.policy.cap).as_millis() as u64;
        let half = full / 2;
        Duration::from_millis(half + self.next_u64() % (full - half + 1))
    }
}

impl Session {
    /// The shell dialed the server again (after `Connect`): log in again, resuming.
    pub fn handle_connected(&mut self, now: Instant) {
        self.last_input = Some(now);
        if let State::Away { .. } = self.state {
            self.state = State::LoggingIn { again: true };
            self.write_enter();
        }
    }

    /// The shell could not dial the server (after `Connect`): wait, then try again.
    pub fn handle_connect_failed(&mut self, now: Instant, reason: String) {
        self.last_input = Some(now);
        if let State::Away { attempt, .. } = self.state {
            self.lost_why = reason;
            self.retry(now, attempt + 1);
        }
    }

    /// The connection is lost for `code`: reconnect if the server may still hold the session and
    /// reconnection is on; otherwise end.
    pub(super) fn lost(&mut self, now: Instant, code: ErrorCode, reason: String) {
        let resumable =
            matches!(code, ErrorCode::Disconnected | ErrorCode::ShuttingDown | ErrorCode::StorageUnavailable);
        if self.backoff.is_none() || !resumable || self.token.is_none() {
            return self.end(code, reason);
        }
        self.lost_at.get_or_insert(now);
        self.lost_why = reason;
        self.resends.clear();
        self.retry(now, 1);
    }

    /// Waits before attempt `attempt`, and says so.
    pub(super) fn retry(&mut self, now: Instant, attempt: u32) {
        self.lost_at.get_or_insert(now);
        let wait = self.backoff.as_mut().map_or(Duration::ZERO, |b| b.wait(attempt));
        self.state = State::Away { attempt, retry_at: now + wait, dialing: false };
        let in_ms = wait.as_millis() as u64;
        self.out.push_back(Output::Event(Event::Reconnecting { attempt, in_ms }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(Reconnect::default());
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (8, 10_000), (30, 10_000)] {
            for _ in 0..50 {
                let w = b.wait(attempt).as_millis() as u64;
                assert!(w >= full / 2 && w <= full, "attempt {attempt}: {w} ms not in [{}, {full}]", full / 2);
            }
        }
    }

    #[test]
    fn two_clients_with_other_seeds_spread_out() {
        let mut a = Backoff::new(Reconnect { seed: 1, ..Reconnect::default() });
        let mut b = Backoff::new(Reconnect { seed: 2, ..Reconnect::default() });
        let same = (0..20).filter(|_| a.wait(8) == b.wait(8)).count();
        assert!(same < 5, "{same} of 20 waits were equal");
    }
}

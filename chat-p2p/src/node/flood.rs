//! Flood control, coordinator side: per-member token buckets on the messages submitted and their
//! bytes, the same arithmetic and defaults as the server's (`chat_core::rate`).
//!
//! | a `Submit` from a member (or this node's own)   | decision                                                |
//! |-------------------------------------------------|---------------------------------------------------------|
//! | within both buckets                             | ordered (one strike forgiven)                           |
//! | over either bucket, first refusal of a wait     | `RateLimited { id, retry_after_ms }`, not ordered; the wait starts |
//! | over, while the member was told to wait         | `RateLimited` again, and one strike                     |
//! | over, with `flood_strikes` strikes for at least [`FLOOD_GRACE`] | `Rejected { flood }`, the member is removed (`Left`) |
//!
//! A strike is a submission that arrives while its sender was already told to wait: a sender that
//! heeds `RateLimited` (every node does, see `pending.rs`: it stops, waits, then resubmits one at a
//! time) collects at most the strikes of the few submissions it had in flight when the first
//! refusal was sent, and each message ordered forgives one; a node that ignores the answer keeps
//! collecting them and is removed. The coordinator's own messages are paced the same way, but never
//! removed. `None` limits ([`super::NodeConfig::limits`]) disable all of it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chat_core::NodeId;
use chat_core::rate::{Rate, TokenBucket};

use super::pending::SUBMIT_WINDOW;

/// Default message rate per member: 50 per second, bursts of 200 (as the server's per connection).
pub const DEFAULT_MESSAGE_RATE: Rate = Rate { per_second: 50, burst: 200 };
/// Default body-byte rate per member: 256 KiB per second, bursts of 1 MiB (as the server's).
pub const DEFAULT_BYTE_RATE: Rate = Rate { per_second: 256 * 1024, burst: 1024 * 1024 };
/// Default number of strikes before a member counts as flooding (as the server's).
pub const DEFAULT_FLOOD_STRIKES: u32 = 20;
/// Fewest strikes [`Limits::flood_strikes`] is taken as: above what an honest node's submissions in
/// flight (at most [`SUBMIT_WINDOW`]) can collect.
pub const MIN_FLOOD_STRIKES: u32 = 2 * SUBMIT_WINDOW as u32;
/// How long a member keeps collecting strikes before it counts as flooding: its warnings have had
/// time to reach it, so a node that heeds them is never removed.
pub const FLOOD_GRACE: Duration = Duration::from_secs(1);

/// Flood-control settings of a coordinator (every member gets its own buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages per member.
    pub messages: Rate,
    /// Body bytes per member.
    pub bytes: Rate,
    /// Strikes tolerated before a member is removed as a flooder (at least [`MIN_FLOOD_STRIKES`]).
    pub flood_strikes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { messages: DEFAULT_MESSAGE_RATE, bytes: DEFAULT_BYTE_RATE, flood_strikes: DEFAULT_FLOOD_STRIKES }
    }
}

/// One member's buckets and strikes.
#[derive(Debug, Clone)]
struct Buckets {
    messages: TokenBucket,
    bytes: TokenBucket,
    /// Until when the member was told to wait.
    told_until: Option<Instant>,
    /// Strikes not yet forgiven.
    strikes: u32,
    /// When the current run of strikes began.
    since: Option<Instant>,
}

/// What flood control decided about one submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Order it.
    Pass,
    /// Not now: retry after this long.
    Limited(Duration),
    /// The member floods: remove it (for this node's own messages: wait this long, as `Limited`).
    Flood(Duration),
}

/// The flood-control state of every member that has submitted something this term.
#[derive(Debug, Default)]
pub(super) struct Flood {
    limits: Option<Limits>,
    members: HashMap<NodeId, Buckets>,
}

impl Flood {
    /// Flood control with these limits (`None`: everything passes).
    pub(super) fn new(limits: Option<Limits>) -> Self {
        Flood { limits, members: HashMap::new() }
    }

    /// Charges one submission of `bytes` body bytes from `member` at `now`.
    pub(super) fn charge(&mut self, now: Instant, member: NodeId, bytes: usize) -> Verdict {
        let Some(limits) = self.limits else { return Verdict::Pass };
        let b = self.members.entry(member).or_insert_with(|| Buckets {
            messages: TokenBucket::full(limits.messages, now),
            bytes: TokenBucket::full(limits.bytes, now),
            told_until: None,
            strikes: 0,
            since: None,
        });
        // Both buckets are checked before either is charged, so a refusal costs nothing.
        let mut probe = b.clone();
        let wait =
            [probe.messages.take(now, 1).err(), probe.bytes.take(now, bytes as u64).err()].into_iter().flatten().max();
        let Some(wait) = wait else {
            b.messages = probe.messages;
            b.bytes = probe.bytes;
            b.strikes = b.strikes.saturating_sub(1);
            if b.strikes == 0 {
                b.since = None;
            }
            return Verdict::Pass;
        };
        if b.told_until.is_some_and(|until| now < until) {
            b.strikes = b.strikes.saturating_add(1);
            let since = *b.since.get_or_insert(now);
            if b.strikes >= limits.flood_strikes.max(MIN_FLOOD_STRIKES) && now >= since + FLOOD_GRACE {
                return Verdict::Flood(wait);
            }
        }
        b.told_until = Some(b.told_until.map_or(now + wait, |until| until.max(now + wait)));
        Verdict::Limited(wait)
    }

    /// Forgets `member` (it left or was removed).
    pub(super) fn forget(&mut self, member: NodeId) {
        self.members.remove(&member);
    }
}

/// `wait` in whole milliseconds, rounded up (a sender that waits exactly that long finds a token).
pub(super) fn millis_up(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000).max(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: NodeId = NodeId(7);

    fn small() -> Flood {
        Flood::new(Some(Limits {
            messages: Rate { per_second: 10, burst: 2 },
            bytes: DEFAULT_BYTE_RATE,
            flood_strikes: 0,
        }))
    }

    #[test]
    fn a_sender_that_waits_as_told_is_paced_and_never_struck() {
        let t0 = Instant::now();
        let mut f = small();
        assert_eq!(f.charge(t0, M, 5), Verdict::Pass);
        assert_eq!(f.charge(t0, M, 5), Verdict::Pass);
        // Ten seconds of "refused, wait, resubmit": always a pass after the wait, never a strike.
        let mut now = t0;
        for _ in 0..100 {
            let Verdict::Limited(wait) = f.charge(now, M, 5) else { panic!("over the burst") };
            assert_eq!(wait, Duration::from_millis(100));
            now += Duration::from_millis(millis_up(wait));
            assert_eq!(f.charge(now, M, 5), Verdict::Pass);
        }
        assert_eq!(f.members[&M].strikes, 0);
    }

    #[test]
    fn a_sender_that_ignores_the_wait_is_struck_then_found_flooding_after_the_grace() {
        let t0 = Instant::now();
        let mut f = small();
        let mut verdicts = Vec::new();
        // One submission every millisecond for two seconds.
        for ms in 0..2000 {
            let v = f.charge(t0 + Duration::from_millis(ms), M, 5);
            verdicts.push(v);
            if matches!(v, Verdict::Flood(_)) {
                break;
            }
        }
        let flood_at = verdicts.iter().position(|v| matches!(v, Verdict::Flood(_))).expect("found flooding");
        // The burst passes at 0 and 1 ms; the first refusal (2 ms) starts a wait; the next one (3 ms)
        // is the first strike; one second of strikes later (1003 ms) the sender is found flooding.
        assert_eq!(flood_at, 1003);
        let passed = verdicts.iter().filter(|v| **v == Verdict::Pass).count();
        assert_eq!(passed, 2 + 10, "the burst, then ten a second");
    }

    #[test]
    fn bytes_count_too_and_disabled_limits_pass_everything() {
        let t0 = Instant::now();
        let bytes = Rate { per_second: 1000, burst: 1000 };
        let mut f = Flood::new(Some(Limits { messages: DEFAULT_MESSAGE_RATE, bytes, flood_strikes: 20 }));
        assert_eq!(f.charge(t0, M, 800), Verdict::Pass);
        assert_eq!(f.charge(t0, M, 800), Verdict::Limited(Duration::from_millis(600)));
        let mut off = Flood::new(None);
        for _ in 0..10_000 {
            assert_eq!(off.charge(t0, M, 65_536), Verdict::Pass);
        }
        assert_eq!(millis_up(Duration::from_micros(19_001)), 20);
        assert_eq!(millis_up(Duration::from_nanos(1)), 1);
    }
}

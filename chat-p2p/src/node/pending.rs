//! This node's own messages until they are ordered, and how fast they go to the coordinator.
//!
//! | state     | meaning                                     | leaves it when                                   |
//! |-----------|---------------------------------------------|--------------------------------------------------|
//! | `Unsent`  | waiting to be submitted (again)             | the window and the pause allow: `Submit`, `Out`  |
//! | `Out`     | submitted, no answer yet                    | its `Order` → `Ordered`; `RateLimited` → `Unsent` (pause) |
//! | `Ordered` | ordered, not yet committed                  | committed (`Sent`)                               |
//!
//! Any state ends when the message is committed, answered `Duplicate` or `Rejected`, or the node
//! leaves; a new coordinator (or the same one again after an election) gets everything not yet
//! committed again: every message goes back to `Unsent`.
//!
//! Pacing: at most [`SUBMIT_WINDOW`] messages are `Out` at once. A `RateLimited` answer pauses
//! every submission until its wait is over (at most [`MAX_RETRY_AFTER`]); after that the node
//! submits one message at a time, each after the previous one's answer, until nothing is waiting:
//! it is slowed down to the coordinator's rate and never loses a message, and it never collects
//! the strikes that get a flooder removed (see `flood.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chat_core::MessageId;

use crate::protocol::Submission;

/// Most own messages submitted to the coordinator and not yet answered.
pub const SUBMIT_WINDOW: usize = 8;
/// Longest wait honoured from a `RateLimited` answer (a coordinator asking for more is capped).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Where one own message is; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unsent,
    Out,
    Ordered,
}

/// Own messages not yet ordered (see the module documentation).
#[derive(Debug, Default)]
pub(super) struct Pending {
    subs: BTreeMap<MessageId, (Submission, State)>,
    /// Nothing is submitted before this time (a `RateLimited` wait).
    resume_at: Option<Instant>,
    /// After a `RateLimited`: one message at a time until nothing waits.
    slow: bool,
}

impl Pending {
    /// Number of own messages not yet ordered.
    pub(super) fn len(&self) -> usize {
        self.subs.len()
    }

    /// Keeps a new own message, to be submitted.
    pub(super) fn add(&mut self, sub: Submission) {
        self.subs.insert(sub.id, (sub, State::Unsent));
    }

    /// Forgets `id` (committed, refused, or known to be ordered); whether it was pending.
    pub(super) fn remove(&mut self, id: &MessageId) -> bool {
        let removed = self.subs.remove(id).is_some();
        if !self.subs.values().any(|(_, s)| *s != State::Ordered) {
            self.slow = false;
        }
        removed
    }

    /// Forgets everything; returns the IDs (the node leaves).
    pub(super) fn take_all(&mut self) -> Vec<MessageId> {
        let ids = self.subs.keys().copied().collect();
        *self = Pending::default();
        ids
    }

    /// A new coordinator (or the same again): everything not committed is to be submitted again,
    /// with no pause (its buckets are new).
    pub(super) fn resend_all(&mut self) {
        for (_, state) in self.subs.values_mut() {
            *state = State::Unsent;
        }
        self.resume_at = None;
        self.slow = false;
    }

    /// The coordinator ordered `id` (its `Order` arrived, or this coordinator ordered its own).
    pub(super) fn ordered(&mut self, id: &MessageId) {
        if let Some((_, state)) = self.subs.get_mut(id) {
            *state = State::Ordered;
        }
    }

    /// The coordinator refused `id` as too fast at `now`: submit it again after `wait`, and nothing
    /// before. Whether `id` was waiting for that answer.
    pub(super) fn rate_limited(&mut self, id: &MessageId, now: Instant, wait: Duration) -> bool {
        let Some((_, state)) = self.subs.get_mut(id).filter(|(_, s)| *s == State::Out) else { return false };
        *state = State::Unsent;
        let until = now + wait.min(MAX_RETRY_AFTER);
        self.resume_at = Some(self.resume_at.map_or(until, |t| t.max(until)));
        self.slow = true;
        true
    }

    /// Ends the pause if it is over at `now` (so [`Pending::deadline`] never stays in the past).
    pub(super) fn expire(&mut self, now: Instant) {
        if self.resume_at.is_some_and(|t| t <= now) {
            self.resume_at = None;
        }
    }

    /// The next message to submit at `now`, if the pause and the window allow one; it is `Out` from
    /// then on.
    pub(super) fn next(&mut self, now: Instant) -> Option<Submission> {
        self.expire(now);
        if self.resume_at.is_some() {
            return None;
        }
        let window = if self.slow { 1 } else { SUBMIT_WINDOW };
        if self.subs.values().filter(|(_, s)| *s == State::Out).count() >= window {
            return None;
        }
        let (sub, state) = self.subs.values_mut().find(|(_, s)| *s == State::Unsent)?;
        *state = State::Out;
        Some(sub.clone())
    }

    /// When a paused submission may go (none if nothing waits for the pause to end).
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.resume_at.filter(|_| self.subs.values().any(|(_, s)| *s == State::Unsent))
    }
}

#[cfg(test)]
mod tests {
    use chat_core::{NodeId, Recipients, Timestamp, UserName};

    use super::*;

    fn sub(seq: u64) -> Submission {
        Submission {
            id: MessageId::new(NodeId(1), seq),
            sender: UserName::new("bob").expect("valid"),
            recipients: Recipients::Broadcast,
            body: format!("m{seq}"),
            sent_at: Timestamp::default(),
        }
    }

    fn ids(p: &mut Pending, now: Instant) -> Vec<u64> {
        std::iter::from_fn(|| p.next(now)).map(|s| s.id.seq).collect()
    }

    #[test]
    fn a_window_of_submissions_then_one_at_a_time_after_a_refusal() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        for seq in 1..=12 {
            p.add(sub(seq));
        }
        assert_eq!(ids(&mut p, t0), (1..=8).collect::<Vec<_>>(), "a window of eight");
        p.ordered(&MessageId::new(NodeId(1), 1));
        assert_eq!(ids(&mut p, t0), [9], "an answer frees a place");
        // The coordinator refuses 2 and 3: everything waits 50 ms, then one at a time.
        let wait = Duration::from_millis(50);
        assert!(p.rate_limited(&MessageId::new(NodeId(1), 2), t0, wait));
        assert!(p.rate_limited(&MessageId::new(NodeId(1), 3), t0, wait));
        assert!(!p.rate_limited(&MessageId::new(NodeId(1), 1), t0, wait), "1 was ordered already");
        assert_eq!(p.deadline(), Some(t0 + wait));
        assert_eq!(ids(&mut p, t0 + wait / 2), Vec::<u64>::new());
        for seq in [4, 5, 6, 7, 8, 9] {
            p.ordered(&MessageId::new(NodeId(1), seq));
        }
        assert_eq!(ids(&mut p, t0 + wait), [2]);
        p.ordered(&MessageId::new(NodeId(1), 2));
        assert_eq!(ids(&mut p, t0 + wait), [3]);
        // A new coordinator: everything not committed again, at full speed.
        p.resend_all();
        assert_eq!(ids(&mut p, t0 + wait), (1..=8).collect::<Vec<_>>());
        assert_eq!(p.deadline(), None);
        assert_eq!(p.take_all().len(), 12);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_huge_wait_is_capped_and_slow_mode_ends_once_nothing_waits() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        p.add(sub(1));
        p.add(sub(2));
        assert_eq!(ids(&mut p, t0), [1, 2]);
        assert!(p.rate_limited(&MessageId::new(NodeId(1), 1), t0, Duration::from_secs(u64::MAX / 2)));
        assert_eq!(p.deadline(), Some(t0 + MAX_RETRY_AFTER));
        assert!(p.remove(&MessageId::new(NodeId(1), 2)));
        let later = t0 + MAX_RETRY_AFTER;
        assert_eq!(ids(&mut p, later), [1]);
        assert!(p.remove(&MessageId::new(NodeId(1), 1)));
        for seq in 3..=5 {
            p.add(sub(seq));
        }
        assert_eq!(ids(&mut p, later), [3, 4, 5], "back to the full window");
    }
}

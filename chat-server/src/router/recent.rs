//! The recent messages, in server order: what `History` answers and what a resumed session is
//! replayed from.
//!
//! A ring bounded both in messages and in body bytes ([`RecentLimits`]); the oldest go first. A
//! session detached for longer than the ring covers cannot be replayed exactly: the resume reports
//! how many of its messages were too old (see `resume`).

use std::collections::VecDeque;

use chat_core::ChatMessage;

/// Default number of recent messages kept.
pub const DEFAULT_RECENT_MESSAGES: usize = 100_000;

/// Default total body bytes of the recent messages kept.
pub const DEFAULT_RECENT_BYTES: usize = 32 * 1024 * 1024;

/// How much the ring keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentLimits {
    /// Messages at most.
    pub messages: usize,
    /// Body bytes at most.
    pub bytes: usize,
}

impl Default for RecentLimits {
    fn default() -> Self {
        RecentLimits { messages: DEFAULT_RECENT_MESSAGES, bytes: DEFAULT_RECENT_BYTES }
    }
}

/// The ring.
#[derive(Debug)]
pub(super) struct Recent {
    limits: RecentLimits,
    messages: VecDeque<ChatMessage>,
    bytes: usize,
    /// Sequence number of the newest message dropped (everything at or below it is gone).
    dropped_upto: u64,
}

impl Recent {
    pub(super) fn new(limits: RecentLimits) -> Self {
        Recent { limits, messages: VecDeque::new(), bytes: 0, dropped_upto: 0 }
    }

    /// Appends the newest message (sequence numbers ascend).
    pub(super) fn push(&mut self, message: ChatMessage) {
        self.bytes += message.body.len();
        self.messages.push_back(message);
        while self.messages.len() > self.limits.messages.max(1)
            || (self.bytes > self.limits.bytes && self.messages.len() > 1)
        {
            if let Some(old) = self.messages.pop_front() {
                self.bytes -= old.body.len();
                self.dropped_upto = old.id.seq;
            }
        }
    }

    /// The messages with a sequence number above `after`, oldest first, and whether every one of
    /// them is still here (`false`: some were dropped).
    pub(super) fn since(&self, after: u64) -> (impl Iterator<Item = &ChatMessage>, bool) {
        let start = self.messages.partition_point(|m| m.id.seq <= after);
        (self.messages.range(start..), self.dropped_upto <= after)
    }

    /// The newest `limit` messages that pass `keep`, oldest first.
    pub(super) fn last_matching(&self, limit: usize, keep: impl Fn(&ChatMessage) -> bool) -> Vec<ChatMessage> {
        let mut found: Vec<ChatMessage> = self.messages.iter().rev().filter(|m| keep(m)).take(limit).cloned().collect();
        found.reverse();
        found
    }

    /// Every message kept, oldest first.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &ChatMessage> {
        self.messages.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::{MessageId, NodeId, Recipients, Timestamp, UserName};

    fn m(seq: u64, body: &str) -> ChatMessage {
        ChatMessage {
            id: MessageId::new(NodeId::SERVER, seq),
            sender: UserName::new("a").unwrap(),
            recipients: Recipients::Broadcast,
            body: body.into(),
            lamport: Timestamp::new(seq, NodeId::SERVER),
            time: 0,
        }
    }

    #[test]
    fn bounded_by_count_and_bytes_and_says_what_it_lost() {
        let mut r = Recent::new(RecentLimits { messages: 3, bytes: 10 });
        for seq in 1..=4 {
            r.push(m(seq, "ab"));
        }
        let (since, complete) = r.since(0);
        assert_eq!(since.map(|m| m.id.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert!(!complete, "message 1 was dropped");
        let (since, complete) = r.since(1);
        assert_eq!(since.count(), 3);
        assert!(complete);
        r.push(m(5, "0123456789"));
        assert_eq!(r.iter().map(|m| m.id.seq).collect::<Vec<_>>(), vec![5], "bytes bound");
        let (_, complete) = r.since(3);
        assert!(!complete);
    }

    #[test]
    fn last_matching_is_oldest_first() {
        let mut r = Recent::new(RecentLimits::default());
        for seq in 1..=6 {
            r.push(m(seq, "x"));
        }
        let even = r.last_matching(2, |m| m.id.seq % 2 == 0);
        assert_eq!(even.iter().map(|m| m.id.seq).collect::<Vec<_>>(), vec![4, 6]);
    }
}

//! Bounded message history with lookup by ID, and a bounded duplicate filter.
//!
//! [`MessageBuffer`] is the seed's "message buffer": the last `capacity` messages in delivery order,
//! found by [`MessageId`], with retransmissions recognised by a [`DedupWindow`] that remembers more
//! IDs than the history keeps messages (so a late retransmission of an evicted message is still
//! recognised). Both are plain data structures: no I/O, no clock.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::{ChatMessage, MessageId, UserName};

/// Default number of messages kept by a [`MessageBuffer`].
pub const DEFAULT_HISTORY: usize = 1000;

/// Remembers the last `capacity` message IDs seen, to drop duplicates. Oldest IDs are forgotten first.
#[derive(Debug, Clone)]
pub struct DedupWindow {
    capacity: usize,
    seen: HashSet<MessageId>,
    order: VecDeque<MessageId>,
}

impl DedupWindow {
    /// A window remembering up to `capacity` IDs (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        DedupWindow { capacity, seen: HashSet::new(), order: VecDeque::new() }
    }

    /// Records `id`; returns `false` if it was already in the window (a duplicate).
    pub fn insert(&mut self, id: MessageId) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// Whether `id` is in the window.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.seen.contains(id)
    }

    /// Number of IDs remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no ID is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// What [`MessageBuffer::insert`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// First time seen: stored (possibly evicting the oldest message).
    New,
    /// Seen before: ignored.
    Duplicate,
}

/// The last `capacity` messages in the order they were inserted, with lookup by ID and dedup.
#[derive(Debug, Clone)]
pub struct MessageBuffer {
    capacity: usize,
    ring: VecDeque<ChatMessage>,
    /// Absolute position (count of messages ever stored) of `ring[0]`.
    base: u64,
    index: HashMap<MessageId, u64>,
    dedup: DedupWindow,
}

impl MessageBuffer {
    /// A buffer keeping `capacity` messages and remembering `4 * capacity` IDs for dedup.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MessageBuffer {
            capacity,
            ring: VecDeque::new(),
            base: 0,
            index: HashMap::new(),
            dedup: DedupWindow::new(capacity.saturating_mul(4)),
        }
    }

    /// Stores `msg` unless its ID was seen before.
    pub fn insert(&mut self, msg: ChatMessage) -> Inserted {
        if !self.dedup.insert(msg.id) {
            return Inserted::Duplicate;
        }
        let pos = self.base + self.ring.len() as u64;
        self.index.insert(msg.id, pos);
        self.ring.push_back(msg);
        if self.ring.len() > self.capacity
            && let Some(old) = self.ring.pop_front()
        {
            self.index.remove(&old.id);
            self.base += 1;
        }
        Inserted::New
    }

    /// Whether a message with this ID was seen (even if since evicted from the history).
    pub fn seen(&self, id: &MessageId) -> bool {
        self.dedup.contains(id)
    }

    /// The stored message with this ID, if it is still in the history.
    pub fn get(&self, id: &MessageId) -> Option<&ChatMessage> {
        let pos = *self.index.get(id)?;
        self.ring.get((pos - self.base) as usize)
    }

    /// All stored messages, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &ChatMessage> + ExactSizeIterator {
        self.ring.iter()
    }

    /// The last `n` stored messages, oldest first.
    pub fn last(&self, n: usize) -> Vec<ChatMessage> {
        let skip = self.ring.len().saturating_sub(n);
        self.ring.iter().skip(skip).cloned().collect()
    }

    /// The last `n` stored messages that `user` may see, oldest first.
    pub fn last_visible_to(&self, user: &UserName, n: usize) -> Vec<ChatMessage> {
        let mut out: Vec<ChatMessage> =
            self.ring.iter().rev().filter(|m| m.is_visible_to(user)).take(n).cloned().collect();
        out.reverse();
        out
    }

    /// The newest stored message.
    pub fn newest(&self) -> Option<&ChatMessage> {
        self.ring.back()
    }

    /// Number of stored messages.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// How many messages the history keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeId, Recipients, Timestamp};
    use proptest::prelude::*;

    fn msg(origin: u64, seq: u64, sender: &str, recipients: Recipients) -> ChatMessage {
        ChatMessage {
            id: MessageId::new(NodeId(origin), seq),
            sender: UserName::new(sender).unwrap(),
            recipients,
            body: format!("m{origin}-{seq}"),
            lamport: Timestamp::new(seq, NodeId(origin)),
            time: 0,
        }
    }

    #[test]
    fn ring_evicts_oldest_and_keeps_lookup_consistent() {
        let mut b = MessageBuffer::new(3);
        for seq in 1..=5 {
            assert_eq!(b.insert(msg(1, seq, "a", Recipients::Broadcast)), Inserted::New);
        }
        assert_eq!(b.len(), 3);
        assert!(b.get(&MessageId::new(NodeId(1), 2)).is_none());
        assert_eq!(b.get(&MessageId::new(NodeId(1), 4)).unwrap().body, "m1-4");
        let bodies: Vec<_> = b.last(2).into_iter().map(|m| m.body).collect();
        assert_eq!(bodies, ["m1-4", "m1-5"]);
        // An evicted message is still recognised as a duplicate.
        assert_eq!(b.insert(msg(1, 1, "a", Recipients::Broadcast)), Inserted::Duplicate);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn history_hides_other_peoples_direct_messages() {
        let bob = UserName::new("bob").unwrap();
        let mut b = MessageBuffer::new(10);
        b.insert(msg(0, 1, "alice", Recipients::Broadcast));
        b.insert(msg(0, 2, "alice", Recipients::Unicast(UserName::new("carol").unwrap())));
        b.insert(msg(0, 3, "alice", Recipients::Unicast(bob.clone())));
        b.insert(msg(0, 4, "bob", Recipients::Unicast(UserName::new("carol").unwrap())));
        let seen: Vec<u64> = b.last_visible_to(&bob, 10).iter().map(|m| m.id.seq).collect();
        assert_eq!(seen, [1, 3, 4]);
        let last2: Vec<u64> = b.last_visible_to(&bob, 2).iter().map(|m| m.id.seq).collect();
        assert_eq!(last2, [3, 4]);
    }

    proptest! {
        /// Whatever the mix of new IDs and retransmissions, the buffer holds each ID at most once,
        /// in first-insertion order, and exactly the last `cap` distinct IDs.
        #[test]
        fn no_duplicates_and_last_cap_kept(cap in 1usize..20, ids in proptest::collection::vec((0u64..4, 0u64..30), 0..200)) {
            let mut b = MessageBuffer::new(cap);
            let mut distinct: Vec<MessageId> = Vec::new();
            for (o, s) in ids {
                let m = msg(o, s, "a", Recipients::Broadcast);
                let fresh = !distinct.contains(&m.id);
                // the dedup window (4*cap) may have forgotten very old IDs
                let res = b.insert(m.clone());
                if fresh { prop_assert_eq!(res, Inserted::New); distinct.push(m.id); }
                else if res == Inserted::New { distinct.push(m.id); }
            }
            let kept: Vec<MessageId> = b.iter().map(|m| m.id).collect();
            let start = distinct.len().saturating_sub(cap);
            prop_assert_eq!(&kept[..], &distinct[start..]);
            for id in &kept { prop_assert_eq!(b.get(id).map(|m| m.id), Some(*id)); }
        }
    }
}

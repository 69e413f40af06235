//! The coordinator's archive: the full text of the last messages ordered, in order, for joiners'
//! histories and for the history of a room someone joins.
//!
//! A coordinator orders every message, so it holds every text, whoever it is for. A new coordinator
//! starts its archive from what it can gather at the failover sync: its own history and the
//! messages its members report (each member reports the texts it may see), in stamp order; what
//! none of them could see (a room none of them is in) is not in it.
//!
//! Positions in the archive are counted from its start ([`Archive::mark`]), so a joiner admitted at
//! some point gets the messages archived before that point only: whatever was ordered after its
//! admission reaches it as an entry of the log.

use std::collections::{HashSet, VecDeque};

use chat_core::{ChatMessage, MessageId, RoomName};

/// See the module documentation.
#[derive(Debug, Clone)]
pub(super) struct Archive {
    ring: VecDeque<ChatMessage>,
    /// Messages ever archived before `ring[0]`.
    base: u64,
    capacity: usize,
}

impl Archive {
    /// An empty archive of `capacity` messages.
    pub(super) fn new(capacity: usize) -> Self {
        Archive { ring: VecDeque::new(), base: 0, capacity: capacity.max(1) }
    }

    /// An archive of the messages of `sources`, each once, in stamp order (the newest kept).
    pub(super) fn gathered(capacity: usize, sources: impl IntoIterator<Item = ChatMessage>) -> Self {
        let mut seen: HashSet<MessageId> = HashSet::new();
        let mut all: Vec<ChatMessage> = sources.into_iter().filter(|m| seen.insert(m.id)).collect();
        all.sort_by_key(|m| m.lamport);
        let mut archive = Archive::new(capacity);
        for m in all {
            archive.push(m);
        }
        archive
    }

    /// Archives a message just ordered.
    pub(super) fn push(&mut self, msg: ChatMessage) {
        self.ring.push_back(msg);
        if self.ring.len() > self.capacity {
            self.ring.pop_front();
            self.base += 1;
        }
    }

    /// Every archived message, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &ChatMessage> {
        self.ring.iter()
    }

    /// How many messages were ever archived: the point before the next one.
    pub(super) fn mark(&self) -> u64 {
        self.base + self.ring.len() as u64
    }

    /// The last `n` messages archived before `mark` that `visible` accepts, oldest first.
    pub(super) fn last_before(
        &self,
        mark: u64,
        n: usize,
        mut visible: impl FnMut(&ChatMessage) -> bool,
    ) -> Vec<ChatMessage> {
        let end = mark.saturating_sub(self.base).min(self.ring.len() as u64) as usize;
        let mut out: Vec<ChatMessage> = self.ring.range(..end).rev().filter(|m| visible(m)).take(n).cloned().collect();
        out.reverse();
        out
    }

    /// The last `n` messages of `room`, oldest first.
    pub(super) fn room(&self, room: &RoomName, n: usize) -> Vec<ChatMessage> {
        self.last_before(self.mark(), n, |m| m.recipients.room().is_some_and(|r| r.same_as(room)))
    }
}

#[cfg(test)]
mod tests {
    use chat_core::{NodeId, Recipients, Timestamp, UserName};

    use super::*;

    fn msg(seq: u64, to: Recipients) -> ChatMessage {
        ChatMessage {
            id: MessageId::new(NodeId(1), seq),
            sender: UserName::new("alice").expect("valid"),
            recipients: to,
            body: format!("m{seq}"),
            lamport: Timestamp::new(seq, NodeId(1)),
            time: 0,
        }
    }

    #[test]
    fn marks_cut_the_history_at_an_admission_and_rooms_are_filtered() {
        let ops = RoomName::new("#ops").expect("valid");
        let mut a = Archive::new(4);
        a.push(msg(1, Recipients::Broadcast));
        a.push(msg(2, Recipients::Room(ops.clone())));
        let mark = a.mark();
        a.push(msg(3, Recipients::Broadcast));
        let seqs = |v: Vec<ChatMessage>| v.into_iter().map(|m| m.id.seq).collect::<Vec<_>>();
        assert_eq!(seqs(a.last_before(mark, 10, |_| true)), [1, 2]);
        assert_eq!(seqs(a.room(&RoomName::new("#OPS").expect("valid"), 10)), [2]);
        a.push(msg(4, Recipients::Broadcast));
        a.push(msg(5, Recipients::Broadcast));
        assert_eq!(seqs(a.last_before(mark, 10, |_| true)), [2], "1 was evicted");
        assert_eq!(seqs(a.last_before(a.mark(), 2, |_| true)), [4, 5]);
    }

    #[test]
    fn a_gathered_archive_is_in_stamp_order_without_duplicates() {
        let a = Archive::gathered(
            10,
            [msg(3, Recipients::Broadcast), msg(1, Recipients::Broadcast), msg(3, Recipients::Broadcast)],
        );
        assert_eq!(a.iter().map(|m| m.id.seq).collect::<Vec<_>>(), [1, 3]);
    }
}

//! Known users and the messages kept for them while they are offline.
//!
//! A user is **known** once it has logged in (within what the journal holds) or when it has an
//! account. A unicast or multicast naming a known user who has no session is stored as usual and
//! kept in that user's offline queue; the sender's `Sent` lists the user as `queued`. At the user's
//! next login the queue is delivered, in order, before live traffic (and kept with the session for
//! a resume). Names nobody knows stay `unknown_user`.
//!
//! Bounds ([`OfflineLimits`]): per user a number of messages and of body bytes (the oldest are
//! dropped first; the user is told how many at login), in total a number of body bytes over all
//! queues (over it, a message is not kept for that user and counts as dropped for them), and the
//! number of known users (the ones known longest ago are forgotten first; account holders stay).

use std::collections::VecDeque;

use chat_core::{ChatMessage, NameMap, UserName};

/// Default messages kept per offline user.
pub const DEFAULT_OFFLINE_MESSAGES: usize = 1000;
/// Default body bytes kept per offline user.
pub const DEFAULT_OFFLINE_BYTES: usize = 1024 * 1024;
/// Default body bytes kept over all offline users.
pub const DEFAULT_OFFLINE_TOTAL_BYTES: usize = 64 * 1024 * 1024;
/// Default number of known users remembered.
pub const DEFAULT_MAX_KNOWN: usize = 100_000;

/// Offline queue limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineLimits {
    /// Messages per user.
    pub messages: usize,
    /// Body bytes per user.
    pub bytes: usize,
    /// Body bytes over all users.
    pub total_bytes: usize,
    /// Known users remembered.
    pub known: usize,
}

impl Default for OfflineLimits {
    fn default() -> Self {
        OfflineLimits {
            messages: DEFAULT_OFFLINE_MESSAGES,
            bytes: DEFAULT_OFFLINE_BYTES,
            total_bytes: DEFAULT_OFFLINE_TOTAL_BYTES,
            known: DEFAULT_MAX_KNOWN,
        }
    }
}

/// One known user.
#[derive(Debug, Clone, Default)]
struct Known {
    /// Has an account (never forgotten).
    account: bool,
    /// Messages kept, oldest first.
    queue: VecDeque<ChatMessage>,
    /// Their body bytes.
    bytes: usize,
    /// Messages dropped since the last login.
    dropped: u64,
}

/// The known users and their queues.
#[derive(Debug, Default)]
pub(super) struct Offline {
    limits: OfflineLimits,
    known: NameMap<Known>,
    /// Known users in the order they became known (for forgetting), accounts excluded.
    order: VecDeque<UserName>,
    total_bytes: usize,
}

/// What a login takes from the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Backlog {
    /// The messages kept, oldest first.
    pub(super) messages: Vec<ChatMessage>,
    /// How many were dropped (limits).
    pub(super) dropped: u64,
}

impl Offline {
    pub(super) fn new(limits: OfflineLimits) -> Self {
        Offline { limits, ..Offline::default() }
    }

    /// `name` is known from now on (it logged in).
    pub(super) fn know(&mut self, name: &UserName) {
        if self.known.get(name).is_some() {
            return;
        }
        while self.order.len() >= self.limits.known.max(1) {
            let Some(old) = self.order.pop_front() else { break };
            if let Some((_, k)) = self.known.remove(&old) {
                self.total_bytes -= k.bytes;
            }
        }
        let _ = self.known.insert(name.clone(), Known::default());
        self.order.push_back(name.clone());
    }

    /// The account holders (from the accounts file): known whatever happens.
    pub(super) fn accounts(&mut self, names: &[UserName]) {
        for name in names {
            if self.known.get(name).is_none() {
                let _ = self.known.insert(name.clone(), Known::default());
            }
            if let Some((_, k)) = self.known.get_mut(name) {
                k.account = true;
            }
        }
        self.order.retain(|n| !names.iter().any(|a| a.same_as(n)));
    }

    /// `name` as known (its registered spelling), if it is.
    pub(super) fn find(&self, name: &UserName) -> Option<&UserName> {
        self.known.find(name)
    }

    /// Keeps `message` for `name` (known, offline).
    pub(super) fn keep(&mut self, name: &UserName, message: ChatMessage) {
        let limits = self.limits;
        let Some((_, k)) = self.known.get_mut(name) else { return };
        let size = message.body.len();
        if self.total_bytes + size > limits.total_bytes {
            k.dropped += 1;
            return;
        }
        k.bytes += size;
        self.total_bytes += size;
        k.queue.push_back(message);
        while k.queue.len() > limits.messages || (k.bytes > limits.bytes && k.queue.len() > 1) {
            if let Some(old) = k.queue.pop_front() {
                k.bytes -= old.body.len();
                self.total_bytes -= old.body.len();
                k.dropped += 1;
            }
        }
    }

    /// Takes what was kept for `name` (it is logging in).
    pub(super) fn take(&mut self, name: &UserName) -> Backlog {
        let Some((_, k)) = self.known.get_mut(name) else { return Backlog::default() };
        self.total_bytes -= k.bytes;
        k.bytes = 0;
        Backlog { messages: std::mem::take(&mut k.queue).into(), dropped: std::mem::take(&mut k.dropped) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::{MessageId, NodeId, Recipients, Timestamp};

    fn u(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }
    fn m(seq: u64, body: &str) -> ChatMessage {
        ChatMessage {
            id: MessageId::new(NodeId::SERVER, seq),
            sender: u("a"),
            recipients: Recipients::Unicast(u("bob")),
            body: body.into(),
            lamport: Timestamp::new(seq, NodeId::SERVER),
            time: 0,
        }
    }

    #[test]
    fn oldest_dropped_first_and_counted() {
        let mut o = Offline::new(OfflineLimits { messages: 2, bytes: 100, total_bytes: 1000, known: 10 });
        o.know(&u("Bob"));
        assert_eq!(o.find(&u("bob")), Some(&u("Bob")));
        for seq in 1..=3 {
            o.keep(&u("bob"), m(seq, "x"));
        }
        let backlog = o.take(&u("BOB"));
        assert_eq!(backlog.messages.iter().map(|m| m.id.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(backlog.dropped, 1);
        assert_eq!(o.take(&u("bob")), Backlog::default(), "taken once");
    }

    #[test]
    fn total_bytes_bound_and_forgetting_spare_accounts() {
        let mut o = Offline::new(OfflineLimits { messages: 10, bytes: 100, total_bytes: 4, known: 2 });
        o.accounts(&[u("root")]);
        o.know(&u("a"));
        o.know(&u("b"));
        o.keep(&u("a"), m(1, "abc"));
        o.keep(&u("b"), m(2, "abc"));
        assert_eq!(o.take(&u("b")).dropped, 1, "over the total");
        o.know(&u("c"));
        assert!(o.find(&u("a")).is_none(), "forgotten first");
        assert!(o.find(&u("root")).is_some(), "accounts stay");
        o.keep(&u("b"), m(3, "abcd"));
        assert_eq!(o.take(&u("b")).messages.len(), 1, "a's bytes were released when it was forgotten");
    }
}

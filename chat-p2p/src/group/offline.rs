//! Messages the group keeps for users who are offline, part of the replicated state.
//!
//! A user is **known** while the group remembers it as a departed member (it was a member: it left,
//! crashed or was removed; see [`super::DEPARTED_KEPT`]) or while something is kept for it. A
//! unicast or multicast naming a known user who is not a member is ordered as usual (its sender's
//! receipt lists that user as `queued`), and the coordinator orders a `Kept { names, msg }` change
//! right after it: every node adds the message to those users' queues. When a member of that name
//! is admitted again **with the key the queue is bound to**, the coordinator orders
//! `Collected { name, messages, dropped }` right after its `Joined`: the returning node delivers the
//! messages (in order, before anything ordered later), every node forgets the queue.
//!
//! ```text
//!  alice: /msg bob hi  (bob departed) ──► coordinator: message at p (receipt: queued [bob])
//!                                                      Kept{[bob], msg} at p+1 ──► every node's queue of bob
//!  bob joins again (same key) ──► Joined(bob) at q, Collected{bob, [msg], dropped} at q+1
//!                                 bob's node: the messages as events (and a notice if some were dropped)
//! ```
//!
//! **Identity.** A queue is bound to the key (`Member.key`) of the member of that name that
//! departed last when the queue was made. With a group secret a node's key is its identity key
//! ([`crate::P2pConfig::key`]; `chat-cli` keeps one per user in a file), so the rightful user
//! started again collects, while anybody else joining under the name with another key gets nothing,
//! and the queue waits (bounded) for the key's holder. (A node given no key draws one per process:
//! then only that process, removed for silence or a partition and back, collects.) Without a secret there are no
//! keys (`None`): as everything else in such a group, the name is the identity.
//!
//! **Privacy.** While a user is offline, the text kept for it is held by every node (the group is
//! the server): it is never shown to them, nor in any history.
//!
//! **Bounds.** Per user [`OFFLINE_MESSAGES`] messages and [`OFFLINE_USER_BYTES`] of weight (the
//! oldest dropped first, counted and told to the user on return; a single message over the bound is
//! dropped), [`OFFLINE_TOTAL_BYTES`] of weight over all queues (over it, a message is not kept and
//! counts as dropped for that user) and [`OFFLINE_USERS`] queues (a message for a user without a
//! queue when there are that many is not kept). A message's weight is its body plus a fixed
//! overhead per message and per named recipient ([`weight`]), so the state always fits in a frame.

use std::collections::VecDeque;

use chat_core::{ChatMessage, NameMap, UserName};
use serde::{Deserialize, Serialize};

use crate::protocol::PeerKey;

/// Most messages kept for one offline user.
pub const OFFLINE_MESSAGES: usize = 100;
/// Most weight ([`weight`]: about the body's bytes) kept for one offline user.
pub const OFFLINE_USER_BYTES: usize = 16 * 1024;
/// Most weight kept for all offline users together.
pub const OFFLINE_TOTAL_BYTES: usize = 64 * 1024;
/// Most offline users with a queue.
pub const OFFLINE_USERS: usize = 64;

/// What a message weighs in a queue: its body plus an overhead per message and per named recipient
/// (as an entry of the log weighs).
pub fn weight(msg: &ChatMessage) -> usize {
    96 + msg.body.len() + 34 * msg.recipients.names().len()
}

/// The messages kept for one user, as a snapshot carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    /// The user, as its name was registered.
    pub name: UserName,
    /// The key of the member of that name that departed (none without a group secret).
    pub key: Option<PeerKey>,
    /// The messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// How many were dropped (bounds).
    pub dropped: u64,
}

/// One user's queue.
#[derive(Debug, Clone, Default)]
struct Kept {
    key: Option<PeerKey>,
    messages: VecDeque<ChatMessage>,
    weight: usize,
    dropped: u64,
}

/// Every offline user's queue; see the module documentation.
#[derive(Debug, Clone, Default)]
pub(super) struct Offline {
    queues: NameMap<Kept>,
    total: usize,
}

impl Offline {
    /// The state described by a snapshot's queues (bounds are checked by [`Offline::refusal`]).
    pub(super) fn from_queues(queues: Vec<Queue>) -> Self {
        let mut offline = Offline::default();
        for q in queues {
            let weight = q.messages.iter().map(weight).sum();
            let kept = Kept { key: q.key, messages: q.messages.into(), weight, dropped: q.dropped };
            if offline.queues.insert(q.name, kept).is_ok() {
                offline.total += weight;
            }
        }
        offline
    }

    /// The queues, by name (every node lists them in the same order).
    pub(super) fn queues(&self) -> Vec<Queue> {
        let mut out: Vec<Queue> = self
            .queues
            .iter()
            .map(|(name, k)| Queue {
                name: name.clone(),
                key: k.key,
                messages: k.messages.iter().cloned().collect(),
                dropped: k.dropped,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Why queues from the network cannot be a group's state, if they cannot (over a bound).
    pub(super) fn refusal(queues: &[Queue]) -> Option<String> {
        let total: usize = queues.iter().flat_map(|q| &q.messages).map(weight).sum();
        let longest = queues.iter().map(|q| q.messages.len()).max().unwrap_or(0);
        (queues.len() > OFFLINE_USERS || longest > OFFLINE_MESSAGES || total > OFFLINE_TOTAL_BYTES).then(|| {
            format!(
                "offline queues over their bounds: {} users, {longest} messages for one, {total} bytes",
                queues.len()
            )
        })
    }

    /// The total weight kept.
    pub(super) fn weight(&self) -> usize {
        self.total
    }

    /// Whether something is kept for `name`; its registered name if so.
    pub(super) fn find(&self, name: &UserName) -> Option<&UserName> {
        self.queues.find(name)
    }

    /// Whether a member admitted as `name` with `key` collects a queue.
    pub(super) fn collects(&self, name: &UserName, key: Option<PeerKey>) -> bool {
        self.queues.get(name).is_some_and(|(_, k)| k.key == key)
    }

    /// Keeps `msg` for `name`; `key` binds a new queue (an existing one keeps its key).
    pub(super) fn keep(&mut self, name: &UserName, key: Option<PeerKey>, msg: &ChatMessage) {
        if self.queues.get(name).is_none() {
            if self.queues.len() >= OFFLINE_USERS {
                tracing::warn!(%name, "a message for an offline user not kept: too many offline users with a queue");
                return;
            }
            let _ = self.queues.insert(name.clone(), Kept { key, ..Kept::default() });
        }
        let size = weight(msg);
        let total = self.total;
        let Some((_, k)) = self.queues.get_mut(name) else { return };
        if size > OFFLINE_USER_BYTES || total + size > OFFLINE_TOTAL_BYTES {
            k.dropped += 1;
            return;
        }
        if k.messages.iter().any(|m| m.id == msg.id) {
            return; // kept already (a change delivered twice)
        }
        k.messages.push_back(msg.clone());
        k.weight += size;
        self.total += size;
        while k.messages.len() > OFFLINE_MESSAGES || k.weight > OFFLINE_USER_BYTES {
            let Some(old) = k.messages.pop_front() else { break };
            k.weight -= weight(&old);
            self.total -= weight(&old);
            k.dropped += 1;
        }
    }

    /// Takes `name`'s queue (its user is back): the messages, oldest first, and how many were dropped.
    pub(super) fn take(&mut self, name: &UserName) -> Option<(Vec<ChatMessage>, u64)> {
        let (_, k) = self.queues.remove(name)?;
        self.total -= k.weight;
        Some((k.messages.into(), k.dropped))
    }
}

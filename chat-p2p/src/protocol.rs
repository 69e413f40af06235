//! Everything nodes say to each other, over TCP frames or multicast datagrams.
//!
//! | message                 | channel            | from → to                 | purpose                                  |
//! |-------------------------|--------------------|---------------------------|------------------------------------------|
//! | `JoinRequest`           | multicast, or TCP to each `--peer` | joiner → group / known node | "admit me as `name` at `addr`" (with a secret: "whose links use `key`"; a returning node: "I held `id`") |
//! | `JoinAck`               | TCP                | coordinator → joiner      | ID, term, the group's state at `start`, history |
//! | `JoinRefused`           | TCP                | coordinator → joiner      | e.g. `name_taken`                        |
//! | `JoinHold`              | TCP                | member → joiner           | "a group is here, electing a coordinator: keep asking" |
//! | `Heartbeat` / `Alive`   | TCP                | coordinator ⇄ member      | failure detection, commit point, clock   |
//! | `Beacon`                | multicast          | coordinator → group       | lets partitioned coordinators find each other |
//! | `NotMember` / `Stale`   | TCP                | coordinator / member      | "rejoin" / "your term is over: rejoin at `addr`" (also a lower coordinator handing its group to a higher one after a heal, and a member answering a node outside its view) |
//! | `Election(..)`          | TCP                | any                       | Bully: see [`crate::election`]           |
//! | `Submit`                | TCP                | sender → coordinator      | a message to order (`MessageId` = dedup key) |
//! | `Orders`                | TCP                | coordinator → each member | a batch of consecutive positions (text, `Hidden`, or a change of the group), and the commit point |
//! | `Ack` / `Commit`        | TCP                | member → coord / coord → members | cumulative: every position up to it held / stable |
//! | `Duplicate` / `Rejected`| TCP                | coordinator → sender      | already ordered / refused                |
//! | `SyncRequest` / `SyncReply` | TCP            | new coordinator ⇄ members | failover: collect what members hold      |
//! | `Leave`                 | TCP                | member → coordinator      | clean exit                               |
//! | `RateLimited`           | TCP                | coordinator → sender      | over the member's rate: not ordered, resubmit after the wait |
//! | `Room` / `RoomAnswer`   | TCP                | member ⇄ coordinator      | join or part a room; the answer names the position of the change |
//!
//! Joins, leaves, failures and room memberships are [`Change`]s ordered in the same log as messages
//! ([`Entry::Change`]), so every node applies them in the same order (`crate::group`).
//!
//! This is version 2 of the P2P wire (batched orders, changes in the log, small node IDs): a group
//! runs one version; nodes of version 1 cannot decode it. New variants go at the end of
//! [`PeerMsg`]: bincode encodes a variant by its index.

use std::fmt;
use std::net::SocketAddr;

use chat_core::{ChatMessage, ErrorCode, MessageId, NodeId, Recipients, RoomName, Timestamp, UserName};
use serde::{Deserialize, Serialize};

use crate::election::{ElectionMsg, Term};
pub use crate::group::{Change, Snapshot};

/// A node's static public key (X25519) in a group with a secret: the identity its Noise links are
/// authenticated with ([`crate::secure::NodeKey`]: kept by the program, or drawn fresh by the process),
/// bound to a node ID by the coordinator at join.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerKey(pub [u8; 32]);

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerKey({self})")
    }
}

impl fmt::Display for PeerKey {
    /// The first 8 bytes in hex: enough to tell keys apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0[..8].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A member of the group as every node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Its node ID.
    pub id: NodeId,
    /// Its unique user name.
    pub name: UserName,
    /// Where it accepts TCP connections.
    pub addr: SocketAddr,
    /// The key its links are authenticated with (groups with a secret; `None` without).
    pub key: Option<PeerKey>,
}

/// A place in the total order: the term of the coordinator that ordered it and an index from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pos {
    /// The ordering coordinator's term.
    pub term: Term,
    /// Index within the term, from 1 (0 means "before the first").
    pub index: u64,
}

impl Pos {
    /// Builds a position.
    pub fn new(term: Term, index: u64) -> Self {
        Pos { term, index }
    }
}

/// What a member holds at one position: the message, only its ID if it may not see it, or a change
/// of the group's state (the same for everybody).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// The message, for its sender and recipients.
    Visible(ChatMessage),
    /// A placeholder for members that must not see the text.
    Hidden(MessageId),
    /// A join, leave, failure or room membership.
    Change(Change),
}

impl Entry {
    /// The message ID, for a message.
    pub fn message_id(&self) -> Option<MessageId> {
        match self {
            Entry::Visible(m) => Some(m.id),
            Entry::Hidden(id) => Some(*id),
            Entry::Change(_) => None,
        }
    }

    /// Rough encoded size, for keeping frames under the codec limit.
    pub fn weight(&self) -> usize {
        match self {
            Entry::Visible(m) => 96 + m.body.len() + 34 * m.recipients.names().len(),
            Entry::Hidden(_) => 48,
            Entry::Change(Change::Kept { msg, .. }) => 160 + crate::group::weight(msg),
            Entry::Change(Change::Collected { messages, .. }) => {
                160 + messages.iter().map(crate::group::weight).sum::<usize>()
            }
            Entry::Change(_) => 160,
        }
    }
}

/// A message as a sender submits it to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// Its ID: the sender's node ID when first sent, and the sender's sequence number.
    pub id: MessageId,
    /// The sender's name.
    pub sender: UserName,
    /// Who it is for.
    pub recipients: Recipients,
    /// The text.
    pub body: String,
    /// The sender's Lamport time of the send; the coordinator observes it.
    pub sent_at: Timestamp,
}

/// A room operation a member asks the coordinator for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomOp {
    /// Join the room (creating it if new).
    Join(RoomName),
    /// Leave the room.
    Part(RoomName),
}

/// The outcome of a room operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomOutcome {
    /// In the room, with its recent messages (oldest first).
    Joined {
        /// The room, as it is known.
        room: RoomName,
        /// Its last messages before the join.
        history: Vec<ChatMessage>,
    },
    /// Out of the room.
    Parted {
        /// The room, as it is known.
        room: RoomName,
    },
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// A node asks to be admitted.
    JoinRequest {
        /// Requested name.
        name: UserName,
        /// The joiner's listening address (where the answer goes).
        addr: SocketAddr,
        /// Random number echoed in the answer.
        nonce: u64,
        /// The joiner's Lamport counter: the coordinator observes it before admitting, so whatever
        /// the joiner delivers next is stamped above what it delivered before (in another group).
        clock: u64,
        /// The joiner's static public key (groups with a secret): the coordinator binds the new
        /// member's ID to it, and every member takes that member's frames only over links
        /// authenticated with it.
        key: Option<PeerKey>,
        /// The ID this process held before, if it was a member (it gets it back if nobody holds it).
        id: Option<NodeId>,
        /// A transient member (a one-shot `send` or `tail`): nobody is told it joins or leaves, it is
        /// not listed, and it collects no offline messages.
        quiet: bool,
    },
    /// Admission.
    JoinAck {
        /// Echo of the request's nonce.
        nonce: u64,
        /// The ID given to the joiner.
        id: NodeId,
        /// The coordinator's term.
        term: Term,
        /// The group's state at `start` (the joiner a member already).
        state: Snapshot,
        /// Recent messages the joiner may see, oldest first.
        history: Vec<ChatMessage>,
        /// The position of the state: the joiner holds everything up to it.
        start: Pos,
        /// The coordinator's Lamport counter.
        clock: u64,
    },
    /// Refusal.
    JoinRefused {
        /// Echo of the request's nonce.
        nonce: u64,
        /// Why.
        code: ErrorCode,
        /// Human-readable reason.
        reason: String,
    },
    /// A group is here but is electing a coordinator: the joiner keeps asking (and does not found a
    /// group of its own meanwhile).
    JoinHold {
        /// Echo of the request's nonce.
        nonce: u64,
    },
    /// Coordinator liveness, commit point and clock.
    Heartbeat {
        /// The coordinator's term.
        term: Term,
        /// Highest committed position.
        commit: Option<Pos>,
        /// The coordinator's Lamport counter.
        clock: u64,
    },
    /// A member's answer to a heartbeat.
    Alive {
        /// The term the member follows.
        term: Term,
    },
    /// A coordinator's presence, multicast so that coordinators of healed partitions meet.
    Beacon {
        /// Its term.
        term: Term,
        /// Its address.
        addr: SocketAddr,
    },
    /// "You are not a member of my group: rejoin."
    NotMember {
        /// The coordinator's term.
        term: Term,
    },
    /// "Your term is over, or you are not in my group; the current coordinator is at `addr`": the
    /// receiver rejoins there.
    Stale {
        /// The current term.
        term: Term,
        /// The current coordinator's address.
        addr: SocketAddr,
    },
    /// A Bully message.
    Election(ElectionMsg),
    /// A message to order.
    Submit(Submission),
    /// Consecutive ordered positions of `term`, from `first`, for one member; and the commit point.
    Orders {
        /// The term of the positions.
        term: Term,
        /// The index of the first entry.
        first: u64,
        /// Each entry, with (for the sender only) the named recipients that were not online.
        entries: Vec<(Entry, Vec<UserName>)>,
        /// Every position of `term` up to this index is stable (0: say nothing).
        commit: u64,
    },
    /// A member holds every position of `term` up to `index`.
    Ack {
        /// The term.
        term: Term,
        /// Highest contiguous index held.
        index: u64,
    },
    /// Every position up to `pos` is stable: deliver.
    Commit {
        /// Highest committed position.
        pos: Pos,
    },
    /// The submission was ordered before (possibly by an earlier coordinator).
    Duplicate {
        /// Its ID.
        id: MessageId,
    },
    /// The submission was refused.
    Rejected {
        /// Its ID.
        id: MessageId,
        /// Why.
        code: ErrorCode,
        /// Human-readable reason.
        reason: String,
    },
    /// A new coordinator asks what a member holds.
    SyncRequest {
        /// The new term.
        term: Term,
    },
    /// What a member holds: its last delivered position and a recent window of entries.
    SyncReply {
        /// The term being synced.
        term: Term,
        /// The member's last delivered position.
        last: Option<Pos>,
        /// Recent delivered entries and every undelivered one, by position.
        entries: Vec<(Pos, Entry)>,
        /// The member's Lamport counter.
        clock: u64,
    },
    /// Clean exit.
    Leave,
    /// The submission `id` came over the sender's rate (see [`crate::node::Limits`]): it was not
    /// ordered. The sender's node submits it again once `retry_after_ms` has passed, and sends
    /// nothing else meanwhile; a member that keeps submitting anyway is removed (`flood`).
    RateLimited {
        /// The submission refused.
        id: MessageId,
        /// How long to wait before submitting again, in milliseconds.
        retry_after_ms: u64,
    },
    /// A member asks to join or part a room; `req` matches the answer.
    Room {
        /// The member's request number.
        req: u64,
        /// What it asks.
        op: RoomOp,
    },
    /// The answer to `Room`: the outcome, taking effect once the member has delivered `pos` (the
    /// change's position; none if nothing changed), or a refusal.
    RoomAnswer {
        /// The request number.
        req: u64,
        /// Where the change was ordered.
        pos: Option<Pos>,
        /// The outcome, or why it was refused.
        outcome: Result<RoomOutcome, (ErrorCode, String)>,
    },
}

/// A message with its sender's identity, as framed on the wire.
///
/// `from` is a claim: a receiver takes it only if it agrees with the link the frame came over (a
/// member's ID only over that member's authenticated link, never this node's own ID; see
/// `node/identity.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender's node ID (`None` before it has one).
    pub from: Option<NodeId>,
    /// The sender's listening address.
    pub addr: SocketAddr,
    /// The message.
    pub msg: PeerMsg,
}

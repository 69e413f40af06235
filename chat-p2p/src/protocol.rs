//! Everything nodes say to each other, over TCP frames or multicast datagrams.
//!
//! | message                 | channel            | from → to                 | purpose                                  |
//! |-------------------------|--------------------|---------------------------|------------------------------------------|
//! | `JoinRequest`           | multicast, or TCP to a `--peer` | joiner → group / known node | "admit me as `name` at `addr`" (with a secret: "whose links use `key`") |
//! | `JoinAck`               | TCP                | coordinator → joiner      | ID, members, term, start position, history |
//! | `JoinRefused`           | TCP                | coordinator → joiner      | e.g. `name_taken`                        |
//! | `Joined` / `Left`       | TCP                | coordinator → members     | membership changes                       |
//! | `Heartbeat` / `Alive`   | TCP                | coordinator ⇄ member      | failure detection, commit point, clock   |
//! | `Beacon`                | multicast          | coordinator → group       | lets partitioned coordinators find each other |
//! | `NotMember` / `Stale`   | TCP                | coordinator / member      | "rejoin" / "your term is over: rejoin at `addr`" (also a lower coordinator handing its group to a higher one after a heal) |
//! | `Election(..)`          | TCP                | any                       | Bully: see [`crate::election`]           |
//! | `Submit`                | TCP                | sender → coordinator      | a message to order (`MessageId` = dedup key) |
//! | `Order`                 | TCP                | coordinator → every member| position + text (or `Hidden` for non-recipients) |
//! | `Ack` / `Commit`        | TCP                | member → coord / coord → members | stable once every member has it    |
//! | `Duplicate` / `Rejected`| TCP                | coordinator → sender      | already ordered / no recipient online    |
//! | `SyncRequest` / `SyncReply` | TCP            | new coordinator ⇄ members | failover: collect what members hold      |
//! | `Leave`                 | TCP                | member → coordinator      | clean exit                               |
//! | `RateLimited`           | TCP                | coordinator → sender      | over the member's rate: not ordered, resubmit after the wait |
//!
//! New variants go at the end of [`PeerMsg`]: bincode encodes a variant by its index, so earlier
//! variants keep their encoding and older nodes still decode them.

use std::fmt;
use std::net::SocketAddr;

use chat_core::{ChatMessage, ErrorCode, MessageId, NodeId, Recipients, Timestamp, UserName};
use serde::{Deserialize, Serialize};

use crate::election::{ElectionMsg, Term};

/// A node's static public key (X25519) in a group with a secret: the identity its Noise links are
/// authenticated with, drawn fresh by every process and bound to a node ID by the coordinator at join.
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

/// What a member holds at one position: the message, or only its ID if it is not a recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// The message, for its sender and recipients.
    Visible(ChatMessage),
    /// A placeholder for members that must not see the text.
    Hidden(MessageId),
}

impl Entry {
    /// The message ID.
    pub fn id(&self) -> MessageId {
        match self {
            Entry::Visible(m) => m.id,
            Entry::Hidden(id) => *id,
        }
    }

    /// Rough encoded size, for keeping frames under the codec limit.
    pub fn weight(&self) -> usize {
        match self {
            Entry::Visible(m) => 96 + m.body.len() + 34 * m.recipients.names().len(),
            Entry::Hidden(_) => 48,
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
    },
    /// Admission.
    JoinAck {
        /// Echo of the request's nonce.
        nonce: u64,
        /// The ID given to the joiner.
        id: NodeId,
        /// The coordinator's term.
        term: Term,
        /// Every member, the joiner and the coordinator included.
        members: Vec<Member>,
        /// Recent messages the joiner may see, oldest first.
        history: Vec<ChatMessage>,
        /// The last position ordered before the joiner was admitted.
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
    /// A member was admitted.
    Joined {
        /// The coordinator's term.
        term: Term,
        /// The newcomer.
        member: Member,
    },
    /// A member left or was found dead.
    Left {
        /// The coordinator's term.
        term: Term,
        /// Who.
        id: NodeId,
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
    /// "Your term is over; the current coordinator is at `addr`": the receiver rejoins there. Sent
    /// by a member to a stale coordinator, and by a coordinator that hands its group to a higher one.
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
    /// An ordered message (or its placeholder) at a position.
    Order {
        /// Its position.
        pos: Pos,
        /// The message, or its ID only.
        entry: Entry,
        /// For the sender only: named recipients that were not online.
        unknown: Vec<UserName>,
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
        /// The new coordinator's members.
        members: Vec<Member>,
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

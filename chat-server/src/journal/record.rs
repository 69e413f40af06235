//! Journal records: what the persistent log stores, one per line of `chat-cli log show`.
//!
//! | record     | written when                          | `log show` line(s)                                  |
//! |------------|---------------------------------------|-----------------------------------------------------|
//! | `Start`    | the server starts (after recovery)    | `START after seq N` (sessions of the earlier run are over unless `KEPT` follows) |
//! | `Join`     | a user logs in                        | `JOIN bob`                                          |
//! | `Session`  | right after `Join`: the session's token hash | `SESSION bob` (`quiet` if not announced)     |
//! | `Kept`     | after `Start`, per session open when the server stopped | `KEPT bob` (it may be resumed)    |
//! | `Stored`   | a message is accepted and ordered     | `STORE [lamport] ROOM #ops FROM alice: hi` (time, `queued for` offline recipients) |
//! | `Store`    | (journals written before rooms) the same, without time, room, key or queue | as `Stored` |
//! | `RoomJoin` | a user joins a room                   | `ROOM JOIN #ops bob`                                |
//! | `RoomPart` | a user leaves a room                  | `ROOM PART #ops bob`                                |
//! | `Consumed` | every 50 ms: delivery watermarks      | one `CONSUME [lamport] KIND BY bob FROM alice: hi` per delivery it covers |
//! | `Leave`    | a session ends                        | `LEAVE bob (reason)`                                |
//!
//! Consumption is logged compactly: `Consumed { marks: [(bob, 42)] }` says every message with
//! server sequence `<= 42` that was intended for bob (and not sent by bob) has been written to bob's
//! connection. The intended recipients of message `seq` are: for a broadcast, every user with a
//! session when it was stored (joined with `after < seq`, not yet left); for a unicast or multicast,
//! the named users (those kept offline included: they receive it at their next login); for a room
//! message, the room's members with a session. A sender is not its own recipient.
//!
//! Records are an enum encoded by variant index: variants are only ever appended, so every journal
//! ever written still reads.

use chat_core::{ChatMessage, RoomName, UserName};
use serde::{Deserialize, Serialize};

use crate::protocol::v1;

/// One journal record. Encoded with `chat_transport::codec::encode_payload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The server started. Later sequence numbers are `> after`.
    Start {
        /// Highest sequence number stored before this start (0 if none).
        after: u64,
    },
    /// A user logged in and receives messages stored from `after + 1` on.
    Join {
        /// Who.
        name: UserName,
        /// Highest sequence number stored before the login.
        after: u64,
    },
    /// A message was accepted (journals written before rooms; see [`Record::Stored`]).
    Store {
        /// The message as delivered (id = `(0, seq)`, Lamport stamp of the server).
        message: v1::ChatMessage,
    },
    /// Delivery watermarks (see module docs).
    Consumed {
        /// `(user, upto)`: everything intended for `user` with `seq <= upto` was delivered.
        marks: Vec<(UserName, u64)>,
    },
    /// A session ended.
    Leave {
        /// Who.
        name: UserName,
        /// Highest sequence number stored before the departure.
        after: u64,
        /// Why (`quit`, `timeout`, `slow_consumer`, ...).
        reason: String,
    },
    /// A message was accepted and ordered.
    Stored(Stored),
    /// The session that the preceding `Join` of `name` began.
    Session {
        /// Who.
        name: UserName,
        /// SHA-256 of the session token (never the token).
        token: [u8; 32],
        /// Not announced to others.
        quiet: bool,
    },
    /// A session open when the server stopped goes on (detached) after this start.
    Kept {
        /// Who.
        name: UserName,
        /// Highest sequence number stored (the same as the preceding `Start`'s).
        after: u64,
    },
    /// A user joined a room.
    RoomJoin {
        /// The room.
        room: RoomName,
        /// Who.
        name: UserName,
        /// Highest sequence number stored before: the member receives the room's messages after it.
        after: u64,
    },
    /// A user left a room.
    RoomPart {
        /// The room.
        room: RoomName,
        /// Who.
        name: UserName,
        /// Highest sequence number stored before.
        after: u64,
    },
}

/// A stored message and what the server decided about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The message as delivered (id = `(0, seq)`, Lamport stamp and time of the server).
    pub message: ChatMessage,
    /// The sender's idempotency key (0: none).
    pub key: u64,
    /// Named recipients who were offline but known: kept for their next login.
    pub queued: Vec<UserName>,
    /// Named recipients nobody knew (not stored as recipients).
    pub unknown: Vec<UserName>,
}

impl Stored {
    /// A message with no key, nobody queued, nobody unknown.
    pub fn plain(message: ChatMessage) -> Self {
        Stored { message, key: 0, queued: Vec::new(), unknown: Vec::new() }
    }
}

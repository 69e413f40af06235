//! Journal records: what the persistent log stores, one per line of `chat-cli log show`.
//!
//! | record     | written when                          | `log show` line(s)                                  |
//! |------------|---------------------------------------|-----------------------------------------------------|
//! | `Start`    | the server starts (after recovery)    | `START after seq N` (every earlier session ended)   |
//! | `Join`     | a user logs in                        | `JOIN bob`                                          |
//! | `Store`    | a message is accepted and ordered     | `STORE [lamport] BROADCAST FROM alice TO ALL: hi`   |
//! | `Consumed` | every 50 ms: delivery watermarks      | one `CONSUME [lamport] KIND BY bob FROM alice: hi` per delivery it covers |
//! | `Leave`    | a user leaves or is disconnected      | `LEAVE bob (reason)`                                |
//!
//! Consumption is logged compactly: `Consumed { marks: [(bob, 42)] }` says every message with
//! server sequence `<= 42` that was intended for bob (and not sent by bob) has been written to bob's
//! connection. The intended recipients of message `seq` are: for a broadcast, every user online
//! when it was stored (joined with `after < seq`, not yet left); for a unicast or multicast, the
//! named users (only those online are kept in the stored message). A sender is not its own recipient.

use chat_core::{ChatMessage, UserName};
use serde::{Deserialize, Serialize};

/// One journal record. Encoded with `chat_transport::codec::encode_payload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The server started; every session of an earlier run is over. Later sequence numbers are `> after`.
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
    /// A message was accepted; `message.id.seq` is its server sequence number.
    Store {
        /// The message as delivered (id = `(0, seq)`, Lamport stamp of the server).
        message: ChatMessage,
    },
    /// Delivery watermarks (see module docs).
    Consumed {
        /// `(user, upto)`: everything intended for `user` with `seq <= upto` was delivered.
        marks: Vec<(UserName, u64)>,
    },
    /// A user left.
    Leave {
        /// Who.
        name: UserName,
        /// Highest sequence number stored before the departure.
        after: u64,
        /// Why (`quit`, `disconnected`, `slow_consumer`, `shutdown`, ...).
        reason: String,
    },
}

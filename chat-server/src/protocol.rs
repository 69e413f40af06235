//! The server topology's frames (after the [`chat_transport::handshake`]).
//!
//! ```text
//! client                                   server
//!   │── Hello ──────────────────────────────►│   handshake (chat-transport)
//!   │◄────────────────────────────── Hello ──│
//!   │── Login { name } ─────────────────────►│   first frame; name unique among online users
//!   │   (or LoginWith { name, credential })  │   a password or token, for accounts
//!   │◄── Welcome { .. } | Refused { code } ──│   Refused (e.g. name_taken) is followed by close
//!   │── Send { req, recipients, body } ─────►│
//!   │◄── Sent { req, id, unknown } ──────────│   once durable; or Rejected { req, code } (unknown_user,
//!   │                                        │   too_long, protocol, storage_unavailable), or
//!   │                                        │   RateLimited { req, retry_after_ms }
//!   │◄── Message(ChatMessage) ───────────────│   every message the user may see, in server order
//!   │◄── Joined / Left ──────────────────────│
//!   │── Peers { req } / History { req } ────►│   answered by Peers / History (chunked, done=true last)
//!   │◄── Ping ─── Pong ──►  (and the reverse)│   liveness: silence for 3 heartbeats = dead
//!   │── Leave ──────────────────────────────►│   clean exit
//!   │◄── Closing { code, reason } ───────────│   server ends the session (shutdown, slow_consumer)
//! ```

use chat_core::{ChatMessage, ErrorCode, MessageId, Recipients, Timestamp, UserName};
use serde::{Deserialize, Serialize};

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Log in as `name`: must be the first frame.
    Login {
        /// The requested name.
        name: UserName,
    },
    /// Send a message; answered by `Sent` or `Rejected` with the same `req`.
    Send {
        /// Request ID chosen by the client, echoed in the answer.
        req: u64,
        /// Who it is for.
        recipients: Recipients,
        /// The text.
        body: String,
        /// The client's Lamport stamp of the send event.
        sent_at: Timestamp,
    },
    /// Ask who is online.
    Peers {
        /// Request ID.
        req: u64,
    },
    /// Ask for the last `limit` messages this user may see.
    History {
        /// Request ID.
        req: u64,
        /// How many messages at most.
        limit: u32,
    },
    /// Liveness probe; answered by `Pong`.
    Ping,
    /// Answer to the server's `Ping`.
    Pong,
    /// Leave cleanly.
    Leave,
    /// Log in as `name` with a credential (instead of `Login`, as the first frame). Appended after
    /// the first version's frames: a client without credentials still sends `Login`.
    LoginWith {
        /// The requested name.
        name: UserName,
        /// The password or the token of the account `name`.
        credential: Credential,
    },
}

/// What proves a user owns an account (see `chat-cli account`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credential {
    /// The account's password.
    Password(String),
    /// A token issued for the account (`chat-cli account token NAME`), for bots.
    Token(String),
}

impl std::fmt::Debug for Credential {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Password(***)"),
            Credential::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// Login accepted.
    Welcome {
        /// The name, as registered.
        name: UserName,
        /// Who is online (including this user).
        online: Vec<UserName>,
        /// The server's heartbeat interval: silence for three of them means the server is gone.
        heartbeat_ms: u64,
    },
    /// Login refused; the server closes the connection after this.
    Refused {
        /// Why (`name_taken`, `invalid_name`, `busy`, `protocol`).
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// A message this user may see, in the server's global order.
    Message(ChatMessage),
    /// A `Send` was accepted and ordered.
    Sent {
        /// The request ID of the `Send`.
        req: u64,
        /// The ID given to the message.
        id: MessageId,
        /// Named recipients that were not online (the others received the message).
        unknown: Vec<UserName>,
    },
    /// A request was refused.
    Rejected {
        /// The request ID.
        req: u64,
        /// Why.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// Answer to `Peers`.
    Peers {
        /// The request ID.
        req: u64,
        /// Online users, sorted.
        names: Vec<UserName>,
    },
    /// Answer to `History`, possibly in several frames; `done` marks the last one.
    History {
        /// The request ID.
        req: u64,
        /// Messages, oldest first.
        messages: Vec<ChatMessage>,
        /// Whether this is the last frame of the answer.
        done: bool,
    },
    /// Somebody logged in.
    Joined {
        /// Who.
        name: UserName,
    },
    /// Somebody left or was disconnected.
    Left {
        /// Who.
        name: UserName,
        /// Why (`quit`, `disconnected`, `timeout`, `slow_consumer`, `shutdown`).
        reason: String,
    },
    /// Liveness probe; answered by `Pong`.
    Ping,
    /// Answer to the client's `Ping`.
    Pong,
    /// The server is ending this session; the connection closes after this frame.
    Closing {
        /// Why (`shutting_down`, `slow_consumer`, `flood`, `storage_unavailable`, `protocol`).
        code: ErrorCode,
        /// Human-readable explanation.
        reason: String,
    },
    /// A `Send` was over this connection's rate limit: not delivered; send it again after
    /// `retry_after_ms` (the client library does). Refusals that are not heeded end in `Closing { flood }`.
    RateLimited {
        /// The request ID of the `Send`.
        req: u64,
        /// How long to wait before sending again, in milliseconds.
        retry_after_ms: u64,
    },
}

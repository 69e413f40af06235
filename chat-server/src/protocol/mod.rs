//! The server topology's frames (after the [`chat_transport::handshake`]).
//!
//! ```text
//! client                                   server
//!   │── Hello { version: 2 } ───────────────►│   handshake (chat-transport); the server answers with
//!   │◄────────────────── Hello { version } ──│   the client's version if it speaks it (1 or 2)
//!   │── Enter { name, credential?, resume?, quiet } ►│ first frame (or Login / LoginWith); name unique
//!   │◄── Welcome { .., session } | Refused ──│   Refused (e.g. name_taken) is followed by close
//!   │◄── Message .. (missed or offline) ─────│   after a resume: what was missed; after a login:
//!   │                                        │   messages kept while offline; then live traffic
//!   │── Send { req, recipients, body, key } ►│
//!   │◄── Sent { req, id, unknown, queued } ──│   once durable; or Rejected { req, code } (unknown_user,
//!   │                                        │   too_long, protocol, storage_unavailable, not_member), or
//!   │                                        │   RateLimited { req, retry_after_ms }
//!   │◄── Message(ChatMessage) ───────────────│   every message the user may see, in server order
//!   │◄── Joined / Left / RoomJoined / RoomParted / Notice
//!   │── JoinRoom / PartRoom { req, room } ──►│   answered by History { room } / Done
//!   │── Peers / History / Rooms / Who ──────►│   answered by the frame of the same name (History chunked)
//!   │◄── Ping ─── Pong ──►  (and the reverse)│   liveness: silence for 3 heartbeats = dead
//!   │── Leave ──────────────────────────────►│   clean exit (the session ends: no resume)
//!   │◄── Closing { code, reason } ───────────│   server ends the connection (shutdown, slow_consumer)
//! ```
//!
//! These are the frames of protocol version 2. A version 1 client (an older build) is still served:
//! the server converts its frames with the frozen version 1 types of [`v1`], and it sees exactly the
//! version 1 protocol (no rooms, times, queued recipients or resume).

pub mod v1;

use chat_core::{ChatMessage, ErrorCode, MessageId, Recipients, RoomInfo, RoomName, Timestamp, UserName};
use serde::{Deserialize, Serialize};

/// The protocol version of the frames below.
pub const VERSION: u16 = 2;

/// The protocol versions a server serves.
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u16> = v1::VERSION..=VERSION;

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
        /// Idempotency key chosen by the client, unique within its session (0: none). A `Send`
        /// repeated with the same key (after a resume) is stored once and answered with the first
        /// `Sent`.
        key: u64,
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
        /// Only this room's messages (the user must be a member), or everything the user may see.
        room: Option<RoomName>,
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
    /// Log in (version 2; instead of `Login` / `LoginWith`, as the first frame).
    Enter(Enter),
    /// Join a room (created if new); answered by `History { room }` with its recent messages.
    JoinRoom {
        /// Request ID.
        req: u64,
        /// The room.
        room: RoomName,
    },
    /// Leave a room; answered by `Done`.
    PartRoom {
        /// Request ID.
        req: u64,
        /// The room.
        room: RoomName,
    },
    /// Ask which rooms exist; answered by `Rooms`.
    Rooms {
        /// Request ID.
        req: u64,
    },
    /// Ask who is online in a room (or everywhere); answered by `Who`.
    Who {
        /// Request ID.
        req: u64,
        /// The room, or `None` for everyone online.
        room: Option<RoomName>,
    },
}

/// A version 2 login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enter {
    /// The requested name.
    pub name: UserName,
    /// A password or token, for an account.
    pub credential: Option<Credential>,
    /// Resume this session, if it is still kept.
    pub resume: Option<Resume>,
    /// Do not announce this session (one-shot commands, benchmarks): nobody sees it join or leave.
    pub quiet: bool,
}

/// What a client presents to resume its session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The session token from `Welcome`.
    pub token: String,
    /// The highest message sequence number (`id.seq`) the client received.
    pub cursor: u64,
}

impl std::fmt::Debug for Resume {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resume {{ token: ***, cursor: {} }}", self.cursor)
    }
}

/// The session a `Welcome` opens (or resumes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The secret that resumes this session (`Enter { resume }`) within the grace period.
    pub token: String,
    /// How long the server keeps the session after the connection drops, in milliseconds.
    pub grace_ms: u64,
    /// The rooms the user is a member of.
    pub rooms: Vec<RoomName>,
    /// `Some(missed)` if an earlier session was resumed: `missed` messages follow before live traffic.
    pub resumed: Option<u64>,
    /// Messages kept while the user was offline that follow before live traffic.
    pub offline: u64,
}

impl std::fmt::Debug for SessionInfo {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInfo")
            .field("token", &"***")
            .field("grace_ms", &self.grace_ms)
            .field("rooms", &self.rooms)
            .field("resumed", &self.resumed)
            .field("offline", &self.offline)
            .finish()
    }
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
        /// The session.
        session: SessionInfo,
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
        /// Named recipients nobody knows (never seen, no account): they will never receive it.
        unknown: Vec<UserName>,
        /// Named recipients who are offline but known: it waits for their next login.
        queued: Vec<UserName>,
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
        /// The room asked for (or joined), if any.
        room: Option<RoomName>,
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
    /// Somebody joined a room this user is in (the joiner included).
    RoomJoined {
        /// The room.
        room: RoomName,
        /// Who.
        name: UserName,
    },
    /// Somebody left a room this user is in (the one who left included).
    RoomParted {
        /// The room.
        room: RoomName,
        /// Who.
        name: UserName,
    },
    /// Answer to `Rooms`.
    Rooms {
        /// The request ID.
        req: u64,
        /// The rooms, sorted by name.
        rooms: Vec<RoomInfo>,
    },
    /// Answer to `Who`.
    Who {
        /// The request ID.
        req: u64,
        /// The room asked about, if any.
        room: Option<RoomName>,
        /// The users online there, sorted.
        names: Vec<UserName>,
    },
    /// A request that needs no other answer (`PartRoom`) was done.
    Done {
        /// The request ID.
        req: u64,
    },
    /// Something to tell the user that is neither an error nor a message.
    Notice {
        /// What happened.
        text: String,
    },
}

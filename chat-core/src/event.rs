//! What a topology reports to the program embedding the chat.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{ChatMessage, MessageId, NodeId, RoomName, UserName};

/// Machine-readable error codes, shared by both topologies and shown as `"code"` in `--json`
/// error events. Serialized in `snake_case` (`name_taken`, `unknown_user`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Another user online already has that name.
    NameTaken,
    /// A named recipient is not online.
    UnknownUser,
    /// A command line could not be understood.
    BadCommand,
    /// A body or list is over its limit.
    TooLong,
    /// The name breaks the naming rules.
    InvalidName,
    /// The connection to the server or the network was lost.
    Disconnected,
    /// This client could not keep up and was disconnected by the server.
    SlowConsumer,
    /// The server is shutting down.
    ShuttingDown,
    /// The peer speaks another protocol version.
    VersionMismatch,
    /// The server or node is at its connection limit.
    Busy,
    /// A protocol rule was broken (unexpected frame, a clock far ahead of the server's).
    Protocol,
    /// The server cannot store messages (disk full, I/O error): nothing was acknowledged; retry later.
    StorageUnavailable,
    /// Over the per-connection message or byte rate: not delivered; retry after the time given.
    RateLimited,
    /// Kept flooding after rate-limit warnings: disconnected.
    Flood,
    /// The password or token was wrong, or the account unknown (the same answer for both), or a
    /// credential is required: check it and log in again.
    AuthFailed,
    /// Not a member of that room: join it first.
    NotMember,
    /// A count limit was reached (rooms per user, rooms on the server): leave something first.
    TooMany,
}

impl ErrorCode {
    /// The `snake_case` string used on the wire and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::BadCommand => "bad_command",
            ErrorCode::TooLong => "too_long",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::Disconnected => "disconnected",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::Busy => "busy",
            ErrorCode::Protocol => "protocol",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Flood => "flood",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::NotMember => "not_member",
            ErrorCode::TooMany => "too_many",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One participant as a topology sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The participant's unique name.
    pub name: UserName,
    /// Its node ID (P2P topology only).
    pub node_id: Option<NodeId>,
    /// The address it listens on (P2P topology only).
    pub addr: Option<SocketAddr>,
    /// Whether it is the current coordinator (always false in the server topology).
    pub coordinator: bool,
}

impl PeerInfo {
    /// A participant known only by name (server topology).
    pub fn named(name: UserName) -> Self {
        PeerInfo { name, node_id: None, addr: None, coordinator: false }
    }
}

/// Something that happened, reported by [`crate::Transport::recv`] and [`crate::Chat::next_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message this participant may see, in delivery order (including its own messages).
    Message(ChatMessage),
    /// Somebody joined.
    PeerJoined(PeerInfo),
    /// Somebody left or was found dead.
    PeerLeft(PeerInfo),
    /// Somebody joined a room this participant is in.
    RoomJoined {
        /// The room.
        room: RoomName,
        /// Who.
        peer: PeerInfo,
    },
    /// Somebody left a room this participant is in (parted, or their session ended).
    RoomLeft {
        /// The room.
        room: RoomName,
        /// Who.
        peer: PeerInfo,
    },
    /// A (new) coordinator is known (P2P topology).
    CoordinatorChanged {
        /// Its name.
        name: UserName,
        /// Its node ID.
        node_id: NodeId,
        /// The election epoch (term) it won.
        epoch: u64,
    },
    /// An error reported asynchronously (for instance recipients unknown when the message was routed).
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// The connection is gone; `recv` returns `None` after this.
    Disconnected {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        reason: String,
    },
    /// The connection was lost; the transport tries again (`attempt`, from 1) in `in_ms` milliseconds.
    /// Sends meanwhile wait and go out after the resume.
    Reconnecting {
        /// Which attempt this will be.
        attempt: u32,
        /// When, in milliseconds from now.
        in_ms: u64,
    },
    /// The session is back; `missed` messages that arrived meanwhile follow (in order, once each).
    Resumed {
        /// How many messages are delivered because of the gap.
        missed: u64,
    },
    /// Something to tell the user that is neither an error nor a message (for instance, old offline
    /// messages that were dropped because too many waited).
    Notice {
        /// What happened.
        text: String,
    },
}

/// A room as listed by [`crate::Transport::rooms`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Its name.
    pub name: RoomName,
    /// How many of its members are online.
    pub members: u32,
}

/// What [`crate::Transport::send`] answers once the message has been accepted and ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The ID the message was given.
    pub id: MessageId,
    /// Named recipients nobody knows (never seen, no account): they will never receive it.
    pub unknown: Vec<UserName>,
    /// Named recipients who are offline but known: the message waits for their next login.
    pub queued: Vec<UserName>,
}

//! Protocol version 1, frozen: the frames of the first release, so that its clients keep working
//! and its journals keep reading.
//!
//! Version 2 changed the shape of some frames (a message carries its time, a `Send` an idempotency
//! key, a `Welcome` the session), and bincode encodes fields by position, so the first version's
//! frames are kept here as they were and converted:
//!
//! | direction | conversion                                                                           |
//! |-----------|--------------------------------------------------------------------------------------|
//! | client → server | [`ClientFrame`] → [`super::ClientFrame`]: `Send` without a key, `History` of everything |
//! | server → client | [`super::ServerFrame`] → [`ServerFrame`], or nothing: a version 1 client never sees rooms, room messages, notices or the session token; queued recipients are reported as unknown (not online), which is what version 1 meant |
//!
//! Error codes added after version 1 (`not_member`, `too_many`) reach a version 1 client as
//! `protocol`. The journal's original `Store` record holds a [`ChatMessage`] of this version.

use chat_core::{ErrorCode, MessageId, Timestamp, UserName};
use serde::{Deserialize, Serialize};

use super::Credential;

/// The first protocol version.
pub const VERSION: u16 = 1;

/// A message as version 1 carried it (no room, no time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Unique ID.
    pub id: MessageId,
    /// Who sent it.
    pub sender: UserName,
    /// Who it is for.
    pub recipients: Recipients,
    /// The text.
    pub body: String,
    /// Lamport timestamp of the ordering event.
    pub lamport: Timestamp,
}

/// Addressing as version 1 knew it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipients {
    /// One user.
    Unicast(UserName),
    /// Several users.
    Multicast(Vec<UserName>),
    /// Everybody online.
    Broadcast,
}

impl From<ChatMessage> for chat_core::ChatMessage {
    /// A version 1 message in today's form: its time is unknown (0).
    fn from(m: ChatMessage) -> Self {
        let recipients = match m.recipients {
            Recipients::Unicast(name) => chat_core::Recipients::Unicast(name),
            Recipients::Multicast(names) => chat_core::Recipients::Multicast(names),
            Recipients::Broadcast => chat_core::Recipients::Broadcast,
        };
        chat_core::ChatMessage { id: m.id, sender: m.sender, recipients, body: m.body, lamport: m.lamport, time: 0 }
    }
}

/// Today's message in version 1's form; `None` for a room message (version 1 has no rooms).
pub fn message(m: chat_core::ChatMessage) -> Option<ChatMessage> {
    let recipients = match m.recipients {
        chat_core::Recipients::Unicast(name) => Recipients::Unicast(name),
        chat_core::Recipients::Multicast(names) => Recipients::Multicast(names),
        chat_core::Recipients::Broadcast => Recipients::Broadcast,
        chat_core::Recipients::Room(_) => return None,
    };
    Some(ChatMessage { id: m.id, sender: m.sender, recipients, body: m.body, lamport: m.lamport })
}

/// Client → server, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Log in as `name`.
    Login {
        /// The requested name.
        name: UserName,
    },
    /// Send a message.
    Send {
        /// Request ID.
        req: u64,
        /// Who it is for.
        recipients: Recipients,
        /// The text.
        body: String,
        /// The client's Lamport stamp.
        sent_at: Timestamp,
    },
    /// Ask who is online.
    Peers {
        /// Request ID.
        req: u64,
    },
    /// Ask for history.
    History {
        /// Request ID.
        req: u64,
        /// How many messages at most.
        limit: u32,
    },
    /// Liveness probe.
    Ping,
    /// Answer to `Ping`.
    Pong,
    /// Leave cleanly.
    Leave,
    /// Log in with a credential.
    LoginWith {
        /// The requested name.
        name: UserName,
        /// The password or token.
        credential: Credential,
    },
}

impl From<ClientFrame> for super::ClientFrame {
    fn from(frame: ClientFrame) -> Self {
        use super::ClientFrame as F;
        match frame {
            ClientFrame::Login { name } => F::Login { name },
            ClientFrame::Send { req, recipients, body, sent_at } => {
                let recipients = match recipients {
                    Recipients::Unicast(name) => chat_core::Recipients::Unicast(name),
                    Recipients::Multicast(names) => chat_core::Recipients::Multicast(names),
                    Recipients::Broadcast => chat_core::Recipients::Broadcast,
                };
                F::Send { req, recipients, body, sent_at, key: 0 }
            }
            ClientFrame::Peers { req } => F::Peers { req },
            ClientFrame::History { req, limit } => F::History { req, limit, room: None },
            ClientFrame::Ping => F::Ping,
            ClientFrame::Pong => F::Pong,
            ClientFrame::Leave => F::Leave,
            ClientFrame::LoginWith { name, credential } => F::LoginWith { name, credential },
        }
    }
}

/// Server → client, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// Login accepted.
    Welcome {
        /// The name, as registered.
        name: UserName,
        /// Who is online.
        online: Vec<UserName>,
        /// The heartbeat interval.
        heartbeat_ms: u64,
    },
    /// Login refused.
    Refused {
        /// Why.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// A message.
    Message(ChatMessage),
    /// A `Send` was accepted.
    Sent {
        /// The request ID.
        req: u64,
        /// The message's ID.
        id: MessageId,
        /// Named recipients not online.
        unknown: Vec<UserName>,
    },
    /// A request was refused.
    Rejected {
        /// The request ID.
        req: u64,
        /// Why.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// Answer to `Peers`.
    Peers {
        /// The request ID.
        req: u64,
        /// Online users.
        names: Vec<UserName>,
    },
    /// Answer to `History`.
    History {
        /// The request ID.
        req: u64,
        /// Messages, oldest first.
        messages: Vec<ChatMessage>,
        /// Whether this is the last frame.
        done: bool,
    },
    /// Somebody logged in.
    Joined {
        /// Who.
        name: UserName,
    },
    /// Somebody left.
    Left {
        /// Who.
        name: UserName,
        /// Why.
        reason: String,
    },
    /// Liveness probe.
    Ping,
    /// Answer to `Ping`.
    Pong,
    /// The server ends the session.
    Closing {
        /// Why.
        code: ErrorCode,
        /// Explanation.
        reason: String,
    },
    /// Over the rate limit.
    RateLimited {
        /// The request ID.
        req: u64,
        /// When to retry, in milliseconds.
        retry_after_ms: u64,
    },
}

/// An error code a version 1 client can decode.
fn code(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NotMember | ErrorCode::TooMany => ErrorCode::Protocol,
        known => known,
    }
}

impl ServerFrame {
    /// Today's frame in version 1's form, or `None` if version 1 has nothing like it (rooms,
    /// notices, answers to requests a version 1 client cannot make).
    pub fn from_current(frame: super::ServerFrame) -> Option<ServerFrame> {
        use super::ServerFrame as F;
        Some(match frame {
            F::Welcome { name, online, heartbeat_ms, session: _ } => {
                ServerFrame::Welcome { name, online, heartbeat_ms }
            }
            F::Refused { code: c, message } => ServerFrame::Refused { code: code(c), message },
            F::Message(m) => ServerFrame::Message(message(m)?),
            F::Sent { req, id, mut unknown, queued } => {
                unknown.extend(queued);
                ServerFrame::Sent { req, id, unknown }
            }
            F::Rejected { req, code: c, message } => ServerFrame::Rejected { req, code: code(c), message },
            F::Peers { req, names } => ServerFrame::Peers { req, names },
            F::History { req, messages, done, room: _ } => {
                let messages = messages.into_iter().filter_map(message).collect();
                ServerFrame::History { req, messages, done }
            }
            F::Joined { name } => ServerFrame::Joined { name },
            F::Left { name, reason } => ServerFrame::Left { name, reason },
            F::Ping => ServerFrame::Ping,
            F::Pong => ServerFrame::Pong,
            F::Closing { code: c, reason } => ServerFrame::Closing { code: code(c), reason },
            F::RateLimited { req, retry_after_ms } => ServerFrame::RateLimited { req, retry_after_ms },
            F::RoomJoined { .. }
            | F::RoomParted { .. }
            | F::Rooms { .. }
            | F::Who { .. }
            | F::Done { .. }
            | F::Notice { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::NodeId;

    fn bob() -> UserName {
        UserName::new("bob").unwrap()
    }

    #[test]
    fn queued_recipients_are_unknown_to_version_1() {
        let id = MessageId::new(NodeId::SERVER, 3);
        let sent = super::super::ServerFrame::Sent { req: 1, id, unknown: vec![], queued: vec![bob()] };
        assert_eq!(ServerFrame::from_current(sent), Some(ServerFrame::Sent { req: 1, id, unknown: vec![bob()] }));
    }

    #[test]
    fn room_messages_do_not_exist_in_version_1() {
        let m = chat_core::ChatMessage {
            id: MessageId::new(NodeId::SERVER, 1),
            sender: bob(),
            recipients: chat_core::Recipients::Room(chat_core::RoomName::new("#ops").unwrap()),
            body: "hi".into(),
            lamport: Timestamp::new(1, NodeId::SERVER),
            time: 5,
        };
        assert_eq!(message(m.clone()), None);
        let history = super::super::ServerFrame::History { req: 2, messages: vec![m], done: true, room: None };
        assert_eq!(
            ServerFrame::from_current(history),
            Some(ServerFrame::History { req: 2, messages: vec![], done: true })
        );
        let code = super::super::ServerFrame::Rejected { req: 3, code: ErrorCode::NotMember, message: "x".into() };
        assert!(matches!(
            ServerFrame::from_current(code),
            Some(ServerFrame::Rejected { code: ErrorCode::Protocol, .. })
        ));
    }
}

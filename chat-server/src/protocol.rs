//! The server topology's frames (after the [`chat_transport::handshake`]).
//!
//! ```text
//! client                                   server
//!   │── Hello ──────────────────────────────►│   handshake (chat-transport)
//!   │◄────────────────────────────── Hello ──│
//!   │── Login { name } ─────────────────────►│   first frame; name unique among online users
//!   │◄── Welcome { .. } | Refused { code } ──│   Refused (e.g. name_taken) is followed by close
//!   │── Send { req, recipients, body } ─────►│
//!   │◄── Sent { req, id, unknown } ──────────│   or Rejected { req, code } (unknown_user, too_long)
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
        /// Why (`shutting_down`, `slow_consumer`, `protocol`).
        code: ErrorCode,
        /// Human-readable explanation.
        reason: String,
    },
}

/// A borrowed view of a [`ServerFrame`], decoded with
/// [`chat_transport::decode_payload_borrowed`]: names and bodies are `&str` slices of the frame, so
/// decoding a message allocates nothing (for load generators and other hot readers). The variants
/// mirror [`ServerFrame`] one for one, in the same order (the encoding depends on it; a test checks
/// every variant). Names are not validated in a view.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)] // each variant and field is documented on `ServerFrame`
pub enum ServerFrameView<'a> {
    Welcome {
        name: &'a str,
        #[serde(borrow)]
        online: Vec<&'a str>,
        heartbeat_ms: u64,
    },
    Refused {
        code: ErrorCode,
        message: &'a str,
    },
    Message(#[serde(borrow)] MessageView<'a>),
    Sent {
        req: u64,
        id: MessageId,
        #[serde(borrow)]
        unknown: Vec<&'a str>,
    },
    Rejected {
        req: u64,
        code: ErrorCode,
        message: &'a str,
    },
    Peers {
        req: u64,
        #[serde(borrow)]
        names: Vec<&'a str>,
    },
    History {
        req: u64,
        #[serde(borrow)]
        messages: Vec<MessageView<'a>>,
        done: bool,
    },
    Joined {
        name: &'a str,
    },
    Left {
        name: &'a str,
        reason: &'a str,
    },
    Ping,
    Pong,
    Closing {
        code: ErrorCode,
        reason: &'a str,
    },
}

/// A borrowed view of a [`ChatMessage`] (see [`ServerFrameView`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessageView<'a> {
    /// Unique ID.
    pub id: MessageId,
    /// Who sent it.
    pub sender: &'a str,
    /// Who it is for.
    #[serde(borrow)]
    pub recipients: RecipientsView<'a>,
    /// The text.
    pub body: &'a str,
    /// Lamport stamp of the ordering event.
    pub lamport: Timestamp,
}

/// A borrowed view of [`Recipients`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum RecipientsView<'a> {
    /// One user.
    Unicast(&'a str),
    /// A list of users.
    Multicast(#[serde(borrow)] Vec<&'a str>),
    /// Everybody.
    Broadcast,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::NodeId;
    use chat_transport::{decode_payload_borrowed, encode_payload};

    fn n(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    fn message(recipients: Recipients) -> ChatMessage {
        ChatMessage {
            id: MessageId::new(NodeId(0), 9),
            sender: n("alice"),
            recipients,
            body: "hi".into(),
            lamport: Timestamp::new(4, NodeId(0)),
        }
    }

    fn view_of(m: &ChatMessage) -> MessageView<'_> {
        MessageView {
            id: m.id,
            sender: m.sender.as_str(),
            recipients: match &m.recipients {
                Recipients::Unicast(u) => RecipientsView::Unicast(u.as_str()),
                Recipients::Multicast(l) => RecipientsView::Multicast(l.iter().map(UserName::as_str).collect()),
                Recipients::Broadcast => RecipientsView::Broadcast,
            },
            body: &m.body,
            lamport: m.lamport,
        }
    }

    /// Every variant of `ServerFrame` decodes as the matching `ServerFrameView`.
    #[test]
    fn views_mirror_every_server_frame() {
        let m1 = message(Recipients::Broadcast);
        let m2 = message(Recipients::Multicast(vec![n("bob"), n("carol")]));
        let m3 = message(Recipients::Unicast(n("bob")));
        let cases: Vec<(ServerFrame, ServerFrameView<'_>)> = vec![
            (
                ServerFrame::Welcome { name: n("bob"), online: vec![n("alice"), n("bob")], heartbeat_ms: 5 },
                ServerFrameView::Welcome { name: "bob", online: vec!["alice", "bob"], heartbeat_ms: 5 },
            ),
            (
                ServerFrame::Refused { code: ErrorCode::NameTaken, message: "x".into() },
                ServerFrameView::Refused { code: ErrorCode::NameTaken, message: "x" },
            ),
            (ServerFrame::Message(m1.clone()), ServerFrameView::Message(view_of(&m1))),
            (ServerFrame::Message(m2.clone()), ServerFrameView::Message(view_of(&m2))),
            (
                ServerFrame::Sent { req: 3, id: m1.id, unknown: vec![n("zed")] },
                ServerFrameView::Sent { req: 3, id: m1.id, unknown: vec!["zed"] },
            ),
            (
                ServerFrame::Rejected { req: 4, code: ErrorCode::TooLong, message: "long".into() },
                ServerFrameView::Rejected { req: 4, code: ErrorCode::TooLong, message: "long" },
            ),
            (ServerFrame::Peers { req: 5, names: vec![n("a")] }, ServerFrameView::Peers { req: 5, names: vec!["a"] }),
            (
                ServerFrame::History { req: 6, messages: vec![m3.clone()], done: true },
                ServerFrameView::History { req: 6, messages: vec![view_of(&m3)], done: true },
            ),
            (ServerFrame::Joined { name: n("a") }, ServerFrameView::Joined { name: "a" }),
            (
                ServerFrame::Left { name: n("a"), reason: "quit".into() },
                ServerFrameView::Left { name: "a", reason: "quit" },
            ),
            (ServerFrame::Ping, ServerFrameView::Ping),
            (ServerFrame::Pong, ServerFrameView::Pong),
            (
                ServerFrame::Closing { code: ErrorCode::SlowConsumer, reason: "slow".into() },
                ServerFrameView::Closing { code: ErrorCode::SlowConsumer, reason: "slow" },
            ),
        ];
        assert_eq!(cases.len(), 13, "one case per variant, plus extra addressing kinds");
        for (frame, expected) in cases {
            let payload = encode_payload(&frame).unwrap();
            let view: ServerFrameView<'_> = decode_payload_borrowed(&payload).unwrap();
            assert_eq!(view, expected, "{frame:?}");
        }
    }
}

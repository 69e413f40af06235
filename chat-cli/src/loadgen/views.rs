//! Borrowed views of chat-server's frames, for the load generator's hot read path.
//!
//! `ServerFrame` owns its names and bodies (`UserName`, `String`); decoding one allocates per
//! name and per body. A view decodes the same bytes with
//! [`chat_transport::decode_payload_borrowed`] into `&str` slices of the frame instead, so reading
//! a message allocates nothing. The views live here, beside their only user (the chat adapter in
//! `chat.rs`), not in chat-server's protocol module: the server never reads its own frames.
//!
//! | owned (chat-server)    | borrowed view        |
//! |------------------------|----------------------|
//! | `ServerFrame`          | [`ServerFrameView`]  |
//! | `ChatMessage`          | [`MessageView`]      |
//! | `Recipients`           | [`RecipientsView`]   |
//!
//! The encoding is bincode's, which depends on the order of variants and fields: the views mirror
//! the owned types one for one, and the test below checks that every `ServerFrame` variant
//! decodes as its view.

use chat_core::{ErrorCode, MessageId, Timestamp};
use serde::Deserialize;

/// A borrowed view of a [`ServerFrame`](chat_server::protocol::ServerFrame), decoded with
/// [`chat_transport::decode_payload_borrowed`]: names and bodies are `&str` slices of the frame, so
/// decoding a message allocates nothing (for load generators and other hot readers). The variants
/// mirror `ServerFrame` one for one, in the same order (the encoding depends on it; a test checks
/// every variant). Names are not validated in a view.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)] // each variant and field is documented on `ServerFrame`
pub enum ServerFrameView<'a> {
    Welcome {
        name: &'a str,
        #[serde(borrow)]
        online: Vec<&'a str>,
        heartbeat_ms: u64,
        #[serde(borrow)]
        session: SessionView<'a>,
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
        #[serde(borrow)]
        queued: Vec<&'a str>,
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
        room: Option<&'a str>,
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
    RateLimited {
        req: u64,
        retry_after_ms: u64,
    },
    RoomJoined {
        room: &'a str,
        name: &'a str,
    },
    RoomParted {
        room: &'a str,
        name: &'a str,
    },
    Rooms {
        req: u64,
        #[serde(borrow)]
        rooms: Vec<(&'a str, u32)>,
    },
    Who {
        req: u64,
        room: Option<&'a str>,
        #[serde(borrow)]
        names: Vec<&'a str>,
    },
    Done {
        req: u64,
    },
    Notice {
        text: &'a str,
    },
}

/// A borrowed view of a `SessionInfo` (see [`ServerFrameView`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)] // each field is documented on `SessionInfo`
pub struct SessionView<'a> {
    pub token: &'a str,
    pub grace_ms: u64,
    #[serde(borrow)]
    pub rooms: Vec<&'a str>,
    pub resumed: Option<u64>,
    pub offline: u64,
}

/// A borrowed view of a `ChatMessage` (see [`ServerFrameView`]).
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
    /// When it was ordered (ms since the Unix epoch).
    pub time: u64,
}

/// A borrowed view of `Recipients`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum RecipientsView<'a> {
    /// One user.
    Unicast(&'a str),
    /// A list of users.
    Multicast(#[serde(borrow)] Vec<&'a str>),
    /// Everybody.
    Broadcast,
    /// A room's members.
    Room(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::{ChatMessage, NodeId, Recipients, RoomInfo, RoomName, UserName};
    use chat_server::protocol::{ServerFrame, SessionInfo};
    use chat_transport::{decode_payload_borrowed, encode_payload};

    fn n(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    fn room(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }

    fn message(recipients: Recipients) -> ChatMessage {
        ChatMessage {
            id: MessageId::new(NodeId(0), 9),
            sender: n("alice"),
            recipients,
            body: "hi".into(),
            lamport: Timestamp::new(4, NodeId(0)),
            time: 0,
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
                Recipients::Room(r) => RecipientsView::Room(r.as_str()),
            },
            body: &m.body,
            lamport: m.lamport,
            time: m.time,
        }
    }

    /// Every variant of `ServerFrame` decodes as the matching `ServerFrameView`.
    #[test]
    fn views_mirror_every_server_frame() {
        let m1 = message(Recipients::Broadcast);
        let m2 = message(Recipients::Multicast(vec![n("bob"), n("carol")]));
        let m3 = message(Recipients::Unicast(n("bob")));
        let m4 = message(Recipients::Room(room("#ops")));
        let cases: Vec<(ServerFrame, ServerFrameView<'_>)> = vec![
            (
                ServerFrame::Welcome {
                    name: n("bob"),
                    online: vec![n("alice"), n("bob")],
                    heartbeat_ms: 5,
                    session: SessionInfo {
                        token: "t".into(),
                        grace_ms: 9,
                        rooms: vec![room("#ops")],
                        resumed: Some(2),
                        offline: 1,
                    },
                },
                ServerFrameView::Welcome {
                    name: "bob",
                    online: vec!["alice", "bob"],
                    heartbeat_ms: 5,
                    session: SessionView { token: "t", grace_ms: 9, rooms: vec!["#ops"], resumed: Some(2), offline: 1 },
                },
            ),
            (
                ServerFrame::Refused { code: ErrorCode::NameTaken, message: "x".into() },
                ServerFrameView::Refused { code: ErrorCode::NameTaken, message: "x" },
            ),
            (ServerFrame::Message(m1.clone()), ServerFrameView::Message(view_of(&m1))),
            (ServerFrame::Message(m2.clone()), ServerFrameView::Message(view_of(&m2))),
            (ServerFrame::Message(m4.clone()), ServerFrameView::Message(view_of(&m4))),
            (
                ServerFrame::Sent { req: 3, id: m1.id, unknown: vec![n("zed")], queued: vec![n("bob")] },
                ServerFrameView::Sent { req: 3, id: m1.id, unknown: vec!["zed"], queued: vec!["bob"] },
            ),
            (
                ServerFrame::Rejected { req: 4, code: ErrorCode::TooLong, message: "long".into() },
                ServerFrameView::Rejected { req: 4, code: ErrorCode::TooLong, message: "long" },
            ),
            (ServerFrame::Peers { req: 5, names: vec![n("a")] }, ServerFrameView::Peers { req: 5, names: vec!["a"] }),
            (
                ServerFrame::History { req: 6, messages: vec![m3.clone()], done: true, room: Some(room("#ops")) },
                ServerFrameView::History { req: 6, messages: vec![view_of(&m3)], done: true, room: Some("#ops") },
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
            (
                ServerFrame::RateLimited { req: 7, retry_after_ms: 20 },
                ServerFrameView::RateLimited { req: 7, retry_after_ms: 20 },
            ),
            (
                ServerFrame::RoomJoined { room: room("#a"), name: n("b") },
                ServerFrameView::RoomJoined { room: "#a", name: "b" },
            ),
            (
                ServerFrame::RoomParted { room: room("#a"), name: n("b") },
                ServerFrameView::RoomParted { room: "#a", name: "b" },
            ),
            (
                ServerFrame::Rooms { req: 8, rooms: vec![RoomInfo { name: room("#a"), members: 3 }] },
                ServerFrameView::Rooms { req: 8, rooms: vec![("#a", 3)] },
            ),
            (
                ServerFrame::Who { req: 9, room: Some(room("#a")), names: vec![n("b")] },
                ServerFrameView::Who { req: 9, room: Some("#a"), names: vec!["b"] },
            ),
            (ServerFrame::Done { req: 10 }, ServerFrameView::Done { req: 10 }),
            (ServerFrame::Notice { text: "hey".into() }, ServerFrameView::Notice { text: "hey" }),
        ];
        assert_eq!(cases.len(), 21, "one case per variant, plus extra addressing kinds");
        for (frame, expected) in cases {
            let payload = encode_payload(&frame).unwrap();
            let view: ServerFrameView<'_> = decode_payload_borrowed(&payload).unwrap();
            assert_eq!(view, expected, "{frame:?}");
        }
    }
}

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
//!
//! Cheaper still, [`message_seq_and_body`] reads only what a subscriber checks of a `Message` frame
//! (the sequence number and the body) by walking bincode's layout by hand, without serde; tests
//! check it against the codec, and any other frame (or a malformed one) falls back to the view.

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

/// The `ServerFrame::Message` variant's index in bincode's encoding (checked by a test).
const MESSAGE_VARIANT: u64 = 2;

/// The `ServerFrame::Joined` and `ServerFrame::Left` variants' indices (checked by a test).
const PRESENCE_VARIANTS: [u64; 2] = [7, 8];

/// Whether `payload` is a `Joined` or `Left` frame (presence, which a generator only skips: a join
/// storm sends one to everybody online per login), known from its first byte(s) without decoding.
pub fn is_presence(payload: &[u8]) -> bool {
    let mut b = payload;
    varint(&mut b).is_some_and(|v| PRESENCE_VARIANTS.contains(&v))
}

/// Reads one bincode varint (the `standard()` configuration) at the start of `b`; advances `b`.
fn varint(b: &mut &[u8]) -> Option<u64> {
    let (&first, rest) = b.split_first()?;
    let (value, used) = match first {
        0..=250 => (u64::from(first), 0),
        251 => (u64::from(u16::from_le_bytes(*rest.first_chunk::<2>()?)), 2),
        252 => (u64::from(u32::from_le_bytes(*rest.first_chunk::<4>()?)), 4),
        253 => (u64::from_le_bytes(*rest.first_chunk::<8>()?), 8),
        _ => return None, // u128 or invalid: not in a message's header
    };
    *b = &rest[used..];
    Some(value)
}

/// Reads a length-prefixed string's bytes at the start of `b`; advances `b`.
fn bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(b)?).ok()?;
    if b.len() < len {
        return None;
    }
    let (s, rest) = b.split_at(len);
    *b = rest;
    Some(s)
}

/// The sequence number and body of a `ServerFrame::Message` payload, read without decoding the rest
/// (sender, recipients, stamps); `None` for any other frame, or one that does not parse this way
/// (the caller then decodes it as a [`ServerFrameView`], which reports what is wrong).
pub fn message_seq_and_body(payload: &[u8]) -> Option<(u64, &[u8])> {
    let mut b = payload;
    if varint(&mut b)? != MESSAGE_VARIANT {
        return None;
    }
    let _origin = varint(&mut b)?;
    let seq = varint(&mut b)?;
    let _sender = bytes(&mut b)?;
    match varint(&mut b)? {
        0 | 3 => {
            bytes(&mut b)?; // Unicast(name) / Room(room)
        }
        1 => {
            for _ in 0..varint(&mut b)? {
                bytes(&mut b)?; // Multicast(names)
            }
        }
        2 => {} // Broadcast
        _ => return None,
    }
    let body = bytes(&mut b)?;
    Some((seq, body))
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

    /// The hand-read sequence number and body agree with the codec for every kind of recipients and
    /// for values on each side of every varint width; other frames and truncated ones are refused.
    #[test]
    fn the_quick_read_of_a_message_agrees_with_the_codec() {
        let many: Vec<UserName> = (0..300).map(|i| n(&format!("u{i}"))).collect();
        let recipients = [
            Recipients::Broadcast,
            Recipients::Unicast(n("bob")),
            Recipients::Multicast(many),
            Recipients::Room(room("#ops")),
        ];
        let long = "x".repeat(70_000);
        for r in recipients {
            for seq in [0, 250, 251, 65_535, 65_536, u64::from(u32::MAX), u64::from(u32::MAX) + 1, u64::MAX] {
                for body in ["", "hi", long.as_str()] {
                    let mut m = message(r.clone());
                    (m.id.seq, m.id.origin, m.body) = (seq, NodeId(seq), body.to_string());
                    let payload = encode_payload(&ServerFrame::Message(m.clone())).unwrap();
                    let Ok(ServerFrameView::Message(v)) = decode_payload_borrowed::<ServerFrameView>(&payload) else {
                        panic!("the codec decodes a message")
                    };
                    assert_eq!(message_seq_and_body(&payload), Some((v.id.seq, v.body.as_bytes())));
                    for cut in [1, 3, payload.len() / 2] {
                        let short = &payload[..payload.len().saturating_sub(cut).min(payload.len() - 1)];
                        if let Some((s, b)) = message_seq_and_body(short) {
                            // Only the stamps after the body can be cut and still read this far.
                            assert_eq!((s, b), (seq, body.as_bytes()));
                        }
                    }
                }
            }
        }
        let others = [ServerFrame::Ping, ServerFrame::Joined { name: n("bob") }, ServerFrame::Done { req: 2 }];
        for frame in others {
            assert_eq!(message_seq_and_body(&encode_payload(&frame).unwrap()), None);
        }
    }

    #[test]
    fn presence_is_known_from_the_variant_alone() {
        let left = ServerFrame::Left { name: n("bob"), reason: "quit".into() };
        for frame in [ServerFrame::Joined { name: n("bob") }, left] {
            assert!(is_presence(&encode_payload(&frame).unwrap()));
        }
        let m = ServerFrame::Message(message(Recipients::Broadcast));
        for frame in [ServerFrame::Ping, m, ServerFrame::Done { req: 2 }] {
            assert!(!is_presence(&encode_payload(&frame).unwrap()));
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

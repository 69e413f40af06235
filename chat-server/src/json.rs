//! The JSON events: one object per event, the public contract that `chat-cli --json` prints (one
//! per line) and the web client's WebSocket sends (one per text frame, see [`crate::web`]). This
//! module is its only implementation; fields are only ever added.
//!
//! | `type`        | fields                                                                  |
//! |---------------|-------------------------------------------------------------------------|
//! | `listening`   | `addr`, `fingerprint` (with TLS: `SHA256:<hex>` of the certificate), `text_addr` (with `--text-listen`), `web_addr` (with `--web`) |
//! | `ready`       | `name`, `node_id` (P2P only), `rooms` (the rooms this user is in); on the WebSocket also `token`, `grace_ms` |
//! | `message`     | `id` (`origin:seq`), `from`, `kind` (`broadcast`, `unicast`, `multicast`, `room`), `to` (empty for broadcast and room), `room` (room messages), `text`, `lamport`, `time` (RFC 3339 UTC, `null` if unknown) |
//! | `sent`        | `id`, `unknown`, `queued`: the acknowledgement of one of your own sends, once durable; on the WebSocket also `key` if the send had one |
//! | `joined`/`left` | `name`; `room` when it is about a room                                |
//! | `peers`       | `peers`: `[{name, node_id?, addr?, coordinator?}]`                      |
//! | `history`     | `messages`: message objects, oldest first; `room` for a room's history  |
//! | `rooms`       | `rooms`: `[{name, members}]`                                            |
//! | `who`         | `room` (or `null`), `names`                                             |
//! | `coordinator` | `name`, `node_id`, `epoch` (P2P only)                                   |
//! | `reconnecting`| `attempt`, `in_ms`: the connection was lost, the client tries again     |
//! | `resumed`     | `missed`: the session is back; that many missed messages follow         |
//! | `notice`      | `text`: something to know that is not an error                         |
//! | `error`       | `code`, `message`; on the WebSocket also `key` (a send's) and `retry_after_ms` (`rate_limited`) |
//!
//! Each function returns one event; callers add the fields of their own front end (the WebSocket's
//! `token`, `key`, ...) to the object.

use chat_core::{ChatMessage, ErrorCode, NodeId, PeerInfo, RoomInfo, RoomName, SendReceipt, UserName};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// `ms` milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds
/// (`2026-11-29T20:41:07.123Z`); `None` for 0 (unknown: a message from an older log).
pub fn rfc3339(ms: u64) -> Option<String> {
    if ms == 0 {
        return None;
    }
    let t = DateTime::<Utc>::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    Some(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

fn names(names: &[UserName]) -> Vec<&str> {
    names.iter().map(UserName::as_str).collect()
}

/// `listening`: the server's addresses.
pub fn listening(addr: &str, fingerprint: Option<&str>, text_addr: Option<&str>, web_addr: Option<&str>) -> Value {
    let mut v = json!({ "type": "listening", "addr": addr });
    if let Some(fingerprint) = fingerprint {
        v["fingerprint"] = json!(fingerprint);
    }
    if let Some(text_addr) = text_addr {
        v["text_addr"] = json!(text_addr);
    }
    if let Some(web_addr) = web_addr {
        v["web_addr"] = json!(web_addr);
    }
    v
}

/// `ready`: logged in (or joined) as `name`.
pub fn ready(name: &UserName, node_id: Option<NodeId>, rooms: &[RoomName]) -> Value {
    let mut v = json!({ "type": "ready", "name": name.as_str() });
    if let Some(id) = node_id {
        v["node_id"] = json!(id.0);
    }
    v["rooms"] = json!(rooms.iter().map(RoomName::as_str).collect::<Vec<_>>());
    v
}

/// `message`: a message (also the elements of `history`).
pub fn message(m: &ChatMessage) -> Value {
    let mut v = json!({
        "type": "message",
        "id": m.id.to_string(),
        "from": m.sender.as_str(),
        "kind": m.kind().as_str(),
        "to": names(m.recipients.names()),
        "text": m.body,
        "lamport": m.lamport.counter,
        "time": rfc3339(m.time),
    });
    if let Some(room) = m.recipients.room() {
        v["room"] = json!(room.as_str());
    }
    v
}

/// `joined`: somebody joined the chat, or `room`.
pub fn joined(name: &UserName, room: Option<&RoomName>) -> Value {
    membership("joined", name, room)
}

/// `left`: somebody left the chat, or `room`.
pub fn left(name: &UserName, room: Option<&RoomName>) -> Value {
    membership("left", name, room)
}

fn membership(what: &str, name: &UserName, room: Option<&RoomName>) -> Value {
    let mut v = json!({ "type": what, "name": name.as_str() });
    if let Some(room) = room {
        v["room"] = json!(room.as_str());
    }
    v
}

/// The message of the `unknown_user` error that precedes a `sent` naming unknown recipients.
pub fn not_delivered(unknown: &[UserName]) -> String {
    format!("not delivered to {} (unknown here)", names(unknown).join(", "))
}

/// The events acknowledging a send: an `unknown_user` error first if some named recipients are
/// unknown, then `sent`.
pub fn sent(receipt: &SendReceipt) -> Vec<Value> {
    let mut events = Vec::with_capacity(2);
    if !receipt.unknown.is_empty() {
        events.push(error(ErrorCode::UnknownUser, &not_delivered(&receipt.unknown)));
    }
    events.push(json!({
        "type": "sent",
        "id": receipt.id.to_string(),
        "unknown": names(&receipt.unknown),
        "queued": names(&receipt.queued),
    }));
    events
}

/// `peers`: who is online (with node IDs, addresses and the coordinator in P2P).
pub fn peers(peers: &[PeerInfo]) -> Value {
    let list: Vec<Value> = peers
        .iter()
        .map(|p| {
            let mut v = json!({ "name": p.name.as_str() });
            if let Some(id) = p.node_id {
                v["node_id"] = json!(id.0);
                v["addr"] = json!(p.addr.map(|a| a.to_string()));
                v["coordinator"] = json!(p.coordinator);
            }
            v
        })
        .collect();
    json!({ "type": "peers", "peers": list })
}

/// `history`: messages, oldest first (of `room`, or of everything this user may see).
pub fn history(room: Option<&RoomName>, messages: &[ChatMessage]) -> Value {
    let list: Vec<Value> = messages.iter().map(message).collect();
    let mut v = json!({ "type": "history", "messages": list });
    if let Some(room) = room {
        v["room"] = json!(room.as_str());
    }
    v
}

/// `rooms`: the rooms and how many of their members are online.
pub fn rooms(rooms: &[RoomInfo]) -> Value {
    let list: Vec<Value> = rooms.iter().map(|r| json!({ "name": r.name.as_str(), "members": r.members })).collect();
    json!({ "type": "rooms", "rooms": list })
}

/// `who`: who is online in `room` (or anywhere).
pub fn who(room: Option<&RoomName>, who: &[UserName]) -> Value {
    json!({ "type": "who", "room": room.map(RoomName::as_str), "names": names(who) })
}

/// `coordinator`: a new coordinator (P2P).
pub fn coordinator(name: &UserName, node_id: NodeId, epoch: u64) -> Value {
    json!({ "type": "coordinator", "name": name.as_str(), "node_id": node_id.0, "epoch": epoch })
}

/// `reconnecting`: the connection was lost; attempt `attempt` follows in `in_ms`.
pub fn reconnecting(attempt: u32, in_ms: u64) -> Value {
    json!({ "type": "reconnecting", "attempt": attempt, "in_ms": in_ms })
}

/// `resumed`: the session is back; `missed` messages follow.
pub fn resumed(missed: u64) -> Value {
    json!({ "type": "resumed", "missed": missed })
}

/// `notice`: something to know that is not an error.
pub fn notice(text: &str) -> Value {
    json!({ "type": "notice", "text": text })
}

/// `error`: something went wrong (`code` says what to do).
pub fn error(code: ErrorCode, message: &str) -> Value {
    json!({ "type": "error", "code": code.as_str(), "message": message })
}

#[cfg(test)]
mod tests {
    use chat_core::{MessageId, Recipients, Timestamp};

    use super::*;

    fn n(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_795_984_867_123).as_deref(), Some("2026-11-29T20:41:07.123Z"));
        assert_eq!(rfc3339(0), None);
        assert_eq!(rfc3339(u64::MAX), None, "out of range: unknown, not a panic");
    }

    #[test]
    fn events_have_exactly_their_fields() {
        let ops = RoomName::new("#ops").unwrap();
        let m = ChatMessage {
            id: MessageId::new(NodeId(0), 7),
            sender: n("alice"),
            recipients: Recipients::Room(ops.clone()),
            body: "<b>hi</b>".into(),
            lamport: Timestamp::new(12, NodeId(0)),
            time: 1_795_984_867_123,
        };
        assert_eq!(
            message(&m),
            json!({"type": "message", "id": "0:7", "from": "alice", "kind": "room", "to": [], "room": "#ops",
                   "text": "<b>hi</b>", "lamport": 12, "time": "2026-11-29T20:41:07.123Z"})
        );
        assert_eq!(
            listening("127.0.0.1:7878", None, None, Some("127.0.0.1:8080")),
            json!({"type": "listening", "addr": "127.0.0.1:7878", "web_addr": "127.0.0.1:8080"})
        );
        let receipt = SendReceipt { id: MessageId::new(NodeId(0), 9), unknown: vec![], queued: vec![n("dan")] };
        assert_eq!(sent(&receipt), [json!({"type": "sent", "id": "0:9", "unknown": [], "queued": ["dan"]})]);
        assert_eq!(who(None, &[n("bob")]), json!({"type": "who", "room": null, "names": ["bob"]}));
        assert_eq!(
            ready(&n("bob"), Some(NodeId(3)), &[]),
            json!({"type": "ready", "name": "bob", "node_id": 3, "rooms": []})
        );
    }
}

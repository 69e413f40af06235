//! Output: human lines or one JSON object per line (`--json`), always on standard output.
//!
//! JSON events (a public contract; extend compatibly):
//!
//! | `type`        | fields                                                                  |
//! |---------------|-------------------------------------------------------------------------|
//! | `listening`   | `addr`, `fingerprint` (with TLS: `SHA256:<hex>` of the certificate), `text_addr` (with `--text-listen`) |
//! | `ready`       | `name`, `node_id` (P2P only), `rooms` (the rooms this user is in)        |
//! | `message`     | `id`, `from`, `kind` (`broadcast`, `unicast`, `multicast`, `room`), `to` (empty for broadcast and room), `room` (room messages), `text`, `lamport`, `time` (RFC 3339 UTC, `null` if unknown) |
//! | `sent`        | `id`, `unknown`, `queued`: the acknowledgement of one of your own sends, once durable |
//! | `joined`/`left` | `name`; `room` when it is about a room                                |
//! | `peers`       | `peers`: `[{name, node_id?, addr?, coordinator?}]`                      |
//! | `history`     | `messages`: message objects, oldest first; `room` for a room's history  |
//! | `rooms`       | `rooms`: `[{name, members}]`                                            |
//! | `who`         | `room` (or `null`), `names`                                             |
//! | `coordinator` | `name`, `node_id`, `epoch` (P2P only)                                   |
//! | `reconnecting`| `attempt`, `in_ms`: the connection was lost, the client tries again     |
//! | `resumed`     | `missed`: the session is back; that many missed messages follow         |
//! | `notice`      | `text`: something to know that is not an error                         |
//! | `error`       | `code`, `message`                                                       |

use chat_core::{ChatMessage, ErrorCode, MessageKind, NodeId, PeerInfo, RoomInfo, RoomName, SendReceipt, UserName};
use serde_json::{Value, json};

use crate::clock_text::{TimeStyle, rfc3339};
use crate::safe_text::{CONTINUATION, body_lines, inline};

/// Where finished lines go.
pub trait Sink: Send {
    /// Prints one line (without its newline).
    fn line(&mut self, line: String);
}

/// Plain standard output.
pub struct Stdout;

impl Sink for Stdout {
    fn line(&mut self, line: String) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Renders events for a person or a program.
pub struct Renderer {
    json: bool,
    show_clock: bool,
    times: TimeStyle,
    me: Option<UserName>,
    sink: Box<dyn Sink>,
}

/// A message as a JSON object (also used inside `history`).
pub fn message_json(m: &ChatMessage) -> Value {
    let to: Vec<&str> = m.recipients.names().iter().map(UserName::as_str).collect();
    let mut v = json!({
        "type": "message",
        "id": m.id.to_string(),
        "from": m.sender.as_str(),
        "kind": m.kind().as_str(),
        "to": to,
        "text": m.body,
        "lamport": m.lamport.counter,
        "time": rfc3339(m.time),
    });
    if let Some(room) = m.recipients.room() {
        v["room"] = json!(room.as_str());
    }
    v
}

fn names_json(names: &[UserName]) -> Vec<&str> {
    names.iter().map(UserName::as_str).collect()
}

fn peer_json(p: &PeerInfo) -> Value {
    let mut v = json!({ "name": p.name.as_str() });
    if let Some(id) = p.node_id {
        v["node_id"] = json!(id.0);
        v["addr"] = json!(p.addr.map(|a| a.to_string()));
        v["coordinator"] = json!(p.coordinator);
    }
    v
}

impl Renderer {
    /// A renderer writing to `sink`.
    pub fn new(json: bool, show_clock: bool, sink: Box<dyn Sink>) -> Self {
        Renderer { json, show_clock, times: TimeStyle::default(), me: None, sink }
    }

    /// How human output shows times (default: local `HH:MM`).
    pub fn set_times(&mut self, times: TimeStyle) {
        self.times = times;
    }

    /// Replaces the sink (when line editing starts).
    pub fn set_sink(&mut self, sink: Box<dyn Sink>) {
        self.sink = sink;
    }

    fn emit(&mut self, value: Value) {
        self.sink.line(value.to_string());
    }

    fn human(&mut self, line: String) {
        self.sink.line(line);
    }

    /// The server is listening (and serving the text protocol on `text_addr`).
    pub fn listening(&mut self, addr: &str, fingerprint: Option<&str>, text_addr: Option<&str>) {
        if self.json {
            let mut v = json!({ "type": "listening", "addr": addr });
            if let Some(fingerprint) = fingerprint {
                v["fingerprint"] = json!(fingerprint);
            }
            if let Some(text_addr) = text_addr {
                v["text_addr"] = json!(text_addr);
            }
            self.emit(v);
        } else {
            let tls = fingerprint.map(|f| format!(" with TLS, certificate {f}")).unwrap_or_default();
            let text = text_addr.map(|t| format!(", text protocol on {t}")).unwrap_or_default();
            self.human(format!("listening on {addr}{tls}{text} (Ctrl-C to stop)"));
        }
    }

    /// Logged in / joined.
    pub fn ready(&mut self, name: &UserName, node_id: Option<NodeId>, rooms: &[RoomName]) {
        self.me = Some(name.clone());
        if self.json {
            let mut v = json!({ "type": "ready", "name": name.as_str() });
            if let Some(id) = node_id {
                v["node_id"] = json!(id.0);
            }
            v["rooms"] = json!(rooms.iter().map(RoomName::as_str).collect::<Vec<_>>());
            self.emit(v);
        } else {
            let id = node_id.map(|id| format!(" as node {id}")).unwrap_or_default();
            self.human(format!("* joined as {}{id}; type /help for commands", inline(name.as_str())));
            if !rooms.is_empty() {
                let rooms: Vec<String> = rooms.iter().map(|r| inline(r.as_str())).collect();
                self.human(format!("* you are in {}", rooms.join(", ")));
            }
        }
    }

    /// A message line: `12:04 [alice]: hi`, `[alice → you]: hi`, `[alice → {bob, carol}]: hi` (a
    /// multicast, even to one name), `[alice → #ops]: hi`; a body of several lines goes on indented
    /// continuation lines (`  | more`). Names and text are escaped (`safe_text`).
    pub fn message_line(&self, m: &ChatMessage) -> String {
        let clock = if self.show_clock { format!("({}) ", m.lamport.counter) } else { String::new() };
        let time = self.times.prefix(m.time);
        let sender = inline(m.sender.as_str());
        let head = match m.kind() {
            MessageKind::Broadcast => format!("[{sender}]"),
            MessageKind::Unicast => {
                let to = &m.recipients.names()[0];
                let to = if Some(to) == self.me.as_ref() { "you".to_string() } else { inline(to.as_str()) };
                format!("[{sender} → {to}]")
            }
            MessageKind::Multicast => {
                let to: Vec<String> = m.recipients.names().iter().map(|n| inline(n.as_str())).collect();
                format!("[{sender} → {{{}}}]", to.join(", "))
            }
            MessageKind::Room => {
                let room = m.recipients.room().map(|r| inline(r.as_str())).unwrap_or_default();
                format!("[{sender} → {room}]")
            }
        };
        let mut lines = body_lines(&m.body).into_iter();
        let mut out = format!("{time}{clock}{head}: {}", lines.next().unwrap_or_default());
        for more in lines {
            out.push('\n');
            out.push_str(CONTINUATION);
            out.push_str(&more);
        }
        out
    }

    /// A delivered message.
    pub fn message(&mut self, m: &ChatMessage) {
        if self.json {
            self.emit(message_json(m));
        } else {
            let line = self.message_line(m);
            self.human(line);
        }
    }

    /// Somebody joined (the chat, or `room`).
    pub fn joined(&mut self, p: &PeerInfo, room: Option<&RoomName>) {
        self.membership("joined", p, room);
    }

    /// Somebody left (the chat, or `room`).
    pub fn left(&mut self, p: &PeerInfo, room: Option<&RoomName>) {
        self.membership("left", p, room);
    }

    fn membership(&mut self, what: &str, p: &PeerInfo, room: Option<&RoomName>) {
        if self.json {
            let mut v = json!({ "type": what, "name": p.name.as_str() });
            if let Some(room) = room {
                v["room"] = json!(room.as_str());
            }
            self.emit(v);
        } else {
            let room = room.map(|r| format!(" {}", inline(r.as_str()))).unwrap_or_default();
            self.human(format!("* {} {what}{room}", inline(p.name.as_str())));
        }
    }

    /// The acknowledgement of one of our sends (JSON: always, and an `unknown_user` error first if
    /// some named recipients are unknown, as before `sent` existed; human: only what needs saying).
    pub fn sent(&mut self, receipt: &SendReceipt) {
        if !receipt.unknown.is_empty() {
            let names: Vec<&str> = receipt.unknown.iter().map(UserName::as_str).collect();
            let message = format!("not delivered to {} (unknown here)", names.join(", "));
            self.error(ErrorCode::UnknownUser, &message);
        }
        if self.json {
            self.emit(json!({
                "type": "sent",
                "id": receipt.id.to_string(),
                "unknown": names_json(&receipt.unknown),
                "queued": names_json(&receipt.queued),
            }));
            return;
        }
        for name in &receipt.queued {
            self.human(format!("* {} is offline; they will get it when they return", inline(name.as_str())));
        }
    }

    /// The rooms.
    pub fn rooms(&mut self, rooms: &[RoomInfo]) {
        if self.json {
            let list: Vec<Value> =
                rooms.iter().map(|r| json!({ "name": r.name.as_str(), "members": r.members })).collect();
            self.emit(json!({ "type": "rooms", "rooms": list }));
        } else if rooms.is_empty() {
            self.human("* no rooms yet: /join #name creates one".into());
        } else {
            let list: Vec<String> =
                rooms.iter().map(|r| format!("{} ({})", inline(r.name.as_str()), r.members)).collect();
            self.human(format!("* rooms: {}", list.join(", ")));
        }
    }

    /// Who is in a room (or online).
    pub fn who(&mut self, room: Option<&RoomName>, names: &[UserName]) {
        if self.json {
            self.emit(json!({ "type": "who", "room": room.map(RoomName::as_str), "names": names_json(names) }));
        } else {
            let list: Vec<String> = names.iter().map(|n| inline(n.as_str())).collect();
            let place = room.map_or("online".to_string(), |r| format!("in {}", inline(r.as_str())));
            self.human(format!("* {place} ({}): {}", names.len(), list.join(", ")));
        }
    }

    /// The connection was lost; the client tries again.
    pub fn reconnecting(&mut self, attempt: u32, in_ms: u64) {
        if self.json {
            self.emit(json!({ "type": "reconnecting", "attempt": attempt, "in_ms": in_ms }));
        } else {
            let secs = in_ms as f64 / 1000.0;
            self.human(format!("* connection lost; reconnecting in {secs:.1} s (attempt {attempt})"));
        }
    }

    /// The session is back.
    pub fn resumed(&mut self, missed: u64) {
        if self.json {
            self.emit(json!({ "type": "resumed", "missed": missed }));
        } else if missed == 0 {
            self.human("* reconnected".into());
        } else {
            self.human(format!("* reconnected; {missed} message(s) you missed follow"));
        }
    }

    /// A notice.
    pub fn notice(&mut self, text: &str) {
        if self.json {
            self.emit(json!({ "type": "notice", "text": text }));
        } else {
            self.human(format!("* {}", inline(text)));
        }
    }

    /// The list of peers.
    pub fn peers(&mut self, peers: &[PeerInfo]) {
        if self.json {
            let list: Vec<Value> = peers.iter().map(peer_json).collect();
            self.emit(json!({ "type": "peers", "peers": list }));
        } else {
            let names: Vec<String> = peers
                .iter()
                .map(|p| {
                    let mut s = inline(p.name.as_str());
                    if let Some(id) = p.node_id {
                        s.push_str(&format!(" (node {id}"));
                        if let Some(addr) = p.addr {
                            s.push_str(&format!(", {addr}"));
                        }
                        if p.coordinator {
                            s.push_str(", coordinator");
                        }
                        s.push(')');
                    }
                    s
                })
                .collect();
            self.human(format!("* online ({}): {}", peers.len(), names.join(", ")));
        }
    }

    /// History (of a room, or of everything this user may see).
    pub fn history(&mut self, room: Option<&RoomName>, messages: &[ChatMessage]) {
        if self.json {
            let list: Vec<Value> = messages.iter().map(message_json).collect();
            let mut v = json!({ "type": "history", "messages": list });
            if let Some(room) = room {
                v["room"] = json!(room.as_str());
            }
            self.emit(v);
        } else {
            let of = room.map(|r| format!(" of {}", inline(r.as_str()))).unwrap_or_default();
            self.human(format!("* history{of}: {} message(s)", messages.len()));
            for m in messages {
                let line = self.message_line(m).replace('\n', "\n  ");
                self.human(format!("  {line}"));
            }
        }
    }

    /// A new coordinator (P2P).
    pub fn coordinator(&mut self, name: &UserName, node_id: NodeId, epoch: u64) {
        if self.json {
            self.emit(json!({ "type": "coordinator", "name": name.as_str(), "node_id": node_id.0, "epoch": epoch }));
        } else {
            self.human(format!("* coordinator is now {} (node {node_id}, epoch {epoch})", inline(name.as_str())));
        }
    }

    /// An error event.
    pub fn error(&mut self, code: ErrorCode, message: &str) {
        if self.json {
            self.emit(json!({ "type": "error", "code": code.as_str(), "message": message }));
        } else {
            self.human(format!("! {code}: {}", inline(message)));
        }
    }

    /// Help (human mode only; JSON mode stays machine-readable).
    pub fn help(&mut self, text: &str) {
        if !self.json {
            self.human(text.to_string());
        }
    }

    /// A system line for people (nothing in JSON mode).
    pub fn info(&mut self, text: &str) {
        if !self.json {
            self.human(format!("* {text}"));
        }
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

//! Output: human lines or one JSON object per line (`--json`), always on standard output.
//!
//! JSON events are a public contract with one implementation, shared with the web client's
//! WebSocket: [`chat_server::json`] (its module documentation lists every event and field).

use chat_core::{ChatMessage, ErrorCode, MessageKind, NodeId, PeerInfo, RoomInfo, RoomName, SendReceipt, UserName};
use chat_server::json;
use serde_json::Value;

use crate::clock_text::TimeStyle;
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

    /// The server is listening (and serving the text protocol on `text_addr`, the web client on
    /// `web_addr`).
    pub fn listening(
        &mut self,
        addr: &str,
        fingerprint: Option<&str>,
        text_addr: Option<&str>,
        web_addr: Option<&str>,
    ) {
        if self.json {
            self.emit(json::listening(addr, fingerprint, text_addr, web_addr));
        } else {
            let tls = fingerprint.map(|f| format!(" with TLS, certificate {f}")).unwrap_or_default();
            let text = text_addr.map(|t| format!(", text protocol on {t}")).unwrap_or_default();
            let scheme = if fingerprint.is_some() { "https" } else { "http" };
            let web = web_addr.map(|w| format!(", web client at {scheme}://{w}/")).unwrap_or_default();
            self.human(format!("listening on {addr}{tls}{text}{web} (Ctrl-C to stop)"));
        }
    }

    /// Logged in / joined.
    pub fn ready(&mut self, name: &UserName, node_id: Option<NodeId>, rooms: &[RoomName]) {
        self.me = Some(name.clone());
        if self.json {
            self.emit(json::ready(name, node_id, rooms));
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
            self.emit(json::message(m));
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
            let event = if what == "joined" { json::joined(&p.name, room) } else { json::left(&p.name, room) };
            self.emit(event);
        } else {
            let room = room.map(|r| format!(" {}", inline(r.as_str()))).unwrap_or_default();
            self.human(format!("* {} {what}{room}", inline(p.name.as_str())));
        }
    }

    /// The acknowledgement of one of our sends (JSON: always, and an `unknown_user` error first if
    /// some named recipients are unknown, as before `sent` existed; human: only what needs saying).
    pub fn sent(&mut self, receipt: &SendReceipt) {
        if self.json {
            for event in json::sent(receipt) {
                self.emit(event);
            }
            return;
        }
        if !receipt.unknown.is_empty() {
            self.error(ErrorCode::UnknownUser, &json::not_delivered(&receipt.unknown));
        }
        for name in &receipt.queued {
            self.human(format!("* {} is offline; they will get it when they return", inline(name.as_str())));
        }
    }

    /// The rooms.
    pub fn rooms(&mut self, rooms: &[RoomInfo]) {
        if self.json {
            self.emit(json::rooms(rooms));
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
            self.emit(json::who(room, names));
        } else {
            let list: Vec<String> = names.iter().map(|n| inline(n.as_str())).collect();
            let place = room.map_or("online".to_string(), |r| format!("in {}", inline(r.as_str())));
            self.human(format!("* {place} ({}): {}", names.len(), list.join(", ")));
        }
    }

    /// The connection was lost; the client tries again.
    pub fn reconnecting(&mut self, attempt: u32, in_ms: u64) {
        if self.json {
            self.emit(json::reconnecting(attempt, in_ms));
        } else {
            let secs = in_ms as f64 / 1000.0;
            self.human(format!("* connection lost; reconnecting in {secs:.1} s (attempt {attempt})"));
        }
    }

    /// The session is back.
    pub fn resumed(&mut self, missed: u64) {
        if self.json {
            self.emit(json::resumed(missed));
        } else if missed == 0 {
            self.human("* reconnected".into());
        } else {
            self.human(format!("* reconnected; {missed} message(s) you missed follow"));
        }
    }

    /// A notice.
    pub fn notice(&mut self, text: &str) {
        if self.json {
            self.emit(json::notice(text));
        } else {
            self.human(format!("* {}", inline(text)));
        }
    }

    /// The list of peers.
    pub fn peers(&mut self, peers: &[PeerInfo]) {
        if self.json {
            self.emit(json::peers(peers));
        } else {
            if peers.iter().any(|p| p.node_id.is_some()) {
                // P2P: one line per node, by ID: ID, name, address, and the coordinator marked.
                self.human(format!("* online ({}):", peers.len()));
                let width = peers.iter().map(|p| inline(p.name.as_str()).chars().count()).max().unwrap_or(0);
                for p in peers {
                    let id = p.node_id.map_or_else(|| "-".to_string(), |id| id.to_string());
                    let addr = p.addr.map_or_else(|| "-".to_string(), |a| a.to_string());
                    let marker = if p.coordinator { "  coordinator" } else { "" };
                    let name = inline(p.name.as_str());
                    self.human(format!("*   {id:>3}  {name:<width$}  {addr}{marker}"));
                }
                return;
            }
            let names: Vec<String> = peers.iter().map(|p| inline(p.name.as_str())).collect();
            self.human(format!("* online ({}): {}", peers.len(), names.join(", ")));
        }
    }

    /// History (of a room, or of everything this user may see).
    pub fn history(&mut self, room: Option<&RoomName>, messages: &[ChatMessage]) {
        if self.json {
            self.emit(json::history(room, messages));
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
            self.emit(json::coordinator(name, node_id, epoch));
        } else {
            self.human(format!("* coordinator is now {} (node {node_id}, epoch {epoch})", inline(name.as_str())));
        }
    }

    /// An error event.
    pub fn error(&mut self, code: ErrorCode, message: &str) {
        if self.json {
            self.emit(json::error(code, message));
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

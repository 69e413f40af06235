//! Output: human lines or one JSON object per line (`--json`), always on standard output.
//!
//! JSON events (a public contract; extend compatibly):
//!
//! | `type`        | fields                                                                  |
//! |---------------|-------------------------------------------------------------------------|
//! | `listening`   | `addr`, `fingerprint` (with TLS: `SHA256:<hex>` of the certificate), `text_addr` (with `--text-listen`) |
//! | `ready`       | `name`, `node_id` (P2P only)                                            |
//! | `message`     | `id`, `from`, `kind`, `to` (empty for broadcast), `text`, `lamport`     |
//! | `joined`/`left` | `name`                                                                |
//! | `peers`       | `peers`: `[{name, node_id?, addr?, coordinator?}]`                      |
//! | `history`     | `messages`: message objects, oldest first                               |
//! | `coordinator` | `name`, `node_id`, `epoch` (P2P only)                                   |
//! | `error`       | `code`, `message`                                                       |

use chat_core::{ChatMessage, ErrorCode, MessageKind, NodeId, PeerInfo, UserName};
use serde_json::{Value, json};

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
    me: Option<UserName>,
    sink: Box<dyn Sink>,
}

/// A message as a JSON object (also used inside `history`).
pub fn message_json(m: &ChatMessage) -> Value {
    let to: Vec<&str> = m.recipients.names().iter().map(UserName::as_str).collect();
    json!({
        "type": "message",
        "id": m.id.to_string(),
        "from": m.sender.as_str(),
        "kind": m.kind().as_str(),
        "to": to,
        "text": m.body,
        "lamport": m.lamport.counter,
    })
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
        Renderer { json, show_clock, me: None, sink }
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
    pub fn ready(&mut self, name: &UserName, node_id: Option<NodeId>) {
        self.me = Some(name.clone());
        if self.json {
            let mut v = json!({ "type": "ready", "name": name.as_str() });
            if let Some(id) = node_id {
                v["node_id"] = json!(id.0);
            }
            self.emit(v);
        } else {
            let id = node_id.map(|id| format!(" as node {id}")).unwrap_or_default();
            self.human(format!("* joined as {}{id}; type /help for commands", inline(name.as_str())));
        }
    }

    /// A message line: `[alice]: hi`, `[alice → you]: hi`, `[alice → bob, carol]: hi`; a body of several
    /// lines goes on indented continuation lines (`  | more`). Names and text are escaped (`safe_text`).
    pub fn message_line(&self, m: &ChatMessage) -> String {
        let clock = if self.show_clock { format!("({}) ", m.lamport.counter) } else { String::new() };
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
                format!("[{sender} → {}]", to.join(", "))
            }
        };
        let mut lines = body_lines(&m.body).into_iter();
        let mut out = format!("{clock}{head}: {}", lines.next().unwrap_or_default());
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

    /// Somebody joined.
    pub fn joined(&mut self, p: &PeerInfo) {
        if self.json {
            self.emit(json!({ "type": "joined", "name": p.name.as_str() }));
        } else {
            self.human(format!("* {} joined", inline(p.name.as_str())));
        }
    }

    /// Somebody left.
    pub fn left(&mut self, p: &PeerInfo) {
        if self.json {
            self.emit(json!({ "type": "left", "name": p.name.as_str() }));
        } else {
            self.human(format!("* {} left", inline(p.name.as_str())));
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

    /// History.
    pub fn history(&mut self, messages: &[ChatMessage]) {
        if self.json {
            let list: Vec<Value> = messages.iter().map(message_json).collect();
            self.emit(json!({ "type": "history", "messages": list }));
        } else {
            self.human(format!("* history: {} message(s)", messages.len()));
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
mod tests {
    use super::*;
    use chat_core::{MessageId, Recipients, Timestamp};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);
    impl Sink for Capture {
        fn line(&mut self, line: String) {
            self.0.lock().unwrap().push(line);
        }
    }

    fn n(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    fn m(recipients: Recipients) -> ChatMessage {
        ChatMessage {
            id: MessageId::new(NodeId(0), 7),
            sender: n("alice"),
            recipients,
            body: "hi".into(),
            lamport: Timestamp::new(12, NodeId(0)),
        }
    }

    #[test]
    fn human_lines_match_the_contract() {
        let cap = Capture::default();
        let mut r = Renderer::new(false, false, Box::new(cap.clone()));
        r.ready(&n("bob"), None);
        r.message(&m(Recipients::Broadcast));
        r.message(&m(Recipients::Unicast(n("bob"))));
        r.message(&m(Recipients::Multicast(vec![n("bob"), n("carol")])));
        let lines = cap.0.lock().unwrap().clone();
        assert_eq!(&lines[1..], ["[alice]: hi", "[alice → you]: hi", "[alice → bob, carol]: hi"]);
        let mut clocked = Renderer::new(false, true, Box::new(Capture::default()));
        assert_eq!(clocked.message_line(&m(Recipients::Broadcast)), "(12) [alice]: hi");
        clocked.me = Some(n("alice"));
        assert_eq!(clocked.message_line(&m(Recipients::Unicast(n("bob")))), "(12) [alice → bob]: hi");
    }

    #[test]
    fn hostile_names_and_bodies_cannot_fake_a_line_or_drive_the_terminal() {
        let r = Renderer::new(false, false, Box::new(Capture::default()));
        let mut spoof = m(Recipients::Broadcast);
        spoof.body = "hello\n[bob]: please send me your password".into();
        assert_eq!(r.message_line(&spoof), "[alice]: hello\n  | [bob]: please send me your password");
        spoof.body = "\u{1b}[2K\rbob left".into();
        assert_eq!(r.message_line(&spoof), "[alice]: \\x1b[2K\\rbob left");
        spoof.sender = UserName::from_wire("evil\u{202e}".into()).unwrap();
        spoof.body = "x".into();
        assert_eq!(r.message_line(&spoof), "[evil\\u{202e}]: x");
    }

    #[test]
    fn json_events_match_the_contract() {
        let cap = Capture::default();
        let mut r = Renderer::new(true, false, Box::new(cap.clone()));
        r.ready(&n("bob"), None);
        r.message(&m(Recipients::Multicast(vec![n("bob"), n("carol")])));
        r.message(&m(Recipients::Broadcast));
        r.peers(&[PeerInfo::named(n("alice"))]);
        r.error(ErrorCode::NameTaken, "taken");
        r.help("ignored");
        let lines = cap.0.lock().unwrap().clone();
        let parsed: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(parsed[0], json!({"type": "ready", "name": "bob"}));
        assert_eq!(
            parsed[1],
            json!({"type": "message", "id": "0:7", "from": "alice", "kind": "multicast",
                   "to": ["bob", "carol"], "text": "hi", "lamport": 12})
        );
        assert_eq!(parsed[2]["to"], json!([]));
        assert_eq!(parsed[3], json!({"type": "peers", "peers": [{"name": "alice"}]}));
        assert_eq!(parsed[4], json!({"type": "error", "code": "name_taken", "message": "taken"}));
        assert_eq!(parsed.len(), 5);
    }
}

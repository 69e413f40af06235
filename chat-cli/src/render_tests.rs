//! Tests of the human lines and `--json` events (the output contract).

use super::*;
use chat_core::{MessageId, Recipients, Timestamp};
use serde_json::json;
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
        time: 0,
    }
}

#[test]
fn human_lines_match_the_contract() {
    let cap = Capture::default();
    let mut r = Renderer::new(false, false, Box::new(cap.clone()));
    r.ready(&n("bob"), None, &[]);
    r.message(&m(Recipients::Broadcast));
    r.message(&m(Recipients::Unicast(n("bob"))));
    r.message(&m(Recipients::Multicast(vec![n("bob"), n("carol")])));
    r.message(&m(Recipients::Multicast(vec![n("carol")])));
    r.message(&m(Recipients::Room(RoomName::new("#ops").unwrap())));
    r.joined(&PeerInfo::named(n("carol")), Some(&RoomName::new("#ops").unwrap()));
    r.sent(&SendReceipt { id: MessageId::new(NodeId(0), 9), unknown: vec![n("zed")], queued: vec![n("dan")] });
    r.reconnecting(2, 400);
    r.resumed(3);
    let lines = cap.0.lock().unwrap().clone();
    assert_eq!(
        &lines[1..],
        [
            "[alice]: hi",
            "[alice → you]: hi",
            "[alice → {bob, carol}]: hi",
            "[alice → {carol}]: hi",
            "[alice → #ops]: hi",
            "* carol joined #ops",
            "! unknown_user: not delivered to zed (unknown here)",
            "* dan is offline; they will get it when they return",
            "* connection lost; reconnecting in 0.4 s (attempt 2)",
            "* reconnected; 3 message(s) you missed follow",
        ],
        "a multicast is shown as one even to a single name"
    );
    let mut timed = Renderer::new(false, false, Box::new(Capture::default()));
    timed.set_times(TimeStyle::with_format("%Y").unwrap());
    let mut at = m(Recipients::Broadcast);
    at.time = 1_795_984_867_123;
    assert!(timed.message_line(&at).ends_with(" [alice]: hi"), "{}", timed.message_line(&at));
    assert!(timed.message_line(&at).starts_with("202"), "{}", timed.message_line(&at));
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
    let ops = RoomName::new("#ops").unwrap();
    r.ready(&n("bob"), None, std::slice::from_ref(&ops));
    r.message(&m(Recipients::Multicast(vec![n("bob"), n("carol")])));
    let mut timed = m(Recipients::Broadcast);
    timed.time = 1_795_984_867_123;
    r.message(&timed);
    r.peers(&[PeerInfo::named(n("alice"))]);
    r.error(ErrorCode::NameTaken, "taken");
    r.help("ignored");
    r.message(&m(Recipients::Room(ops.clone())));
    r.joined(&PeerInfo::named(n("carol")), Some(&ops));
    r.left(&PeerInfo::named(n("carol")), None);
    r.history(Some(&ops), &[]);
    r.rooms(&[RoomInfo { name: ops.clone(), members: 3 }]);
    r.who(Some(&ops), &[n("bob"), n("carol")]);
    r.sent(&SendReceipt { id: MessageId::new(NodeId(0), 9), unknown: vec![n("zed")], queued: vec![n("dan")] });
    r.reconnecting(1, 120);
    r.resumed(4);
    r.notice("hello");
    let lines = cap.0.lock().unwrap().clone();
    let parsed: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed[0], json!({"type": "ready", "name": "bob", "rooms": ["#ops"]}));
    assert_eq!(
        parsed[1],
        json!({"type": "message", "id": "0:7", "from": "alice", "kind": "multicast",
               "to": ["bob", "carol"], "text": "hi", "lamport": 12, "time": null})
    );
    assert_eq!(parsed[2]["to"], json!([]));
    assert_eq!(parsed[2]["time"], json!("2026-11-29T20:41:07.123Z"));
    assert_eq!(parsed[3], json!({"type": "peers", "peers": [{"name": "alice"}]}));
    assert_eq!(parsed[4], json!({"type": "error", "code": "name_taken", "message": "taken"}));
    assert_eq!(
        parsed[5],
        json!({"type": "message", "id": "0:7", "from": "alice", "kind": "room", "room": "#ops",
               "to": [], "text": "hi", "lamport": 12, "time": null})
    );
    assert_eq!(parsed[6], json!({"type": "joined", "name": "carol", "room": "#ops"}));
    assert_eq!(parsed[7], json!({"type": "left", "name": "carol"}));
    assert_eq!(parsed[8], json!({"type": "history", "room": "#ops", "messages": []}));
    assert_eq!(parsed[9], json!({"type": "rooms", "rooms": [{"name": "#ops", "members": 3}]}));
    assert_eq!(parsed[10], json!({"type": "who", "room": "#ops", "names": ["bob", "carol"]}));
    assert_eq!(parsed[11]["code"], "unknown_user");
    assert_eq!(parsed[12], json!({"type": "sent", "id": "0:9", "unknown": ["zed"], "queued": ["dan"]}));
    assert_eq!(parsed[13], json!({"type": "reconnecting", "attempt": 1, "in_ms": 120}));
    assert_eq!(parsed[14], json!({"type": "resumed", "missed": 4}));
    assert_eq!(parsed[15], json!({"type": "notice", "text": "hello"}));
    assert_eq!(parsed.len(), 16);
}

#[test]
fn p2p_peers_are_one_line_per_node_and_server_peers_one_line() {
    let cap = Capture::default();
    let mut r = Renderer::new(false, false, Box::new(cap.clone()));
    let node = |name: &str, id: u64, port: u16, coordinator: bool| PeerInfo {
        name: n(name),
        node_id: Some(NodeId(id)),
        addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        coordinator,
    };
    r.peers(&[node("alice", 1, 40001, true), node("bob", 2, 40002, false), node("carolyn", 13, 40003, false)]);
    r.peers(&[PeerInfo::named(n("alice")), PeerInfo::named(n("bob"))]);
    let lines = cap.0.lock().unwrap().clone();
    assert_eq!(
        lines,
        [
            "* online (3):",
            "*     1  alice    127.0.0.1:40001  coordinator",
            "*     2  bob      127.0.0.1:40002",
            "*    13  carolyn  127.0.0.1:40003",
            "* online (2): alice, bob",
        ]
    );
}

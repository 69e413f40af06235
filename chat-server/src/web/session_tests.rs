//! Exact-output tests of [`WebSession`]: commands in, frames out; frames in, JSON events out.

use chat_core::{ChatMessage, ErrorCode, MessageId, NodeId, Recipients, RoomInfo, RoomName, Timestamp, UserName};
use serde_json::{Value, json};

use super::session::{FRAMES_BELOW, MAX_HISTORY_EVENT, MAX_IN_FLIGHT, ReadEnd, SESSION_GONE, WebEvent, WebSession};
use crate::protocol::{ClientFrame, Credential, Enter, Resume, ServerFrame, SessionInfo};

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

fn room(s: &str) -> RoomName {
    RoomName::new(s).unwrap()
}

fn msg(seq: u64, from: &str, recipients: Recipients, body: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId(0), seq),
        sender: n(from),
        recipients,
        body: body.into(),
        lamport: Timestamp::new(seq + 10, NodeId(0)),
        time: 0,
    }
}

fn welcome(name: &str, resumed: Option<u64>) -> ServerFrame {
    ServerFrame::Welcome {
        name: n(name),
        online: vec![n(name)],
        heartbeat_ms: 5000,
        session: SessionInfo { token: "tok".into(), grace_ms: 60_000, rooms: vec![room("#ops")], resumed, offline: 0 },
    }
}

/// Everything the session wants done: events for the owner, and the JSON sent (each reported sent).
fn drain(s: &mut WebSession) -> (Vec<WebEvent>, Vec<Value>) {
    let events = std::iter::from_fn(|| s.poll_event()).collect();
    let mut sent = Vec::new();
    while let Some(text) = s.poll_transmit() {
        sent.push(serde_json::from_str(&text).expect("JSON"));
        s.handle_sent();
    }
    (events, sent)
}

fn frames(events: Vec<WebEvent>) -> Vec<ClientFrame> {
    events
        .into_iter()
        .map(|e| match e {
            WebEvent::Frame(f) => f,
            other => panic!("not a frame: {other:?}"),
        })
        .collect()
}

/// A session logged in as alice.
fn ready() -> WebSession {
    let mut s = WebSession::new();
    s.handle_text(r#"{"type":"login","name":"alice"}"#);
    s.handle_frame(welcome("alice", None));
    drain(&mut s);
    s
}

#[test]
fn login_then_every_kind_of_message_and_acknowledgement() {
    let mut s = WebSession::new();
    s.handle_text(r#"{"type":"login","name":"alice","password":"pw"}"#);
    let (events, out) = drain(&mut s);
    let enter =
        Enter { name: n("alice"), credential: Some(Credential::Password("pw".into())), resume: None, quiet: false };
    assert_eq!(events, [WebEvent::Open, WebEvent::Frame(ClientFrame::Enter(enter))]);
    assert!(out.is_empty());
    s.handle_frame(welcome("alice", None));
    assert_eq!(
        drain(&mut s).1,
        [json!({"type": "ready", "name": "alice", "rooms": ["#ops"], "token": "tok", "grace_ms": 60_000})]
    );

    s.handle_frame(ServerFrame::Message(msg(3, "bob", Recipients::Broadcast, "<script>x</script>")));
    s.handle_text(r#"{"type":"send","text":"hi","key":1}"#);
    s.handle_text(r#"{"type":"send","text":"psst","to":["bob"],"key":2}"#);
    s.handle_text(r#"{"type":"send","text":"all","to":["bob","carol"]}"#);
    s.handle_text(r##"{"type":"send","text":"ops","room":"#ops","key":4}"##);
    let (events, out) = drain(&mut s);
    let stamp = Timestamp::new(13, NodeId::default());
    let send = |req, recipients, body: &str, key| ClientFrame::Send {
        req,
        recipients,
        body: body.into(),
        sent_at: stamp,
        key,
    };
    assert_eq!(
        frames(events),
        [
            send(1, Recipients::Broadcast, "hi", 1),
            send(2, Recipients::Unicast(n("bob")), "psst", 2),
            send(3, Recipients::Multicast(vec![n("bob"), n("carol")]), "all", 0),
            send(4, Recipients::Room(room("#ops")), "ops", 4),
        ],
        "sends are stamped with the newest Lamport counter seen"
    );
    assert_eq!(
        out,
        [json!({"type": "message", "id": "0:3", "from": "bob", "kind": "broadcast", "to": [],
                "text": "<script>x</script>", "lamport": 13, "time": null})]
    );

    let id = |seq| MessageId::new(NodeId(0), seq);
    s.handle_frame(ServerFrame::Sent { req: 1, id: id(4), unknown: vec![], queued: vec![] });
    s.handle_frame(ServerFrame::Sent { req: 2, id: id(5), unknown: vec![n("bob")], queued: vec![] });
    s.handle_frame(ServerFrame::Sent { req: 3, id: id(6), unknown: vec![], queued: vec![n("carol")] });
    s.handle_frame(ServerFrame::Rejected { req: 4, code: ErrorCode::NotMember, message: "not in #ops".into() });
    let (_, out) = drain(&mut s);
    assert_eq!(
        out,
        [
            json!({"type": "sent", "id": "0:4", "unknown": [], "queued": [], "key": 1}),
            json!({"type": "error", "code": "unknown_user", "message": "not delivered to bob (unknown here)"}),
            json!({"type": "sent", "id": "0:5", "unknown": ["bob"], "queued": [], "key": 2}),
            json!({"type": "sent", "id": "0:6", "unknown": [], "queued": ["carol"]}),
            json!({"type": "error", "code": "not_member", "message": "not in #ops", "key": 4}),
        ]
    );
}

#[test]
fn requests_are_answered_by_the_events_of_chat_cli_json() {
    let mut s = ready();
    for command in [
        r##"{"type":"join","room":"#dev"}"##,
        r##"{"type":"part","room":"#dev"}"##,
        r#"{"type":"peers"}"#,
        r#"{"type":"rooms"}"#,
        r##"{"type":"who","room":"#dev"}"##,
        r#"{"type":"history","limit":5}"#,
    ] {
        s.handle_text(command);
    }
    let (events, _) = drain(&mut s);
    assert_eq!(
        frames(events),
        [
            ClientFrame::JoinRoom { req: 1, room: room("#dev") },
            ClientFrame::PartRoom { req: 2, room: room("#dev") },
            ClientFrame::Peers { req: 3 },
            ClientFrame::Rooms { req: 4 },
            ClientFrame::Who { req: 5, room: Some(room("#dev")) },
            ClientFrame::History { req: 6, limit: 5, room: None },
        ]
    );
    let m = msg(9, "bob", Recipients::Room(room("#dev")), "old");
    s.handle_frame(ServerFrame::RoomJoined { room: room("#dev"), name: n("alice") });
    s.handle_frame(ServerFrame::History { req: 1, messages: vec![], done: false, room: Some(room("#dev")) });
    s.handle_frame(ServerFrame::History { req: 1, messages: vec![m.clone()], done: true, room: Some(room("#dev")) });
    s.handle_frame(ServerFrame::RoomParted { room: room("#dev"), name: n("alice") });
    s.handle_frame(ServerFrame::Done { req: 2 });
    s.handle_frame(ServerFrame::Peers { req: 3, names: vec![n("alice"), n("bob")] });
    s.handle_frame(ServerFrame::Rooms { req: 4, rooms: vec![RoomInfo { name: room("#ops"), members: 2 }] });
    s.handle_frame(ServerFrame::Who { req: 5, room: Some(room("#dev")), names: vec![n("bob")] });
    s.handle_frame(ServerFrame::History { req: 6, messages: vec![m], done: true, room: None });
    s.handle_frame(ServerFrame::Joined { name: n("carol") });
    s.handle_frame(ServerFrame::Left { name: n("carol"), reason: "quit".into() });
    s.handle_frame(ServerFrame::Notice { text: "hello".into() });
    s.handle_frame(ServerFrame::History { req: 99, messages: vec![], done: true, room: None });
    let (_, out) = drain(&mut s);
    let old = json!({"type": "message", "id": "0:9", "from": "bob", "kind": "room", "to": [], "room": "#dev",
                     "text": "old", "lamport": 19, "time": null});
    assert_eq!(
        out,
        [
            json!({"type": "joined", "name": "alice", "room": "#dev"}),
            json!({"type": "history", "room": "#dev", "messages": [old]}),
            json!({"type": "left", "name": "alice", "room": "#dev"}),
            json!({"type": "peers", "peers": [{"name": "alice"}, {"name": "bob"}]}),
            json!({"type": "rooms", "rooms": [{"name": "#ops", "members": 2}]}),
            json!({"type": "who", "room": "#dev", "names": ["bob"]}),
            json!({"type": "history", "messages": [old]}),
            json!({"type": "joined", "name": "carol"}),
            json!({"type": "left", "name": "carol"}),
            json!({"type": "notice", "text": "hello"}),
        ],
        "an answer nobody asked for shows nothing"
    );
}

#[test]
fn a_resume_presents_the_token_and_cursor_and_says_what_follows() {
    let mut s = WebSession::new();
    s.handle_text(r#"{"type":"login","name":"alice","resume":{"token":"tok","cursor":41}}"#);
    let enter = Enter {
        name: n("alice"),
        credential: None,
        resume: Some(Resume { token: "tok".into(), cursor: 41 }),
        quiet: false,
    };
    assert_eq!(drain(&mut s).0, [WebEvent::Open, WebEvent::Frame(ClientFrame::Enter(enter))]);
    s.handle_frame(welcome("alice", Some(2)));
    let (_, out) = drain(&mut s);
    assert_eq!(out[1], json!({"type": "resumed", "missed": 2}));

    let mut gone = WebSession::new();
    gone.handle_text(r#"{"type":"login","name":"alice","resume":{"token":"old","cursor":41}}"#);
    gone.handle_frame(welcome("alice", None));
    let (_, out) = drain(&mut gone);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], json!({"type": "notice", "text": SESSION_GONE}));
}

#[test]
fn refusals_before_and_at_login() {
    let mut s = WebSession::new();
    s.handle_text(r#"{"type":"send","text":"early","key":5}"#);
    s.handle_binary();
    s.handle_text(r#"{"type":"login","name":"alice"}"#);
    s.handle_text(r#"{"type":"peers"}"#);
    let (events, out) = drain(&mut s);
    assert_eq!(events.len(), 2, "Open and Enter only: {events:?}");
    assert_eq!(
        out,
        [
            json!({"type": "error", "code": "protocol", "message": "log in first (and wait for ready)", "key": 5}),
            json!({"type": "error", "code": "bad_command", "message": "commands are JSON text messages, not binary ones"}),
            json!({"type": "error", "code": "protocol", "message": "log in first (and wait for ready)"}),
        ]
    );
    s.handle_frame(ServerFrame::Refused { code: ErrorCode::NameTaken, message: "taken".into() });
    assert!(!s.is_done(), "the refusal is sent first");
    assert_eq!(drain(&mut s).1, [json!({"type": "error", "code": "name_taken", "message": "taken"})]);
    assert!(s.is_done());

    let mut bad = WebSession::new();
    bad.handle_text(r#"{"type":"login","name":"a\u202eb"}"#);
    bad.handle_text(r#"{"type":"login","name":"alice"}"#);
    let (events, out) = drain(&mut bad);
    assert_eq!(events, [WebEvent::Open, WebEvent::Closed { reason: "invalid_name".into() }]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["code"], "invalid_name");
    assert!(bad.is_done());
}

#[test]
fn rate_limits_and_kicks_reach_the_page() {
    let mut s = ready();
    s.handle_text(r#"{"type":"send","text":"x","key":7}"#);
    drain(&mut s);
    s.handle_frame(ServerFrame::RateLimited { req: 1, retry_after_ms: 250 });
    assert_eq!(
        drain(&mut s).1,
        [json!({"type": "error", "code": "rate_limited", "key": 7, "retry_after_ms": 250,
                "message": "over the rate limit: not sent; send it again in 250 ms"})]
    );
    s.handle_frame(ServerFrame::Message(msg(1, "bob", Recipients::Broadcast, "queued, never sent")));
    s.handle_kill(ErrorCode::Flood, "too many messages");
    assert!(!s.wants_frames() && !s.wants_commands());
    s.handle_text(r#"{"type":"peers"}"#);
    let (events, out) = drain(&mut s);
    assert!(events.is_empty(), "the router kicked it: it knows");
    assert_eq!(out, [json!({"type": "error", "code": "flood", "message": "too many messages"})]);
    assert!(s.is_done());
}

#[test]
fn the_server_ending_the_session_and_the_page_leaving() {
    let mut s = ready();
    s.handle_frame(ServerFrame::Closing { code: ErrorCode::ShuttingDown, reason: "bye".into() });
    s.handle_frame(ServerFrame::Message(msg(1, "bob", Recipients::Broadcast, "after the end")));
    assert_eq!(drain(&mut s).1, [json!({"type": "error", "code": "shutting_down", "message": "bye"})]);
    assert!(s.is_done());

    let mut leaving = ready();
    leaving.handle_text(r#"{"type":"leave"}"#);
    leaving.handle_text(r#"{"type":"send","text":"too late"}"#);
    assert_eq!(drain(&mut leaving), (vec![WebEvent::Closed { reason: "quit".into() }], vec![]));
    assert!(leaving.is_done());

    let mut dropped = ready();
    dropped.handle_read_end(ReadEnd::Disconnected);
    assert_eq!(drain(&mut dropped).0, [WebEvent::Closed { reason: "disconnected".into() }]);
    assert!(dropped.is_done());

    let mut huge = ready();
    huge.handle_read_end(ReadEnd::TooLong);
    let (events, out) = drain(&mut huge);
    assert_eq!(events, [WebEvent::Closed { reason: "protocol".into() }]);
    assert_eq!(out[0]["code"], "too_long");
    assert!(huge.is_done());
}

#[test]
fn bounded_queues_push_back_on_the_router_and_the_browser() {
    let mut s = ready();
    for seq in 1..=FRAMES_BELOW as u64 {
        assert!(s.wants_frames());
        s.handle_frame(ServerFrame::Message(msg(seq, "bob", Recipients::Broadcast, "x")));
    }
    assert!(!s.wants_frames(), "frames wait in the router's queue while the browser does not read");
    assert_eq!(s.delivered(), 0);
    let first = s.poll_transmit().unwrap();
    assert!(first.contains("\"0:1\""));
    s.handle_sent();
    assert_eq!(s.delivered(), 1, "delivered once sent");
    drain(&mut s);
    assert_eq!(s.delivered(), FRAMES_BELOW as u64);
    s.handle_frame(ServerFrame::Joined { name: n("carol") });
    s.handle_frame(ServerFrame::Message(msg(100, "carol", Recipients::Unicast(n("alice")), "hi")));
    s.handle_frame(ServerFrame::Pong);
    let _ = s.poll_transmit();
    s.handle_sent();
    assert_eq!(s.delivered(), FRAMES_BELOW as u64, "the joined event was sent, not yet message 100");
    let _ = s.poll_transmit();
    s.handle_sent();
    assert_eq!(s.delivered(), 100);

    for _ in 0..MAX_IN_FLIGHT {
        assert!(s.wants_commands());
        s.handle_text(r#"{"type":"peers"}"#);
    }
    assert!(!s.wants_commands(), "answers must come back before more commands are read");
    s.handle_frame(ServerFrame::Peers { req: 1, names: vec![] });
    drain(&mut s);
    assert!(s.wants_commands());
}

#[test]
fn a_history_event_is_bounded_and_says_what_it_left_out() {
    let mut s = ready();
    s.handle_text(r#"{"type":"history","limit":1000}"#);
    drain(&mut s);
    let body = "y".repeat(60_000);
    let chunk: Vec<ChatMessage> = (1..=10).map(|seq| msg(seq, "bob", Recipients::Broadcast, &body)).collect();
    for i in 0..3 {
        let messages =
            chunk.iter().map(|m| ChatMessage { id: MessageId::new(NodeId(0), m.id.seq + i * 10), ..m.clone() });
        s.handle_frame(ServerFrame::History { req: 1, messages: messages.collect(), done: i == 2, room: None });
    }
    let (_, out) = drain(&mut s);
    assert_eq!(out.len(), 2);
    let kept = out[1]["messages"].as_array().unwrap();
    assert!(out[1].to_string().len() <= MAX_HISTORY_EVENT + 100);
    assert_eq!(kept.last().unwrap()["id"], "0:30", "the newest are kept");
    let left_out = 30 - kept.len();
    assert!(left_out > 0);
    assert_eq!(out[0]["type"], "notice");
    assert!(out[0]["text"].as_str().unwrap().starts_with(&format!("{left_out} older message(s) left out")));
}

//! Exact-output tests of the committed watermark: with a journal, nothing a client sees runs ahead of it.

use super::tests::{drain, n, t0};
use super::*;
use chat_core::MessageId;

fn journaled() -> Router {
    let config = RouterConfig { journaled: true, heartbeat_ms: 1000, ..RouterConfig::default() };
    let mut r = Router::new(config, RouterState::default());
    for (conn, name) in [(1, "alice"), (2, "bob")] {
        r.handle(t0(), Input::Login { conn, name: n(name) });
    }
    r.handle(t0(), Input::EndOfTurn);
    r.handle_timeout(t0() + NOTICE_DELAY);
    drain(&mut r);
    r
}

fn send(r: &mut Router, conn: ConnId, req: u64, recipients: Recipients, body: &str) {
    let sent_at = Timestamp::new(0, NodeId(0));
    r.handle(t0(), Input::Send { conn, req, recipients, body: body.into(), sent_at, key: 0 });
}

fn message(seq: u64, sender: &str, recipients: Recipients, body: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: n(sender),
        recipients,
        body: body.into(),
        lamport: Timestamp::new(seq, NodeId::SERVER),
        time: 0,
    }
}

fn reply(conn: ConnId, frame: ServerFrame) -> Output {
    Output::Reply { conn, frame, early: false }
}

#[test]
fn a_message_is_acknowledged_and_delivered_only_once_durable() {
    let mut r = journaled();
    send(&mut r, 1, 7, Recipients::Broadcast, "hi");
    let m = message(1, "alice", Recipients::Broadcast, "hi");
    assert_eq!(drain(&mut r), vec![Output::Store(Stored::plain(m.clone()))], "only the journal hears of it");
    // Everything a client would see after it waits too, in order: a reply to bob, a unicast.
    r.handle(t0(), Input::Peers { conn: 2, req: 1 });
    send(&mut r, 2, 8, Recipients::Unicast(n("alice")), "psst");
    let m2 = message(2, "bob", Recipients::Unicast(n("alice")), "psst");
    assert_eq!(drain(&mut r), vec![Output::Store(Stored::plain(m2.clone()))]);
    assert_eq!(r.held(), 5);
    r.handle(t0(), Input::Durable { upto: 1 });
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Stream { frame: ServerFrame::Message(m.clone()), seq: 1 },
            reply(1, ServerFrame::Sent { req: 7, id: m.id, unknown: vec![], queued: vec![] }),
            reply(2, ServerFrame::Peers { req: 1, names: vec![n("alice"), n("bob")] }),
        ]
    );
    r.handle(t0(), Input::Durable { upto: 2 });
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Deliver { conns: vec![1, 2], frame: ServerFrame::Message(m2.clone()), seq: 2, early: false },
            reply(2, ServerFrame::Sent { req: 8, id: m2.id, unknown: vec![], queued: vec![] }),
        ]
    );
    // Nothing pending: a reply goes out at once.
    r.handle(t0(), Input::Ping { conn: 1 });
    assert_eq!(drain(&mut r), vec![reply(1, ServerFrame::Pong)]);
}

#[test]
fn a_login_behind_a_pending_message_does_not_receive_it() {
    let mut r = journaled();
    send(&mut r, 1, 1, Recipients::Broadcast, "before carol");
    r.handle(t0(), Input::Login { conn: 3, name: n("carol") });
    let out = drain(&mut r);
    assert!(
        matches!(&out[..], [Output::Store(_), Output::SessionStarted { conn: 3, after: 1, .. }, Output::Record(_)]),
        "{out:?}"
    );
    r.handle(t0(), Input::Durable { upto: 1 });
    let kinds: Vec<&str> = drain(&mut r)
        .iter()
        .map(|o| match o {
            Output::Stream { seq: 1, .. } => "message",
            Output::Reply { frame: ServerFrame::Sent { .. }, .. } => "sent",
            Output::Reply { frame: ServerFrame::Welcome { .. }, .. } => "welcome",
            Output::Stream { frame: ServerFrame::Joined { .. }, .. } => "joined",
            Output::Subscribe { conn: 3 } => "subscribe",
            other => panic!("{other:?}"),
        })
        .collect();
    // The message enters the stream before carol subscribes to it: she never gets it.
    assert_eq!(kinds, ["message", "sent", "welcome", "joined", "subscribe"]);
}

#[test]
fn a_storage_failure_refuses_what_was_not_durable_and_everything_after() {
    let mut r = journaled();
    send(&mut r, 1, 1, Recipients::Broadcast, "stored");
    send(&mut r, 2, 2, Recipients::Broadcast, "lost");
    drain(&mut r);
    r.handle(t0(), Input::Durable { upto: 1 });
    drain(&mut r);
    r.handle(t0(), Input::StorageFailed { reason: "No space left on device".into() });
    let why = "the server cannot store messages: No space left on device".to_string();
    let refused = |req| ServerFrame::Rejected { req, code: ErrorCode::StorageUnavailable, message: why.clone() };
    assert_eq!(drain(&mut r), vec![reply(2, refused(2))], "message 2 is never delivered");
    send(&mut r, 1, 3, Recipients::Broadcast, "after");
    assert_eq!(drain(&mut r), vec![reply(1, refused(3))]);
    r.handle(t0(), Input::Shutdown);
    let out = drain(&mut r);
    let closing = ServerFrame::Closing { code: ErrorCode::StorageUnavailable, reason: why.clone() };
    assert_eq!(out[0], reply(1, closing));
}

#[test]
fn without_a_journal_nothing_waits() {
    let mut r = Router::new(RouterConfig::default(), RouterState::default());
    r.handle(t0(), Input::Login { conn: 1, name: n("alice") });
    drain(&mut r);
    send(&mut r, 1, 1, Recipients::Broadcast, "hi");
    assert_eq!(drain(&mut r).len(), 3, "Store, Stream, Sent");
    assert_eq!(r.held(), 0);
}

//! Exact-output tests of the router.

use super::*;
use chat_core::{MAX_BODY_LEN, MessageId};

pub(super) fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

fn ts(c: u64) -> Timestamp {
    Timestamp::new(c, NodeId(0))
}

pub(super) fn drain(r: &mut Router) -> Vec<Output> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

/// The fixed "now" of these tests (only the publishing policy looks at time).
pub(super) fn t0() -> Instant {
    thread_local!(static T0: Instant = Instant::now());
    T0.with(|t| *t)
}

/// Ends the turn and lets the notice delay pass: everything appended is published.
pub(super) fn settle(r: &mut Router) {
    r.handle(t0(), Input::EndOfTurn);
    r.handle_timeout(t0() + NOTICE_DELAY);
    drain(r);
}

fn reply(conn: ConnId, frame: ServerFrame) -> Output {
    Output::Reply { conn, frame, early: false }
}

fn deliver(conns: &[ConnId], frame: ServerFrame, seq: u64) -> Output {
    Output::Deliver { conns: conns.to_vec(), frame, seq, early: false }
}

fn msg(seq: u64, lamport: u64, sender: &str, recipients: Recipients, body: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: n(sender),
        recipients,
        body: body.into(),
        lamport: Timestamp::new(lamport, NodeId::SERVER),
    }
}

fn config(history: usize) -> RouterConfig {
    RouterConfig { history, heartbeat_ms: 1000, ..RouterConfig::default() }
}

/// alice on 1, bob on 2, carol on 3, their join notices published.
pub(super) fn three() -> Router {
    let mut r = Router::new(config(10), RouterState::default());
    for (conn, name) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        r.handle(t0(), Input::Login { conn, name: n(name) });
    }
    settle(&mut r);
    r
}

#[test]
fn login_welcomes_and_announces() {
    let mut r = Router::new(config(10), RouterState::default());
    r.handle(t0(), Input::Login { conn: 1, name: n("alice") });
    r.handle(t0(), Input::Login { conn: 2, name: n("bob") });
    // Each newcomer subscribes to the stream after its own notice, so it never receives it; bob's
    // Welcome may overtake alice's notice, which waits to be published (`early`).
    assert_eq!(
        drain(&mut r),
        vec![
            Output::SessionStarted { conn: 1, name: n("alice"), after: 0 },
            reply(1, ServerFrame::Welcome { name: n("alice"), online: vec![n("alice")], heartbeat_ms: 1000 }),
            Output::Stream { frame: ServerFrame::Joined { name: n("alice") }, seq: 0 },
            Output::Subscribe { conn: 1 },
            Output::SessionStarted { conn: 2, name: n("bob"), after: 0 },
            Output::Reply {
                conn: 2,
                frame: ServerFrame::Welcome { name: n("bob"), online: vec![n("alice"), n("bob")], heartbeat_ms: 1000 },
                early: true,
            },
            Output::Stream { frame: ServerFrame::Joined { name: n("bob") }, seq: 0 },
            Output::Subscribe { conn: 2 },
        ]
    );
}

#[test]
fn duplicate_name_is_refused_and_first_session_unaffected() {
    let mut r = three();
    r.handle(t0(), Input::Login { conn: 9, name: n("bob") });
    assert_eq!(
        drain(&mut r),
        vec![
            reply(
                9,
                ServerFrame::Refused {
                    code: ErrorCode::NameTaken,
                    message: "the name bob is already taken by a user online".into()
                }
            ),
            Output::Close { conn: 9 },
        ]
    );
    assert_eq!(r.name_of(2), Some(&n("bob")));
    // The refused connection going away does not end bob's session.
    r.handle(t0(), Input::Disconnected { conn: 9, reason: "disconnected".into() });
    assert_eq!(drain(&mut r), vec![]);
    assert_eq!(r.online(), 3);
}

#[test]
fn broadcast_goes_to_everyone_in_order_with_increasing_stamps() {
    let mut r = three();
    r.handle(
        t0(),
        Input::Send { conn: 2, req: 7, recipients: Recipients::Broadcast, body: "hi".into(), sent_at: ts(5) },
    );
    r.handle(
        t0(),
        Input::Send { conn: 1, req: 1, recipients: Recipients::Broadcast, body: "yo".into(), sent_at: ts(1) },
    );
    let m1 = msg(1, 6, "bob", Recipients::Broadcast, "hi");
    let m2 = msg(2, 7, "alice", Recipients::Broadcast, "yo");
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Store(m1.clone()),
            Output::Stream { frame: ServerFrame::Message(m1.clone()), seq: 1 },
            reply(2, ServerFrame::Sent { req: 7, id: m1.id, unknown: vec![] }),
            Output::Store(m2.clone()),
            Output::Stream { frame: ServerFrame::Message(m2.clone()), seq: 2 },
            reply(1, ServerFrame::Sent { req: 1, id: m2.id, unknown: vec![] }),
        ]
    );
}

#[test]
fn unicast_reaches_recipient_and_sender_only() {
    let mut r = three();
    let rec = Recipients::Unicast(n("carol"));
    r.handle(t0(), Input::Send { conn: 1, req: 3, recipients: rec.clone(), body: "psst".into(), sent_at: ts(0) });
    let m = msg(1, 1, "alice", rec, "psst");
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Store(m.clone()),
            deliver(&[3, 1], ServerFrame::Message(m.clone()), 1),
            reply(1, ServerFrame::Sent { req: 3, id: m.id, unknown: vec![] }),
        ]
    );
}

#[test]
fn unicast_to_unknown_user_is_rejected_and_not_stored() {
    let mut r = three();
    let rec = Recipients::Unicast(n("zed"));
    r.handle(t0(), Input::Send { conn: 1, req: 4, recipients: rec, body: "x".into(), sent_at: ts(0) });
    assert_eq!(
        drain(&mut r),
        vec![reply(
            1,
            ServerFrame::Rejected { req: 4, code: ErrorCode::UnknownUser, message: "zed is not online".into() }
        )]
    );
    assert_eq!(r.last_seq(), 0);
}

#[test]
fn multicast_to_partly_unknown_list_delivers_to_known_and_reports_unknown() {
    let mut r = three();
    let rec = Recipients::multicast([n("bob"), n("zed"), n("carol")]).unwrap();
    r.handle(t0(), Input::Send { conn: 1, req: 5, recipients: rec, body: "team".into(), sent_at: ts(0) });
    let m = msg(1, 1, "alice", Recipients::Multicast(vec![n("bob"), n("carol")]), "team");
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Store(m.clone()),
            deliver(&[2, 3, 1], ServerFrame::Message(m.clone()), 1),
            reply(1, ServerFrame::Sent { req: 5, id: m.id, unknown: vec![n("zed")] }),
        ]
    );
    let all_unknown = Recipients::multicast([n("x"), n("y")]).unwrap();
    r.handle(t0(), Input::Send { conn: 1, req: 6, recipients: all_unknown, body: "?".into(), sent_at: ts(0) });
    assert_eq!(
        drain(&mut r),
        vec![reply(
            1,
            ServerFrame::Rejected { req: 6, code: ErrorCode::UnknownUser, message: "none of x, y is online".into() }
        )]
    );
}

#[test]
fn too_long_and_not_logged_in_are_rejected() {
    let mut r = three();
    let body = "x".repeat(MAX_BODY_LEN + 1);
    r.handle(t0(), Input::Send { conn: 1, req: 1, recipients: Recipients::Broadcast, body, sent_at: ts(0) });
    r.handle(
        t0(),
        Input::Send { conn: 42, req: 2, recipients: Recipients::Broadcast, body: "x".into(), sent_at: ts(0) },
    );
    let out = drain(&mut r);
    assert!(matches!(
        &out[0],
        Output::Reply { conn: 1, frame: ServerFrame::Rejected { code: ErrorCode::TooLong, .. }, .. }
    ));
    assert!(matches!(
        &out[1],
        Output::Reply { conn: 42, frame: ServerFrame::Rejected { code: ErrorCode::Protocol, .. }, .. }
    ));
    assert_eq!(out.len(), 2);
}

#[test]
fn disconnect_announces_and_removes() {
    let mut r = three();
    r.handle(t0(), Input::Disconnected { conn: 2, reason: "timeout".into() });
    assert_eq!(
        drain(&mut r),
        vec![
            Output::SessionEnded { conn: 2, name: n("bob"), after: 0, reason: "timeout".into() },
            Output::Stream { frame: ServerFrame::Left { name: n("bob"), reason: "timeout".into() }, seq: 0 },
        ]
    );
    // bob is now unknown; the name is free again.
    r.handle(
        t0(),
        Input::Send { conn: 1, req: 1, recipients: Recipients::Unicast(n("bob")), body: "?".into(), sent_at: ts(0) },
    );
    assert!(matches!(drain(&mut r)[0], Output::Reply { frame: ServerFrame::Rejected { .. }, .. }));
    r.handle(t0(), Input::Login { conn: 4, name: n("bob") });
    assert!(matches!(drain(&mut r)[0], Output::SessionStarted { conn: 4, .. }));
}

#[test]
fn history_shows_only_what_the_user_may_see_and_survives_restart() {
    let mut r = three();
    let sends = [
        (1, Recipients::Broadcast, "all"),
        (1, Recipients::Unicast(n("carol")), "to carol"),
        (3, Recipients::Unicast(n("bob")), "to bob"),
        (2, Recipients::multicast([n("alice"), n("carol")]).unwrap(), "from bob"),
    ];
    for (i, (conn, rec, body)) in sends.into_iter().enumerate() {
        r.handle(t0(), Input::Send { conn, req: i as u64, recipients: rec, body: body.into(), sent_at: ts(0) });
    }
    drain(&mut r);
    r.handle(t0(), Input::History { conn: 2, req: 9, limit: 10 });
    let out = drain(&mut r);
    let [Output::Reply { conn: 2, frame: ServerFrame::History { req: 9, messages, done: true }, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["all", "to bob", "from bob"]);

    // A new router resuming from the same state continues the sequence and the clock.
    let state = RouterState { last_seq: r.last_seq(), lamport: 4, history: messages.clone() };
    let mut r2 = Router::new(RouterConfig::default(), state);
    r2.handle(t0(), Input::Login { conn: 1, name: n("bob") });
    r2.handle(
        t0(),
        Input::Send { conn: 1, req: 1, recipients: Recipients::Broadcast, body: "again".into(), sent_at: ts(0) },
    );
    let out = drain(&mut r2);
    assert!(out.contains(&Output::Store(msg(5, 5, "bob", Recipients::Broadcast, "again"))), "{out:?}");
}

#[test]
fn long_history_is_chunked() {
    let mut r = Router::new(config(100), RouterState::default());
    r.handle(t0(), Input::Login { conn: 1, name: n("a") });
    let body = "x".repeat(40 * 1024);
    for req in 0..10 {
        r.handle(
            t0(),
            Input::Send { conn: 1, req, recipients: Recipients::Broadcast, body: body.clone(), sent_at: ts(0) },
        );
    }
    drain(&mut r);
    r.handle(t0(), Input::History { conn: 1, req: 1, limit: 100 });
    let frames: Vec<(usize, bool)> = drain(&mut r)
        .into_iter()
        .map(|o| match o {
            Output::Reply { frame: ServerFrame::History { messages, done, .. }, .. } => (messages.len(), done),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(frames, [(3, false), (3, false), (3, false), (1, true)]);
}

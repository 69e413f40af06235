//! Exact-output tests of the router.

use super::*;
use crate::journal::Record;
use crate::protocol::SessionInfo;
use chat_core::{MAX_BODY_LEN, MessageId};

pub(super) fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

fn ts(c: u64) -> Timestamp {
    Timestamp::new(c, NodeId(0))
}

/// What the tests show in place of a session token (tokens are random: see [`drain`]).
pub(super) const TOKEN: &str = "<token>";

/// The session of a new login, as the tests show it.
pub(super) fn fresh() -> SessionInfo {
    SessionInfo {
        token: TOKEN.into(),
        grace_ms: DEFAULT_GRACE.as_millis() as u64,
        rooms: vec![],
        resumed: None,
        offline: 0,
    }
}

/// The router's outputs, with session tokens (and their hashes) masked: `TOKEN` and `[0; 32]`.
pub(super) fn drain(r: &mut Router) -> Vec<Output> {
    std::iter::from_fn(|| r.poll_output()).map(mask).collect()
}

/// Masks a session token in an output (see [`drain`]).
pub(super) fn mask(output: Output) -> Output {
    match output {
        Output::Reply { conn, frame: ServerFrame::Welcome { name, online, heartbeat_ms, mut session }, early } => {
            session.token = TOKEN.into();
            Output::Reply { conn, frame: ServerFrame::Welcome { name, online, heartbeat_ms, session }, early }
        }
        Output::Record(Record::Session { name, quiet, .. }) => {
            Output::Record(Record::Session { name, token: [0; 32], quiet })
        }
        other => other,
    }
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
        time: 0,
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
            Output::Record(Record::Session { name: n("alice"), token: [0; 32], quiet: false }),
            reply(
                1,
                ServerFrame::Welcome {
                    name: n("alice"),
                    online: vec![n("alice")],
                    heartbeat_ms: 1000,
                    session: fresh()
                }
            ),
            Output::Stream { frame: ServerFrame::Joined { name: n("alice") }, seq: 0 },
            Output::Subscribe { conn: 1 },
            Output::SessionStarted { conn: 2, name: n("bob"), after: 0 },
            Output::Record(Record::Session { name: n("bob"), token: [0; 32], quiet: false }),
            Output::Reply {
                conn: 2,
                frame: ServerFrame::Welcome {
                    name: n("bob"),
                    online: vec![n("alice"), n("bob")],
                    heartbeat_ms: 1000,
                    session: fresh()
                },
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
        Input::Send { conn: 2, req: 7, recipients: Recipients::Broadcast, body: "hi".into(), sent_at: ts(5), key: 0 },
    );
    r.handle(
        t0(),
        Input::Send { conn: 1, req: 1, recipients: Recipients::Broadcast, body: "yo".into(), sent_at: ts(1), key: 0 },
    );
    let m1 = msg(1, 6, "bob", Recipients::Broadcast, "hi");
    let m2 = msg(2, 7, "alice", Recipients::Broadcast, "yo");
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Store(Stored::plain(m1.clone())),
            Output::Stream { frame: ServerFrame::Message(m1.clone()), seq: 1 },
            reply(2, ServerFrame::Sent { req: 7, id: m1.id, unknown: vec![], queued: vec![] }),
            Output::Store(Stored::plain(m2.clone())),
            Output::Stream { frame: ServerFrame::Message(m2.clone()), seq: 2 },
            reply(1, ServerFrame::Sent { req: 1, id: m2.id, unknown: vec![], queued: vec![] }),
        ]
    );
}

#[test]
fn unicast_reaches_recipient_and_sender_only() {
    let mut r = three();
    let rec = Recipients::Unicast(n("carol"));
    r.handle(
        t0(),
        Input::Send { conn: 1, req: 3, recipients: rec.clone(), body: "psst".into(), sent_at: ts(0), key: 0 },
    );
    let m = msg(1, 1, "alice", rec, "psst");
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Store(Stored::plain(m.clone())),
            deliver(&[3, 1], ServerFrame::Message(m.clone()), 1),
            reply(1, ServerFrame::Sent { req: 3, id: m.id, unknown: vec![], queued: vec![] }),
        ]
    );
}

#[test]
fn unicast_to_unknown_user_is_rejected_and_not_stored() {
    let mut r = three();
    let rec = Recipients::Unicast(n("zed"));
    r.handle(t0(), Input::Send { conn: 1, req: 4, recipients: rec, body: "x".into(), sent_at: ts(0), key: 0 });
    assert_eq!(
        drain(&mut r),
        vec![reply(
            1,
            ServerFrame::Rejected {
                req: 4,
                code: ErrorCode::UnknownUser,
                message: "zed is not online (and unknown here)".into()
            }
        )]
    );
    assert_eq!(r.last_seq(), 0);
}

#[test]
fn multicast_to_partly_unknown_list_delivers_to_known_and_reports_unknown() {
    let mut r = three();
    let rec = Recipients::multicast([n("bob"), n("zed"), n("carol")]).unwrap();
    r.handle(t0(), Input::Send { conn: 1, req: 5, recipients: rec, body: "team".into(), sent_at: ts(0), key: 0 });
    let m = msg(1, 1, "alice", Recipients::Multicast(vec![n("bob"), n("carol")]), "team");
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Store(Stored { message: m.clone(), key: 0, queued: vec![], unknown: vec![n("zed")] }),
            deliver(&[2, 3, 1], ServerFrame::Message(m.clone()), 1),
            reply(1, ServerFrame::Sent { req: 5, id: m.id, unknown: vec![n("zed")], queued: vec![] }),
        ]
    );
    let all_unknown = Recipients::multicast([n("x"), n("y")]).unwrap();
    r.handle(t0(), Input::Send { conn: 1, req: 6, recipients: all_unknown, body: "?".into(), sent_at: ts(0), key: 0 });
    assert_eq!(
        drain(&mut r),
        vec![reply(
            1,
            ServerFrame::Rejected {
                req: 6,
                code: ErrorCode::UnknownUser,
                message: "none of x, y is online (or known here)".into()
            }
        )]
    );
}

#[test]
fn too_long_and_not_logged_in_are_rejected() {
    let mut r = three();
    let body = "x".repeat(MAX_BODY_LEN + 1);
    r.handle(t0(), Input::Send { conn: 1, req: 1, recipients: Recipients::Broadcast, body, sent_at: ts(0), key: 0 });
    r.handle(
        t0(),
        Input::Send { conn: 42, req: 2, recipients: Recipients::Broadcast, body: "x".into(), sent_at: ts(0), key: 0 },
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
fn a_clean_leave_announces_and_removes() {
    let mut r = three();
    r.handle(t0(), Input::Disconnected { conn: 2, reason: QUIT.into() });
    assert_eq!(
        drain(&mut r),
        vec![
            Output::SessionEnded { conn: 2, name: n("bob"), after: 0, reason: QUIT.into() },
            Output::Stream { frame: ServerFrame::Left { name: n("bob"), reason: QUIT.into() }, seq: 0 },
        ]
    );
    // bob is offline now, but known: a message to him waits for him; the name is free again.
    settle(&mut r);
    r.handle(
        t0(),
        Input::Send {
            conn: 1,
            req: 1,
            recipients: Recipients::Unicast(n("bob")),
            body: "?".into(),
            sent_at: ts(0),
            key: 0,
        },
    );
    let kept = msg(1, 1, "alice", Recipients::Unicast(n("bob")), "?");
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Store(Stored { message: kept.clone(), key: 0, queued: vec![n("bob")], unknown: vec![] }),
            deliver(&[1], ServerFrame::Message(kept.clone()), 1),
            reply(1, ServerFrame::Sent { req: 1, id: kept.id, unknown: vec![], queued: vec![n("bob")] }),
        ]
    );
    r.handle(t0(), Input::Login { conn: 4, name: n("bob") });
    let out = drain(&mut r);
    assert!(matches!(out[0], Output::SessionStarted { conn: 4, .. }));
    assert_eq!(
        out[2],
        reply(
            4,
            ServerFrame::Welcome {
                name: n("bob"),
                online: vec![n("alice"), n("bob"), n("carol")],
                heartbeat_ms: 1000,
                session: SessionInfo { offline: 1, ..fresh() }
            }
        )
    );
    assert_eq!(out[3], deliver(&[4], ServerFrame::Message(kept), 1), "kept while he was away, before live traffic");
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
        r.handle(t0(), Input::Send { conn, req: i as u64, recipients: rec, body: body.into(), sent_at: ts(0), key: 0 });
    }
    drain(&mut r);
    r.handle(t0(), Input::History { conn: 2, req: 9, limit: 10, room: None });
    let out = drain(&mut r);
    let [Output::Reply { conn: 2, frame: ServerFrame::History { req: 9, messages, done: true, room: None }, .. }] =
        &out[..]
    else {
        panic!("{out:?}")
    };
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["all", "to bob", "from bob"]);

    // A new router resuming from the same state continues the sequence and the clock.
    let state = RouterState { last_seq: r.last_seq(), lamport: 4, history: messages.clone(), ..RouterState::default() };
    let mut r2 = Router::new(RouterConfig::default(), state);
    r2.handle(t0(), Input::Login { conn: 1, name: n("bob") });
    r2.handle(
        t0(),
        Input::Send {
            conn: 1,
            req: 1,
            recipients: Recipients::Broadcast,
            body: "again".into(),
            sent_at: ts(0),
            key: 0,
        },
    );
    let out = drain(&mut r2);
    assert!(out.contains(&Output::Store(Stored::plain(msg(5, 5, "bob", Recipients::Broadcast, "again")))), "{out:?}");
}

#[test]
fn long_history_is_chunked() {
    let mut r = Router::new(config(100), RouterState::default());
    r.handle(t0(), Input::Login { conn: 1, name: n("a") });
    let body = "x".repeat(40 * 1024);
    for req in 0..10 {
        r.handle(
            t0(),
            Input::Send { conn: 1, req, recipients: Recipients::Broadcast, body: body.clone(), sent_at: ts(0), key: 0 },
        );
    }
    drain(&mut r);
    r.handle(t0(), Input::History { conn: 1, req: 1, limit: 100, room: None });
    let frames: Vec<(usize, bool)> = drain(&mut r)
        .into_iter()
        .map(|o| match o {
            Output::Reply { frame: ServerFrame::History { messages, done, .. }, .. } => (messages.len(), done),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(frames, [(3, false), (3, false), (3, false), (1, true)]);
}

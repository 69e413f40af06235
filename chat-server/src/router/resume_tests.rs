//! Exact-output tests of sessions that outlive their connection: detaching, resuming with every
//! missed message once, half-open connections, the grace period, idempotent retries, quiet
//! sessions, sessions kept across a restart, and version 1 connections.

use std::time::Duration;

use super::tests::{drain, fresh, n, settle, t0, three};
use super::*;
use crate::journal::Record;
use crate::protocol::{Enter, Resume, SessionInfo};
use chat_core::MessageId;

fn reply(conn: ConnId, frame: ServerFrame) -> Output {
    Output::Reply { conn, frame, early: false }
}

fn broadcast(router: &mut Router, conn: ConnId, req: u64, body: &str) {
    let recipients = Recipients::Broadcast;
    router
        .handle(t0(), Input::Send { conn, req, recipients, body: body.into(), sent_at: Timestamp::default(), key: 0 });
}

/// Logs `name` in on `conn` and returns its real session token.
fn login(router: &mut Router, conn: ConnId, name: &str) -> String {
    let enter = Enter { name: n(name), credential: None, resume: None, quiet: false };
    router.handle(t0(), Input::Enter { conn, enter });
    let out: Vec<Output> = std::iter::from_fn(|| router.poll_output()).collect();
    out.into_iter()
        .find_map(|o| match o {
            Output::Reply { frame: ServerFrame::Welcome { session, .. }, .. } => Some(session.token),
            _ => None,
        })
        .expect("a Welcome")
}

fn resume(router: &mut Router, at: Instant, conn: ConnId, name: &str, token: &str, cursor: u64) {
    let resume = Some(Resume { token: token.into(), cursor });
    router.handle(at, Input::Enter { conn, enter: Enter { name: n(name), credential: None, resume, quiet: false } });
}

fn msg(seq: u64, sender: &str, recipients: Recipients, body: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: n(sender),
        recipients,
        body: body.into(),
        lamport: Timestamp::new(seq, NodeId::SERVER),
        time: 0,
    }
}

fn resumed(missed: u64) -> SessionInfo {
    SessionInfo { resumed: Some(missed), ..fresh() }
}

#[test]
fn a_dropped_connection_is_detached_silently_and_resumed_with_what_it_missed_once() {
    let mut r = three();
    let token = login(&mut r, 4, "dave");
    settle(&mut r);
    broadcast(&mut r, 1, 1, "seen");
    settle(&mut r);
    // dave's connection drops: nobody is told, the name stays taken.
    r.handle(t0(), Input::Disconnected { conn: 4, reason: "disconnected".into() });
    assert_eq!(drain(&mut r), vec![]);
    r.handle(t0(), Input::Login { conn: 9, name: n("dave") });
    assert!(matches!(drain(&mut r)[0], Output::Reply { frame: ServerFrame::Refused { .. }, .. }));
    broadcast(&mut r, 1, 2, "while away");
    let dm = Recipients::Unicast(n("dave"));
    r.handle(
        t0(),
        Input::Send {
            conn: 2,
            req: 1,
            recipients: dm.clone(),
            body: "psst".into(),
            sent_at: Timestamp::default(),
            key: 0,
        },
    );
    let out = drain(&mut r);
    assert!(
        matches!(&out[2], Output::Reply { frame: ServerFrame::Sent { queued, .. }, .. } if queued.is_empty()),
        "{out:?}"
    );
    r.handle(
        t0(),
        Input::Send {
            conn: 2,
            req: 2,
            recipients: Recipients::Unicast(n("carol")),
            body: "not dave's".into(),
            sent_at: Timestamp::default(),
            key: 0,
        },
    );
    settle(&mut r);
    // dave comes back with the cursor of the last message he received (seq 1).
    resume(&mut r, t0(), 5, "dave", &token, 1);
    let away = msg(2, "alice", Recipients::Broadcast, "while away");
    let psst = msg(3, "bob", dm, "psst");
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Resumed { conn: 5, name: n("dave") },
            reply(
                5,
                ServerFrame::Welcome {
                    name: n("dave"),
                    online: vec![n("alice"), n("bob"), n("carol"), n("dave")],
                    heartbeat_ms: 1000,
                    session: resumed(2),
                }
            ),
            Output::Deliver { conns: vec![5], frame: ServerFrame::Message(away), seq: 2, early: false },
            Output::Deliver { conns: vec![5], frame: ServerFrame::Message(psst), seq: 3, early: false },
            Output::Subscribe { conn: 5 },
        ],
        "no join notice, no duplicate of seq 1, not carol's message"
    );
}

#[test]
fn a_resume_on_a_half_open_connection_kicks_the_old_one() {
    let mut r = three();
    let token = login(&mut r, 4, "dave");
    settle(&mut r);
    resume(&mut r, t0(), 5, "dave", &token, 0);
    let out = drain(&mut r);
    assert_eq!(
        out[0],
        Output::Kick {
            conn: 4,
            code: ErrorCode::Protocol,
            reason: "this session was resumed on another connection".into()
        }
    );
    assert_eq!(out[1], Output::Resumed { conn: 5, name: n("dave") });
    // The old connection's end is not the session's end.
    r.handle(t0(), Input::Disconnected { conn: 4, reason: "disconnected".into() });
    assert_eq!(drain(&mut r), vec![]);
    assert_eq!(r.name_of(5), Some(&n("dave")));
}

#[test]
fn the_grace_period_ends_the_session_with_timeout_and_a_late_resume_starts_a_new_one() {
    let config = RouterConfig { grace: Duration::from_secs(60), heartbeat_ms: 1000, ..RouterConfig::default() };
    let mut r = Router::new(config, RouterState::default());
    let token = login(&mut r, 1, "dave");
    login(&mut r, 2, "erin");
    settle(&mut r);
    r.handle(t0(), Input::Disconnected { conn: 1, reason: "timeout".into() });
    assert_eq!(r.poll_timeout(), Some(t0() + Duration::from_secs(60)));
    r.handle_timeout(t0() + Duration::from_secs(59));
    assert_eq!(drain(&mut r), vec![]);
    r.handle_timeout(t0() + Duration::from_secs(60));
    assert_eq!(
        drain(&mut r),
        vec![
            Output::SessionEnded { conn: 0, name: n("dave"), after: 0, reason: "timeout".into() },
            Output::Stream { frame: ServerFrame::Left { name: n("dave"), reason: "timeout".into() }, seq: 0 },
        ]
    );
    // Too late: a new session, which the Welcome says (`resumed: None`).
    resume(&mut r, t0() + Duration::from_secs(61), 3, "dave", &token, 0);
    let out = drain(&mut r);
    assert!(matches!(&out[0], Output::SessionStarted { conn: 3, .. }), "{out:?}");
    let Some(Output::Reply { frame: ServerFrame::Welcome { session, .. }, .. }) = out.get(2) else { panic!("{out:?}") };
    assert_eq!(session.resumed, None);
}

#[test]
fn a_wrong_token_is_a_taken_name() {
    let mut r = three();
    login(&mut r, 4, "dave");
    resume(&mut r, t0(), 5, "dave", "not-the-token", 0);
    let out = drain(&mut r);
    assert!(matches!(
        &out[0],
        Output::Reply { conn: 5, frame: ServerFrame::Refused { code: ErrorCode::NameTaken, .. }, .. }
    ));
}

#[test]
fn a_send_retried_with_its_key_is_stored_once_and_answered_as_the_first_time() {
    let mut r = three();
    let send = |r: &mut Router, req| {
        let recipients = Recipients::Broadcast;
        r.handle(
            t0(),
            Input::Send { conn: 1, req, recipients, body: "once".into(), sent_at: Timestamp::default(), key: 77 },
        );
    };
    send(&mut r, 1);
    let first = drain(&mut r);
    assert!(matches!(&first[0], Output::Store(Stored { key: 77, .. })));
    send(&mut r, 2);
    let id = MessageId::new(NodeId::SERVER, 1);
    assert_eq!(
        drain(&mut r),
        vec![reply(1, ServerFrame::Sent { req: 2, id, unknown: vec![], queued: vec![] })],
        "nothing stored, nothing delivered again"
    );
}

#[test]
fn a_quiet_session_is_not_announced_or_listed() {
    let mut r = three();
    let enter = Enter { name: n("bot"), credential: None, resume: None, quiet: true };
    r.handle(t0(), Input::Enter { conn: 4, enter });
    let out = drain(&mut r);
    assert_eq!(out[1], Output::Record(Record::Session { name: n("bot"), token: [0; 32], quiet: true }));
    assert!(!out.iter().any(|o| matches!(o, Output::Stream { frame: ServerFrame::Joined { .. }, .. })), "{out:?}");
    r.handle(t0(), Input::Peers { conn: 1, req: 1 });
    assert_eq!(
        drain(&mut r),
        vec![reply(1, ServerFrame::Peers { req: 1, names: vec![n("alice"), n("bob"), n("carol")] })]
    );
    r.handle(t0(), Input::Disconnected { conn: 4, reason: QUIT.into() });
    let out = drain(&mut r);
    assert_eq!(out, vec![Output::SessionEnded { conn: 4, name: n("bot"), after: 0, reason: QUIT.into() }]);
}

#[test]
fn sessions_open_in_the_journal_are_kept_after_a_restart_and_resumed_with_their_keys() {
    let token = "a-token-from-before";
    let kept = KeptSession {
        name: n("dave"),
        token: Some(login::token_hash(token)),
        after: 0,
        quiet: false,
        keys: vec![(5, Receipt { id: MessageId::new(NodeId::SERVER, 1), unknown: vec![], queued: vec![] })],
        backlog: vec![],
    };
    let history = vec![msg(1, "dave", Recipients::Broadcast, "before the crash")];
    let state = RouterState { last_seq: 1, lamport: 1, history, sessions: vec![kept], ..RouterState::default() };
    let config = RouterConfig { heartbeat_ms: 1000, ..RouterConfig::default() };
    let mut r = Router::new(config, state);
    r.handle(t0(), Input::Opened { conn: 1 });
    assert_eq!(drain(&mut r), vec![Output::Record(Record::Kept { name: n("dave"), after: 1 })]);
    assert_eq!(r.poll_timeout(), Some(t0() + DEFAULT_GRACE), "a full grace period from the start");
    resume(&mut r, t0(), 1, "dave", token, 0);
    let out: Vec<Output> = drain(&mut r);
    assert_eq!(
        out[2],
        Output::Deliver {
            conns: vec![1],
            frame: ServerFrame::Message(msg(1, "dave", Recipients::Broadcast, "before the crash")),
            seq: 1,
            early: false
        },
        "the message the client had not received"
    );
    // The send the client did not see acknowledged before the crash is answered, not stored again.
    r.handle(
        t0(),
        Input::Send {
            conn: 1,
            req: 9,
            recipients: Recipients::Broadcast,
            body: "before the crash".into(),
            sent_at: Timestamp::default(),
            key: 5,
        },
    );
    assert_eq!(
        drain(&mut r),
        vec![reply(
            1,
            ServerFrame::Sent { req: 9, id: MessageId::new(NodeId::SERVER, 1), unknown: vec![], queued: vec![] }
        )]
    );
}

#[test]
fn a_version_1_connection_gets_the_stream_one_frame_at_a_time() {
    let mut r = Router::new(RouterConfig { heartbeat_ms: 1000, ..RouterConfig::default() }, RouterState::default());
    r.handle(t0(), Input::Opened { conn: 1 });
    r.handle(t0(), Input::Legacy { conn: 1 });
    r.handle(t0(), Input::Login { conn: 1, name: n("old") });
    let out = drain(&mut r);
    assert!(!out.iter().any(|o| matches!(o, Output::Subscribe { .. })), "not a stream reader: {out:?}");
    broadcast(&mut r, 1, 1, "hi");
    let m = msg(1, "old", Recipients::Broadcast, "hi");
    let out = drain(&mut r);
    assert_eq!(out[1], Output::Stream { frame: ServerFrame::Message(m.clone()), seq: 1 });
    assert_eq!(out[2], Output::Deliver { conns: vec![1], frame: ServerFrame::Message(m), seq: 1, early: false });
}

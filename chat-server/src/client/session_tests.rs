//! Exact-output tests of the client session core.

use crate::client::reconnect::Reconnect;
use crate::protocol::{Enter, Resume, SessionInfo};
use chat_core::{MessageId, NodeId, Recipients, Timestamp};

use super::*;

const HEARTBEAT: Duration = Duration::from_millis(1000);

/// A new session's `Welcome` part.
fn fresh() -> SessionInfo {
    SessionInfo { token: "tok".into(), grace_ms: 60_000, rooms: vec![], resumed: None, offline: 0 }
}

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

fn drain(s: &mut Session) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn frame(s: &mut Session, now: Instant, frame: ServerFrame) -> Vec<Output> {
    s.handle_frame(now, frame);
    drain(s)
}

fn msg(seq: u64, body: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: n("bob"),
        recipients: Recipients::Broadcast,
        body: body.into(),
        lamport: Timestamp::new(seq, NodeId::SERVER),
        time: 0,
    }
}

fn outgoing(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        recipients: Recipients::Unicast(n("bob")),
        body: body.into(),
        sent_at: Timestamp::new(7, NodeId(0)),
    }
}

fn send_frame(req: u64, body: &str) -> Output {
    let m = outgoing(body);
    Output::Write(ClientFrame::Send { req, recipients: m.recipients, body: m.body, sent_at: m.sent_at, key: req })
}

fn welcome() -> ServerFrame {
    ServerFrame::Welcome { name: n("alice"), online: vec![n("alice"), n("bob")], heartbeat_ms: 1000, session: fresh() }
}

fn answer(ticket: Ticket, answer: Result<Answer, CoreError>) -> Output {
    Output::Answer { ticket, answer }
}

fn lost(code: ErrorCode, reason: &str) -> [Output; 2] {
    [
        Output::Event(Event::Disconnected { code, reason: reason.into() }),
        Output::Closed(End::Lost { code, reason: reason.into() }),
    ]
}

/// alice, logged in at `t0`, outputs drained.
fn ready(t0: Instant) -> Session {
    let mut s = Session::new(n("alice"));
    s.handle_frame(t0, welcome());
    drain(&mut s);
    s
}

#[test]
fn login_is_written_first_and_welcome_makes_the_session_ready() {
    let t0 = Instant::now();
    let mut s = Session::new(n("alice"));
    assert_eq!(
        drain(&mut s),
        [Output::Write(ClientFrame::Enter(Enter { name: n("alice"), credential: None, resume: None, quiet: false }))]
    );
    assert_eq!(s.poll_timeout(), None, "no liveness clock before the login is accepted");
    assert_eq!(
        frame(&mut s, t0, welcome()),
        [Output::LoggedIn { name: n("alice"), online: vec![n("alice"), n("bob")], rooms: vec![] }]
    );
    assert!(s.is_ready());
    assert_eq!(s.poll_timeout(), Some(t0 + HEARTBEAT));
}

#[test]
fn refused_logins_close_with_the_servers_code() {
    let t0 = Instant::now();
    for code in [ErrorCode::NameTaken, ErrorCode::Busy] {
        let mut s = Session::new(n("alice"));
        drain(&mut s);
        let refused = ServerFrame::Refused { code, message: "no".into() };
        assert_eq!(frame(&mut s, t0, refused), [Output::Closed(End::Refused { code, message: "no".into() })]);
        assert!(s.is_closed());
        assert_eq!(s.poll_timeout(), None);
        let ticket = s.handle_request(t0, Request::Peers);
        assert_eq!(drain(&mut s), [answer(ticket, Err(closed()))]);
    }
}

#[test]
fn another_frame_during_login_is_a_protocol_error_and_requests_wait_for_nothing() {
    let t0 = Instant::now();
    let mut s = Session::new(n("alice"));
    drain(&mut s);
    let early = s.handle_request(t0, Request::Peers);
    assert_eq!(drain(&mut s), [answer(early, Err(closed()))]);
    assert_eq!(
        frame(&mut s, t0, ServerFrame::Ping),
        [Output::Closed(End::Lost { code: ErrorCode::Protocol, reason: "expected Welcome, got Ping".into() })]
    );
}

#[test]
fn sent_and_rejected_answer_the_right_tickets() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let first = s.handle_request(t0, Request::Send(outgoing("one")));
    let second = s.handle_request(t0, Request::Send(outgoing("two")));
    assert_ne!(first, second);
    assert_eq!(drain(&mut s), [send_frame(1, "one"), send_frame(2, "two")]);
    // Answered out of order: the second is rejected first.
    let rejected = ServerFrame::Rejected { req: 2, code: ErrorCode::UnknownUser, message: "bob is not online".into() };
    assert_eq!(
        frame(&mut s, t0, rejected),
        [answer(
            second,
            Err(CoreError::Rejected { code: ErrorCode::UnknownUser, message: "bob is not online".into() })
        )]
    );
    let id = MessageId::new(NodeId::SERVER, 41);
    assert_eq!(
        frame(&mut s, t0, ServerFrame::Sent { req: 1, id, unknown: vec![n("ghost")], queued: vec![] }),
        [answer(first, Ok(Answer::Sent(SendReceipt { id, unknown: vec![n("ghost")], queued: vec![] })))]
    );
    // A second answer to the same request answers nothing.
    assert_eq!(frame(&mut s, t0, ServerFrame::Sent { req: 1, id, unknown: vec![], queued: vec![] }), []);
}

#[test]
fn rejected_with_an_unknown_req_becomes_an_error_event() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let rejected = ServerFrame::Rejected { req: 99, code: ErrorCode::TooLong, message: "long".into() };
    assert_eq!(
        frame(&mut s, t0, rejected),
        [Output::Event(Event::Error { code: ErrorCode::TooLong, message: "long".into() })]
    );
}

#[test]
fn chunked_history_is_reassembled_across_frames() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let ticket = s.handle_request(t0, Request::History { limit: 5, room: None });
    assert_eq!(drain(&mut s), [Output::Write(ClientFrame::History { req: 1, limit: 5, room: None })]);
    let chunk = |messages, done| ServerFrame::History { req: 1, messages, done, room: None };
    assert_eq!(frame(&mut s, t0, chunk(vec![msg(1, "a"), msg(2, "b")], false)), []);
    assert_eq!(frame(&mut s, t0, chunk(vec![msg(3, "c")], false)), []);
    assert_eq!(
        frame(&mut s, t0, chunk(vec![msg(4, "d")], true)),
        [answer(ticket, Ok(Answer::History(vec![msg(1, "a"), msg(2, "b"), msg(3, "c"), msg(4, "d")])))]
    );
}

#[test]
fn peers_and_notices_and_messages() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let ticket = s.handle_request(t0, Request::Peers);
    assert_eq!(drain(&mut s), [Output::Write(ClientFrame::Peers { req: 1 })]);
    assert_eq!(
        frame(&mut s, t0, ServerFrame::Peers { req: 1, names: vec![n("alice"), n("bob")] }),
        [answer(ticket, Ok(Answer::Peers(vec![PeerInfo::named(n("alice")), PeerInfo::named(n("bob"))])))]
    );
    s.handle_frame(t0, ServerFrame::Joined { name: n("carol") });
    s.handle_frame(t0, ServerFrame::Message(msg(5, "hi")));
    s.handle_frame(t0, ServerFrame::Left { name: n("carol"), reason: "quit".into() });
    assert_eq!(
        drain(&mut s),
        [
            Output::Event(Event::PeerJoined(PeerInfo::named(n("carol")))),
            Output::Event(Event::Message(msg(5, "hi"))),
            Output::Event(Event::PeerLeft(PeerInfo::named(n("carol")))),
        ]
    );
}

#[test]
fn an_answer_of_the_wrong_kind_fails_its_request() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let ticket = s.handle_request(t0, Request::Peers);
    drain(&mut s);
    let id = MessageId::new(NodeId::SERVER, 1);
    assert_eq!(
        frame(&mut s, t0, ServerFrame::Sent { req: 1, id, unknown: vec![], queued: vec![] }),
        [answer(
            ticket,
            Err(CoreError::Rejected {
                code: ErrorCode::Protocol,
                message: "the server answered request 1 with the wrong kind of frame".into()
            })
        )]
    );
}

#[test]
fn ping_is_answered_by_pong() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    assert_eq!(frame(&mut s, t0, ServerFrame::Ping), [Output::Write(ClientFrame::Pong)]);
    assert_eq!(frame(&mut s, t0, ServerFrame::Pong), []);
}

#[test]
fn a_ping_is_written_every_heartbeat_even_while_frames_arrive() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let mut written = Vec::new();
    // Ten heartbeats, a frame from the server every half heartbeat, timeouts served when due.
    for half in 1..=20u32 {
        let now = t0 + HEARTBEAT * half / 2;
        while let Some(due) = s.poll_timeout().filter(|due| *due <= now) {
            s.handle_timeout(due);
            written.extend(drain(&mut s).into_iter().map(|o| (due, o)));
        }
        assert_eq!(frame(&mut s, now, ServerFrame::Pong), []);
    }
    let expected: Vec<_> = (1..=10u32).map(|k| (t0 + HEARTBEAT * k, Output::Write(ClientFrame::Ping))).collect();
    assert_eq!(written, expected);
    assert!(s.is_ready());
}

#[test]
fn a_request_written_postpones_the_next_ping() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let half = t0 + HEARTBEAT / 2;
    s.handle_request(half, Request::Peers);
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(half + HEARTBEAT));
    s.handle_timeout(t0 + HEARTBEAT);
    assert_eq!(drain(&mut s), [], "not due yet");
}

#[test]
fn three_silent_heartbeats_end_the_session_and_answer_pending_requests() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let history = s.handle_request(t0, Request::History { limit: 1, room: None });
    let send = s.handle_request(t0, Request::Send(outgoing("x")));
    drain(&mut s);
    let mut outputs = Vec::new();
    for _ in 0..10 {
        let Some(due) = s.poll_timeout() else { break };
        s.handle_timeout(due);
        outputs.extend(drain(&mut s));
    }
    let mut expected = vec![
        Output::Write(ClientFrame::Ping),
        Output::Write(ClientFrame::Ping),
        Output::Disconnect,
        answer(history, Err(closed())),
        answer(send, Err(closed())),
    ];
    expected.extend(lost(ErrorCode::Disconnected, "the server stopped answering"));
    assert_eq!(outputs, expected);
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn closing_ends_with_the_servers_code() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let closing = ServerFrame::Closing { code: ErrorCode::ShuttingDown, reason: "bye".into() };
    let mut expected = vec![Output::Disconnect];
    expected.extend(lost(ErrorCode::ShuttingDown, "bye"));
    assert_eq!(frame(&mut s, t0, closing), expected, "without reconnection, the end");
    assert_eq!(frame(&mut s, t0, ServerFrame::Ping), [], "a closed session ignores frames");
}

#[test]
fn an_unexpected_welcome_after_login_is_a_protocol_error() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    assert_eq!(frame(&mut s, t0, welcome()), lost(ErrorCode::Protocol, "unexpected login frame"));
}

#[test]
fn a_lost_connection_ends_with_the_shells_reason() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    s.handle_connection_lost(t0, "the server closed the connection".into());
    assert_eq!(drain(&mut s), lost(ErrorCode::Disconnected, "the server closed the connection"));
    s.handle_connection_lost(t0, "again".into());
    assert_eq!(drain(&mut s), []);
}

#[test]
fn leave_writes_leave_and_closes() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let peers = s.handle_request(t0, Request::Peers);
    drain(&mut s);
    let leave = s.handle_request(t0, Request::Leave);
    assert_eq!(
        drain(&mut s),
        [
            Output::Write(ClientFrame::Leave),
            answer(peers, Err(closed())),
            answer(leave, Ok(Answer::Left)),
            Output::Closed(End::Left),
        ]
    );
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + HEARTBEAT * 10);
    assert_eq!(frame(&mut s, t0, ServerFrame::Peers { req: 1, names: vec![] }), []);
    let after = s.handle_request(t0, Request::Send(outgoing("late")));
    assert_eq!(drain(&mut s), [answer(after, Err(closed()))]);
}

#[test]
fn a_send_refused_as_too_fast_is_sent_again_after_the_wait_and_answered_once() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let ticket = s.handle_request(t0, Request::Send(outgoing("hi")));
    assert_eq!(drain(&mut s), [send_frame(1, "hi")]);
    assert_eq!(frame(&mut s, t0, ServerFrame::RateLimited { req: 1, retry_after_ms: 250 }), []);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(250)));
    s.handle_timeout(t0 + Duration::from_millis(249));
    assert_eq!(drain(&mut s), [], "not before the wait is over");
    s.handle_timeout(t0 + Duration::from_millis(250));
    assert_eq!(drain(&mut s), [send_frame(1, "hi")], "the same request again");
    let id = MessageId::new(NodeId::SERVER, 5);
    let sent = ServerFrame::Sent { req: 1, id, unknown: vec![], queued: vec![] };
    assert_eq!(
        frame(&mut s, t0 + Duration::from_millis(260), sent),
        [answer(ticket, Ok(Answer::Sent(SendReceipt { id, unknown: vec![], queued: vec![] })))]
    );
    // A hostile wait is capped, and a refusal for no pending send is ignored.
    let _ = s.handle_request(t0, Request::Send(outgoing("again")));
    drain(&mut s);
    let huge = ServerFrame::RateLimited { req: 2, retry_after_ms: u64::MAX };
    assert_eq!(frame(&mut s, t0 + Duration::from_millis(300), huge), []);
    assert!(s.poll_timeout().is_some_and(|t| t <= t0 + Duration::from_millis(300) + MAX_RETRY_AFTER));
    assert_eq!(frame(&mut s, t0, ServerFrame::RateLimited { req: 99, retry_after_ms: 1 }), []);
}

#[test]
fn a_client_that_was_itself_frozen_pings_instead_of_blaming_the_server() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    // The process was stopped for ten heartbeats (SIGSTOP): its timer fires far too late.
    let late = t0 + HEARTBEAT * 10;
    s.handle_timeout(late);
    assert_eq!(drain(&mut s), [Output::Write(ClientFrame::Ping)], "a ping, not the end");
    assert!(s.is_ready());
    assert_eq!(s.poll_timeout(), Some(late + HEARTBEAT), "the silence clock starts again");
    // If the server really is gone, it is noticed three heartbeats later.
    let mut outputs = Vec::new();
    for _ in 0..5 {
        let Some(due) = s.poll_timeout() else { break };
        s.handle_timeout(due);
        outputs.extend(drain(&mut s));
    }
    assert!(outputs.contains(&Output::Disconnect), "{outputs:?}");
}

#[test]
fn a_lost_connection_is_resumed_with_the_token_and_cursor_and_waiting_sends_go_again_with_their_keys() {
    let t0 = Instant::now();
    let reconnect =
        Reconnect { first: Duration::from_millis(100), cap: Duration::from_secs(1), ..Reconnect::default() };
    let mut s = Session::with(SessionConfig { reconnect: Some(reconnect), ..SessionConfig::new(n("alice")) });
    drain(&mut s);
    s.handle_frame(t0, welcome());
    drain(&mut s);
    s.handle_frame(t0, ServerFrame::Message(msg(4, "seen")));
    drain(&mut s);
    let send = s.handle_request(t0, Request::Send(outgoing("in flight")));
    drain(&mut s);
    s.handle_connection_lost(t0, "reset".into());
    let out = drain(&mut s);
    let [Output::Event(Event::Reconnecting { attempt: 1, in_ms })] = out[..] else { panic!("{out:?}") };
    assert!((50..=100).contains(&in_ms), "{in_ms}");
    // Asked while away: queued, not written.
    let peers = s.handle_request(t0, Request::Peers);
    assert_eq!(drain(&mut s), []);
    s.handle_timeout(t0 + Duration::from_millis(in_ms));
    assert_eq!(drain(&mut s), [Output::Connect]);
    s.handle_connected(t0 + Duration::from_millis(in_ms));
    let resume = Some(Resume { token: "tok".into(), cursor: 4 });
    let enter = Enter { name: n("alice"), credential: None, resume, quiet: false };
    assert_eq!(drain(&mut s), [Output::Write(ClientFrame::Enter(enter))]);
    let back = ServerFrame::Welcome {
        name: n("alice"),
        online: vec![n("alice")],
        heartbeat_ms: 1000,
        session: SessionInfo { resumed: Some(1), ..fresh() },
    };
    s.handle_frame(t0 + Duration::from_millis(200), back);
    assert_eq!(
        drain(&mut s),
        [
            Output::Event(Event::Resumed { missed: 1 }),
            send_frame(1, "in flight"),
            Output::Write(ClientFrame::Peers { req: 2 })
        ]
    );
    // The missed message comes; one already seen (at or below the cursor) is dropped.
    s.handle_frame(t0, ServerFrame::Message(msg(4, "seen")));
    assert_eq!(drain(&mut s), []);
    s.handle_frame(t0, ServerFrame::Message(msg(5, "missed")));
    assert_eq!(drain(&mut s), [Output::Event(Event::Message(msg(5, "missed")))]);
    let id = MessageId::new(NodeId::SERVER, 6);
    s.handle_frame(t0, ServerFrame::Sent { req: 1, id, unknown: vec![], queued: vec![] });
    assert_eq!(drain(&mut s), [answer(send, Ok(Answer::Sent(SendReceipt { id, unknown: vec![], queued: vec![] })))]);
    let _ = peers;
}

#[test]
fn a_closing_while_logging_in_again_is_another_attempt_not_the_end() {
    let t0 = Instant::now();
    let reconnect =
        Reconnect { first: Duration::from_millis(100), cap: Duration::from_secs(1), ..Reconnect::default() };
    let mut s = Session::with(SessionConfig { reconnect: Some(reconnect), ..SessionConfig::new(n("alice")) });
    drain(&mut s);
    s.handle_frame(t0, welcome());
    drain(&mut s);
    s.handle_connection_lost(t0, "reset".into());
    let out = drain(&mut s);
    let [Output::Event(Event::Reconnecting { attempt: 1, in_ms })] = out[..] else { panic!("{out:?}") };
    s.handle_timeout(t0 + Duration::from_millis(in_ms));
    assert_eq!(drain(&mut s), [Output::Connect]);
    s.handle_connected(t0 + Duration::from_millis(in_ms));
    drain(&mut s);
    let closing = ServerFrame::Closing { code: ErrorCode::Protocol, reason: "no login within 10 s".into() };
    s.handle_frame(t0 + Duration::from_secs(10), closing);
    let out = drain(&mut s);
    assert!(matches!(out[..], [Output::Disconnect, Output::Event(Event::Reconnecting { attempt: 1, .. })]), "{out:?}");
    assert!(!s.is_closed());
}

//! Exact-output tests of the text session: bytes in → events; frames in → lines, at the times the
//! pacing allows (virtual time: writes take no time).

use std::time::{Duration, Instant};

use chat_core::{ChatMessage, ErrorCode, MessageId, NodeId, Recipients, Timestamp, UserName};

use super::*;
use crate::protocol::{ClientFrame, ServerFrame};

/// A new session's part of a `Welcome` (text sessions do not use it).
fn fresh() -> crate::protocol::SessionInfo {
    crate::protocol::SessionInfo { token: "t".into(), grace_ms: 0, rooms: vec![], resumed: None, offline: 0 }
}

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

fn t0() -> Instant {
    thread_local!(static T0: Instant = Instant::now());
    T0.with(|t| *t)
}

fn ms(m: u64) -> Instant {
    t0() + Duration::from_millis(m)
}

fn events(s: &mut TextSession) -> Vec<TextEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Writes every line as soon as the session allows, up to `until`: `(ms since t0, line)`.
fn run(s: &mut TextSession, from: Instant, until: Instant) -> Vec<(u64, String)> {
    let mut now = from;
    let mut out = Vec::new();
    for _ in 0..10_000 {
        if let Some(line) = s.poll_transmit(now) {
            out.push(((now - t0()).as_millis() as u64, String::from_utf8(line.to_vec()).unwrap()));
            s.handle_written(now);
            continue;
        }
        match s.poll_timeout() {
            Some(t) if t <= until => {
                now = now.max(t);
                s.handle_timeout(now);
            }
            _ => break,
        }
    }
    out
}

fn lines(s: &mut TextSession, from: Instant) -> Vec<String> {
    run(s, from, from + Duration::from_secs(3600)).into_iter().map(|(_, l)| l).collect()
}

fn send(req: u64, recipients: Recipients, body: &str, clock: u64) -> TextEvent {
    TextEvent::Frame(ClientFrame::Send {
        req,
        recipients,
        body: body.into(),
        sent_at: Timestamp::new(clock, NodeId(0)),
        key: 0,
    })
}

fn msg(seq: u64, lamport: u64, sender: &str, recipients: Recipients, body: &str) -> ServerFrame {
    ServerFrame::Message(ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: n(sender),
        recipients,
        body: body.into(),
        lamport: Timestamp::new(lamport, NodeId::SERVER),
        time: 0,
    })
}

fn sent(req: u64, seq: u64) -> ServerFrame {
    ServerFrame::Sent { req, id: MessageId::new(NodeId::SERVER, seq), unknown: vec![], queued: vec![] }
}

/// alice, logged in with bob online, her welcome written (at 230 ms).
fn alice() -> TextSession {
    let mut s = TextSession::new(t0());
    s.handle_read(b"CONNECT");
    s.handle_read(b"1:alice");
    s.handle_frame(
        t0(),
        &ServerFrame::Welcome {
            name: n("alice"),
            online: vec![n("alice"), n("bob")],
            heartbeat_ms: 5000,
            session: fresh(),
        },
    );
    events(&mut s);
    run(&mut s, t0(), ms(1000));
    s
}

#[test]
fn the_handshake_is_paced_as_the_original_client_reads_it() {
    let mut s = TextSession::new(t0());
    s.handle_read(b"CONNECT\r\n");
    assert_eq!(events(&mut s), [TextEvent::Open]);
    s.handle_read(b"1:alice");
    assert_eq!(events(&mut s), [TextEvent::Frame(ClientFrame::Login { name: n("alice") })]);
    s.handle_frame(
        t0(),
        &ServerFrame::Welcome {
            name: n("alice"),
            online: vec![n("alice"), n("bob")],
            heartbeat_ms: 1,
            session: fresh(),
        },
    );
    assert_eq!(
        run(&mut s, t0(), ms(1000)),
        [
            (0, "ACCEPT:0:Bem-vindo ao servidor\n".to_string()),
            (200, "0:Digite seu nome: \n".to_string()),
            (230, "0:Sistema:Usuários conectados: alice, bob\n".to_string()),
        ]
    );
    assert!(!s.is_done());
}

#[test]
fn the_three_kinds_each_way_with_the_originals_acknowledgements() {
    let mut s = alice();
    s.handle_read(b"2:MSG:bob:hi\n3:MULTICAST:bob,carol:yo: there\n4:BROADCAST:ALL:all");
    let (bob, carol) = (n("bob"), n("carol"));
    assert_eq!(
        events(&mut s),
        [
            send(4, Recipients::Unicast(bob.clone()), "hi", 2),
            send(9, Recipients::Multicast(vec![bob.clone(), carol.clone()]), "yo: there", 3),
            send(14, Recipients::Broadcast, "all", 4),
        ]
    );
    // The router's answers, in server order: each own message, then its Sent (carol was offline).
    let frames = [
        msg(1, 5, "alice", Recipients::Unicast(bob.clone()), "hi"),
        sent(4, 1),
        msg(2, 6, "alice", Recipients::Multicast(vec![bob.clone()]), "yo: there"),
        sent(9, 2),
        ServerFrame::Joined { name: carol.clone() },
        msg(3, 7, "alice", Recipients::Broadcast, "all"),
        sent(14, 3),
        msg(4, 9, "bob", Recipients::Unicast(n("alice")), "psst"),
        msg(5, 10, "bob", Recipients::Multicast(vec![n("alice"), carol.clone()]), "team"),
        msg(6, 11, "carol", Recipients::Multicast(vec![bob.clone()]), "not for alice"),
        ServerFrame::Left { name: carol, reason: "quit".into() },
        msg(7, 12, "bob", Recipients::Broadcast, "hello"),
        ServerFrame::Ping,
        ServerFrame::Peers { req: 1, names: vec![] },
    ];
    for f in &frames {
        s.handle_frame(ms(1000), f);
    }
    assert_eq!(
        run(&mut s, ms(1000), ms(5000)),
        [
            (1000, "6:Sistema:Mensagem enviada para 1 usuário(s)\n".to_string()),
            (1030, "7:Sistema:Mensagem enviada para todos (2 usuário(s))\n".to_string()),
            (1060, "9:bob:psst\n".to_string()),
            (1090, "10:bob (multicast):team\n".to_string()),
            (1120, "12:bob (broadcast):hello\n".to_string()),
        ]
    );
}

#[test]
fn refusals_are_worded_as_the_original_and_impossible_addressees_answered_locally() {
    let mut s = alice();
    s.handle_read(b"5:MSG:nobody:x\n6:MULTICAST:x,y:z\n7:MSG:a b:x\n8:MULTICAST: , :x\n9:BROADCAST:ALL:y");
    let sends = events(&mut s);
    assert_eq!(sends.len(), 3, "{sends:?}");
    let answers = [
        ServerFrame::Rejected { req: 4, code: ErrorCode::UnknownUser, message: "nobody is not online".into() },
        ServerFrame::Rejected { req: 9, code: ErrorCode::UnknownUser, message: "none of x, y is online".into() },
        ServerFrame::RateLimited { req: 14, retry_after_ms: 20 },
        ServerFrame::Rejected { req: 18, code: ErrorCode::Protocol, message: "your Lamport clock is ahead".into() },
    ];
    for a in &answers {
        s.handle_frame(ms(1000), a);
    }
    assert_eq!(
        lines(&mut s, ms(1000)),
        [
            "0:Sistema:Usuário não encontrado.\n",
            "0:Sistema:Nenhum destinatário válido encontrado.\n",
            "0:Sistema:Usuário não encontrado.\n",
            "0:Sistema:Nenhum destinatário válido encontrado.\n",
            "0:Sistema:Mensagem não enviada: limite de envio excedido, tente de novo em 20 ms\n",
            "0:Sistema:Mensagem não enviada: your Lamport clock is ahead\n",
        ]
    );
}

#[test]
fn ignored_commands_produce_nothing_and_huge_clocks_go_to_the_router_saturated() {
    let mut s = alice();
    s.handle_read(b"1:MSG\nMSG:bob:hi\nx:MSG:bob:hi\n1:msg:bob:hi\n1:SEND:bob:hi\n\xff\xfe\n\n  \n");
    assert_eq!(events(&mut s), []);
    assert_eq!(lines(&mut s, ms(1000)), Vec::<String>::new());
    s.handle_read(b"99999999999999999999999:BROADCAST:ALL:x");
    assert_eq!(events(&mut s), [send(6, Recipients::Broadcast, "x", u64::MAX)]);
}

#[test]
fn anything_but_connect_is_rejected_and_the_connection_closed() {
    for first in [&b"HELLO"[..], b"connect", b"\xff\xff", b"   ", b"1:alice"] {
        let mut s = TextSession::new(t0());
        s.handle_read(first);
        assert_eq!(events(&mut s), [TextEvent::Closed { reason: "protocol".into() }], "{first:?}");
        assert_eq!(lines(&mut s, t0()), ["REJECT:Protocolo inválido\n"]);
        assert!(s.is_done());
        s.handle_read(b"CONNECT");
        assert_eq!(events(&mut s), [], "nothing is read once closing");
    }
}

#[test]
fn a_client_that_never_sends_connect_is_rejected_in_time() {
    let mut s = TextSession::new(t0());
    assert_eq!(s.poll_timeout(), Some(t0() + CONNECT_TIMEOUT));
    assert_eq!(run(&mut s, t0(), ms(4999)), []);
    assert_eq!(run(&mut s, t0(), ms(5000)), [(5000, "REJECT:Protocolo inválido\n".to_string())]);
    assert_eq!(events(&mut s), [TextEvent::Closed { reason: "protocol".into() }]);
    assert!(s.is_done());
}

#[test]
fn a_name_no_user_may_have_is_refused_with_the_reason_and_closed() {
    for (name, why) in [
        (&b"1:al\x07ice"[..], "0:Sistema:invalid user name \"al\\\\u{7}ice\": it contains a control character\n"),
        (b"1:a b", "0:Sistema:invalid user name \"a b\": it contains whitespace\n"),
        (b"x:y", "0:Sistema:invalid user name \"x:y\": it contains ':' or ','\n"),
    ] {
        let mut s = TextSession::new(t0());
        s.handle_read(b"CONNECT");
        s.handle_read(name);
        assert_eq!(events(&mut s), [TextEvent::Open, TextEvent::Closed { reason: "invalid_name".into() }]);
        let written = lines(&mut s, t0());
        assert_eq!(written[2], why);
        assert!(s.is_done());
    }
}

#[test]
fn a_native_users_text_cannot_start_a_line_or_drive_a_terminal_and_long_lines_are_cut() {
    let mut s = alice();
    s.handle_frame(ms(1000), &msg(1, 3, "bob", Recipients::Broadcast, "hi\n999:Sistema:you are banned\u{1b}[2J"));
    s.handle_frame(ms(1000), &msg(2, 4, "bob", Recipients::Unicast(n("alice")), &"é".repeat(1000)));
    let written = lines(&mut s, ms(1000));
    assert_eq!(written[0], "3:bob (broadcast):hi\\n999:Sistema:you are banned\\x1b[2J\n");
    assert_eq!(written[1].len(), MAX_LINE - 1, "cut before the 1024th byte, which is inside an é");
    assert!(written[1].starts_with("4:bob:éé") && written[1].ends_with("é\n"));
}

#[test]
fn a_note_to_oneself_is_shown_and_other_kinds_of_frames_are_not() {
    let mut s = alice();
    s.handle_read(b"2:MSG:alice:note");
    assert_eq!(events(&mut s), [send(4, Recipients::Unicast(n("alice")), "note", 2)]);
    s.handle_frame(ms(1000), &msg(1, 3, "alice", Recipients::Unicast(n("alice")), "note"));
    s.handle_frame(ms(1000), &sent(4, 1));
    s.handle_frame(ms(1000), &ServerFrame::History { req: 1, messages: vec![], done: true, room: None });
    s.handle_frame(ms(1000), &ServerFrame::Pong);
    assert_eq!(lines(&mut s, ms(1000)), ["3:alice:note\n"]);
}

#[test]
fn a_reader_too_slow_for_the_pacing_is_disconnected_with_a_last_line() {
    let mut s = alice();
    for i in 0..MAX_QUEUED_LINES as u64 {
        s.handle_frame(ms(1000), &msg(i + 1, i + 10, "bob", Recipients::Broadcast, "flood"));
    }
    assert_eq!(events(&mut s), [], "{MAX_QUEUED_LINES} lines may wait");
    s.handle_frame(ms(1000), &msg(9999, 9999, "bob", Recipients::Broadcast, "one too many"));
    assert_eq!(events(&mut s), [TextEvent::Closed { reason: "slow_consumer".into() }]);
    assert!(!s.wants_frames());
    s.handle_frame(ms(1000), &msg(10_000, 10_000, "bob", Recipients::Broadcast, "ignored"));
    assert_eq!(
        lines(&mut s, ms(1000)),
        ["9999:Sistema:Conexão encerrada: too slow: more than 1024 lines waiting to be written\n"]
    );
    assert!(s.is_done() && s.linger());
}

#[test]
fn a_kill_drops_the_queue_and_gives_up_if_the_last_line_cannot_be_written() {
    let mut s = alice();
    for i in 0..5 {
        s.handle_frame(ms(1000), &msg(i + 1, i + 10, "bob", Recipients::Broadcast, "x"));
    }
    let first = s.poll_transmit(ms(1000)).expect("a line is due");
    assert_eq!(&first[..], b"10:bob (broadcast):x\n");
    // The client stopped reading: that write never ends. The router kicks the connection.
    s.handle_kill(ms(1100), "kept sending over the rate limit after warnings");
    assert_eq!(events(&mut s), [], "the router knows");
    assert_eq!(s.poll_timeout(), Some(ms(1100) + crate::fanout::KILL_GRACE));
    s.handle_timeout(ms(2100));
    assert!(s.is_done());
    // Had the write finished, the last line would have been the reason.
    let mut s = alice();
    s.handle_frame(ms(1000), &msg(1, 10, "bob", Recipients::Broadcast, "x"));
    s.handle_kill(ms(1000), "flooding");
    assert_eq!(lines(&mut s, ms(1000)), ["10:Sistema:Conexão encerrada: flooding\n"]);
    assert!(s.is_done() && s.linger());
}

#[test]
fn the_servers_close_writes_what_is_queued_and_end_of_stream_is_a_leave() {
    let mut s = alice();
    s.handle_frame(
        ms(1000),
        &ServerFrame::Closing { code: ErrorCode::ShuttingDown, reason: "the server is shutting down".into() },
    );
    s.handle_server_closed();
    assert!(!s.is_done());
    assert_eq!(lines(&mut s, ms(1000)), ["0:Sistema:Conexão encerrada: the server is shutting down\n"]);
    assert!(s.is_done() && !s.linger());
    s.handle_read_end(false);
    assert_eq!(events(&mut s), [], "the router ended it: no second departure");

    let mut s = alice();
    s.handle_frame(ms(1000), &msg(1, 10, "bob", Recipients::Broadcast, "unread"));
    s.handle_read_end(false);
    assert_eq!(events(&mut s), [TextEvent::Closed { reason: "quit".into() }]);
    assert!(s.is_done());
    assert_eq!(s.poll_transmit(ms(1000)), None);
    let mut s = alice();
    s.handle_read_end(true);
    assert_eq!(events(&mut s), [TextEvent::Closed { reason: "disconnected".into() }]);
}

#[test]
fn a_script_may_send_everything_at_once() {
    let mut s = TextSession::new(t0());
    s.handle_read(b"CONNECT\n0:alice\n1:BROADCAST:ALL:hi\n");
    assert_eq!(
        events(&mut s),
        [
            TextEvent::Open,
            TextEvent::Frame(ClientFrame::Login { name: n("alice") }),
            send(6, Recipients::Broadcast, "hi", 1)
        ]
    );
}

#[test]
fn the_delivery_watermark_follows_what_is_written() {
    let mut s = alice();
    s.handle_frame(ms(1000), &msg(1, 10, "alice", Recipients::Broadcast, "own: no line"));
    assert_eq!(s.delivered(), 1, "nothing waits: delivered at once");
    s.handle_frame(ms(1000), &msg(2, 11, "bob", Recipients::Broadcast, "a line"));
    s.handle_frame(ms(1000), &msg(3, 12, "bob", Recipients::Unicast(n("carol")), "no line, after one"));
    s.handle_frame(ms(1000), &msg(4, 13, "bob", Recipients::Broadcast, "another line"));
    assert_eq!(s.delivered(), 1);
    let line = s.poll_transmit(ms(1000)).unwrap();
    assert_eq!(&line[..], b"11:bob (broadcast):a line\n");
    assert_eq!(s.delivered(), 1, "handed out is not written");
    s.handle_written(ms(1000));
    assert_eq!(s.delivered(), 3, "the line of 2 was queued after 3 was handled");
    assert!(s.poll_transmit(ms(1000)).is_none(), "paced");
    let _ = s.poll_transmit(ms(1030)).unwrap();
    s.handle_written(ms(1030));
    assert_eq!(s.delivered(), 4);
}

//! Exact-output tests of the delivery policies: publishing and notice debouncing, slow consumers,
//! the stream backlog, shutdown.

use super::tests::{drain, n, settle, t0, three};
use super::*;

fn broadcast(r: &mut Router, conn: ConnId, req: u64, body: &str) {
    let sent_at = Timestamp::new(0, NodeId(0));
    r.handle(t0(), Input::Send { conn, req, recipients: Recipients::Broadcast, body: body.into(), sent_at, key: 0 });
}

#[test]
fn a_message_publishes_at_the_end_of_its_turn() {
    let mut r = three();
    broadcast(&mut r, 1, 1, "hi");
    drain(&mut r);
    r.handle(t0(), Input::EndOfTurn);
    assert_eq!(drain(&mut r), vec![Output::Publish]);
    assert_eq!(r.poll_timeout(), None);
    r.handle(t0(), Input::EndOfTurn);
    assert_eq!(drain(&mut r), vec![], "nothing left to publish");
}

#[test]
fn notices_wait_for_the_delay_unless_a_message_comes() {
    let mut r = three();
    r.handle(t0(), Input::Login { conn: 4, name: n("dave") });
    drain(&mut r);
    r.handle(t0(), Input::EndOfTurn);
    assert_eq!(drain(&mut r), vec![], "a lone notice waits");
    assert_eq!(r.poll_timeout(), Some(t0() + NOTICE_DELAY));
    // More logins in later turns do not push the deadline back.
    let later = t0() + NOTICE_DELAY / 2;
    r.handle(later, Input::Login { conn: 5, name: n("eve") });
    r.handle(later, Input::EndOfTurn);
    assert!(!drain(&mut r).contains(&Output::Publish));
    assert_eq!(r.poll_timeout(), Some(t0() + NOTICE_DELAY));
    r.handle_timeout(t0() + NOTICE_DELAY);
    assert_eq!(drain(&mut r), vec![Output::Publish]);
    assert_eq!(r.poll_timeout(), None);

    // A message publishes the waiting notices with it, at the end of its turn.
    r.handle(t0(), Input::Disconnected { conn: 5, reason: "quit".into() });
    r.handle(t0(), Input::EndOfTurn);
    drain(&mut r);
    broadcast(&mut r, 1, 1, "hi");
    r.handle(t0(), Input::EndOfTurn);
    let out = drain(&mut r);
    assert_eq!(out.last(), Some(&Output::Publish), "{out:?}");
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn replies_overtake_waiting_notices_but_never_a_message() {
    let mut r = three();
    r.handle(t0(), Input::Disconnected { conn: 3, reason: "quit".into() });
    drain(&mut r);
    r.handle(t0(), Input::Peers { conn: 1, req: 1 });
    let peers = ServerFrame::Peers { req: 1, names: vec![n("alice"), n("bob")] };
    assert_eq!(drain(&mut r), vec![Output::Reply { conn: 1, frame: peers.clone(), early: true }]);
    broadcast(&mut r, 2, 2, "after");
    drain(&mut r);
    r.handle(t0(), Input::Peers { conn: 1, req: 1 });
    assert_eq!(drain(&mut r), vec![Output::Reply { conn: 1, frame: peers, early: false }]);
}

#[test]
fn ping_is_answered() {
    let mut r = three();
    r.handle(t0(), Input::Ping { conn: 2 });
    assert_eq!(drain(&mut r), vec![Output::Reply { conn: 2, frame: ServerFrame::Pong, early: false }]);
}

#[test]
fn a_full_queue_kicks_the_reader_and_tells_the_others() {
    let mut r = three();
    r.handle(t0(), Input::QueueFull { conn: 2 });
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Kick {
                conn: 2,
                code: ErrorCode::SlowConsumer,
                reason: "too slow: outgoing backlog over its limit".into()
            },
            Output::SessionEnded { conn: 2, name: n("bob"), after: 0, reason: "slow_consumer".into() },
            Output::Stream { frame: ServerFrame::Left { name: n("bob"), reason: "slow_consumer".into() }, seq: 0 },
        ]
    );
    r.handle(t0(), Input::QueueFull { conn: 2 });
    assert_eq!(drain(&mut r), vec![], "a connection is kicked once");
}

#[test]
fn readers_over_the_backlog_are_kicked_and_the_rest_bound_the_trim() {
    let config = RouterConfig { backlog_bytes: 100, ..RouterConfig::default() };
    let mut r = Router::new(config, RouterState::default());
    for (conn, name) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        r.handle(t0(), Input::Login { conn, name: n(name) });
    }
    r.handle(t0(), Input::Opened { conn: 9 });
    settle(&mut r);
    // carol is 101 bytes behind: kicked; bob at 950 is the slowest of the others; 9 never subscribed.
    r.handle(t0(), Input::Lag { head: 1000, cursors: vec![(1, 1000), (2, 950), (3, 899), (9, 0)] });
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Kick {
                conn: 3,
                code: ErrorCode::SlowConsumer,
                reason: "too slow: outgoing backlog over its limit".into()
            },
            Output::SessionEnded { conn: 3, name: n("carol"), after: 0, reason: "slow_consumer".into() },
            Output::Stream { frame: ServerFrame::Left { name: n("carol"), reason: "slow_consumer".into() }, seq: 0 },
            Output::Trim { upto: 950 },
        ]
    );
    // Exactly at the limit is not too slow; a cursor past the head counts as at the head.
    r.handle(t0(), Input::Lag { head: 2000, cursors: vec![(1, 1900), (2, u64::MAX)] });
    assert_eq!(drain(&mut r), vec![Output::Trim { upto: 1900 }]);
}

#[test]
fn shutdown_closes_every_connection_and_keeps_every_session_for_the_next_start() {
    let mut r = three();
    r.handle(t0(), Input::Opened { conn: 7 });
    broadcast(&mut r, 1, 1, "last words");
    drain(&mut r);
    r.handle(t0(), Input::Shutdown);
    let closing = ServerFrame::Closing { code: ErrorCode::ShuttingDown, reason: "the server is shutting down".into() };
    let mut expected: Vec<Output> =
        [1, 2, 3, 7].into_iter().map(|conn| Output::Reply { conn, frame: closing.clone(), early: false }).collect();
    expected.push(Output::Publish);
    // No `SessionEnded`: the sessions stay open in the journal, and the next start keeps them
    // (detached) so that their clients resume (see `resume_tests`).
    for conn in [1, 2, 3, 7] {
        expected.push(Output::Close { conn });
    }
    assert_eq!(drain(&mut r), expected);
    assert_eq!(r.online(), 3, "the sessions are kept");
}

/// The `Stream` frames among `outputs` (what everybody online would see).
fn streamed(outputs: Vec<Output>) -> Vec<ServerFrame> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Stream { frame, .. } => Some(frame),
            _ => None,
        })
        .collect()
}

#[test]
fn above_the_presence_limit_joins_and_leaves_are_not_announced() {
    let config = RouterConfig { presence_limit: 3, ..RouterConfig::default() };
    let mut r = Router::new(config, RouterState::default());
    let mut seen = Vec::new();
    for (conn, name) in [(1, "alice"), (2, "bob"), (3, "carol"), (4, "dave"), (5, "erin")] {
        r.handle(t0(), Input::Login { conn, name: n(name) });
        seen.extend(streamed(drain(&mut r)));
    }
    let stop = "more than 3 people are online: joins and leaves are no longer announced (/who lists who is online)";
    assert_eq!(
        seen,
        vec![
            ServerFrame::Joined { name: n("alice") },
            ServerFrame::Joined { name: n("bob") },
            ServerFrame::Joined { name: n("carol") },
            ServerFrame::Notice { text: stop.into() },
        ]
    );
    // The crowd's newcomer is not announced, and still gets the full list of who is online.
    r.handle(t0(), Input::Login { conn: 6, name: n("frank") });
    let out = drain(&mut r);
    let welcome = out.iter().find_map(|o| match o {
        Output::Reply { frame: ServerFrame::Welcome { online, .. }, .. } => Some(online.len()),
        _ => None,
    });
    assert_eq!(welcome, Some(6));
    assert_eq!(streamed(out), vec![]);
    // Leaves: silent until a tenth below the limit (3 - 0 = 3 online), then one notice.
    let mut seen = Vec::new();
    for conn in [6, 5, 4] {
        r.handle(t0(), Input::Disconnected { conn, reason: QUIT.into() });
        seen.extend(streamed(drain(&mut r)));
    }
    let again = "3 people are online: joins and leaves are announced again";
    assert_eq!(seen, vec![ServerFrame::Notice { text: again.into() }]);
    r.handle(t0(), Input::Disconnected { conn: 3, reason: QUIT.into() });
    assert_eq!(streamed(drain(&mut r)), vec![ServerFrame::Left { name: n("carol"), reason: QUIT.into() }]);
}

#[test]
fn lists_of_names_are_bounded_and_say_what_they_left_out() {
    let config = RouterConfig { presence_limit: 10, ..RouterConfig::default() };
    let mut r = Router::new(config, RouterState::default());
    let users = MAX_LISTED_NAMES + 1;
    for conn in 1..=users as u64 {
        r.handle(t0(), Input::Login { conn, name: n(&format!("u{conn:05}")) });
    }
    let out = drain(&mut r);
    // The last login: a Welcome with the first names only, then a notice with the count.
    let last = users as u64;
    let replies: Vec<&ServerFrame> = out
        .iter()
        .filter_map(|o| match o {
            Output::Reply { conn, frame, .. } if *conn == last => Some(frame),
            _ => None,
        })
        .collect();
    let ServerFrame::Welcome { online, .. } = replies[0] else { panic!("a welcome first: {replies:?}") };
    assert_eq!((online.len(), online[0].as_str()), (MAX_WELCOME_NAMES, "u00001"));
    let text = format!(
        "{users} people are online: the list above shows {MAX_WELCOME_NAMES} of them (/who lists up to {MAX_LISTED_NAMES})"
    );
    assert_eq!(replies[1], &ServerFrame::Notice { text });
    // /peers and /who: at most MAX_LISTED_NAMES, then a notice.
    r.handle(t0(), Input::Peers { conn: 1, req: 7 });
    r.handle(t0(), Input::Who { conn: 1, req: 8, room: None });
    let out: Vec<ServerFrame> = drain(&mut r)
        .into_iter()
        .filter_map(|o| match o {
            Output::Reply { frame, .. } => Some(frame),
            _ => None,
        })
        .collect();
    let cut = format!(
        "the list shows {MAX_LISTED_NAMES} of {users} names (the first, sorted); each /who or /peers lists at most {MAX_LISTED_NAMES}"
    );
    assert!(matches!(&out[0], ServerFrame::Peers { req: 7, names } if names.len() == MAX_LISTED_NAMES));
    assert_eq!(out[1], ServerFrame::Notice { text: cut.clone() });
    assert!(matches!(&out[2], ServerFrame::Who { req: 8, names, .. } if names.len() == MAX_LISTED_NAMES));
    assert_eq!(out[3], ServerFrame::Notice { text: cut });
    // Every list fits in a frame, with the longest names.
    let long: Vec<UserName> = (0..MAX_LISTED_NAMES).map(|i| n(&format!("{i:0>32}"))).collect();
    let frame = ServerFrame::Peers { req: u64::MAX, names: long };
    assert!(chat_transport::encode_payload(&frame).is_ok());
}

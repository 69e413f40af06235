//! Exact-output tests of the guards against hostile or careless input: names, clocks, admission
//! limits, the login timeout (flood control: `throttle_tests`).

use std::net::IpAddr;
use std::time::Duration;

use super::tests::{drain, n, settle, t0};
use super::*;
use chat_core::MAX_CLOCK_JUMP;

fn router(config: RouterConfig) -> Router {
    Router::new(config, RouterState::default())
}

fn refused(conn: ConnId, code: ErrorCode, message: &str) -> Vec<Output> {
    vec![
        Output::Reply { conn, frame: ServerFrame::Refused { code, message: message.into() }, early: false },
        Output::Close { conn },
    ]
}

fn raw(name: &str) -> UserName {
    UserName::from_wire(name.into()).unwrap()
}

#[test]
fn names_that_imitate_or_hide_are_refused_and_others_are_normalized() {
    let mut r = router(RouterConfig::default());
    r.handle(t0(), Input::Login { conn: 1, name: n("alice") });
    settle(&mut r);
    r.handle(t0(), Input::Login { conn: 2, name: raw("ALICE") });
    assert_eq!(drain(&mut r), refused(2, ErrorCode::NameTaken, "the name ALICE is too much like alice, a user online"));
    r.handle(t0(), Input::Login { conn: 3, name: raw("\u{0430}lice") });
    let mixed = "invalid user name \"\u{0430}lice\": it mixes scripts (such as Latin and Cyrillic), so it could imitate another name";
    assert_eq!(drain(&mut r), refused(3, ErrorCode::InvalidName, mixed));
    r.handle(t0(), Input::Login { conn: 4, name: raw("alice\u{200B}") });
    let out = drain(&mut r);
    assert!(
        matches!(&out[0], Output::Reply { frame: ServerFrame::Refused { code: ErrorCode::InvalidName, .. }, .. }),
        "{out:?}"
    );
    // A full-width name is normalized; the user learns its name in Welcome.
    r.handle(t0(), Input::Login { conn: 5, name: raw("ｂｏｂ") });
    let out = drain(&mut r);
    let welcome = out.iter().find_map(|o| match o {
        Output::Reply { frame: ServerFrame::Welcome { name, .. }, .. } => Some(name.clone()),
        _ => None,
    });
    assert_eq!(welcome, Some(n("bob")));
    // Recipients are found whatever their case, and stored as registered.
    let sent_at = Timestamp::new(0, NodeId(0));
    r.handle(
        t0(),
        Input::Send {
            conn: 5,
            req: 1,
            recipients: Recipients::Unicast(n("ALICE")),
            body: "hi".into(),
            sent_at,
            key: 0,
        },
    );
    let out = drain(&mut r);
    let Some(Output::Store(Stored { message: m, .. })) = out.first() else { panic!("{out:?}") };
    assert_eq!(m.recipients, Recipients::Unicast(n("alice")));
}

#[test]
fn a_clock_far_ahead_is_refused_and_the_server_clock_does_not_move() {
    let mut r = router(RouterConfig::default());
    r.handle(t0(), Input::Login { conn: 1, name: n("alice") });
    settle(&mut r);
    let send = |r: &mut Router, req, counter| {
        let sent_at = Timestamp::new(counter, NodeId(0));
        r.handle(
            t0(),
            Input::Send { conn: 1, req, recipients: Recipients::Broadcast, body: "x".into(), sent_at, key: 0 },
        );
        drain(r)
    };
    let out = send(&mut r, 1, u64::MAX);
    let message = format!("your Lamport clock ({}) is more than {MAX_CLOCK_JUMP} ahead of the server's (0)", u64::MAX);
    assert_eq!(
        out,
        vec![Output::Reply {
            conn: 1,
            frame: ServerFrame::Rejected { req: 1, code: ErrorCode::Protocol, message },
            early: false
        }]
    );
    let out = send(&mut r, 2, MAX_CLOCK_JUMP);
    let Some(Output::Store(Stored { message: m, .. })) = out.first() else { panic!("{out:?}") };
    assert_eq!(m.lamport.counter, MAX_CLOCK_JUMP + 1, "a jump up to the bound is fine");
}

#[test]
fn connections_are_limited_per_address_and_in_all() {
    let config = RouterConfig {
        admission: AdmissionConfig {
            max_connections: 4,
            max_pending_per_addr: 2,
            login_timeout: Duration::from_secs(10),
        },
        ..RouterConfig::default()
    };
    let mut r = router(config);
    let attacker: IpAddr = [127, 0, 0, 1].into();
    let honest: IpAddr = [127, 0, 0, 2].into();
    for conn in 1..=3 {
        r.handle(t0(), Input::Accepted { conn, addr: attacker });
    }
    let busy_addr = "too many connections from your address are not logged in";
    assert_eq!(drain(&mut r), vec![Output::Refuse { conn: 3, code: ErrorCode::Busy, message: busy_addr.into() }]);
    // Another address still gets in, and logs in.
    r.handle(t0(), Input::Accepted { conn: 4, addr: honest });
    r.handle(t0(), Input::Login { conn: 4, name: n("alice") });
    assert!(matches!(drain(&mut r)[0], Output::SessionStarted { conn: 4, .. }));
    // A logged-in connection no longer counts against its address.
    r.handle(t0(), Input::Accepted { conn: 5, addr: honest });
    r.handle(t0(), Input::Accepted { conn: 6, addr: honest });
    assert_eq!(
        drain(&mut r),
        vec![Output::Refuse {
            conn: 6,
            code: ErrorCode::Busy,
            message: "the server is at its connection limit".into()
        }]
    );
    // One leaves: room again.
    r.handle(t0(), Input::Disconnected { conn: 1, reason: "disconnected".into() });
    r.handle(t0(), Input::Accepted { conn: 7, addr: attacker });
    assert_eq!(drain(&mut r), vec![]);
}

#[test]
fn at_the_limit_a_connection_idle_for_the_eviction_age_makes_room_for_a_new_one() {
    let config = RouterConfig {
        admission: AdmissionConfig {
            max_connections: 3,
            max_pending_per_addr: 2,
            login_timeout: Duration::from_secs(10),
        },
        ..RouterConfig::default()
    };
    let mut r = router(config);
    // Idle connections from two addresses fill the server; a third address is at the limit.
    let (a, b, honest): (IpAddr, IpAddr, IpAddr) =
        ([127, 0, 0, 1].into(), [127, 0, 0, 2].into(), [127, 0, 0, 3].into());
    r.handle(t0(), Input::Accepted { conn: 1, addr: a });
    r.handle(t0() + Duration::from_millis(10), Input::Accepted { conn: 2, addr: b });
    r.handle(t0() + Duration::from_millis(20), Input::Accepted { conn: 3, addr: a });
    let busy = "the server is at its connection limit";
    // Younger than the eviction age: nobody is closed, the newcomer is refused.
    r.handle(t0() + EVICTION_AGE - Duration::from_millis(1), Input::Accepted { conn: 4, addr: honest });
    assert_eq!(drain(&mut r), vec![Output::Refuse { conn: 4, code: ErrorCode::Busy, message: busy.into() }]);
    // Once the oldest has idled that long, it is closed and the newcomer admitted; it logs in.
    let later = t0() + EVICTION_AGE;
    r.handle(later, Input::Accepted { conn: 5, addr: honest });
    let reason = "the server is at its connection limit; a connection that does not log in makes room".to_string();
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Reply { conn: 1, frame: ServerFrame::Closing { code: ErrorCode::Busy, reason }, early: false },
            Output::Close { conn: 1 },
        ]
    );
    r.handle(later, Input::Login { conn: 5, name: n("alice") });
    assert!(matches!(drain(&mut r)[0], Output::SessionStarted { conn: 5, .. }));
    // Logged-in connections are never evicted: with the rest logged in, the limit refuses.
    r.handle(later, Input::Login { conn: 2, name: n("bob") });
    r.handle(later, Input::Login { conn: 3, name: n("carol") });
    settle(&mut r);
    r.handle(later + Duration::from_secs(5), Input::Accepted { conn: 6, addr: honest });
    assert_eq!(drain(&mut r), vec![Output::Refuse { conn: 6, code: ErrorCode::Busy, message: busy.into() }]);
    // Evicted connections are not timed out again later.
    r.handle_timeout(t0() + Duration::from_secs(11));
    assert_eq!(drain(&mut r), vec![]);
}

#[test]
fn a_connection_that_does_not_log_in_in_time_is_closed() {
    let config = RouterConfig {
        admission: AdmissionConfig { login_timeout: Duration::from_secs(10), ..AdmissionConfig::default() },
        ..RouterConfig::default()
    };
    let mut r = router(config);
    let addr: IpAddr = [127, 0, 0, 1].into();
    r.handle(t0(), Input::Accepted { conn: 1, addr });
    r.handle(t0() + Duration::from_secs(1), Input::Accepted { conn: 2, addr });
    r.handle(t0() + Duration::from_secs(2), Input::Login { conn: 2, name: n("bob") });
    settle(&mut r);
    assert_eq!(r.poll_timeout(), Some(t0() + Duration::from_secs(10)));
    r.handle_timeout(t0() + Duration::from_secs(10));
    let reason = "no login within 10 s".to_string();
    assert_eq!(
        drain(&mut r),
        vec![
            Output::Reply { conn: 1, frame: ServerFrame::Closing { code: ErrorCode::Protocol, reason }, early: false },
            Output::Close { conn: 1 },
        ]
    );
    r.handle_timeout(t0() + Duration::from_secs(11));
    assert_eq!(drain(&mut r), vec![], "bob logged in in time");
    assert_eq!(r.poll_timeout(), None);
}

//! Exact-output tests of flood control: refusal windows, held sends, pausing and resuming the
//! reader, the `flood` disconnection, and the buckets shared by the connections of one address.

use std::net::IpAddr;
use std::time::Duration;

use super::tests::{drain, n, t0};
use super::*;
use chat_core::rate::Rate;

/// What a test looks at: a send that went through is shown by its body (stored, streamed) and its
/// `Sent`; every other output as it is.
#[derive(Debug, PartialEq)]
enum Seen {
    Stored(String),
    Streamed(String),
    Sent(u64),
    Out(Output),
}

fn seen(r: &mut Router) -> Vec<Seen> {
    drain(r)
        .into_iter()
        .map(|o| match o {
            Output::Store(stored) => Seen::Stored(stored.message.body),
            Output::Stream { frame: ServerFrame::Message(m), .. } => Seen::Streamed(m.body),
            Output::Reply { frame: ServerFrame::Sent { req, .. }, .. } => Seen::Sent(req),
            other => Seen::Out(other),
        })
        .filter(|s| *s != Seen::Out(Output::Publish))
        .collect()
}

fn passed(req: u64) -> Vec<Seen> {
    let body = format!("m{req}");
    vec![Seen::Stored(body.clone()), Seen::Streamed(body), Seen::Sent(req)]
}

fn limited(conn: ConnId, req: u64, retry_after_ms: u64) -> Seen {
    Seen::Out(Output::Reply { conn, frame: ServerFrame::RateLimited { req, retry_after_ms }, early: false })
}

fn pause(conn: ConnId, until: Instant) -> Seen {
    Seen::Out(Output::Pause { conn, until })
}

fn ms(n: u64) -> Instant {
    t0() + Duration::from_millis(n)
}

fn send(r: &mut Router, at: Instant, conn: ConnId, req: u64) -> Vec<Seen> {
    let sent_at = Timestamp::new(0, NodeId(0));
    let body = format!("m{req}");
    r.handle(at, Input::Send { conn, req, recipients: Recipients::Broadcast, body, sent_at, key: 0 });
    seen(r)
}

/// 10 messages a second, bursts of 2, per connection; `per_address` as given.
fn router(flood_strikes: u32, per_address: Option<AddressLimits>) -> Router {
    let limits = Limits {
        messages: Rate { per_second: 10, burst: 2 },
        bytes: Rate { per_second: 1_000_000, burst: 1_000_000 },
        flood_strikes,
        per_address,
    };
    let config = RouterConfig { limits: Some(limits), notice_delay: Duration::ZERO, ..RouterConfig::default() };
    Router::new(config, RouterState::default())
}

fn login(r: &mut Router, conn: ConnId, addr: Option<IpAddr>, name: &str) {
    if let Some(addr) = addr {
        r.handle(t0(), Input::Accepted { conn, addr });
    }
    r.handle(t0(), Input::Login { conn, name: n(name) });
    r.handle(t0(), Input::EndOfTurn);
    drain(r);
}

#[test]
fn one_answer_per_refusal_window_then_the_held_sends_go_in_order_and_reading_resumes() {
    let mut r = router(20, None);
    login(&mut r, 1, None, "alice");
    assert_eq!(send(&mut r, t0(), 1, 1), passed(1));
    assert_eq!(send(&mut r, t0(), 1, 2), passed(2));
    // Over the limit: told once, and the shell stops reading the connection until the window ends.
    assert_eq!(send(&mut r, t0(), 1, 3), vec![limited(1, 3, 100), pause(1, ms(100))]);
    // What it had sent meanwhile (read before the pause took effect) is held, unanswered.
    assert_eq!(send(&mut r, ms(10), 1, 4), vec![]);
    assert_eq!(send(&mut r, ms(20), 1, 5), vec![]);
    assert_eq!(r.poll_timeout(), Some(ms(100)));
    // The window is over: the held sends go in order while the bucket allows, the next one opens a
    // new window (its own single answer).
    r.handle_timeout(ms(100));
    let mut expected = passed(4);
    expected.extend([limited(1, 5, 100), pause(1, ms(200))]);
    assert_eq!(seen(&mut r), expected);
    assert_eq!(r.poll_timeout(), Some(ms(200)));
    // Nothing held when the second window ends: the connection is read again.
    r.handle_timeout(ms(200));
    assert_eq!(seen(&mut r), vec![Seen::Out(Output::Resume { conn: 1 })]);
    assert_eq!(r.poll_timeout(), None);
    // The client heeded the answer to 5 and sends it again: it passes.
    assert_eq!(send(&mut r, ms(200), 1, 5), passed(5));
}

#[test]
fn a_send_after_the_window_waits_behind_the_held_ones() {
    let mut r = router(20, None);
    login(&mut r, 1, None, "alice");
    send(&mut r, t0(), 1, 1);
    send(&mut r, t0(), 1, 2);
    assert_eq!(send(&mut r, t0(), 1, 3), vec![limited(1, 3, 100), pause(1, ms(100))]);
    assert_eq!(send(&mut r, ms(50), 1, 4), vec![]);
    // The window ended but the timeout has not fired yet: the held send goes first, in order (then
    // nothing is held: the reader may go on, until the new send opens a new window).
    let mut expected = passed(4);
    expected.extend([Seen::Out(Output::Resume { conn: 1 }), limited(1, 6, 100), pause(1, ms(200))]);
    assert_eq!(send(&mut r, ms(100), 1, 6), expected);
}

#[test]
fn a_flooder_collects_strikes_for_what_it_sends_inside_its_windows_and_is_disconnected() {
    let mut r = router(3, None);
    login(&mut r, 1, None, "alice");
    login(&mut r, 2, None, "bob");
    send(&mut r, t0(), 1, 1);
    send(&mut r, t0(), 1, 2);
    assert_eq!(send(&mut r, t0(), 1, 3), vec![limited(1, 3, 100), pause(1, ms(100))]);
    // It keeps sending inside each window, twice as fast as allowed, ignoring the answers: each such
    // send is a strike, and the connection gets one answer per window until it has been flooding for
    // FLOOD_GRACE.
    let is_kick = |s: &Seen| matches!(s, Seen::Out(Output::Kick { .. }));
    let (mut req, mut windows) = (3, 1);
    let (at, mut out) = 'flood: loop {
        let end = r.poll_timeout().expect("a window is open");
        for _ in 0..2 {
            req += 1;
            let early = send(&mut r, end - Duration::from_millis(10), 1, req);
            if !early.is_empty() {
                break 'flood (end - Duration::from_millis(10), early);
            }
        }
        r.handle_timeout(end);
        let out = seen(&mut r);
        if out.iter().any(is_kick) {
            break (end, out);
        }
        let answers = out.iter().filter(|s| matches!(s, Seen::Out(Output::Reply { .. }))).count();
        assert_eq!(answers, 1, "one rate_limited per window: {out:?}");
        assert!(matches!(out.last(), Some(Seen::Out(Output::Pause { conn: 1, .. }))), "{out:?}");
        windows += 1;
        assert!(windows < 20, "still not disconnected after {windows} windows");
    };
    assert!(at >= t0() + FLOOD_GRACE, "not before its first warning is FLOOD_GRACE old");
    // The window's end let one held send through (the bucket allowed it), then the next was refused
    // once more, a second after the first warning: disconnected.
    let kick = out.split_off(out.iter().position(is_kick).unwrap());
    assert_eq!(out.len(), 3, "one send went through first: {out:?}");
    let after = windows + 2; // messages stored: two in the burst, one per window
    assert_eq!(
        kick,
        vec![
            Seen::Out(Output::Kick {
                conn: 1,
                code: ErrorCode::Flood,
                reason: "kept sending over the rate limit after warnings".into()
            }),
            Seen::Out(Output::SessionEnded { conn: 1, name: n("alice"), after, reason: "flood".into() }),
            Seen::Out(Output::Stream { frame: ServerFrame::Left { name: n("alice"), reason: "flood".into() }, seq: 0 }),
        ]
    );
    // What it had held is dropped and its window forgotten: nothing more happens for it.
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn a_client_that_heeds_every_answer_is_never_disconnected() {
    let mut r = router(3, None);
    login(&mut r, 1, None, "alice");
    // A script sending one line at a time, each as soon as the previous one is answered, for 5 s.
    let (mut now, mut req, mut sent) = (t0(), 1, 0);
    while now < t0() + Duration::from_secs(5) {
        let out = send(&mut r, now, 1, req);
        match out.as_slice() {
            [Seen::Stored(_), Seen::Streamed(_), Seen::Sent(_)] => {
                sent += 1;
                req += 1;
            }
            [
                limit @ Seen::Out(Output::Reply { frame: ServerFrame::RateLimited { retry_after_ms, .. }, .. }),
                Seen::Out(Output::Pause { until, .. }),
            ] => {
                assert_eq!(limit, &limited(1, req, *retry_after_ms));
                // The reader is paused until the window ends; the retry arrives after that.
                now = now.max(*until);
                r.handle_timeout(now);
                assert_eq!(seen(&mut r), vec![Seen::Out(Output::Resume { conn: 1 })]);
            }
            other => panic!("{other:?}"),
        }
    }
    // Paced to the rate (10/s plus the burst of 2), never disconnected.
    assert!((50..=53).contains(&sent), "{sent}");
}

#[test]
fn storage_failing_refuses_the_held_sends() {
    let mut r = router(20, None);
    login(&mut r, 1, None, "alice");
    send(&mut r, t0(), 1, 1);
    send(&mut r, t0(), 1, 2);
    send(&mut r, t0(), 1, 3);
    assert_eq!(send(&mut r, ms(10), 1, 4), vec![]);
    assert_eq!(send(&mut r, ms(10), 1, 5), vec![]);
    r.handle(ms(20), Input::StorageFailed { reason: "disk full".into() });
    let message = "the server cannot store messages: disk full".to_string();
    let rejected = |req| {
        let frame = ServerFrame::Rejected { req, code: ErrorCode::StorageUnavailable, message: message.clone() };
        Seen::Out(Output::Reply { conn: 1, frame, early: false })
    };
    assert_eq!(seen(&mut r), vec![rejected(4), rejected(5)]);
}

#[test]
fn connections_from_one_address_share_its_buckets_and_a_reconnection_gets_no_fresh_burst() {
    let per_address = AddressLimits {
        messages: Rate { per_second: 10, burst: 3 },
        bytes: Rate { per_second: 1_000_000, burst: 1_000_000 },
    };
    let mut r = router(20, Some(per_address));
    let (home, other): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
    login(&mut r, 1, Some(home), "alice");
    login(&mut r, 2, Some(home), "bob");
    login(&mut r, 3, Some(other), "carol");
    assert_eq!(send(&mut r, t0(), 1, 1), passed(1));
    assert_eq!(send(&mut r, t0(), 1, 2), passed(2));
    assert_eq!(send(&mut r, t0(), 2, 3), passed(3));
    // bob's own bucket is full, his address's is empty.
    assert_eq!(send(&mut r, t0(), 2, 4), vec![limited(2, 4, 100), pause(2, ms(100))]);
    // carol, from another address, is not affected.
    assert_eq!(send(&mut r, t0(), 3, 5), passed(5));
    // alice leaves and comes back on a new connection: her address's buckets are still empty.
    r.handle(t0(), Input::Disconnected { conn: 1, reason: QUIT.into() });
    drain(&mut r);
    login(&mut r, 4, Some(home), "alice");
    assert_eq!(send(&mut r, t0(), 4, 6), vec![limited(4, 6, 100), pause(4, ms(100))]);
    // An IPv6 host owns its /64: two of its addresses share one set of buckets.
    let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
    login(&mut r, 5, Some(v6(1)), "dave");
    login(&mut r, 6, Some(v6(2)), "erin");
    assert_eq!(send(&mut r, t0(), 5, 7), passed(7));
    assert_eq!(send(&mut r, t0(), 5, 8), passed(8));
    assert_eq!(send(&mut r, t0(), 6, 9), passed(9));
    assert_eq!(send(&mut r, t0(), 6, 10), vec![limited(6, 10, 100), pause(6, ms(100))]);
}

#[test]
fn a_client_that_waits_what_it_is_told_is_never_early_and_never_disconnected() {
    // 3 strikes make a flood; the refusals' waits are not whole milliseconds (a bucket refilling at
    // 10/s since a moment between two milliseconds).
    let mut r = router(3, None);
    login(&mut r, 1, None, "alice");
    let mut now = t0() + Duration::from_micros(300);
    let mut req = 0;
    let mut passes = 0;
    // 200 sends, each sent again exactly `retry_after_ms` after its refusal, as the client library does.
    while passes < 200 {
        req += 1;
        loop {
            let out = send(&mut r, now, 1, req);
            if out == passed(req) {
                passes += 1;
                // The next line comes a little later, faster than the limit allows.
                now += Duration::from_micros(13_700);
                break;
            }
            let [
                Seen::Out(Output::Reply { frame: ServerFrame::RateLimited { retry_after_ms, .. }, .. }),
                Seen::Out(Output::Pause { until, .. }),
            ] = out.as_slice()
            else {
                panic!("send {req}: refused, paused, or passed, never held or kicked: {out:?}")
            };
            now += Duration::from_millis(*retry_after_ms);
            assert!(now >= *until, "told to retry before the window ends");
            // The window's end comes first (the shell's timer), then the resend.
            r.handle_timeout(now);
            seen(&mut r);
        }
    }
}

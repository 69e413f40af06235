//! Hostile input, with exact expected outputs: clocks stamped far ahead, names that imitate or
//! hide, submissions over the rate limit, and links that cannot be opened. Each test drives one
//! node, as `tests.rs` does.

use std::time::{Duration, Instant};

use chat_core::rate::Rate;
use chat_core::{ChatMessage, CoreError, ErrorCode, Event, MAX_CLOCK_JUMP, MessageId, NodeId, Recipients, Timestamp};

use super::tests::{COORDINATOR, ack_all, addr, config, drain, envelope, founder, founder_with, member, message, name};
use super::*;
use crate::protocol::{Entry, Pos, Submission};

/// A name as it may arrive from the wire (only checked for safety).
fn raw(s: &str) -> UserName {
    UserName::from_wire(s.into()).expect("safe to carry")
}

/// `who` at `port` asks the founder to join and is admitted; returns its ID.
fn join(node: &mut Node, t: Instant, who: &str, port: u16) -> NodeId {
    let req = PeerMsg::JoinRequest {
        name: name(who),
        addr: addr(port),
        nonce: 1,
        clock: 0,
        key: None,
        id: None,
        quiet: false,
    };
    node.handle(t, Input::Receive(envelope(None, port, req)));
    // Admitted once every member holds the `Joined`: they acknowledge it.
    let out = drain(node);
    ack_all(node, t, &out);
    node.peers().iter().find(|p| p.name == name(who)).and_then(|p| p.node_id).expect("admitted")
}

fn broadcast(from: NodeId, seq: u64, who: &str, counter: u64) -> Submission {
    Submission {
        id: MessageId::new(from, seq),
        sender: name(who),
        recipients: Recipients::Broadcast,
        body: format!("m{seq}"),
        sent_at: Timestamp::new(counter, from),
    }
}

/// Node `from` at `port` submits `sub`; the outputs.
fn submit_from(node: &mut Node, t: Instant, from: NodeId, port: u16, sub: Submission) -> Vec<Output> {
    node.handle(t, Input::Receive(envelope(Some(from), port, PeerMsg::Submit(sub))));
    drain(node)
}

/// The IDs of the `Submit`s among `out`.
fn submits(out: &[Output]) -> Vec<MessageId> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { msg: Envelope { msg: PeerMsg::Submit(s), .. }, .. } => Some(s.id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_submit_stamped_at_the_end_of_time_is_rejected_and_moves_no_clock() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    let carol = join(&mut node, t0, "carol", 3);
    let clock = node.clock();
    let out = submit_from(&mut node, t0, carol, 3, broadcast(carol, 1, "carol", u64::MAX));
    let reason =
        format!("your Lamport clock ({}) is more than {MAX_CLOCK_JUMP} ahead of the coordinator's ({clock})", u64::MAX);
    let rejected = PeerMsg::Rejected { id: MessageId::new(carol, 1), code: ErrorCode::Protocol, reason };
    assert_eq!(out, vec![Output::Send { to: addr(3), msg: envelope(node.id(), 1, rejected) }]);
    assert_eq!((node.clock(), node.counters().clock_refused), (clock, 1));
    // A jump up to the bound is fine: observed, then stamped.
    let out = submit_from(&mut node, t0, carol, 3, broadcast(carol, 2, "carol", clock + MAX_CLOCK_JUMP));
    assert!(matches!(out.as_slice(), [Output::Send { msg: Envelope { msg: PeerMsg::Orders { .. }, .. }, .. }]));
    assert_eq!(node.clock(), clock + MAX_CLOCK_JUMP + 2);
    // The program's own stamp is checked the same way, before anything is sent.
    let own = OutgoingMessage {
        recipients: Recipients::Broadcast,
        body: "x".into(),
        sent_at: Timestamp::new(u64::MAX, NodeId(0)),
    };
    assert!(matches!(node.submit(t0, own), Err(CoreError::Rejected { code: ErrorCode::Protocol, .. })));
    assert_eq!(drain(&mut node), []);
}

#[test]
fn a_heartbeat_or_order_stamped_too_far_ahead_is_dropped_and_an_honest_one_still_counts() {
    let t0 = Instant::now();
    let mut node = member(t0);
    let clock = node.clock();
    let timeout = node.config().timeout;
    let term = Term::new(1, COORDINATOR);
    let later = t0 + Duration::from_millis(100);
    let huge = PeerMsg::Heartbeat { term, commit: None, clock: u64::MAX };
    node.handle(later, Input::Receive(envelope(Some(COORDINATOR), 1, huge)));
    assert_eq!(drain(&mut node), [], "no Alive");
    assert_eq!(node.poll_timeout(), Some(t0 + timeout), "not a sign of life");
    let msg = ChatMessage {
        id: MessageId::new(COORDINATOR, 1),
        sender: name("alice"),
        recipients: Recipients::Broadcast,
        body: "x".into(),
        lamport: Timestamp::new(u64::MAX, COORDINATOR),
        time: 0,
    };
    let order = PeerMsg::Orders { term, first: 1, entries: vec![(Entry::Visible(msg), Vec::new())], commit: 0 };
    node.handle(later, Input::Receive(envelope(Some(COORDINATOR), 1, order)));
    assert_eq!(drain(&mut node), [], "not held, so no Ack");
    assert_eq!((node.clock(), node.counters().clock_refused), (clock, 2));
    let honest = PeerMsg::Heartbeat { term, commit: None, clock: 5 };
    node.handle(later, Input::Receive(envelope(Some(COORDINATOR), 1, honest)));
    let alive = envelope(node.id(), 2, PeerMsg::Alive { term });
    assert_eq!(drain(&mut node), vec![Output::Send { to: addr(1), msg: alive }]);
    assert_eq!(node.clock(), 6);
}

#[test]
fn a_join_request_or_sync_reply_stamped_too_far_ahead_is_ignored() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    let req = PeerMsg::JoinRequest {
        name: name("dave"),
        addr: addr(4),
        nonce: 9,
        clock: u64::MAX,
        key: None,
        id: None,
        quiet: false,
    };
    node.handle(t0, Input::Receive(envelope(None, 4, req)));
    assert_eq!(drain(&mut node), []);
    assert_eq!((node.clock(), node.peers().len()), (0, 1));

    // A member whose coordinator fell silent wins the election and syncs; the old coordinator's
    // reply, stamped at the end of time, does not count as an answer.
    let mut node = member(t0);
    let timeout = node.config().timeout;
    node.handle_timeout(t0 + timeout);
    let won_at = t0 + timeout + timeout / 2;
    node.handle_timeout(won_at);
    drain(&mut node);
    let term = node.term().expect("won");
    let reply = PeerMsg::SyncReply { term, last: None, entries: Vec::new(), clock: u64::MAX };
    node.handle(won_at, Input::Receive(envelope(Some(COORDINATOR), 1, reply)));
    assert_eq!(drain(&mut node), []);
    assert!(!node.is_coordinator(), "still waiting for the sync");
    assert_eq!(node.counters().clock_refused, 1);
    node.handle_timeout(won_at + timeout);
    assert!(node.is_coordinator() && node.peers().len() == 1, "the silent member is removed");
}

#[test]
fn names_that_imitate_a_member_or_hide_characters_are_refused() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    let invisible = format!(
        "invalid user name {:?}: it contains an invisible, zero-width or text-direction character",
        "alice\u{200B}"
    );
    let cases = [
        ("ALICE", ErrorCode::NameTaken, "the name ALICE is too much like alice, a member".to_string()),
        (
            "\u{0430}\u{04CF}\u{0456}\u{0441}\u{0435}",
            ErrorCode::NameTaken,
            "the name \u{0430}\u{04CF}\u{0456}\u{0441}\u{0435} is too much like alice, a member".to_string(),
        ),
        (
            "\u{0430}lice",
            ErrorCode::InvalidName,
            "invalid user name \"\u{0430}lice\": it mixes scripts (such as Latin and Cyrillic), so it could imitate \
             another name"
                .to_string(),
        ),
        ("alice\u{200B}", ErrorCode::InvalidName, invisible),
        (
            "ｂｏｂ",
            ErrorCode::InvalidName,
            "invalid user name \"ｂｏｂ\": it is not in normalized form (NFKC): bob".to_string(),
        ),
    ];
    for (nonce, (who, code, reason)) in (1..).zip(cases) {
        let req =
            PeerMsg::JoinRequest { name: raw(who), addr: addr(3), nonce, clock: 0, key: None, id: None, quiet: false };
        node.handle(t0, Input::Receive(envelope(None, 3, req)));
        let refused = PeerMsg::JoinRefused { nonce, code, reason };
        assert_eq!(drain(&mut node), vec![Output::Send { to: addr(3), msg: envelope(node.id(), 1, refused) }], "{who}");
    }
    assert_eq!(node.peers().len(), 1);
}

#[test]
fn recipients_are_found_whatever_their_case_and_the_sender_is_who_submitted() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    let carol = join(&mut node, t0, "carol", 3);
    let bob = join(&mut node, t0, "bob", 2);
    // carol claims to be bob, and names alice twice, Bob, and dave (nobody).
    let names = vec![raw("ALICE"), raw("Bob"), raw("alice"), raw("dave")];
    let sub = Submission {
        id: MessageId::new(carol, 1),
        sender: name("bob"),
        recipients: Recipients::Multicast(names),
        body: "hi".into(),
        sent_at: Timestamp::new(0, carol),
    };
    let out = submit_from(&mut node, t0, carol, 3, sub);
    let stored = |lamport| ChatMessage {
        id: MessageId::new(carol, 1),
        sender: name("carol"),
        recipients: Recipients::Multicast(vec![name("alice"), name("bob")]),
        body: "hi".into(),
        lamport,
        time: 0,
    };
    let lamport = match out.first() {
        Some(Output::Send { msg: Envelope { msg: PeerMsg::Orders { entries, .. }, .. }, .. }) => {
            match entries.as_slice() {
                [(Entry::Visible(m), _)] => m.lamport,
                other => panic!("one message, not {other:?}"),
            }
        }
        other => panic!("an Order first, not {other:?}"),
    };
    let term = node.term().expect("a term");
    // Positions 1 and 2 are the admissions, committed: told with the batch.
    let order = |unknown| PeerMsg::Orders {
        term,
        first: 3,
        entries: vec![(Entry::Visible(stored(lamport)), unknown)],
        commit: 2,
    };
    let mut expected = vec![
        (bob, Output::Send { to: addr(2), msg: envelope(node.id(), 1, order(Vec::new())) }),
        (carol, Output::Send { to: addr(3), msg: envelope(node.id(), 1, order(vec![raw("dave")])) }),
    ];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(out, expected.into_iter().map(|(_, o)| o).collect::<Vec<_>>());
    for (id, port) in [(bob, 2), (carol, 3)] {
        node.handle(t0, Input::Receive(envelope(Some(id), port, PeerMsg::Ack { term, index: 3 })));
    }
    let delivered = drain(&mut node);
    assert_eq!(delivered.first(), Some(&Output::Event(Event::Message(stored(lamport)))), "alice reads it");
    let commit = PeerMsg::Commit { pos: Pos::new(term, 3) };
    let told = |port| Output::Send { to: addr(port), msg: envelope(node.id(), 1, commit.clone()) };
    assert_eq!(delivered[1..], [told(3), told(2)], "then the members learn it is stable, by ID");
}

/// Rates for the flood scenarios: 10 messages a second, bursts of 2.
fn small_limits() -> Option<Limits> {
    Some(Limits { messages: Rate { per_second: 10, burst: 2 }, bytes: DEFAULT_BYTE_RATE, flood_strikes: 16 })
}

#[test]
fn a_member_over_its_rate_is_told_to_wait_and_one_that_keeps_going_is_removed() {
    let t0 = Instant::now();
    let mut cfg = config("alice", 1);
    cfg.limits = small_limits();
    let mut node = founder_with(t0, cfg);
    let carol = join(&mut node, t0, "carol", 3);
    let bob = join(&mut node, t0, "bob", 2);
    let term = node.term().expect("a term");
    // Positions 1 and 2 are the two admissions.
    let mut index = 2;
    let mut seq = 0;
    // The burst is ordered; the next submission is refused with the time to wait.
    for _ in 0..2 {
        seq += 1;
        let out = submit_from(&mut node, t0, carol, 3, broadcast(carol, seq, "carol", 0));
        assert_eq!(out.len(), 2, "an Order to each other member: {out:?}");
        index += 1;
    }
    let limited = PeerMsg::RateLimited { id: MessageId::new(carol, 3), retry_after_ms: 100 };
    let out = submit_from(&mut node, t0, carol, 3, broadcast(carol, 3, "carol", 0));
    assert_eq!(out, vec![Output::Send { to: addr(3), msg: envelope(node.id(), 1, limited) }]);
    // carol ignores it and submits every 10 ms (bob and carol acknowledge what is ordered). After
    // one second of that she is removed, and bob is told.
    let mut removed_at = None;
    for step in 1..=200 {
        let now = t0 + Duration::from_millis(10 * step);
        seq += 1;
        let out = submit_from(&mut node, now, carol, 3, broadcast(carol, seq, "carol", 0));
        let flood = |o: &Output| {
            matches!(
                o,
                Output::Send { msg: Envelope { msg: PeerMsg::Rejected { code: ErrorCode::Flood, .. }, .. }, .. }
            )
        };
        if out.iter().any(flood) {
            let reason = "kept submitting over the rate limit after warnings".to_string();
            let rejected = PeerMsg::Rejected { id: MessageId::new(carol, seq), code: ErrorCode::Flood, reason };
            let info = PeerInfo { name: name("carol"), node_id: Some(carol), addr: Some(addr(3)), coordinator: false };
            // The removal is ordered like a message: bob gets it in the turn's batch.
            let left = |first, commit| PeerMsg::Orders {
                term,
                first,
                entries: vec![(Entry::Change(crate::group::Change::Left(carol)), Vec::new())],
                commit,
            };
            let expected = vec![
                Output::Send { to: addr(3), msg: envelope(node.id(), 1, rejected) },
                Output::Send { to: addr(2), msg: envelope(node.id(), 1, left(index + 1, index)) },
            ];
            assert_eq!(out, expected);
            // Everybody reports it once bob holds it.
            node.handle(now, Input::Receive(envelope(Some(bob), 2, PeerMsg::Ack { term, index: index + 1 })));
            let commit = PeerMsg::Commit { pos: Pos::new(term, index + 1) };
            let told = Output::Send { to: addr(2), msg: envelope(node.id(), 1, commit) };
            assert_eq!(drain(&mut node), vec![Output::Event(Event::PeerLeft(info)), told]);
            removed_at = Some(now);
            break;
        }
        if out.iter().any(|o| matches!(o, Output::Send { msg: Envelope { msg: PeerMsg::Orders { .. }, .. }, .. })) {
            index += 1;
            for (id, port) in [(bob, 2), (carol, 3)] {
                node.handle(now, Input::Receive(envelope(Some(id), port, PeerMsg::Ack { term, index })));
            }
            drain(&mut node);
        }
    }
    let removed_at = removed_at.expect("the flooder was removed");
    assert!(removed_at >= t0 + FLOOD_GRACE && removed_at <= t0 + FLOOD_GRACE + Duration::from_millis(100));
    assert_eq!(node.counters().flooders_removed, 1);
    assert!(node.peers().iter().all(|p| p.node_id != Some(carol)));
    // What she sends next is answered as from a stranger.
    let out = submit_from(&mut node, removed_at, carol, 3, broadcast(carol, seq + 1, "carol", 0));
    let not_member = PeerMsg::NotMember { term };
    assert_eq!(out, vec![Output::Send { to: addr(3), msg: envelope(node.id(), 1, not_member) }]);
}

#[test]
fn a_member_told_to_wait_pauses_then_resubmits_one_at_a_time_and_loses_nothing() {
    let t0 = Instant::now();
    let mut node = member(t0);
    let ids: Vec<MessageId> =
        (0..4).map(|i| node.submit(t0, message(Recipients::Broadcast, &format!("m{i}"))).expect("accepted")).collect();
    assert_eq!(submits(&drain(&mut node)), ids, "within the window: all at once");
    let wait = Duration::from_millis(250);
    for id in [ids[1], ids[2]] {
        let limited = PeerMsg::RateLimited { id, retry_after_ms: 250 };
        node.handle(t0, Input::Receive(envelope(Some(COORDINATOR), 1, limited)));
    }
    // Only the coordinator may slow the node down.
    let forged = PeerMsg::RateLimited { id: ids[3], retry_after_ms: 60_000 };
    node.handle(t0, Input::Receive(envelope(Some(NodeId(99)), 9, forged)));
    let later = node.submit(t0, message(Recipients::Broadcast, "m4")).expect("accepted");
    assert_eq!(drain(&mut node), [], "paused");
    assert_eq!(node.poll_timeout(), Some(t0 + wait));
    let term = Term::new(1, COORDINATOR);
    let order = |node: &mut Node, at: Instant, index: u64, id: MessageId| {
        let msg = ChatMessage {
            id,
            sender: name("bob"),
            recipients: Recipients::Broadcast,
            body: String::new(),
            lamport: Timestamp::new(index + 1, COORDINATOR),
            time: 0,
        };
        let order = PeerMsg::Orders { term, first: index, entries: vec![(Entry::Visible(msg), Vec::new())], commit: 0 };
        node.handle(at, Input::Receive(envelope(Some(COORDINATOR), 1, order)));
        submits(&drain(node))
    };
    let early = t0 + wait / 2;
    assert_eq!(order(&mut node, early, 1, ids[0]), []);
    assert_eq!(order(&mut node, early, 2, ids[3]), [], "still paused");
    node.handle_timeout(t0 + wait);
    assert_eq!(submits(&drain(&mut node)), [ids[1]], "one at a time after a refusal");
    assert_eq!(order(&mut node, t0 + wait, 3, ids[1]), [ids[2]]);
    assert_eq!(order(&mut node, t0 + wait, 4, ids[2]), [later]);
    assert_eq!(node.counters().paused, 2);
    assert_eq!(node.pending(), 5, "nothing lost: every message waits for its commit");
}

#[test]
fn a_coordinator_paces_its_own_messages_the_same_way() {
    let t0 = Instant::now();
    let mut cfg = config("alice", 1);
    cfg.limits = small_limits();
    let mut node = founder_with(t0, cfg);
    for i in 0..5 {
        node.submit(t0, message(Recipients::Broadcast, &format!("m{i}"))).expect("accepted");
    }
    let sent = |out: &[Output]| out.iter().filter(|o| matches!(o, Output::Sent { .. })).count();
    assert_eq!(sent(&drain(&mut node)), 2, "the burst");
    assert_eq!(node.poll_timeout().map(|t| t - t0), Some(Duration::from_millis(100)));
    let mut total = 2;
    let mut now = t0;
    for _ in 0..10 {
        let Some(next) = node.poll_timeout() else { break };
        now = next.max(now);
        node.handle_timeout(now);
        total += sent(&drain(&mut node));
    }
    assert_eq!((total, node.pending()), (5, 0), "all ordered, ten a second");
    assert!(now >= t0 + Duration::from_millis(300));
}

#[test]
fn a_coordinator_that_cannot_be_dialled_is_not_taken_for_dead_and_nothing_is_lost() {
    let t0 = Instant::now();
    let mut node = member(t0);
    node.submit(t0, message(Recipients::Broadcast, "lost on the way")).expect("accepted");
    let first = drain(&mut node);
    assert_eq!(submits(&first).len(), 1);
    node.handle(t0, Input::Unreachable(addr(1)));
    assert_eq!(drain(&mut node), [], "no election");
    assert_eq!(node.coordinator(), Some(COORDINATOR));
    // Its next heartbeat (it is alive) brings the resync: Alive, then the message again.
    let term = Term::new(1, COORDINATOR);
    let hb = PeerMsg::Heartbeat { term, commit: None, clock: 0 };
    node.handle(t0 + Duration::from_millis(100), Input::Receive(envelope(Some(COORDINATOR), 1, hb)));
    let alive = Output::Send { to: addr(1), msg: envelope(node.id(), 2, PeerMsg::Alive { term }) };
    let mut expected = vec![alive];
    expected.extend(first);
    assert_eq!(drain(&mut node), expected);
    // A link that breaks once open is another matter: the coordinator may be dead.
    node.handle(t0, Input::LinkDown(addr(1)));
    assert!(
        drain(&mut node)
            .iter()
            .any(|o| matches!(o, Output::Send { msg: Envelope { msg: PeerMsg::Election(_), .. }, .. }))
    );
}

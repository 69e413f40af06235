//! Textbook Bully scenarios with exact expected outputs.

use super::*;
use ElectionMsg::*;
use ElectionOutput::{CoordinatorChanged, Send as Out};

const ANSWER: Duration = Duration::from_millis(500);
const ANNOUNCE: Duration = Duration::from_secs(1);

fn n(id: u64) -> NodeId {
    NodeId(id)
}

fn node(me: u64, peers: &[u64]) -> Bully {
    let mut b = Bully::new(n(me), ElectionConfig { answer_timeout: ANSWER, announce_timeout: ANNOUNCE });
    b.set_peers(peers.iter().map(|p| n(*p)));
    b
}

/// Node `me`, already coordinator of epoch 1 (no peer above it), its announcements drained.
fn coordinator(me: u64, peers: &[u64]) -> Bully {
    let mut b = node(me, peers);
    b.handle(Instant::now(), ElectionInput::Start);
    drain(&mut b);
    b
}

fn drain(b: &mut Bully) -> Vec<ElectionOutput> {
    std::iter::from_fn(|| b.poll_output()).collect()
}

fn recv(b: &mut Bully, now: Instant, from: u64, msg: ElectionMsg) -> Vec<ElectionOutput> {
    b.handle(now, ElectionInput::Receive { from: n(from), msg });
    drain(b)
}

fn out(to: u64, msg: ElectionMsg) -> ElectionOutput {
    Out { to: n(to), msg }
}

fn changed(epoch: u64, coordinator: u64) -> ElectionOutput {
    CoordinatorChanged { term: Term::new(epoch, n(coordinator)) }
}

#[test]
fn highest_live_id_wins_at_once() {
    let t0 = Instant::now();
    let mut b = node(5, &[1, 2, 3]);
    b.handle(t0, ElectionInput::Start);
    assert_eq!(
        drain(&mut b),
        [
            out(1, Coordinator { epoch: 1, tag: 0 }),
            out(2, Coordinator { epoch: 1, tag: 0 }),
            out(3, Coordinator { epoch: 1, tag: 0 }),
            changed(1, 5)
        ]
    );
    assert!(b.is_coordinator());
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn low_id_starts_and_higher_ids_take_over() {
    // Nodes 1..=4; 4 (the coordinator) crashed. 1 notices first.
    let t0 = Instant::now();
    let mut one = node(1, &[2, 3, 4]);
    let mut two = node(2, &[1, 3, 4]);
    let mut three = node(3, &[1, 2, 4]);
    one.handle(t0, ElectionInput::Start);
    assert_eq!(
        drain(&mut one),
        [out(2, Election { epoch: 0 }), out(3, Election { epoch: 0 }), out(4, Election { epoch: 0 })]
    );
    assert_eq!(one.poll_timeout(), Some(t0 + ANSWER));
    // 2 and 3 answer and run their own elections.
    assert_eq!(
        recv(&mut two, t0, 1, Election { epoch: 0 }),
        [out(1, Answer { epoch: 0 }), out(3, Election { epoch: 0 }), out(4, Election { epoch: 0 })]
    );
    assert_eq!(
        recv(&mut three, t0, 1, Election { epoch: 0 }),
        [out(1, Answer { epoch: 0 }), out(4, Election { epoch: 0 })]
    );
    assert_eq!(recv(&mut one, t0, 2, Answer { epoch: 0 }), []);
    assert_eq!(one.poll_timeout(), Some(t0 + ANNOUNCE));
    assert_eq!(recv(&mut three, t0, 2, Election { epoch: 0 }), [out(2, Answer { epoch: 0 })]);
    assert_eq!(recv(&mut two, t0, 3, Answer { epoch: 0 }), []);
    // 4 is dead: 3 hears nothing and wins when its answer deadline passes.
    three.handle_timeout(t0 + ANSWER);
    assert_eq!(
        drain(&mut three),
        [
            out(1, Coordinator { epoch: 1, tag: 0 }),
            out(2, Coordinator { epoch: 1, tag: 0 }),
            out(4, Coordinator { epoch: 1, tag: 0 }),
            changed(1, 3)
        ]
    );
    assert_eq!(recv(&mut one, t0 + ANSWER, 3, Coordinator { epoch: 1, tag: 0 }), [changed(1, 3)]);
    assert_eq!(recv(&mut two, t0 + ANSWER, 3, Coordinator { epoch: 1, tag: 0 }), [changed(1, 3)]);
    assert_eq!((one.poll_timeout(), two.poll_timeout()), (None, None));
    assert_eq!(two.coordinator(), Some(n(3)));
}

#[test]
fn higher_node_answers_then_crashes_before_announcing() {
    let t0 = Instant::now();
    let mut one = node(1, &[2]);
    one.handle(t0, ElectionInput::Start);
    assert_eq!(drain(&mut one), [out(2, Election { epoch: 0 })]);
    assert_eq!(recv(&mut one, t0, 2, Answer { epoch: 0 }), []);
    // 2 crashes; the announce deadline passes and 1 starts again.
    one.handle_timeout(t0 + ANNOUNCE);
    assert_eq!(drain(&mut one), [out(2, Election { epoch: 0 })]);
    // Nobody answers this time: 1 wins.
    one.handle_timeout(t0 + ANNOUNCE + ANSWER);
    assert_eq!(drain(&mut one), [out(2, Coordinator { epoch: 1, tag: 0 }), changed(1, 1)]);
}

#[test]
fn concurrent_elections_converge_on_the_highest() {
    let t0 = Instant::now();
    let mut one = node(1, &[2, 3]);
    let mut two = node(2, &[1, 3]);
    let mut three = node(3, &[1, 2]);
    one.handle(t0, ElectionInput::Start);
    two.handle(t0, ElectionInput::Start);
    assert_eq!(drain(&mut one), [out(2, Election { epoch: 0 }), out(3, Election { epoch: 0 })]);
    assert_eq!(drain(&mut two), [out(3, Election { epoch: 0 })]);
    // 2 is already electing: it only answers 1.
    assert_eq!(recv(&mut two, t0, 1, Election { epoch: 0 }), [out(1, Answer { epoch: 0 })]);
    assert_eq!(
        recv(&mut three, t0, 1, Election { epoch: 0 }),
        [
            out(1, Answer { epoch: 0 }),
            out(1, Coordinator { epoch: 1, tag: 0 }),
            out(2, Coordinator { epoch: 1, tag: 0 }),
            changed(1, 3)
        ]
    );
    // 3 is now coordinator: a second Election is answered and re-announced.
    assert_eq!(
        recv(&mut three, t0, 2, Election { epoch: 0 }),
        [out(2, Answer { epoch: 1 }), out(2, Coordinator { epoch: 1, tag: 0 })]
    );
    assert_eq!(recv(&mut two, t0, 3, Coordinator { epoch: 1, tag: 0 }), [changed(1, 3)]);
    assert_eq!(recv(&mut two, t0, 3, Answer { epoch: 1 }), []);
    assert_eq!(recv(&mut one, t0, 3, Coordinator { epoch: 1, tag: 0 }), [changed(1, 3)]);
    // A repeated announcement of the same term changes nothing.
    assert_eq!(recv(&mut one, t0, 3, Coordinator { epoch: 1, tag: 0 }), []);
    assert_eq!((one.poll_timeout(), two.poll_timeout(), three.poll_timeout()), (None, None, None));
}

#[test]
fn stale_coordinator_returning_with_an_old_epoch_steps_down() {
    let t0 = Instant::now();
    // 3 ruled in epoch 1, was cut off; 4 joined later and rules in epoch 2.
    let mut three = node(3, &[1, 2, 4]);
    three.adopt(Term::new(1, n(3)));
    let mut one = node(1, &[2, 3, 4]);
    one.adopt(Term::new(2, n(4)));
    // 3 re-announces its old term to 1: 1 ignores it (older term, lower than its coordinator).
    assert_eq!(recv(&mut one, t0, 3, Coordinator { epoch: 1, tag: 0 }), []);
    assert_eq!(one.coordinator(), Some(n(4)));
    // The real coordinator 4 tells 3: 3 steps down.
    assert_eq!(recv(&mut three, t0, 4, Coordinator { epoch: 2, tag: 0 }), [changed(2, 4)]);
    assert!(!three.is_coordinator());
    // And a coordinator hearing an older, lower claim tells the claimant who rules.
    let mut four = node(4, &[1, 2, 3]);
    four.adopt(Term::new(2, n(4)));
    assert_eq!(recv(&mut four, t0, 3, Coordinator { epoch: 1, tag: 0 }), [out(3, Coordinator { epoch: 2, tag: 0 })]);
}

#[test]
fn lower_claimant_is_bullied_with_a_newer_epoch() {
    let t0 = Instant::now();
    let mut five = node(5, &[2]);
    assert_eq!(
        recv(&mut five, t0, 2, Coordinator { epoch: 7, tag: 0 }),
        [out(2, Coordinator { epoch: 8, tag: 0 }), changed(8, 5)]
    );
}

#[test]
fn clean_exit_hands_over_at_once() {
    let t0 = Instant::now();
    let mut three = coordinator(3, &[1, 2]);
    three.handle(t0, ElectionInput::Leave);
    assert_eq!(drain(&mut three), [out(1, Resign { epoch: 1 }), out(2, Resign { epoch: 1 })]);
    // 2 does not wait for a heartbeat timeout: it wins immediately (no higher peer left).
    let mut two = node(2, &[1, 3]);
    two.adopt(Term::new(1, n(3)));
    assert_eq!(recv(&mut two, t0, 3, Resign { epoch: 1 }), [out(1, Coordinator { epoch: 2, tag: 0 }), changed(2, 2)]);
    // A resign from someone who is not the coordinator is ignored.
    let mut one = node(1, &[2, 3]);
    one.adopt(Term::new(2, n(2)));
    assert_eq!(recv(&mut one, t0, 3, Resign { epoch: 1 }), []);
    assert_eq!(recv(&mut one, t0, 2, Coordinator { epoch: 2, tag: 0 }), []);
}

#[test]
fn coordinator_takes_a_newer_term_when_a_member_has_seen_a_newer_epoch() {
    // 5 coordinates at epoch 1; 2 followed another partition up to epoch 3 and calls an election.
    let t0 = Instant::now();
    let mut five = coordinator(5, &[1, 2]);
    assert_eq!(
        recv(&mut five, t0, 2, Election { epoch: 3 }),
        [
            out(2, Answer { epoch: 3 }),
            out(1, Coordinator { epoch: 4, tag: 0 }),
            out(2, Coordinator { epoch: 4, tag: 0 }),
            changed(4, 5)
        ]
    );
    // An election at the coordinator's own epoch is only answered: no new term.
    assert_eq!(
        recv(&mut five, t0, 1, Election { epoch: 4 }),
        [out(1, Answer { epoch: 4 }), out(1, Coordinator { epoch: 4, tag: 0 })]
    );
}

#[test]
fn reassert_above_takes_a_term_past_the_given_epoch() {
    let mut five = coordinator(5, &[1]);
    five.reassert_above(7);
    assert_eq!(drain(&mut five), [out(1, Coordinator { epoch: 8, tag: 0 }), changed(8, 5)]);
    // Only a coordinator reasserts.
    let mut one = node(1, &[5]);
    one.reassert_above(9);
    assert_eq!(drain(&mut one), []);
}

#[test]
fn a_reannounced_current_term_ends_an_election() {
    // 3 stepped down (its coordinator 5 fell silent) and runs an election; 5 answers and re-announces.
    let t0 = Instant::now();
    let mut three = node(3, &[1, 5]);
    assert_eq!(recv(&mut three, t0, 5, Coordinator { epoch: 2, tag: 0 }), [changed(2, 5)]);
    three.step_down();
    three.handle(t0, ElectionInput::Start);
    assert_eq!(drain(&mut three), [out(5, Election { epoch: 2 })]);
    assert!(three.is_electing());
    assert_eq!(recv(&mut three, t0, 5, Answer { epoch: 2 }), []);
    assert_eq!(recv(&mut three, t0, 5, Coordinator { epoch: 2, tag: 0 }), [changed(2, 5)]);
    assert!(!three.is_electing());
    assert_eq!(three.poll_timeout(), None);
    assert_eq!(three.term(), Some(Term::new(2, n(5))));
}

#[test]
fn a_node_following_a_live_coordinator_only_answers_an_election() {
    // 3 follows 5; 1 lost its link to 5 and calls an election: 3 answers (so 1 does not win) but
    // holds no election of its own while 5 lives.
    let t0 = Instant::now();
    let mut three = node(3, &[1, 5]);
    assert_eq!(recv(&mut three, t0, 5, Coordinator { epoch: 2, tag: 0 }), [changed(2, 5)]);
    assert_eq!(recv(&mut three, t0, 1, Election { epoch: 2 }), [out(1, Answer { epoch: 2 })]);
    assert!(!three.is_electing());
    assert_eq!(three.term(), Some(Term::new(2, n(5))));
}

#[test]
fn a_lower_coordinator_followed_before_is_re_adopted_not_bullied() {
    // 7 joined the group of 2 (IDs are given in order of admission, so the coordinator is lower).
    // 7 lost its link to 2 and stepped down; 2's re-announcement ends 7's election, with no takeover.
    let t0 = Instant::now();
    let mut seven = node(7, &[2]);
    seven.adopt(Term::new(1, n(2)));
    seven.step_down();
    seven.handle(t0, ElectionInput::Start);
    assert_eq!(drain(&mut seven), [out(2, Coordinator { epoch: 2, tag: 0 }), changed(2, 7)], "no higher peer");
    // (Had 7 known a higher peer, it would be waiting; here it won. A node that waits instead:)
    let mut five = node(5, &[2, 9]);
    five.adopt(Term::tagged(1, n(2), 44));
    five.step_down();
    five.handle(t0, ElectionInput::Start);
    assert_eq!(drain(&mut five), [out(9, Election { epoch: 1 })]);
    assert_eq!(
        recv(&mut five, t0, 2, Coordinator { epoch: 1, tag: 44 }),
        [CoordinatorChanged { term: Term::tagged(1, n(2), 44) }]
    );
    assert!(!five.is_electing());
    // The same ID and epoch under another process tag is another reign: a lower claimant, bullied.
    five.step_down();
    let bullied = recv(&mut five, t0, 2, Coordinator { epoch: 1, tag: 45 });
    assert_eq!(bullied, [out(9, Election { epoch: 1 })]);
}

#[test]
fn a_tagged_machine_wins_tagged_terms() {
    let mut b = node(4, &[1]).with_tag(99);
    b.handle(Instant::now(), ElectionInput::Start);
    assert_eq!(
        drain(&mut b),
        [out(1, Coordinator { epoch: 1, tag: 99 }), CoordinatorChanged { term: Term::tagged(1, n(4), 99) }]
    );
}

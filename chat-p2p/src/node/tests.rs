//! Role-level scenarios with exact expected outputs: each test drives one node through
//! [`Node::handle`] / [`Node::submit`] / [`Node::handle_timeout`] and compares the whole output list.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_core::{
    ChatMessage, CoreError, ErrorCode, Event, NodeId, OutgoingMessage, PeerInfo, Recipients, Timestamp, UserName,
};

use super::*;
use crate::election::ElectionMsg;
use crate::protocol::{Entry, Member, Pos, Snapshot, Submission};

/// The coordinator of the member scenarios (above the member, so joining starts no election).
pub(super) const COORDINATOR: NodeId = NodeId(20);
/// The member's ID in the member scenarios.
pub(super) const MEMBER: NodeId = NodeId(10);

pub(super) fn name(s: &str) -> UserName {
    UserName::new(s).expect("valid name")
}

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(super) fn config(who: &str, port: u16) -> NodeConfig {
    NodeConfig::new(name(who), addr(port), 7)
}

pub(super) fn drain(node: &mut Node) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

pub(super) fn envelope(from: Option<NodeId>, port: u16, msg: PeerMsg) -> Envelope {
    Envelope { from, addr: addr(port), msg }
}

pub(super) fn message(to: Recipients, body: &str) -> OutgoingMessage {
    OutgoingMessage { recipients: to, body: body.into(), sent_at: Timestamp::default() }
}

/// "alice" at port 1, who found nobody and coordinates a group of one; outputs drained.
pub(super) fn founder(t0: Instant) -> Node {
    founder_with(t0, config("alice", 1))
}

/// A founder with these settings; outputs drained.
pub(super) fn founder_with(t0: Instant, cfg: NodeConfig) -> Node {
    let join_timeout = cfg.join_timeout;
    let mut node = Node::new(t0, cfg);
    drain(&mut node);
    node.handle_timeout(t0 + join_timeout);
    drain(&mut node);
    assert!(node.is_coordinator(), "the founder coordinates");
    node
}

/// The `JoinRequest` "carol" at port 3 sends, with her Lamport counter 0.
pub(super) fn carol_request(nonce: u64) -> PeerMsg {
    PeerMsg::JoinRequest { name: name("carol"), addr: addr(3), nonce, clock: 0, key: None, id: None, quiet: false }
}

/// "bob" at port 2, admitted as [`MEMBER`] by "alice" ([`COORDINATOR`], port 1) in epoch 1.
pub(super) fn member(t0: Instant) -> Node {
    let mut node = Node::new(t0, config("bob", 2));
    let nonce = match drain(&mut node).as_slice() {
        [Output::Multicast(Envelope { msg: PeerMsg::JoinRequest { nonce, .. }, .. })] => *nonce,
        other => panic!("a joiner multicasts one JoinRequest, not {other:?}"),
    };
    let term = Term::new(1, COORDINATOR);
    let members = vec![
        Member { id: COORDINATOR, name: name("alice"), addr: addr(1), key: None },
        Member { id: MEMBER, name: name("bob"), addr: addr(2), key: None },
    ];
    let state = Snapshot { members, high: COORDINATOR, ..Snapshot::default() };
    let ack =
        PeerMsg::JoinAck { nonce, id: MEMBER, term, state, history: Vec::new(), start: Pos::new(term, 0), clock: 0 };
    node.handle(t0, Input::Receive(envelope(Some(COORDINATOR), 1, ack)));
    let changed = Event::CoordinatorChanged { name: name("alice"), node_id: COORDINATOR, epoch: 1 };
    assert_eq!(drain(&mut node), vec![Output::Joined { id: MEMBER }, Output::Event(changed)]);
    node
}

#[test]
fn a_coordinator_rejecting_its_own_submission_reports_send_failed_without_sending_anything() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    let id = node.submit(t0, message(Recipients::Unicast(name("bob")), "anyone?")).expect("accepted for ordering");
    let error = CoreError::Rejected { code: ErrorCode::UnknownUser, message: "not online: bob".into() };
    assert_eq!(drain(&mut node), vec![Output::SendFailed { id, error }]);
    assert_eq!(node.pending(), 0);
}

#[test]
fn a_lone_coordinator_orders_and_delivers_its_own_message_at_once() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    let id = node.submit(t0, message(Recipients::Broadcast, "hello")).expect("accepted");
    let out = drain(&mut node);
    let delivered = node.history(10);
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].id, delivered[0].body.as_str()), (id, "hello"));
    let expected = vec![
        Output::Sent { id, unknown: Vec::new(), queued: Vec::new() },
        Output::Event(Event::Message(delivered[0].clone())),
    ];
    assert_eq!(out, expected);
}

/// What the founder outputs when it admits "carol" (given her request's nonce): `PeerJoined`, then
/// one `JoinAck` with her ID, the term, both members, no history, the start position and the clock.
fn carol_admitted(node: &Node, nonce: u64) -> Vec<Output> {
    let term = node.term().expect("a term");
    let carol = node.peers().into_iter().find(|p| p.name == name("carol")).expect("carol is a member");
    let carol_id = carol.node_id.expect("an ID");
    let mut members = vec![
        Member { id: node.id().expect("an ID"), name: name("alice"), addr: addr(1), key: None },
        Member { id: carol_id, name: name("carol"), addr: addr(3), key: None },
    ];
    // The view lists members by ID.
    members.sort_by_key(|m| m.id);
    let ack = PeerMsg::JoinAck {
        nonce,
        id: carol_id,
        term,
        state: Snapshot { members, high: carol_id, ..Snapshot::default() },
        history: Vec::new(),
        // Her admission is the first position of the term: the state includes it.
        start: Pos::new(term, 1),
        // The founder's counter 0, after observing carol's 0.
        clock: 1,
    };
    let joined = PeerInfo { name: name("carol"), node_id: Some(carol_id), addr: Some(addr(3)), coordinator: false };
    // The commit point moved in this turn (to her admission): told to every member with nothing new.
    let commit = PeerMsg::Commit { pos: Pos::new(term, 1) };
    vec![
        Output::Event(Event::PeerJoined(joined)),
        Output::Send { to: addr(3), msg: envelope(node.id(), 1, ack) },
        Output::Send { to: addr(3), msg: envelope(node.id(), 1, commit) },
    ]
}

/// Every member acknowledges every `Orders` frame among `out` (sent by `coordinator`), over plain
/// links; what that outputs. Members are found by address in the coordinator's peers.
pub(super) fn ack_all(coordinator: &mut Node, t: Instant, out: &[Output]) -> Vec<Output> {
    ack_all_with(coordinator, t, out, Input::Receive)
}

/// [`ack_all`], each `Ack` handed to the node as `wrap` makes it (e.g. over an authenticated link).
pub(super) fn ack_all_with(
    coordinator: &mut Node,
    t: Instant,
    out: &[Output],
    wrap: impl Fn(Envelope) -> Input,
) -> Vec<Output> {
    let peers = coordinator.peers();
    for o in out {
        if let Output::Send { to, msg: Envelope { msg: PeerMsg::Orders { term, first, entries, .. }, .. } } = o {
            let Some(id) = peers.iter().find(|p| p.addr == Some(*to)).and_then(|p| p.node_id) else { continue };
            let ack = PeerMsg::Ack { term: *term, index: first + entries.len() as u64 - 1 };
            coordinator.handle(t, wrap(envelope(Some(id), to.port(), ack)));
        }
    }
    drain(coordinator)
}

#[test]
fn a_coordinator_admits_a_joiner_and_tells_it_everything_in_one_ack() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    node.handle(t0, Input::Receive(envelope(None, 3, carol_request(99))));
    let out = drain(&mut node);
    assert_eq!(out, carol_admitted(&node, 99));
}

#[test]
fn a_coordinator_answers_a_rejoiner_signing_with_its_old_id_itself() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    let old_id = NodeId(12_345);
    node.handle(t0, Input::Receive(envelope(Some(old_id), 3, carol_request(42))));
    // Admitted at once, with a new ID: no frame to itself.
    let out = drain(&mut node);
    assert_eq!(out, carol_admitted(&node, 42));
    assert!(node.peers().iter().all(|p| p.node_id != Some(old_id)));
}

#[test]
fn a_copy_of_an_answered_join_request_is_ignored_but_a_new_one_admits_the_member_again() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    let request = |nonce| match carol_request(nonce) {
        PeerMsg::JoinRequest { name, addr, nonce, clock, key, quiet, .. } => {
            // Asking for an ID back, as a member handed over after a heal does.
            PeerMsg::JoinRequest { name, addr, nonce, clock, key, id: Some(NodeId(2)), quiet }
        }
        other => other,
    };
    let acks = |out: &[Output]| -> Vec<u64> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { msg: Envelope { msg: PeerMsg::JoinAck { nonce, .. }, .. }, .. } => Some(*nonce),
                _ => None,
            })
            .collect()
    };
    node.handle(t0, Input::Receive(envelope(None, 3, request(7))));
    assert_eq!(acks(&drain(&mut node)), vec![7], "admitted");
    // A retry of the same request that crossed the JoinAck: not a member that believes it is out
    // (admitting it again would restart its outbox after what its first JoinAck covered, and it
    // would never get what lies between).
    node.handle(t0, Input::Receive(envelope(None, 3, request(7))));
    assert_eq!(drain(&mut node), Vec::new(), "a copy is ignored");
    // A new request (another nonce) from the same member: it believes it is out; admitted again in place.
    node.handle(t0, Input::Receive(envelope(None, 3, request(8))));
    assert_eq!(acks(&drain(&mut node)), vec![8], "admitted again");
    assert_eq!(node.peers().len(), 2, "in place: nobody new");
}

#[test]
fn a_member_forwards_a_join_request_to_the_coordinator() {
    let t0 = Instant::now();
    let mut node = member(t0);
    node.handle(t0, Input::Receive(envelope(None, 3, carol_request(5))));
    let forwarded = Output::Send { to: addr(1), msg: envelope(None, 3, carol_request(5)) };
    assert_eq!(drain(&mut node), vec![forwarded]);
}

#[test]
fn a_member_submits_to_the_coordinator_and_delivers_on_commit() {
    let t0 = Instant::now();
    let mut node = member(t0);
    let id = node.submit(t0, message(Recipients::Broadcast, "hi")).expect("accepted");
    // Its own ID, and a sequence number from the process's random base (node IDs are small).
    assert_eq!(id.origin, MEMBER);
    let sub = Submission {
        id,
        sender: name("bob"),
        recipients: Recipients::Broadcast,
        body: "hi".into(),
        // The JoinAck's counter 0 observed (1), then the send observed (2).
        sent_at: Timestamp::new(2, MEMBER),
    };
    let submit = Output::Send { to: addr(1), msg: envelope(Some(MEMBER), 2, PeerMsg::Submit(sub)) };
    assert_eq!(drain(&mut node), vec![submit]);
    let term = Term::new(1, COORDINATOR);
    let pos = Pos::new(term, 1);
    let msg = ChatMessage {
        id,
        sender: name("bob"),
        recipients: Recipients::Broadcast,
        body: "hi".into(),
        lamport: Timestamp::new(5, COORDINATOR),
        time: 0,
    };
    let order = PeerMsg::Orders { term, first: 1, entries: vec![(Entry::Visible(msg.clone()), Vec::new())], commit: 0 };
    node.handle(t0, Input::Receive(envelope(Some(COORDINATOR), 1, order)));
    let ack = PeerMsg::Ack { term, index: 1 };
    assert_eq!(drain(&mut node), vec![Output::Send { to: addr(1), msg: envelope(Some(MEMBER), 2, ack) }]);
    node.handle(t0, Input::Receive(envelope(Some(COORDINATOR), 1, PeerMsg::Commit { pos })));
    assert_eq!(
        drain(&mut node),
        vec![Output::Sent { id, unknown: Vec::new(), queued: Vec::new() }, Output::Event(Event::Message(msg))]
    );
}

#[test]
fn a_member_whose_coordinator_falls_silent_calls_an_election() {
    let t0 = Instant::now();
    let mut node = member(t0);
    let timeout = NodeConfig::new(name("x"), addr(9), 0).timeout;
    assert_eq!(node.poll_timeout(), Some(t0 + timeout));
    node.handle_timeout(t0 + timeout);
    let election = PeerMsg::Election(ElectionMsg::Election { epoch: 1 });
    assert_eq!(drain(&mut node), vec![Output::Send { to: addr(1), msg: envelope(Some(MEMBER), 2, election) }]);
    assert_eq!(node.coordinator(), None);
    // While the election runs, its own deadline (half the failure timeout) drives the node.
    assert_eq!(node.poll_timeout(), Some(t0 + timeout + timeout / 2));
}

#[test]
fn a_member_expelled_by_its_coordinator_rejoins_through_it() {
    let t0 = Instant::now();
    let mut node = member(t0);
    let later = t0 + Duration::from_millis(10);
    node.handle(
        later,
        Input::Receive(envelope(Some(COORDINATOR), 1, PeerMsg::NotMember { term: Term::new(1, COORDINATOR) })),
    );
    let out = drain(&mut node);
    assert!(!node.is_member() && !node.is_closed(), "joining again");
    let nonce = match out.first() {
        Some(Output::Multicast(Envelope { msg: PeerMsg::JoinRequest { nonce, .. }, .. })) => *nonce,
        other => panic!("a JoinRequest multicast first, not {other:?}"),
    };
    // The Lamport counter after observing the JoinAck's 0.
    let request = PeerMsg::JoinRequest {
        name: name("bob"),
        addr: addr(2),
        nonce,
        clock: 1,
        key: None,
        id: Some(MEMBER),
        quiet: false,
    };
    let expected = vec![
        Output::Multicast(envelope(None, 2, request.clone())),
        Output::Send { to: addr(1), msg: envelope(None, 2, request) },
    ];
    assert_eq!(out, expected);
}

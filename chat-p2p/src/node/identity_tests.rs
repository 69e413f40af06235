//! Who a frame is from, with exact expected outputs: claims checked against the link (`identity.rs`),
//! keys bound at join, and what a node does with traffic it cannot authenticate. Each test drives
//! one node, as `tests.rs` does.

use std::time::{Duration, Instant};

use chat_core::{ErrorCode, MessageId, NodeId, Recipients, Timestamp};

use super::tests::{COORDINATOR, MEMBER, ack_all_with, addr, config, drain, envelope, founder, founder_with, name};
use super::*;
use crate::protocol::{Change, Member, PeerKey, Pos, Snapshot, Submission};

pub(super) const ALICE: PeerKey = PeerKey([1; 32]);
pub(super) const CAROL: PeerKey = PeerKey([3; 32]);
pub(super) const MALLORY: PeerKey = PeerKey([13; 32]);

/// "alice" at port 1, with key [`ALICE`], coordinating a group of one.
pub(super) fn keyed_founder(t0: Instant) -> Node {
    let mut cfg = config("alice", 1);
    cfg.key = Some(ALICE);
    founder_with(t0, cfg)
}

pub(super) fn request(who: &str, port: u16, key: Option<PeerKey>) -> PeerMsg {
    PeerMsg::JoinRequest { name: name(who), addr: addr(port), nonce: 5, clock: 0, key, id: None, quiet: false }
}

/// `who` at `port` with `key` joins by multicast; its ID.
pub(super) fn admit(node: &mut Node, t: Instant, who: &str, port: u16, key: PeerKey) -> NodeId {
    node.handle(t, Input::Datagram(envelope(None, port, request(who, port, Some(key)))));
    // Admitted once every member holds the `Joined`: they acknowledge it.
    let out = drain(node);
    ack_all_with(node, t, &out, |env| Input::Authenticated { key: key_of(env.addr.port()), env });
    node.peers().iter().find(|p| p.name == name(who)).and_then(|p| p.node_id).expect("admitted")
}

/// The key of the test node at `port` (alice 1, carol 3, mallory 4).
pub(super) fn key_of(port: u16) -> PeerKey {
    match port {
        1 => ALICE,
        3 => CAROL,
        _ => MALLORY,
    }
}

fn submit(from: NodeId, who: &str) -> PeerMsg {
    PeerMsg::Submit(Submission {
        id: MessageId::new(from, 1),
        sender: name(who),
        recipients: Recipients::Broadcast,
        body: "as someone else".into(),
        sent_at: Timestamp::new(1, from),
    })
}

fn orders(out: &[Output]) -> usize {
    out.iter().filter(|o| matches!(o, Output::Send { msg: Envelope { msg: PeerMsg::Orders { .. }, .. }, .. })).count()
}

#[test]
fn a_member_sends_only_as_itself_over_its_own_link() {
    let t0 = Instant::now();
    let mut node = keyed_founder(t0);
    let carol = admit(&mut node, t0, "carol", 3, CAROL);
    let mallory = admit(&mut node, t0, "mallory", 4, MALLORY);
    let me = node.id().expect("an ID");
    // Mallory holds the secret and has a link: she claims carol's ID, then the coordinator's own.
    for claimed in [carol, me] {
        let forged = envelope(Some(claimed), 4, submit(claimed, "carol"));
        node.handle(t0, Input::Authenticated { key: MALLORY, env: forged });
        assert_eq!(drain(&mut node), [], "a Submit claiming {claimed} over mallory's link");
    }
    assert_eq!(node.counters().identity_refused, 2);
    // Carol over her own link is ordered, under the name the view holds for her.
    node.handle(t0, Input::Authenticated { key: CAROL, env: envelope(Some(carol), 3, submit(carol, "bob")) });
    let out = drain(&mut node);
    assert_eq!(orders(&out), 2, "an Order to carol and one to mallory: {out:?}");
    let sender = out.iter().find_map(|o| match o {
        Output::Send { msg: Envelope { msg: PeerMsg::Orders { entries, .. }, .. }, .. } => {
            entries.iter().find_map(|(e, _)| match e {
                crate::protocol::Entry::Visible(m) => Some(m.sender.clone()),
                _ => None,
            })
        }
        _ => None,
    });
    assert_eq!(sender, Some(name("carol")), "the sender's name comes from the view, not the Submit");
    // A plaintext frame never counts at a node with a secret.
    node.handle(t0, Input::Receive(envelope(Some(mallory), 4, submit(mallory, "mallory"))));
    assert_eq!((drain(&mut node), node.counters().identity_refused), (vec![], 3));
}

#[test]
fn without_a_secret_a_frame_claiming_the_receivers_own_id_is_refused() {
    let t0 = Instant::now();
    let mut node = founder(t0);
    let me = node.id().expect("an ID");
    // The "[bob]" attack: a Submit over TCP claiming the coordinator's own ID.
    node.handle(t0, Input::Receive(envelope(Some(me), 66, submit(me, "bob"))));
    assert_eq!(drain(&mut node), []);
    assert_eq!((node.history(10).len(), node.counters().identity_refused), (0, 1));
    // A join request claiming it is still answered (it claims nothing but a name and a key).
    node.handle(t0, Input::Receive(envelope(Some(me), 3, request("carol", 3, None))));
    let out = drain(&mut node);
    assert!(out.iter().any(|o| matches!(o, Output::Send { msg: Envelope { msg: PeerMsg::JoinAck { .. }, .. }, .. })));
}

#[test]
fn with_a_secret_a_join_request_needs_a_key_of_its_own_and_a_retry_keeps_its_id() {
    let t0 = Instant::now();
    let mut node = keyed_founder(t0);
    let carol = admit(&mut node, t0, "carol", 3, CAROL);
    let refused = |out: &[Output]| match out {
        [Output::Send { msg: Envelope { msg: PeerMsg::JoinRefused { code, reason, .. }, .. }, .. }] => {
            (*code, reason.clone())
        }
        other => panic!("one JoinRefused, not {other:?}"),
    };
    node.handle(t0, Input::Datagram(envelope(None, 4, request("dave", 4, None))));
    let (code, reason) = refused(&drain(&mut node));
    assert_eq!(
        (code, reason.as_str()),
        (ErrorCode::Protocol, "a join request without a key, in a group with a secret")
    );
    // Carol's key under another name: nobody can attach a second name to a member's key.
    node.handle(t0, Input::Datagram(envelope(None, 4, request("dave", 4, Some(CAROL)))));
    let (code, reason) = refused(&drain(&mut node));
    assert_eq!(code, ErrorCode::Protocol);
    assert!(reason.contains("already member"), "{reason}");
    // Carol asking again (her answer was lost) gets her ID again; with another key, her name is taken.
    assert_eq!(admit(&mut node, t0, "carol", 3, CAROL), carol);
    node.handle(t0, Input::Datagram(envelope(None, 3, request("carol", 3, Some(MALLORY)))));
    assert_eq!(refused(&drain(&mut node)).0, ErrorCode::NameTaken);
    assert_eq!(node.peers().len(), 2);
}

/// "bob" at port 2 with key `key`, joining; the nonce of its request.
fn keyed_joiner(t0: Instant, key: PeerKey) -> (Node, u64) {
    let mut cfg = config("bob", 2);
    cfg.key = Some(key);
    let mut node = Node::new(t0, cfg);
    let nonce = match drain(&mut node).as_slice() {
        [Output::Multicast(Envelope { msg: PeerMsg::JoinRequest { nonce, key: sent, .. }, .. })] => {
            assert_eq!(*sent, Some(key), "the request names the joiner's key");
            *nonce
        }
        other => panic!("one JoinRequest, not {other:?}"),
    };
    (node, nonce)
}

#[test]
fn a_joiner_takes_an_ack_only_from_the_coordinator_it_names_listing_its_own_key() {
    let t0 = Instant::now();
    let bob = PeerKey([2; 32]);
    let (mut node, nonce) = keyed_joiner(t0, bob);
    let term = Term::new(1, COORDINATOR);
    let ack = |bobs: PeerKey| PeerMsg::JoinAck {
        nonce,
        id: MEMBER,
        term,
        state: Snapshot {
            members: vec![
                Member { id: COORDINATOR, name: name("alice"), addr: addr(1), key: Some(ALICE) },
                Member { id: MEMBER, name: name("bob"), addr: addr(2), key: Some(bobs) },
            ],
            high: COORDINATOR,
            ..Snapshot::default()
        },
        history: Vec::new(),
        start: Pos::new(term, 0),
        clock: 0,
    };
    // Mallory answers first, naming alice as coordinator; then an ack that binds bob's ID to her key.
    node.handle(t0, Input::Authenticated { key: MALLORY, env: envelope(Some(COORDINATOR), 1, ack(bob)) });
    node.handle(t0, Input::Authenticated { key: ALICE, env: envelope(Some(COORDINATOR), 1, ack(MALLORY)) });
    assert_eq!((drain(&mut node), node.is_member()), (vec![], false));
    assert_eq!(node.counters().identity_refused, 2);
    node.handle(t0, Input::Authenticated { key: ALICE, env: envelope(Some(COORDINATOR), 1, ack(bob)) });
    assert!(node.is_member());
    assert_eq!(node.coordinator(), Some(COORDINATOR));
    // Now alice's ID is bound to her key: the "forged Joined, then Coordinator{epoch+1}" attack.
    let fake = Member { id: NodeId(u64::MAX), name: name("intruder"), addr: addr(66), key: Some(MALLORY) };
    let joined = PeerMsg::Orders {
        term,
        first: 1,
        entries: vec![(crate::protocol::Entry::Change(Change::Joined(fake)), Vec::new())],
        commit: 1,
    };
    node.handle(t0, Input::Authenticated { key: MALLORY, env: envelope(Some(COORDINATOR), 66, joined) });
    let coup = PeerMsg::Election(crate::election::ElectionMsg::Coordinator { epoch: 2, tag: 0 });
    node.handle(t0, Input::Authenticated { key: MALLORY, env: envelope(Some(NodeId(u64::MAX)), 66, coup) });
    drain(&mut node);
    assert_eq!((node.peers().len(), node.coordinator()), (2, Some(COORDINATOR)), "the intruder is nobody here");
}

#[test]
fn a_new_node_that_meets_only_another_secret_stops_with_auth_failed_instead_of_founding() {
    let t0 = Instant::now();
    let (mut node, _) = keyed_joiner(t0, PeerKey([2; 32]));
    let give_up = t0 + node.config().join_timeout;
    // A connection to it that fails proves nothing about the group (anybody may dial); plaintext
    // traffic is another (open) group's, which a node with a secret does not join anyway.
    node.handle(t0, Input::Untrusted { what: Untrusted::OtherSecret, channel: Channel::Accepted });
    node.handle(t0, Input::Untrusted { what: Untrusted::Plaintext, channel: Channel::Datagram });
    let beacon_of_another_secret = Input::Untrusted { what: Untrusted::OtherSecret, channel: Channel::Datagram };
    node.handle(t0 + Duration::from_millis(10), beacon_of_another_secret);
    assert_eq!(node.counters().untrusted, 3);
    node.handle_timeout(give_up);
    let reason = "the nodes here hold another group secret: this node cannot join them (check its secret)";
    let out = drain(&mut node);
    assert_eq!(out, vec![Output::Refused { code: ErrorCode::AuthFailed, reason: reason.into() }]);
    assert!(node.is_closed());
    // A node without a secret that meets a group with one is told so, the same way.
    let mut open = Node::new(t0, config("carol", 3));
    drain(&mut open);
    let dialed = Input::Untrusted { what: Untrusted::SecretRequired, channel: Channel::Dialed(addr(1)) };
    open.handle(t0, dialed);
    open.handle_timeout(give_up);
    let reason = "the nodes here require a group secret, and this node has none";
    assert_eq!(drain(&mut open), vec![Output::Refused { code: ErrorCode::AuthFailed, reason: reason.into() }]);
    // Without such traffic, a node founds its group as before.
    let (mut alone, _) = keyed_joiner(t0, PeerKey([2; 32]));
    alone.handle_timeout(give_up);
    drain(&mut alone);
    assert!(alone.is_member());
}

#[test]
fn a_coordinator_beacons_at_once_when_it_hears_an_unauthenticated_datagram_at_most_once_a_heartbeat() {
    let t0 = Instant::now();
    let mut node = keyed_founder(t0);
    let (tj, hb) = (t0 + node.config().join_timeout, node.config().heartbeat);
    let term = node.term().expect("a term");
    let beacon = Output::Multicast(envelope(node.id(), 1, PeerMsg::Beacon { term, addr: addr(1) }));
    // The first heartbeat beacons.
    node.handle_timeout(tj);
    assert!(drain(&mut node).contains(&beacon));
    let foreign = Input::Untrusted { what: Untrusted::OtherSecret, channel: Channel::Datagram };
    node.handle(tj + hb / 2, foreign.clone());
    assert_eq!(drain(&mut node), [], "not twice within a heartbeat");
    node.handle(tj + hb, foreign.clone());
    assert_eq!(drain(&mut node), vec![beacon.clone()]);
    node.handle(tj + hb * 2, Input::Untrusted { what: Untrusted::Replayed, channel: Channel::Datagram });
    node.handle(tj + hb * 2, Input::Untrusted { what: Untrusted::OtherSecret, channel: Channel::Accepted });
    assert_eq!(drain(&mut node), [], "not for replays, nor for links");
    node.handle(tj + hb * 2, foreign);
    assert_eq!(drain(&mut node), vec![beacon]);
}

#[test]
fn a_member_is_answered_where_it_was_admitted_whatever_its_envelope_says() {
    let t0 = Instant::now();
    let mut node = keyed_founder(t0);
    let carol = admit(&mut node, t0, "carol", 3, CAROL);
    let (me, term) = (node.id().expect("an ID"), node.term().expect("a term"));
    // A heartbeat of an older term, from carol over her link, naming port 99 as her address.
    let old = PeerMsg::Heartbeat { term: Term::new(0, carol), commit: None, clock: 0 };
    node.handle(t0, Input::Authenticated { key: CAROL, env: envelope(Some(carol), 99, old) });
    let stale = PeerMsg::Stale { term, addr: addr(1) };
    assert_eq!(drain(&mut node), vec![Output::Send { to: addr(3), msg: envelope(Some(me), 1, stale) }]);
}

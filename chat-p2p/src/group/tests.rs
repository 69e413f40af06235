//! The replicated state: changes applied in order, IDs handed out and given back, rooms and their
//! bounds, snapshots.

use std::net::SocketAddr;

use chat_core::{MessageId, Timestamp};

use super::*;

fn name(s: &str) -> UserName {
    UserName::new(s).expect("valid name")
}

fn member(id: u64, who: &str) -> Member {
    Member { id: NodeId(id), name: name(who), addr: SocketAddr::from(([127, 0, 0, 1], 7000 + id as u16)), key: None }
}

fn room(s: &str) -> RoomName {
    RoomName::new(s).expect("valid room")
}

#[test]
fn ids_go_up_and_a_departed_node_gets_its_own_back_only() {
    let mut g = Group::default();
    assert_eq!(g.id_for(&name("alice"), None, None), NodeId(1), "the founder is 1");
    for (id, who) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        assert_eq!(g.apply(&Change::Joined(member(id, who))), Applied::Joined(member(id, who)));
    }
    assert_eq!(g.id_for(&name("dave"), None, None), NodeId(4));
    assert_eq!(g.apply(&Change::Left(NodeId(2))), Applied::Left(member(2, "bob")));
    assert_eq!(g.apply(&Change::Left(NodeId(2))), Applied::Nothing, "a repeated change changes nothing");
    // bob comes back claiming 2: his. Anybody else claiming 2, or bob claiming 3 (carol's): the next ID.
    assert_eq!(g.id_for(&name("bob"), None, Some(NodeId(2))), NodeId(2));
    assert_eq!(g.id_for(&name("BOB"), None, Some(NodeId(2))), NodeId(2), "the same name");
    assert_eq!(g.id_for(&name("mallory"), None, Some(NodeId(2))), NodeId(4));
    assert_eq!(g.id_for(&name("bob"), Some(PeerKey([9; 32])), Some(NodeId(2))), NodeId(4), "another key");
    assert_eq!(g.id_for(&name("bob"), None, Some(NodeId(3))), NodeId(4), "carol holds 3");
    assert_eq!(g.id_for(&name("bob"), None, None), NodeId(4), "a new process: a new ID");
    // IDs never go down, even when the highest leaves.
    g.apply(&Change::Left(NodeId(3)));
    assert_eq!(g.high(), NodeId(3));
    assert_eq!(g.id_for(&name("erin"), None, None), NodeId(4));
}

#[test]
fn the_departed_list_is_bounded_oldest_first() {
    let mut g = Group::default();
    let n = DEPARTED_KEPT as u64 + 10;
    for id in 1..=n {
        g.apply(&Change::Joined(member(id, &format!("u{id}"))));
        g.apply(&Change::Left(NodeId(id)));
    }
    assert_eq!(g.snapshot().departed.len(), DEPARTED_KEPT);
    assert_eq!(g.id_for(&name("u1"), None, Some(NodeId(1))), NodeId(n + 1), "forgotten");
    assert_eq!(g.id_for(&name(&format!("u{n}")), None, Some(NodeId(n))), NodeId(n));
}

#[test]
fn rooms_belong_to_names_and_vanish_when_empty() {
    let mut g = Group::default();
    g.apply(&Change::Joined(member(1, "alice")));
    g.apply(&Change::Joined(member(2, "bob")));
    let joined = g.apply(&Change::RoomJoined { room: room("#Ops"), name: name("alice") });
    assert_eq!(joined, Applied::RoomJoined { room: room("#Ops"), name: name("alice") });
    // The room keeps its creator's spelling.
    let again = g.apply(&Change::RoomJoined { room: room("#ops"), name: name("bob") });
    assert_eq!(again, Applied::RoomJoined { room: room("#Ops"), name: name("bob") });
    assert_eq!(g.apply(&Change::RoomJoined { room: room("#OPS"), name: name("BOB") }), Applied::Nothing);
    assert!(g.in_room(&name("Alice"), &room("#ops")));
    assert_eq!(g.room_members(&room("#ops")), [name("alice"), name("bob")]);
    // Membership outlives the group membership: bob leaves the group, stays in the room.
    g.apply(&Change::Left(NodeId(2)));
    assert_eq!(g.rooms(), vec![RoomInfo { name: room("#Ops"), members: 1 }], "one member online");
    assert_eq!(g.rooms_of(&name("bob")), [room("#Ops")]);
    let parted = g.apply(&Change::RoomParted { room: room("#OPS"), name: name("alice") });
    assert_eq!(parted, Applied::RoomParted { room: room("#Ops"), name: name("alice") });
    assert_eq!(g.apply(&Change::RoomParted { room: room("#ops"), name: name("alice") }), Applied::Nothing);
    g.apply(&Change::RoomParted { room: room("#ops"), name: name("bob") });
    assert!(g.rooms().is_empty() && g.room(&room("#ops")).is_none());
}

#[test]
fn room_messages_are_visible_to_the_rooms_members_and_the_sender_only() {
    let mut g = Group::default();
    g.apply(&Change::RoomJoined { room: room("#ops"), name: name("alice") });
    let msg = ChatMessage {
        id: MessageId::new(NodeId(1), 1),
        sender: name("alice"),
        recipients: Recipients::Room(room("#ops")),
        body: "deploy".into(),
        lamport: Timestamp::default(),
        time: 0,
    };
    assert_eq!(g.entry_for(&msg, &name("ALICE")), Entry::Visible(msg.clone()));
    assert_eq!(g.entry_for(&msg, &name("bob")), Entry::Hidden(msg.id));
    g.apply(&Change::RoomJoined { room: room("#ops"), name: name("bob") });
    assert!(g.may_see(&msg, &name("bob")));
}

#[test]
fn room_bounds_are_refused_with_too_many() {
    let mut g = Group::default();
    for k in 0..MAX_ROOMS_PER_USER {
        assert_eq!(g.room_join_refusal(&name("alice"), &room(&format!("#r{k}"))), None);
        g.apply(&Change::RoomJoined { room: room(&format!("#r{k}")), name: name("alice") });
    }
    let refused = g.room_join_refusal(&name("alice"), &room("#one-more"));
    assert_eq!(refused.map(|(code, _)| code), Some(ErrorCode::TooMany));
    assert_eq!(g.room_join_refusal(&name("alice"), &room("#r0")), None, "joining a room one is in is fine");
    for k in MAX_ROOMS_PER_USER..MAX_ROOMS {
        g.apply(&Change::RoomJoined { room: room(&format!("#r{k}")), name: name("bob") });
    }
    let refused = g.room_join_refusal(&name("carol"), &room("#new"));
    assert_eq!(refused.map(|(code, _)| code), Some(ErrorCode::TooMany), "no room for another room");
    assert_eq!(g.room_join_refusal(&name("carol"), &room("#r5")), None, "an existing room is fine");
}

#[test]
fn a_snapshot_rebuilds_the_same_state_and_one_over_its_bounds_is_refused() {
    let mut g = Group::default();
    for (id, who) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        g.apply(&Change::Joined(member(id, who)));
    }
    g.apply(&Change::Left(NodeId(3)));
    g.apply(&Change::RoomJoined { room: room("#ops"), name: name("bob") });
    let copy = Group::from_snapshot(g.snapshot());
    assert_eq!(copy.snapshot(), g.snapshot());
    assert_eq!(copy.id_for(&name("carol"), None, Some(NodeId(3))), NodeId(3));
    assert_eq!(g.snapshot().refusal(), None);
    let mut huge = g.snapshot();
    huge.departed = (0..=DEPARTED_KEPT as u64).map(|id| member(id, "x")).collect();
    assert!(huge.refusal().is_some());
    // Founding again after losing the group keeps the numbering and the rooms.
    let alone = g.alone(member(2, "bob"));
    assert_eq!(alone.view().ids(), [NodeId(2)]);
    assert_eq!((alone.high(), alone.rooms_of(&name("bob"))), (NodeId(3), vec![room("#ops")]));
    assert_eq!(alone.id_for(&name("alice"), None, Some(NodeId(1))), NodeId(1));
}

fn dm(seq: u64, to: &str, body: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId(1), seq),
        sender: name("alice"),
        recipients: Recipients::Unicast(name(to)),
        body: body.into(),
        lamport: Timestamp::new(seq, NodeId(1)),
        time: 0,
    }
}

/// alice (1) a member, bob (2) and carol (3) departed.
fn with_departed() -> Group {
    let mut g = Group::default();
    for (id, who) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        g.apply(&Change::Joined(member(id, who)));
    }
    g.apply(&Change::Left(NodeId(2)));
    g.apply(&Change::Left(NodeId(3)));
    g
}

fn kept(g: &Group, who: &str) -> (Vec<u64>, u64) {
    let q = g.collectable(&name(who), None).expect("a queue");
    (q.messages.iter().map(|m| m.id.seq).collect(), q.dropped)
}

#[test]
fn offline_users_are_the_departed_and_their_queues_are_bounded_per_user() {
    let mut g = with_departed();
    assert_eq!(g.offline_user(&name("BOB")), Some(name("bob")), "departed: known, as registered");
    assert_eq!(g.offline_user(&name("alice")), None, "a member is online");
    assert_eq!(g.offline_user(&name("zed")), None, "never seen");
    // One message more than the bound: the oldest is dropped and counted.
    for seq in 1..=OFFLINE_MESSAGES as u64 + 1 {
        assert_eq!(g.apply(&Change::Kept { names: vec![name("bob")], msg: dm(seq, "bob", "x") }), Applied::Kept);
    }
    let (seqs, dropped) = kept(&g, "bob");
    assert_eq!((seqs.len(), seqs[0], dropped), (OFFLINE_MESSAGES, 2, 1));
    // Bytes: a few big messages push the older ones out; one over the bound is not kept at all.
    let big = "b".repeat(OFFLINE_USER_BYTES / 3);
    for seq in 200..205 {
        g.apply(&Change::Kept { names: vec![name("carol")], msg: dm(seq, "carol", &big) });
    }
    g.apply(&Change::Kept { names: vec![name("carol")], msg: dm(300, "carol", &"h".repeat(OFFLINE_USER_BYTES)) });
    let (seqs, dropped) = kept(&g, "carol");
    assert_eq!((seqs, dropped), (vec![203, 204], 4));
    // The same change delivered twice keeps the message once.
    g.apply(&Change::Kept { names: vec![name("carol")], msg: dm(204, "carol", &big) });
    assert_eq!(kept(&g, "carol").0, vec![203, 204]);
    // A name that is a member now is not kept for.
    g.apply(&Change::Kept { names: vec![name("alice")], msg: dm(400, "alice", "hi") });
    assert!(g.collectable(&name("alice"), None).is_none());
}

#[test]
fn the_total_bound_holds_and_snapshots_carry_the_queues() {
    let mut g = Group::default();
    g.apply(&Change::Joined(member(1, "alice")));
    let users = OFFLINE_USERS as u64;
    for id in 2..2 + users + 1 {
        g.apply(&Change::Joined(member(id, &format!("u{id}"))));
        g.apply(&Change::Left(NodeId(id)));
    }
    let body = "t".repeat(OFFLINE_USER_BYTES / 2);
    for id in 2..2 + users + 1 {
        let who = format!("u{id}");
        g.apply(&Change::Kept { names: vec![name(&who)], msg: dm(id, &who, &body) });
    }
    assert!(g.offline_weight() <= OFFLINE_TOTAL_BYTES, "{} over the total", g.offline_weight());
    let last = format!("u{}", 2 + users);
    assert!(g.collectable(&name(&last), None).is_none(), "no more than {OFFLINE_USERS} queues");
    let full = g.snapshot().offline;
    assert!(full.iter().any(|q| q.dropped == 1 && q.messages.is_empty()), "over the total: counted as dropped");
    // A snapshot carries the queues; one over the bounds is refused.
    let snap = g.snapshot();
    assert_eq!(snap.refusal(), None);
    assert_eq!(Group::from_snapshot(snap.clone()).snapshot(), snap);
    let mut hostile = snap;
    let q = &mut hostile.offline[0];
    q.messages = (0..=OFFLINE_MESSAGES as u64).map(|s| dm(s, "u2", "x")).collect();
    assert!(hostile.refusal().is_some_and(|r| r.contains("offline")));
    // Collected: every copy forgets the queue.
    let (who, messages) = (g.snapshot().offline[0].name.clone(), g.snapshot().offline[0].messages.clone());
    let applied = g.apply(&Change::Collected { name: who.clone(), messages: messages.clone(), dropped: 0 });
    assert_eq!(applied, Applied::Collected { name: who.clone(), messages, dropped: 0 });
    assert!(g.collectable(&who, None).is_none());
}

#[test]
fn a_quiet_member_is_a_member_that_is_not_counted_and_a_snapshot_remembers_it() {
    let mut g = Group::default();
    g.apply(&Change::Joined(member(1, "alice")));
    g.apply(&Change::RoomJoined { room: room("#ops"), name: name("bob") });
    assert_eq!(g.apply(&Change::JoinedQuietly(member(2, "bob"))), Applied::Joined(member(2, "bob")));
    assert!(g.is_quiet(NodeId(2)) && !g.is_quiet(NodeId(1)));
    assert!(g.view().contains(NodeId(2)), "a member: messages reach it");
    assert_eq!(g.rooms()[0].members, 0, "a one-shot in a room's name is not counted online");
    let copy = Group::from_snapshot(g.snapshot());
    assert!(copy.is_quiet(NodeId(2)));
    let mut hostile = g.snapshot();
    hostile.quiet = (0..=MAX_PEERS as u64).map(NodeId).collect();
    assert!(hostile.refusal().is_some());
    g.apply(&Change::Left(NodeId(2)));
    assert!(!g.is_quiet(NodeId(2)), "forgotten when it leaves");
    assert_eq!(g.offline_user(&name("bob")), Some(name("bob")), "known afterwards, as after any session");
}

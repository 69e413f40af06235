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

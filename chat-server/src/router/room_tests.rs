//! Exact-output tests of rooms: membership, who receives a room's messages, history visibility,
//! limits, and restoring memberships from the journal.

use super::tests::{drain, n, settle, t0, three};
use super::*;
use crate::journal::Record;
use chat_core::{ErrorCode, MessageId, RoomInfo, RoomName};

fn r(s: &str) -> RoomName {
    RoomName::new(s).unwrap()
}

fn reply(conn: ConnId, frame: ServerFrame) -> Output {
    Output::Reply { conn, frame, early: false }
}

fn join(router: &mut Router, conn: ConnId, req: u64, room: &str) -> Vec<Output> {
    router.handle(t0(), Input::JoinRoom { conn, req, room: r(room) });
    drain(router)
}

fn say(router: &mut Router, conn: ConnId, req: u64, room: &str, body: &str) -> Vec<Output> {
    let recipients = Recipients::Room(r(room));
    router
        .handle(t0(), Input::Send { conn, req, recipients, body: body.into(), sent_at: Timestamp::default(), key: 0 });
    drain(router)
}

fn room_msg(seq: u64, sender: &str, room: &str, body: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId::SERVER, seq),
        sender: n(sender),
        recipients: Recipients::Room(r(room)),
        body: body.into(),
        lamport: Timestamp::new(seq, NodeId::SERVER),
        time: 0,
    }
}

#[test]
fn joining_announces_to_members_and_answers_with_the_rooms_history() {
    let mut router = three();
    assert_eq!(
        join(&mut router, 1, 10, "#Ops"),
        vec![
            Output::Record(Record::RoomJoin { room: r("#Ops"), name: n("alice"), after: 0 }),
            Output::Deliver {
                conns: vec![1],
                frame: ServerFrame::RoomJoined { room: r("#Ops"), name: n("alice") },
                seq: 0,
                early: false
            },
            reply(1, ServerFrame::History { req: 10, messages: vec![], done: true, room: Some(r("#Ops")) }),
        ]
    );
    // The room keeps its creator's spelling; bob joins "#ops" and both members hear it.
    let out = join(&mut router, 2, 11, "#ops");
    assert_eq!(
        out[1],
        Output::Deliver {
            conns: vec![1, 2],
            frame: ServerFrame::RoomJoined { room: r("#Ops"), name: n("bob") },
            seq: 0,
            early: false
        }
    );
    // Joining again is not an error and announces nothing.
    assert_eq!(
        join(&mut router, 2, 12, "#OPS"),
        vec![reply(2, ServerFrame::History { req: 12, messages: vec![], done: true, room: Some(r("#Ops")) })]
    );
    assert_eq!(router.rooms.all(), vec![(r("#Ops"), n("alice")), (r("#Ops"), n("bob"))]);
}

#[test]
fn only_members_receive_send_to_or_read_a_room() {
    let mut router = three();
    join(&mut router, 1, 1, "#ops");
    join(&mut router, 2, 1, "#ops");
    let m = room_msg(1, "alice", "#ops", "deploy at 5");
    assert_eq!(
        say(&mut router, 1, 2, "#ops", "deploy at 5"),
        vec![
            Output::Store(Stored::plain(m.clone())),
            Output::Deliver { conns: vec![1, 2], frame: ServerFrame::Message(m.clone()), seq: 1, early: false },
            reply(1, ServerFrame::Sent { req: 2, id: m.id, unknown: vec![], queued: vec![] }),
        ],
        "carol, not a member, receives nothing"
    );
    let out = say(&mut router, 3, 3, "#ops", "let me in");
    assert!(
        matches!(
            &out[..],
            [Output::Reply { conn: 3, frame: ServerFrame::Rejected { code: ErrorCode::NotMember, .. }, .. }]
        ),
        "{out:?}"
    );
    router.handle(t0(), Input::History { conn: 3, req: 4, limit: 10, room: Some(r("#ops")) });
    let out = drain(&mut router);
    assert!(matches!(
        &out[..],
        [Output::Reply { frame: ServerFrame::Rejected { code: ErrorCode::NotMember, .. }, .. }]
    ));
    // History without a room: a non-member does not see room messages; a member does.
    router.handle(t0(), Input::History { conn: 3, req: 5, limit: 10, room: None });
    assert_eq!(
        drain(&mut router),
        vec![reply(3, ServerFrame::History { req: 5, messages: vec![], done: true, room: None })]
    );
    router.handle(t0(), Input::History { conn: 2, req: 6, limit: 10, room: Some(r("#OPS")) });
    assert_eq!(
        drain(&mut router),
        vec![reply(2, ServerFrame::History { req: 6, messages: vec![m.clone()], done: true, room: Some(r("#ops")) })]
    );
    // A newcomer gets the room's recent messages when it joins.
    let out = join(&mut router, 3, 7, "#ops");
    assert_eq!(
        out.last(),
        Some(&reply(3, ServerFrame::History { req: 7, messages: vec![m], done: true, room: Some(r("#ops")) }))
    );
}

#[test]
fn parting_announces_and_stops_delivery_and_the_last_member_ends_the_room() {
    let mut router = three();
    join(&mut router, 1, 1, "#ops");
    join(&mut router, 2, 1, "#ops");
    router.handle(t0(), Input::PartRoom { conn: 2, req: 9, room: r("#ops") });
    assert_eq!(
        drain(&mut router),
        vec![
            Output::Record(Record::RoomPart { room: r("#ops"), name: n("bob"), after: 0 }),
            Output::Deliver {
                conns: vec![1, 2],
                frame: ServerFrame::RoomParted { room: r("#ops"), name: n("bob") },
                seq: 0,
                early: false
            },
            reply(2, ServerFrame::Done { req: 9 }),
        ]
    );
    let out = say(&mut router, 1, 2, "#ops", "alone");
    assert!(matches!(&out[1], Output::Deliver { conns, .. } if conns == &vec![1]), "{out:?}");
    router.handle(t0(), Input::PartRoom { conn: 2, req: 10, room: r("#ops") });
    let out = drain(&mut router);
    assert!(matches!(
        &out[..],
        [Output::Reply { frame: ServerFrame::Rejected { code: ErrorCode::NotMember, .. }, .. }]
    ));
    router.handle(t0(), Input::PartRoom { conn: 1, req: 11, room: r("#ops") });
    drain(&mut router);
    router.handle(t0(), Input::Rooms { conn: 3, req: 12 });
    assert_eq!(drain(&mut router), vec![reply(3, ServerFrame::Rooms { req: 12, rooms: vec![] })]);
}

#[test]
fn rooms_and_who_list_members_online_and_memberships_outlive_sessions() {
    let mut router = three();
    join(&mut router, 1, 1, "#ops");
    join(&mut router, 2, 1, "#ops");
    join(&mut router, 2, 2, "#dev");
    router.handle(t0(), Input::Disconnected { conn: 2, reason: QUIT.into() });
    settle(&mut router);
    router.handle(t0(), Input::Rooms { conn: 3, req: 3 });
    let rooms = vec![RoomInfo { name: r("#dev"), members: 0 }, RoomInfo { name: r("#ops"), members: 1 }];
    assert_eq!(drain(&mut router), vec![reply(3, ServerFrame::Rooms { req: 3, rooms })]);
    router.handle(t0(), Input::Who { conn: 3, req: 4, room: Some(r("#OPS")) });
    assert_eq!(
        drain(&mut router),
        vec![reply(3, ServerFrame::Who { req: 4, room: Some(r("#ops")), names: vec![n("alice")] })]
    );
    // bob comes back: still a member of both (the Welcome says so), in the order he joined them.
    router.handle(t0(), Input::Login { conn: 4, name: n("bob") });
    let out = drain(&mut router);
    let Some(Output::Reply { frame: ServerFrame::Welcome { session, .. }, .. }) = out.get(2) else { panic!("{out:?}") };
    assert_eq!(session.rooms, vec![r("#ops"), r("#dev")]);
}

#[test]
fn room_limits_are_refused_with_too_many() {
    let config = RouterConfig { rooms: RoomLimits { rooms: 2, per_user: 1 }, ..RouterConfig::default() };
    let mut router = Router::new(config, RouterState::default());
    router.handle(t0(), Input::Login { conn: 1, name: n("alice") });
    drain(&mut router);
    join(&mut router, 1, 1, "#one");
    let out = join(&mut router, 1, 2, "#two");
    assert!(matches!(&out[..], [Output::Reply { frame: ServerFrame::Rejected { code: ErrorCode::TooMany, .. }, .. }]));
}

#[test]
fn memberships_come_back_from_the_journal() {
    let state = RouterState {
        memberships: vec![(r("#ops"), n("alice"), 0), (r("#ops"), n("bob"), 3)],
        known: vec![n("alice"), n("bob")],
        ..RouterState::default()
    };
    let mut router = Router::new(RouterConfig::default(), state);
    router.handle(t0(), Input::Login { conn: 1, name: n("alice") });
    drain(&mut router);
    let m = room_msg(1, "alice", "#ops", "back");
    assert_eq!(say(&mut router, 1, 1, "#ops", "back")[0], Output::Store(Stored::plain(m)), "alice is still a member");
    assert_eq!(router.rooms.all(), vec![(r("#ops"), n("alice")), (r("#ops"), n("bob"))]);
}

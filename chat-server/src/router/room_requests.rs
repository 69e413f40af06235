//! Requests about rooms: joining, parting, listing rooms and who is in them.
//!
//! | request            | outcome                                                                        |
//! |--------------------|--------------------------------------------------------------------------------|
//! | `JoinRoom`, new member | `Record(RoomJoin)`, `Deliver(RoomJoined)` to the room's members online (the joiner too), then `History { room }` with its last [`DEFAULT_JOIN_HISTORY`] messages |
//! | `JoinRoom`, already a member | `History { room }` only                                          |
//! | `JoinRoom` over a limit | `Rejected { too_many }`                                               |
//! | `PartRoom`, member | `Record(RoomPart)`, `Deliver(RoomParted)` to the members online and the one who left, `Done` |
//! | `PartRoom`, not a member | `Rejected { not_member }`                                             |
//! | a quiet session ends | its memberships end too (`Record(RoomPart)`, `RoomParted` to the members) |
//! | `Rooms`            | `Rooms`: every room, with how many of its members have a session               |
//! | `Who { room }`     | `Who`: the members with a session (quiet ones are not listed); everyone online without a room |
//!
//! Anyone may list rooms and see who is in one; only members receive a room's messages, send to it
//! or read its history.

use chat_core::{ErrorCode, RoomName, UserName};

use super::commit::Visible;
use super::rooms::JoinRefused;
use super::{ConnId, Output, Router};
use crate::journal::Record;
use crate::protocol::ServerFrame;

/// How many of a room's recent messages a joiner receives.
pub const DEFAULT_JOIN_HISTORY: usize = 20;

impl Router {
    /// The name on `conn`, or a `protocol` refusal of request `req`.
    fn member_name(&mut self, conn: ConnId, req: u64) -> Option<UserName> {
        let name = self.sessions.name_of(conn).cloned();
        if name.is_none() {
            self.reject(conn, req, ErrorCode::Protocol, "log in first".into());
        }
        name
    }

    pub(super) fn join_room(&mut self, conn: ConnId, req: u64, room: RoomName) {
        let Some(name) = self.member_name(conn, req) else { return };
        let after = self.last_seq;
        let room = match self.rooms.join(&name, &room, after) {
            Err(JoinRefused::TooManyRooms) => {
                let message = format!("the server has as many rooms as it may ({})", self.config.rooms.rooms);
                return self.reject(conn, req, ErrorCode::TooMany, message);
            }
            Err(JoinRefused::TooManyForUser) => {
                let message = format!("you are in as many rooms as you may ({})", self.config.rooms.per_user);
                return self.reject(conn, req, ErrorCode::TooMany, message);
            }
            Ok(None) => self.rooms.name(&room).cloned().unwrap_or(room),
            Ok(Some(room)) => {
                self.outputs.push_back(Output::Record(Record::RoomJoin {
                    room: room.clone(),
                    name: name.clone(),
                    after,
                }));
                let conns = self.room_conns(&room);
                let frame = ServerFrame::RoomJoined { room: room.clone(), name: name.clone() };
                self.visible(Visible::Deliver { conns, frame, seq: 0 });
                room
            }
        };
        let messages =
            self.recent.last_matching(DEFAULT_JOIN_HISTORY, |m| m.recipients.room().is_some_and(|r| r.same_as(&room)));
        self.answer_history(conn, req, messages, Some(room));
    }

    pub(super) fn part_room(&mut self, conn: ConnId, req: u64, room: RoomName) {
        let Some(name) = self.member_name(conn, req) else { return };
        if !self.leave_room(&name, &room, Some(conn)) {
            return self.reject(conn, req, ErrorCode::NotMember, format!("you are not in {room}"));
        }
        self.reply(conn, ServerFrame::Done { req });
    }

    /// Ends `name`'s membership of `room`, journaled and told to the members online (and to `conn`,
    /// the connection that asked); false if it was not a member.
    pub(super) fn leave_room(&mut self, name: &UserName, room: &RoomName, conn: Option<ConnId>) -> bool {
        let after = self.last_seq;
        let Some(room) = self.rooms.part(name, room, after) else { return false };
        self.outputs.push_back(Output::Record(Record::RoomPart { room: room.clone(), name: name.clone(), after }));
        let mut conns = self.room_conns(&room);
        conns.extend(conn);
        if !conns.is_empty() {
            let frame = ServerFrame::RoomParted { room, name: name.clone() };
            self.visible(Visible::Deliver { conns, frame, seq: 0 });
        }
        true
    }

    pub(super) fn list_rooms(&mut self, conn: ConnId, req: u64) {
        if self.member_name(conn, req).is_none() {
            return;
        }
        let sessions = &self.sessions;
        let rooms = self.rooms.list(|members| {
            members.iter().filter(|m| sessions.session(m).is_some_and(|(_, s)| !s.quiet)).count() as u32
        });
        self.reply(conn, ServerFrame::Rooms { req, rooms });
    }

    pub(super) fn who(&mut self, conn: ConnId, req: u64, room: Option<RoomName>) {
        if self.member_name(conn, req).is_none() {
            return;
        }
        let (room, names) = match room {
            None => (None, self.sessions.names_sorted()),
            Some(room) => {
                let names = self
                    .rooms
                    .members(&room)
                    .into_iter()
                    .filter(|m| self.sessions.session(m).is_some_and(|(_, s)| !s.quiet))
                    .collect();
                (Some(self.rooms.name(&room).cloned().unwrap_or(room)), names)
            }
        };
        let mut names = names;
        let notice = super::presence::cut(&mut names, super::MAX_LISTED_NAMES);
        self.reply(conn, ServerFrame::Who { req, room, names });
        if let Some(text) = notice {
            self.reply(conn, ServerFrame::Notice { text });
        }
    }

    /// The connections of `room`'s members whose session is attached, ascending.
    pub(super) fn room_conns(&self, room: &RoomName) -> Vec<ConnId> {
        // Members are kept as spelled when they joined; a session is usually spelled the same (the
        // fast path), or else found by normalizing.
        let mut conns: Vec<ConnId> = self
            .rooms
            .members(room)
            .iter()
            .filter_map(|m| self.sessions.session_registered(m).or_else(|| self.sessions.session(m).map(|(_, s)| s)))
            .filter_map(|s| s.conn)
            .collect();
        conns.sort_unstable();
        conns
    }
}

//! Rooms, as a member asks for them and as the program queries them.
//!
//! Joining and parting are changes of the group's state, so the coordinator orders them in the log
//! ([`crate::group::Change`]); a node asks for one with `Room { req, op }` and gets
//! `RoomAnswer { req, pos, outcome }`:
//!
//! ```text
//!  program ── join_room(#ops) ──► node: Room{req, Join(#ops)} ──► coordinator
//!                                          (already in it: answered at once, pos none)
//!                                          (over a bound: refused, too_many)
//!                                          orders RoomJoined{#ops, name} at pos p ──► every member's log
//!  program ◄── RoomDone{req, Joined{history}} ◄── node, once it has delivered p ◄── RoomAnswer{req, p, Joined{history}}
//! ```
//!
//! The answer takes effect only once the node has delivered the change's position, so by the time
//! `join_room` returns, the node's own state says it is in the room (and `RoomJoined` was reported).
//! The history is the room's last [`JOIN_HISTORY`] messages before the join, from the coordinator's
//! archive. Requests not answered when the coordinator changes are asked again of the next one
//! (joining twice is not an error; parting twice answers `not_member`). At most [`MAX_ROOM_REQUESTS`]
//! wait at once.
//!
//! Queries (`rooms`, `who`, `history`) are answered from the node's own copy of the state and its
//! own history: every member holds the same memberships, and a node holds the text of a room's
//! messages only while its user is in the room.

use std::collections::BTreeMap;
use std::time::Instant;

use chat_core::{ChatMessage, CoreError, ErrorCode, NodeId, PeerInfo, RoomInfo, RoomName};

use super::common::Common;
use super::coordinator::Coordinator;
use super::{Node, Output, Role};
use crate::group::Change;
use crate::protocol::{PeerMsg, Pos, RoomOp, RoomOutcome};

/// How many of a room's recent messages a node gets when its user joins the room.
pub const JOIN_HISTORY: usize = 20;
/// Most room requests of one node waiting for an answer.
pub const MAX_ROOM_REQUESTS: usize = 64;

/// A node's own room requests.
#[derive(Debug, Default)]
pub(super) struct RoomRequests {
    next: u64,
    /// Asked, not answered.
    pending: BTreeMap<u64, RoomOp>,
    /// Answered, waiting for the node to deliver the change's position.
    awaiting: Vec<(Pos, u64, RoomOp, RoomOutcome)>,
}

impl RoomRequests {
    /// Every request not done (the node leaves).
    pub(super) fn take_all(&mut self) -> Vec<u64> {
        let mut reqs: Vec<u64> = self.pending.keys().copied().collect();
        reqs.extend(self.awaiting.iter().map(|(_, req, _, _)| *req));
        self.pending.clear();
        self.awaiting.clear();
        reqs
    }

    /// Every request to ask (again) of a new coordinator: answers not yet in effect are asked again.
    pub(super) fn for_new_coordinator(&mut self) -> Vec<(u64, RoomOp)> {
        for (_, req, op, _) in self.awaiting.drain(..) {
            self.pending.insert(req, op);
        }
        self.pending.iter().map(|(req, op)| (*req, op.clone())).collect()
    }
}

impl Common {
    /// The coordinator's answer to an own request: done now, or once `pos` is delivered.
    pub(super) fn room_answered(
        &mut self,
        req: u64,
        pos: Option<Pos>,
        outcome: Result<RoomOutcome, (ErrorCode, String)>,
    ) {
        let Some(op) = self.rooms.pending.remove(&req) else { return };
        match outcome {
            Err((code, message)) => {
                let result = Err(CoreError::Rejected { code, message });
                self.out.push_back(Output::RoomDone { req, result });
            }
            Ok(outcome) => match pos {
                Some(pos) if self.log.last().is_none_or(|last| last < pos) => {
                    self.rooms.awaiting.push((pos, req, op, outcome));
                }
                _ => self.room_done(req, outcome),
            },
        }
    }

    /// Reports the answers whose change is delivered now that `delivered` is.
    pub(super) fn resolve_rooms(&mut self, delivered: Pos) {
        if self.rooms.awaiting.is_empty() {
            return;
        }
        let (due, rest): (Vec<_>, Vec<_>) = self.rooms.awaiting.drain(..).partition(|(pos, ..)| *pos <= delivered);
        self.rooms.awaiting = rest;
        for (_, req, _, outcome) in due {
            self.room_done(req, outcome);
        }
    }

    fn room_done(&mut self, req: u64, outcome: RoomOutcome) {
        if let RoomOutcome::Joined { history, .. } = &outcome {
            for m in history {
                self.log.mark_delivered(m.id);
                self.history.insert(m.clone());
            }
        }
        self.out.push_back(Output::RoomDone { req, result: Ok(outcome) });
    }

    /// Sends every own room request (again) to the coordinator followed.
    pub(super) fn resend_rooms(&mut self) {
        let Some(to) = self.coordinator_addr() else { return };
        for (req, op) in self.rooms.for_new_coordinator() {
            self.send_to(to, PeerMsg::Room { req, op });
        }
    }
}

impl Node {
    /// Asks to join or part a room; the answer comes as [`Output::RoomDone`] with the returned
    /// request number. Fails at once if the node has left, or too many requests wait.
    pub fn room_request(&mut self, now: Instant, op: RoomOp) -> Result<u64, CoreError> {
        if self.is_closed() {
            return Err(CoreError::Closed("the node has left".into()));
        }
        let rooms = &mut self.common.rooms;
        if rooms.pending.len() + rooms.awaiting.len() >= MAX_ROOM_REQUESTS {
            let message = format!("too many room requests waiting ({MAX_ROOM_REQUESTS})");
            return Err(CoreError::Rejected { code: ErrorCode::Busy, message });
        }
        rooms.next += 1;
        let req = rooms.next;
        rooms.pending.insert(req, op.clone());
        let common = &mut self.common;
        match &mut self.role {
            Role::Coordinator(c) if !c.is_syncing() => {
                let me = common.me();
                c.on_room(common, now, me, req, op);
            }
            Role::Member(_) => {
                if let Some(to) = common.coordinator_addr() {
                    common.send_to(to, PeerMsg::Room { req, op });
                }
            }
            // Asked once the node follows a coordinator (or is done syncing).
            Role::Coordinator(_) | Role::Joining(_) | Role::Left => {}
        }
        Ok(req)
    }

    /// Every room with how many of its members are in the group now.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        self.common.group.rooms()
    }

    /// The rooms this node's user is in.
    pub fn my_rooms(&self) -> Vec<RoomName> {
        self.common.group.rooms_of(&self.common.cfg.name)
    }

    /// Who is in the group (`None`), or in `room` and in the group, sorted by name.
    pub fn who(&self, room: Option<&RoomName>) -> Vec<PeerInfo> {
        let group = &self.common.group;
        let mut peers: Vec<PeerInfo> = match room {
            None => self.peers(),
            Some(room) => group
                .room_members(room)
                .iter()
                .filter_map(|name| group.view().by_name(name))
                .filter(|m| !group.is_quiet(m.id) || Some(m.id) == self.common.id)
                .filter_map(|m| self.common.peer_info(m.id))
                .collect(),
        };
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        peers
    }

    /// The last `limit` messages this node may see, oldest first: of `room` only (its user must be in
    /// it: `not_member` otherwise), or of everything.
    pub fn history_of(&self, room: Option<&RoomName>, limit: usize) -> Result<Vec<ChatMessage>, CoreError> {
        let mut out: Vec<ChatMessage> = match room {
            None => self.common.history.iter().cloned().collect(),
            Some(room) => {
                if !self.common.group.in_room(&self.common.cfg.name, room) {
                    let message = format!("you are not in {room}: /join {room} first");
                    return Err(CoreError::Rejected { code: ErrorCode::NotMember, message });
                }
                let mine = |m: &&ChatMessage| m.recipients.room().is_some_and(|r| r.same_as(room));
                self.common.history.iter().filter(mine).cloned().collect()
            }
        };
        // A room's history arrives when its user joins it, after newer messages: order by stamp.
        out.sort_by_key(|m| m.lamport);
        let skip = out.len().saturating_sub(limit);
        out.drain(..skip);
        Ok(out)
    }
}

impl Coordinator {
    /// A member's room request (this node's own too): answered at once if nothing changes or it is
    /// refused, else the change is ordered and the answer names its position.
    pub(super) fn on_room(&mut self, common: &mut Common, now: Instant, from: NodeId, req: u64, op: RoomOp) {
        let Some(name) = self.head.view().get(from).map(|m| m.name.clone()) else { return };
        let (pos, outcome) = match op {
            RoomOp::Join(room) => {
                let known = self.head.room(&room).cloned().unwrap_or(room);
                let history = self.archive.room(&known, JOIN_HISTORY);
                if self.head.in_room(&name, &known) {
                    (None, Ok(RoomOutcome::Joined { room: known, history }))
                } else if let Some(refusal) = self.head.room_join_refusal(&name, &known) {
                    (None, Err(refusal))
                } else {
                    let change = Change::RoomJoined { room: known.clone(), name };
                    let pos = self.order_change(common, now, change);
                    (Some(pos), Ok(RoomOutcome::Joined { room: known, history }))
                }
            }
            RoomOp::Part(room) => {
                match self.head.room(&room).cloned().filter(|known| self.head.in_room(&name, known)) {
                    Some(known) => {
                        let pos = self.order_change(common, now, Change::RoomParted { room: known.clone(), name });
                        (Some(pos), Ok(RoomOutcome::Parted { room: known }))
                    }
                    None => (None, Err((ErrorCode::NotMember, format!("you are not in {room}")))),
                }
            }
        };
        if from == common.me() {
            common.room_answered(req, pos, outcome);
        } else {
            self.send_member(common, from, PeerMsg::RoomAnswer { req, pos, outcome });
        }
    }
}

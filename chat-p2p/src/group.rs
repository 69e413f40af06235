//! The replicated state of a group: who is a member, which rooms exist and who is in them, and the
//! node IDs handed out so far. Every node holds a copy and changes it only by applying the
//! [`Change`]s of the ordered log, in log order, so every node tells the same story.
//!
//! | change                      | effect                                                                 |
//! |-----------------------------|------------------------------------------------------------------------|
//! | `Joined(member)`            | a member (IDs only go up: the highest ever handed out is remembered)   |
//! | `Left(id)`                  | no longer a member; remembered among the departed (bounded) so that it gets its ID back if it returns |
//! | `RoomJoined { room, name }` | `name` is in `room` (created if new); memberships belong to the name   |
//! | `RoomParted { room, name }` | `name` is not; a room without members is gone                          |
//! | `Kept { names, msg }`       | `msg` is kept for these offline users (`offline.rs`)                   |
//! | `Collected { name, messages, dropped }` | `name` is back: its queue is delivered to it and forgotten  |
//! | `JoinedQuietly(member)`     | a transient member (a one-shot `send` / `tail`): as `Joined`, but nobody reports it (nor its `Left`) and it is not listed |
//!
//! ## Node IDs
//!
//! The coordinator hands out 1, 2, 3, … in order of admission: the next ID is one above the highest
//! ever handed out ([`Group::high`]), which every node learns from the `Joined` changes of the log, so
//! the next coordinator continues where the last one stopped. IDs are never reused. A node keeps its ID
//! for its whole life: one that was removed (silent, a broken link) and asks again gets it back, if
//! the departed list has that ID under the same name (and key, with a secret) and nobody holds it.
//!
//! Across a partition the two sides share no state, so each may hand out the same next numbers. When
//! the partition heals, one side rejoins the other (see `node/coordinator.rs`): its nodes admitted
//! before the split get their IDs back from the other side's departed list; nodes admitted during
//! the split are unknown there (or their number is somebody else's) and get new IDs. Nobody else is
//! renumbered.
//!
//! ## Bounds
//!
//! [`MAX_ROOMS`] rooms, [`MAX_ROOMS_PER_USER`] per name, [`MAX_MEMBERSHIPS`] memberships in all and
//! [`DEPARTED_KEPT`] departed members, and the offline queues' bounds (`offline.rs`), so that a
//! [`Snapshot`] always fits in one frame.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chat_core::{ChatMessage, ErrorCode, NameMap, NodeId, Recipients, RoomInfo, RoomKey, RoomName, UserName};
use serde::{Deserialize, Serialize};

use crate::membership::View;
use crate::node::MAX_PEERS;
use crate::protocol::{Entry, Member, PeerKey};

mod offline;

use offline::Offline;
pub use offline::{OFFLINE_MESSAGES, OFFLINE_TOTAL_BYTES, OFFLINE_USER_BYTES, OFFLINE_USERS, Queue, weight};

/// Most rooms in a group.
pub const MAX_ROOMS: usize = 128;
/// Most rooms one name is in.
pub const MAX_ROOMS_PER_USER: usize = 32;
/// Most room memberships in a group, all rooms together.
pub const MAX_MEMBERSHIPS: usize = 1024;
/// Departed members remembered (to give a returning node its ID back).
pub const DEPARTED_KEPT: usize = 256;

/// A change of the group's state, ordered in the log like a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A member was admitted.
    Joined(Member),
    /// A member left, was found dead or was removed.
    Left(NodeId),
    /// `name` joined `room`.
    RoomJoined {
        /// The room.
        room: RoomName,
        /// Who, as the member's name is registered.
        name: UserName,
    },
    /// `name` left `room`.
    RoomParted {
        /// The room.
        room: RoomName,
        /// Who.
        name: UserName,
    },
    /// `msg` is kept for `names`, known users who are not members (see `offline.rs`).
    Kept {
        /// The offline recipients, as their names are known.
        names: Vec<UserName>,
        /// The message.
        msg: ChatMessage,
    },
    /// `name` was admitted again with the key its queue is bound to: the queue goes to it.
    Collected {
        /// Who.
        name: UserName,
        /// What was kept for it, oldest first.
        messages: Vec<ChatMessage>,
        /// How many were dropped (bounds).
        dropped: u64,
    },
    /// A transient member was admitted (a one-shot): as `Joined`, but not reported nor listed.
    JoinedQuietly(Member),
}

/// What applying a [`Change`] did (nothing, if it changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing changed (a repeated change).
    Nothing,
    /// A new member.
    Joined(Member),
    /// A member gone.
    Left(Member),
    /// `name` is now in `room` (its name as the room is known).
    RoomJoined {
        /// The room.
        room: RoomName,
        /// Who.
        name: UserName,
    },
    /// `name` is no longer in `room`.
    RoomParted {
        /// The room.
        room: RoomName,
        /// Who.
        name: UserName,
    },
    /// A message was kept for offline users.
    Kept,
    /// `name`'s queue was delivered to it.
    Collected {
        /// Who.
        name: UserName,
        /// The messages kept, oldest first.
        messages: Vec<ChatMessage>,
        /// How many were dropped.
        dropped: u64,
    },
}

/// The whole state at one position, as a joiner receives it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every member.
    pub members: Vec<Member>,
    /// Every room and its members.
    pub rooms: Vec<(RoomName, Vec<UserName>)>,
    /// The highest node ID ever handed out.
    pub high: NodeId,
    /// Departed members, oldest first.
    pub departed: Vec<Member>,
    /// What is kept for offline users, by name.
    pub offline: Vec<Queue>,
    /// The transient (quiet) members.
    pub quiet: Vec<NodeId>,
}

impl Snapshot {
    /// Why a snapshot from the network cannot be a group's state, if it cannot (over a bound).
    pub fn refusal(&self) -> Option<String> {
        let memberships: usize = self.rooms.iter().map(|(_, names)| names.len()).sum();
        if self.members.len() > MAX_PEERS
            || self.rooms.len() > MAX_ROOMS
            || memberships > MAX_MEMBERSHIPS
            || self.departed.len() > DEPARTED_KEPT
            || self.quiet.len() > MAX_PEERS
        {
            return Some(format!(
                "a snapshot over its bounds: {} members, {} rooms, {memberships} memberships, {} departed",
                self.members.len(),
                self.rooms.len(),
                self.departed.len()
            ));
        }
        Offline::refusal(&self.offline)
    }
}

/// One room: its name as its creator wrote it, and its members in order of joining.
#[derive(Debug, Clone)]
struct Room {
    name: RoomName,
    members: Vec<UserName>,
}

/// A group's state; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Group {
    view: View,
    rooms: BTreeMap<RoomKey, Room>,
    /// The rooms of each name.
    of: NameMap<Vec<RoomKey>>,
    memberships: usize,
    high: NodeId,
    departed: VecDeque<Member>,
    offline: Offline,
    /// Transient members: not reported, not listed.
    quiet: BTreeSet<NodeId>,
}

impl Group {
    /// The state described by `snapshot` (bounds are the caller's to check: [`Snapshot::refusal`]).
    pub fn from_snapshot(snapshot: Snapshot) -> Group {
        let mut group = Group {
            high: snapshot.high,
            departed: snapshot.departed.into(),
            offline: Offline::from_queues(snapshot.offline),
            quiet: snapshot.quiet.into_iter().collect(),
            ..Group::default()
        };
        group.view.replace(snapshot.members);
        for (room, names) in snapshot.rooms {
            for name in names {
                group.join_room(&room, name);
            }
        }
        group
    }

    /// The state as a snapshot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            members: self.view.iter().cloned().collect(),
            rooms: self.rooms.values().map(|r| (r.name.clone(), r.members.clone())).collect(),
            high: self.high,
            departed: self.departed.iter().cloned().collect(),
            offline: self.offline.queues(),
            quiet: self.quiet.iter().copied().collect(),
        }
    }

    /// This state with `me` as the only member: the others are departed (a node founding a group
    /// after it lost its own keeps what it knew, so its ID and the numbering go on).
    pub fn alone(&self, me: Member) -> Group {
        let mut group = self.clone();
        for id in group.view.ids() {
            group.apply(&Change::Left(id));
        }
        group.apply(&Change::Joined(me));
        group
    }

    /// The members.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The highest node ID ever handed out.
    pub fn high(&self) -> NodeId {
        self.high
    }

    /// Applies one change of the log.
    pub fn apply(&mut self, change: &Change) -> Applied {
        match change {
            Change::Joined(member) => {
                self.quiet.remove(&member.id);
                self.join(member)
            }
            Change::JoinedQuietly(member) => {
                let applied = self.join(member);
                if applied != Applied::Nothing {
                    self.quiet.insert(member.id);
                }
                applied
            }
            Change::Left(id) => match self.view.remove(*id) {
                Some(member) => {
                    self.quiet.remove(id);
                    self.depart(member.clone());
                    Applied::Left(member)
                }
                None => Applied::Nothing,
            },
            Change::RoomJoined { room, name } => match self.join_room(room, name.clone()) {
                Some(room) => Applied::RoomJoined { room, name: name.clone() },
                None => Applied::Nothing,
            },
            Change::RoomParted { room, name } => match self.part_room(room, name) {
                Some(room) => Applied::RoomParted { room, name: name.clone() },
                None => Applied::Nothing,
            },
            Change::Kept { names, msg } => {
                for name in names.iter().filter(|n| self.view.by_name(n).is_none()) {
                    let key = self.departed.iter().rev().find(|d| d.name.same_as(name)).and_then(|d| d.key);
                    self.offline.keep(name, key, msg);
                }
                Applied::Kept
            }
            // Reported even if this copy of the state had no queue: a joiner whose snapshot was
            // taken after the change still gets its messages (the node drops repeats).
            Change::Collected { name, messages, dropped } => {
                let _ = self.offline.take(name);
                Applied::Collected { name: name.clone(), messages: messages.clone(), dropped: *dropped }
            }
        }
    }

    fn join(&mut self, member: &Member) -> Applied {
        self.high = self.high.max(member.id);
        self.departed.retain(|d| d.id != member.id);
        let replaced = self.view.by_name(&member.name).filter(|m| m.id != member.id).cloned();
        if let Some(earlier) = replaced {
            self.quiet.remove(&earlier.id);
            self.depart(earlier);
        }
        if self.view.insert(member.clone()) { Applied::Joined(member.clone()) } else { Applied::Nothing }
    }

    /// Whether member `id` is transient (a one-shot): not reported, not listed.
    pub fn is_quiet(&self, id: NodeId) -> bool {
        self.quiet.contains(&id)
    }

    fn depart(&mut self, member: Member) {
        self.departed.retain(|d| d.id != member.id);
        self.departed.push_back(member);
        while self.departed.len() > DEPARTED_KEPT {
            self.departed.pop_front();
        }
    }

    /// Whether a departed member (one this group removed) held `key`.
    pub fn departed_key(&self, key: PeerKey) -> bool {
        self.departed.iter().any(|d| d.key == Some(key))
    }

    /// The ID for a node asking to join as `name` with `key`, which held `claim` before: its old ID
    /// if the departed list has it under the same name and key and nobody holds it, else the next.
    pub fn id_for(&self, name: &UserName, key: Option<PeerKey>, claim: Option<NodeId>) -> NodeId {
        let returning = claim.filter(|id| {
            !self.view.contains(*id)
                && self.departed.iter().any(|d| d.id == *id && d.name.same_as(name) && d.key == key)
        });
        returning.unwrap_or(NodeId(self.high.0.saturating_add(1)))
    }

    // ---------------------------------------------------------------- offline users

    /// `name` as a known user who is not a member (a departed member, or one with a queue): its
    /// name as known, if so.
    pub fn offline_user(&self, name: &UserName) -> Option<UserName> {
        if self.view.by_name(name).is_some() {
            return None;
        }
        self.offline
            .find(name)
            .cloned()
            .or_else(|| self.departed.iter().rev().find(|d| d.name.same_as(name)).map(|d| d.name.clone()))
    }

    /// The queue a member admitted as `name` with `key` collects, if any (it stays until the
    /// `Collected` change is applied).
    pub fn collectable(&self, name: &UserName, key: Option<PeerKey>) -> Option<Queue> {
        if !self.offline.collects(name, key) {
            return None;
        }
        self.offline.queues().into_iter().find(|q| q.name.same_as(name))
    }

    /// The weight of everything kept for offline users ([`weight`]).
    pub fn offline_weight(&self) -> usize {
        self.offline.weight()
    }

    // ---------------------------------------------------------------- rooms

    /// Adds `name` to `room`; the room's name if `name` was not in it.
    fn join_room(&mut self, room: &RoomName, name: UserName) -> Option<RoomName> {
        let key = room.key();
        if self.of.get(&name).is_some_and(|(_, rooms)| rooms.contains(&key)) {
            return None;
        }
        let entry = self.rooms.entry(key.clone()).or_insert_with(|| Room { name: room.clone(), members: Vec::new() });
        entry.members.push(name.clone());
        let canonical = entry.name.clone();
        match self.of.get_mut(&name) {
            Some((_, rooms)) => rooms.push(key),
            None => {
                let _ = self.of.insert(name, vec![key]);
            }
        }
        self.memberships += 1;
        Some(canonical)
    }

    /// Removes `name` from `room`; the room's name if `name` was in it.
    fn part_room(&mut self, room: &RoomName, name: &UserName) -> Option<RoomName> {
        let key = room.key();
        let (registered, rooms) = self.of.get_mut(name)?;
        let at = rooms.iter().position(|k| *k == key)?;
        let registered = registered.clone();
        rooms.remove(at);
        if rooms.is_empty() {
            self.of.remove(&registered);
        }
        self.memberships -= 1;
        let entry = self.rooms.get_mut(&key)?;
        entry.members.retain(|m| !m.same_as(&registered));
        let canonical = entry.name.clone();
        if entry.members.is_empty() {
            self.rooms.remove(&key);
        }
        Some(canonical)
    }

    /// Whether `name` is in `room`.
    pub fn in_room(&self, name: &UserName, room: &RoomName) -> bool {
        self.of.get(name).is_some_and(|(_, rooms)| rooms.contains(&room.key()))
    }

    /// The room as it is known (its creator's spelling), if it exists.
    pub fn room(&self, room: &RoomName) -> Option<&RoomName> {
        self.rooms.get(&room.key()).map(|r| &r.name)
    }

    /// The members of `room` (online or not), in order of joining.
    pub fn room_members(&self, room: &RoomName) -> &[UserName] {
        self.rooms.get(&room.key()).map_or(&[], |r| r.members.as_slice())
    }

    /// The rooms `name` is in, by name.
    pub fn rooms_of(&self, name: &UserName) -> Vec<RoomName> {
        let keys = self.of.get(name).map(|(_, keys)| keys.clone()).unwrap_or_default();
        let mut rooms: Vec<RoomName> = keys.iter().filter_map(|k| self.rooms.get(k)).map(|r| r.name.clone()).collect();
        rooms.sort();
        rooms
    }

    /// Every room with how many of its members are members of the group now, by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        self.rooms
            .values()
            .map(|r| RoomInfo {
                name: r.name.clone(),
                members: r
                    .members
                    .iter()
                    .filter(|m| self.view.by_name(m).is_some_and(|m| !self.quiet.contains(&m.id)))
                    .count() as u32,
            })
            .collect()
    }

    /// Why `name` may not join `room` now, if it may not (the bounds of the module documentation).
    pub fn room_join_refusal(&self, name: &UserName, room: &RoomName) -> Option<(ErrorCode, String)> {
        if self.in_room(name, room) {
            return None;
        }
        let theirs = self.of.get(name).map_or(0, |(_, rooms)| rooms.len());
        if theirs >= MAX_ROOMS_PER_USER {
            return Some((ErrorCode::TooMany, format!("you are in as many rooms as you may ({MAX_ROOMS_PER_USER})")));
        }
        if self.room(room).is_none() && self.rooms.len() >= MAX_ROOMS {
            return Some((ErrorCode::TooMany, format!("the group has as many rooms as it may ({MAX_ROOMS})")));
        }
        if self.memberships >= MAX_MEMBERSHIPS {
            let message = format!("the group has as many room memberships as it may ({MAX_MEMBERSHIPS})");
            return Some((ErrorCode::TooMany, message));
        }
        None
    }

    // ---------------------------------------------------------------- visibility

    /// Whether `name` may see `msg`: its sender, its named recipients, everybody for a broadcast, the
    /// room's members for a room message.
    pub fn may_see(&self, msg: &ChatMessage, name: &UserName) -> bool {
        match &msg.recipients {
            Recipients::Room(room) => msg.sender == *name || self.in_room(name, room),
            _ => msg.is_visible_to(name),
        }
    }

    /// The entry member `name` holds for `msg`: the message, or only its ID.
    pub fn entry_for(&self, msg: &ChatMessage, name: &UserName) -> Entry {
        if self.may_see(msg, name) { Entry::Visible(msg.clone()) } else { Entry::Hidden(msg.id) }
    }
}

#[cfg(test)]
mod tests;

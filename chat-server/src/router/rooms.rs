//! Rooms and their members.
//!
//! A room exists while it has members; joining a room that does not exist creates it. Membership
//! belongs to the user, not to a connection or a session: it lasts until the user parts the room,
//! across logouts and server restarts (memberships are in the journal). A member receives the room's
//! messages while it has a session (attached, or detached and later resumed); the room's recent
//! messages are in the server's recent-message ring (`recent`).
//!
//! For a resume, each membership knows the sequence number after which it began, and each user's
//! last [`PARTED_REMEMBERED`] ended memberships are remembered with when they began and ended, so
//! the router can tell exactly which room messages a returning session is entitled to.
//!
//! Bounds: [`RoomLimits`] (rooms on the server, rooms per user).

use std::collections::{BTreeMap, HashMap, VecDeque};

use chat_core::{NameMap, RoomInfo, RoomKey, RoomName, UserName};

/// Default largest number of rooms on a server.
pub const DEFAULT_MAX_ROOMS: usize = 10_000;

/// Default largest number of rooms one user is a member of.
pub const DEFAULT_MAX_ROOMS_PER_USER: usize = 100;

/// Ended memberships remembered per user (for resumes).
pub const PARTED_REMEMBERED: usize = 64;

/// Room count limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    /// Rooms on the server.
    pub rooms: usize,
    /// Rooms per user.
    pub per_user: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits { rooms: DEFAULT_MAX_ROOMS, per_user: DEFAULT_MAX_ROOMS_PER_USER }
    }
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JoinRefused {
    /// The server has as many rooms as it may.
    TooManyRooms,
    /// The user is in as many rooms as it may.
    TooManyForUser,
}

/// One room.
#[derive(Debug, Clone)]
struct Room {
    /// Its name as its creator wrote it.
    name: RoomName,
    /// Members (as registered when they joined) and the sequence number after which each joined.
    members: BTreeMap<UserName, u64>,
}

/// One user's memberships.
#[derive(Debug, Clone, Default)]
struct Memberships {
    rooms: Vec<RoomKey>,
    /// Ended memberships: `(room, joined after, parted after)`, oldest first.
    parted: VecDeque<(RoomKey, u64, u64)>,
}

/// Every room.
#[derive(Debug, Default)]
pub(super) struct Rooms {
    limits: RoomLimits,
    rooms: HashMap<RoomKey, Room>,
    users: NameMap<Memberships>,
}

impl Rooms {
    pub(super) fn new(limits: RoomLimits) -> Self {
        Rooms { limits, ..Rooms::default() }
    }

    /// Makes `user` a member of `room` from after sequence number `after`. `Ok(Some(name))` with the
    /// room's name (its creator's spelling) if `user` was not a member, `Ok(None)` if it was.
    pub(super) fn join(
        &mut self,
        user: &UserName,
        room: &RoomName,
        after: u64,
    ) -> Result<Option<RoomName>, JoinRefused> {
        let key = room.key();
        let exists = self.rooms.contains_key(&key);
        if exists && self.is_member(user, room) {
            return Ok(None);
        }
        if !exists && self.rooms.len() >= self.limits.rooms {
            return Err(JoinRefused::TooManyRooms);
        }
        if self.users.get(user).is_some_and(|(_, m)| m.rooms.len() >= self.limits.per_user) {
            return Err(JoinRefused::TooManyForUser);
        }
        let entry =
            self.rooms.entry(key.clone()).or_insert_with(|| Room { name: room.clone(), members: BTreeMap::new() });
        let registered = self.users.find(user).cloned().unwrap_or_else(|| user.clone());
        entry.members.insert(registered.clone(), after);
        if self.users.get(user).is_none() {
            let _ = self.users.insert(registered.clone(), Memberships::default());
        }
        if let Some(m) = self.users.get_registered_mut(&registered) {
            m.rooms.push(key);
        }
        Ok(Some(entry.name.clone()))
    }

    /// Ends `user`'s membership of `room` after sequence number `after`; the room's name if it was one.
    pub(super) fn part(&mut self, user: &UserName, room: &RoomName, after: u64) -> Option<RoomName> {
        let key = room.key();
        let registered = self.users.find(user)?.clone();
        let r = self.rooms.get_mut(&key)?;
        let since = r.members.remove(&registered)?;
        let name = r.name.clone();
        if r.members.is_empty() {
            self.rooms.remove(&key);
        }
        if let Some(m) = self.users.get_registered_mut(&registered) {
            m.rooms.retain(|k| *k != key);
            if m.parted.len() == PARTED_REMEMBERED {
                m.parted.pop_front();
            }
            m.parted.push_back((key, since, after));
        }
        Some(name)
    }

    /// Whether `user` is a member of `room` now.
    pub(super) fn is_member(&self, user: &UserName, room: &RoomName) -> bool {
        self.users.get(user).is_some_and(|(_, m)| m.rooms.contains(&room.key()))
    }

    /// Whether `user` was a member of `room` when the message with sequence number `seq` was stored.
    pub(super) fn was_member(&self, user: &UserName, room: &RoomName, seq: u64) -> bool {
        let key = room.key();
        let Some((registered, m)) = self.users.get(user) else { return false };
        let now = m.rooms.contains(&key)
            && self.rooms.get(&key).and_then(|r| r.members.get(registered)).is_some_and(|&since| since < seq);
        now || m.parted.iter().any(|(k, since, until)| *k == key && *since < seq && seq <= *until)
    }

    /// The room's name as created, if it exists.
    pub(super) fn name(&self, room: &RoomName) -> Option<&RoomName> {
        self.rooms.get(&room.key()).map(|r| &r.name)
    }

    /// The members of `room` (as registered), sorted.
    pub(super) fn members(&self, room: &RoomName) -> Vec<UserName> {
        self.rooms.get(&room.key()).map(|r| r.members.keys().cloned().collect()).unwrap_or_default()
    }

    /// The rooms `user` is a member of, in the order joined.
    pub(super) fn of(&self, user: &UserName) -> Vec<RoomName> {
        let Some((_, m)) = self.users.get(user) else { return Vec::new() };
        m.rooms.iter().filter_map(|k| self.rooms.get(k)).map(|r| r.name.clone()).collect()
    }

    /// Every room with `online(members)` as its count, sorted by name.
    pub(super) fn list(&self, online: impl Fn(&[UserName]) -> u32) -> Vec<RoomInfo> {
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .values()
            .map(|r| {
                let members: Vec<UserName> = r.members.keys().cloned().collect();
                RoomInfo { name: r.name.clone(), members: online(&members) }
            })
            .collect();
        rooms.sort_by_key(|r| r.name.key());
        rooms
    }

    /// Every membership, for tests and recovery checks: `(room, member)`.
    #[cfg(test)]
    pub(super) fn all(&self) -> Vec<(RoomName, UserName)> {
        let mut all: Vec<(RoomName, UserName)> =
            self.rooms.values().flat_map(|r| r.members.keys().map(|m| (r.name.clone(), m.clone()))).collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }
    fn r(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }

    #[test]
    fn membership_is_case_insensitive_and_ends_with_the_last_member() {
        let mut rooms = Rooms::new(RoomLimits::default());
        assert_eq!(rooms.join(&u("Alice"), &r("#Ops"), 3), Ok(Some(r("#Ops"))));
        assert_eq!(rooms.join(&u("alice"), &r("#ops"), 4), Ok(None), "already a member");
        assert!(rooms.is_member(&u("ALICE"), &r("#OPS")));
        assert_eq!(rooms.of(&u("alice")), vec![r("#Ops")]);
        assert_eq!(rooms.part(&u("alice"), &r("#ops"), 9), Some(r("#Ops")));
        assert_eq!(rooms.name(&r("#ops")), None, "no members, no room");
        assert!(rooms.was_member(&u("alice"), &r("#ops"), 4));
        assert!(rooms.was_member(&u("alice"), &r("#ops"), 9));
        assert!(!rooms.was_member(&u("alice"), &r("#ops"), 3), "joined after 3");
        assert!(!rooms.was_member(&u("alice"), &r("#ops"), 10), "parted after 9");
    }

    #[test]
    fn limits_are_counted() {
        let mut rooms = Rooms::new(RoomLimits { rooms: 2, per_user: 1 });
        assert!(rooms.join(&u("a"), &r("#one"), 0).is_ok());
        assert_eq!(rooms.join(&u("a"), &r("#two"), 0), Err(JoinRefused::TooManyForUser));
        assert!(rooms.join(&u("b"), &r("#two"), 0).is_ok());
        assert_eq!(rooms.join(&u("c"), &r("#three"), 0), Err(JoinRefused::TooManyRooms));
        assert!(rooms.join(&u("c"), &r("#one"), 0).is_ok(), "an existing room is not a new one");
        let list = rooms.list(|m| m.len() as u32);
        assert_eq!(list, vec![RoomInfo { name: r("#one"), members: 2 }, RoomInfo { name: r("#two"), members: 1 }]);
    }
}

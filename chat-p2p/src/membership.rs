//! The group view (who is a member, by ID and by name, names compared as chat-core's "same name")
//! and the small random generator nodes draw nonces and process tags from.
//!
//! The view is one part of the replicated state of a group ([`crate::group::Group`]), which also
//! hands out node IDs (1, 2, 3, … in order of admission; see `group.rs`).

use std::collections::BTreeMap;

use chat_core::{NameMap, NodeId, UserName};

use crate::protocol::Member;

/// A small deterministic generator (splitmix64): the shell seeds it from the OS, the simulation
/// from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The members of the group, by ID, with unique names. "The same name" is chat-core's notion
/// ([`UserName::same_as`]: case and look-alikes folded), so `ALICE` finds `alice`; each member keeps
/// the name as its user typed it.
#[derive(Debug, Clone, Default)]
pub struct View {
    members: BTreeMap<NodeId, Member>,
    /// Each member's ID under its name (one entry per name, whatever its case or look-alikes).
    names: NameMap<NodeId>,
}

impl View {
    /// Replaces the whole view (a later member with the same name as an earlier one replaces it).
    pub fn replace(&mut self, members: impl IntoIterator<Item = Member>) {
        self.members.clear();
        self.names = NameMap::default();
        for m in members {
            self.insert(m);
        }
    }

    /// Adds or updates a member; returns whether it is new. Names are unique in a group, so an entry
    /// with the same name and another ID is an earlier incarnation of that user (it crashed and
    /// rejoined, possibly while this node missed its departure): it is replaced.
    pub fn insert(&mut self, member: Member) -> bool {
        if let Some((_, &earlier)) = self.names.get(&member.name)
            && earlier != member.id
        {
            self.remove(earlier);
        }
        if let Some(old) = self.members.get(&member.id) {
            let old = old.name.clone();
            self.names.remove(&old);
        }
        let _ = self.names.insert(member.name.clone(), member.id);
        self.members.insert(member.id, member).is_none()
    }

    /// Removes a member.
    pub fn remove(&mut self, id: NodeId) -> Option<Member> {
        let member = self.members.remove(&id)?;
        if self.names.get(&member.name).is_some_and(|(_, owner)| *owner == id) {
            self.names.remove(&member.name);
        }
        Some(member)
    }

    /// A member by ID.
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// The member whose name is the same name as `name` (any case, look-alikes).
    pub fn by_name(&self, name: &UserName) -> Option<&Member> {
        self.names.get(name).and_then(|(_, id)| self.members.get(id))
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: NodeId) -> bool {
        self.members.contains_key(&id)
    }

    /// Every member, by ID.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Every member ID.
    pub fn ids(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str) -> Member {
        Member { id: NodeId(id), name: UserName::new(name).unwrap(), addr: "127.0.0.1:1".parse().unwrap(), key: None }
    }

    #[test]
    fn a_rejoined_name_replaces_its_earlier_incarnation() {
        let mut v = View::default();
        assert!(v.insert(member(1, "alice")));
        assert!(v.insert(member(2, "bob")));
        assert!(v.insert(member(7, "alice")));
        assert_eq!(v.ids(), vec![NodeId(2), NodeId(7)]);
        assert!(!v.insert(member(7, "alice")), "same id: an update");
    }

    #[test]
    fn view_finds_by_name_and_id() {
        let mut v = View::default();
        assert!(v.insert(member(3, "carol")));
        assert!(v.insert(member(1, "alice")));
        assert!(!v.insert(member(1, "alice")));
        assert_eq!(v.ids(), [NodeId(1), NodeId(3)]);
        assert_eq!(v.by_name(&UserName::new("carol").unwrap()).map(|m| m.id), Some(NodeId(3)));
        assert_eq!(v.remove(NodeId(3)).map(|m| m.id), Some(NodeId(3)));
        assert!(!v.contains(NodeId(3)) && v.len() == 1);
    }

    #[test]
    fn names_are_found_whatever_their_case_or_look_alikes_and_keep_their_display_form() {
        let mut v = View::default();
        assert!(v.insert(member(1, "Alice")));
        let wire = |s: &str| UserName::from_wire(s.into()).unwrap();
        for same in ["alice", "ALICE", "aIice"] {
            let found = v.by_name(&wire(same)).map(|m| (m.id, m.name.as_str()));
            assert_eq!(found, Some((NodeId(1), "Alice")), "{same}");
        }
        assert!(v.by_name(&wire("bob")).is_none());
        // The same name under another ID is a later incarnation: it replaces the earlier one.
        assert!(v.insert(member(5, "ALICE")));
        assert_eq!(v.ids(), [NodeId(5)]);
        assert_eq!(v.by_name(&wire("alice")).map(|m| m.name.as_str()), Some("ALICE"));
        // A member renamed under its ID is found only under its new name.
        assert!(!v.insert(member(5, "bob")));
        assert!(v.by_name(&wire("alice")).is_none());
        assert_eq!(v.by_name(&wire("BOB")).map(|m| m.id), Some(NodeId(5)));
        assert_eq!(v.remove(NodeId(5)).map(|m| m.id), Some(NodeId(5)));
        assert!(v.by_name(&wire("bob")).is_none() && v.is_empty());
    }
}

//! The group view (who is a member, by ID and by name, names compared as chat-core's "same name")
//! and the node-ID allocator.
//!
//! ## ID allocation: term blocks with random tags
//!
//! ```text
//!   NodeId = tag << 16 | k        tag: 32 random bits drawn by a coordinator when its term starts
//!                                 k:   1, 2, 3 ... within the block (a fresh tag when exhausted)
//! ```
//!
//! Within one group the allocator state (the tags ever used) is replicated: every ID a member
//! knows is remembered, and a coordinator never draws a tag already seen, nor hands out an ID it
//! has seen. Across partitions no deterministic scheme with bounded IDs can avoid a collision
//! without a quorum (two isolated founders, or two partitions' coordinators, share no state), so
//! each *term* draws its own 32-bit block tag: two concurrent coordinators collide only if they draw
//! the same tag, probability 2^-32 per pair of concurrent terms. IDs are never reused: a node that
//! leaves, is expelled or restarts gets a new one, and a tag is drawn again only if it was never
//! seen. Bully ranks nodes by these IDs.
//!
//! What is guaranteed, precisely:
//! - Within one group lineage (no partition), IDs are deterministic-unique: one coordinator hands out
//!   `k = 1, 2, ...` of a block nobody in the group has seen, and every member remembers every tag.
//! - After a partition heals, the lower coordinator's whole side rejoins the higher coordinator and
//!   gets fresh IDs from its allocator, so the healed group holds no duplicate even if the two sides
//!   had drawn the same tag (the simulation checks this: `tests/sim_unique_ids.rs`).
//! - Across concurrent partitions, an ID may be handed out twice (to different names) only if two
//!   coordinators draw the same 32-bit tag: probability about 2^-32 per pair of concurrent terms.
//!
//! Not done yet: replicating the allocator's high-water mark in heartbeats, which would make
//! uniqueness deterministic within a lineage even when the tags seen are not all known.

use std::collections::{BTreeMap, BTreeSet};

use chat_core::{NameMap, NodeId, UserName};

use crate::protocol::Member;

/// IDs in one block.
pub const BLOCK_SIZE: u64 = 1 << 16;

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

/// Hands out node IDs from term blocks (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    /// Tags of every ID ever seen.
    seen_tags: BTreeSet<u64>,
    /// Current block tag and next index, while coordinator.
    block: Option<(u64, u64)>,
}

impl Allocator {
    /// Remembers an ID seen anywhere, so its block is never drawn again.
    pub fn observe(&mut self, id: NodeId) {
        self.seen_tags.insert(id.0 / BLOCK_SIZE);
    }

    /// Starts a fresh block for a new term.
    pub fn new_block(&mut self) {
        self.block = None;
    }

    /// The next ID. Draws a block if there is none or it is exhausted.
    pub fn next_id(&mut self, rng: &mut Rng) -> NodeId {
        loop {
            match self.block {
                Some((tag, k)) if k < BLOCK_SIZE => {
                    self.block = Some((tag, k + 1));
                    return NodeId(tag * BLOCK_SIZE + k);
                }
                _ => {
                    let tag = 1 + rng.next_u64() % (u32::MAX as u64);
                    if self.seen_tags.insert(tag) {
                        self.block = Some((tag, 1));
                    }
                }
            }
        }
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
    fn allocator_never_repeats_and_skips_seen_blocks() {
        let mut rng = Rng::new(7);
        let mut twin = rng.clone();
        let mut a = Allocator::default();
        // Another allocator with the same randomness drew this block first; a knows it.
        let mut b = Allocator::default();
        let taken = b.next_id(&mut twin);
        a.observe(taken);
        let mut ids = BTreeSet::new();
        for _ in 0..10 {
            assert!(ids.insert(a.next_id(&mut rng)));
        }
        assert!(!ids.contains(&taken));
        assert!(ids.iter().all(|id| id.0 / BLOCK_SIZE != taken.0 / BLOCK_SIZE));
        a.new_block();
        let fresh = a.next_id(&mut rng);
        assert!(ids.iter().all(|id| id.0 / BLOCK_SIZE != fresh.0 / BLOCK_SIZE));
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

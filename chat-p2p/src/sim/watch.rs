//! What the simulation records for the invariants about calm: each node's membership story, the IDs
//! each process held, and elections that nothing called for.

use std::time::{Duration, Instant};

use chat_core::{Event, NodeId, UserName};

use super::Sim;
use crate::election::Term;

/// How long after a fault elections are expected (the failure timeout, the election's windows and a
/// heal's merge, with room to spare): one that starts later, while the coordinator it followed is
/// alive, coordinating and reachable, was called for by nothing.
pub const CALM_AFTER: Duration = Duration::from_secs(2);

/// A `joined` or `left` a node reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Story {
    /// `joined`.
    Joined(NodeId, UserName),
    /// `left`.
    Left(NodeId, UserName),
}

/// An election a node started while its coordinator was alive, coordinating and reachable, and no
/// fault had happened for [`CALM_AFTER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncalledElection {
    /// When.
    pub at: Duration,
    /// The node that started it.
    pub slot: usize,
    /// The term it followed.
    pub term: Term,
    /// The slot of that term's coordinator.
    pub coordinator: usize,
}

impl Sim {
    /// A fault that may start an election happened now.
    pub(super) fn fault(&mut self) {
        self.last_fault = Some(self.now);
    }

    /// Elections node `i` started so far (before a step).
    pub(super) fn before(&self, i: usize) -> u64 {
        self.slots[i].node.as_ref().map_or(0, |n| n.elections_started())
    }

    /// After a step of node `i`: an election it started must have been called for.
    pub(super) fn after(&mut self, i: usize, before: u64) {
        let Some(node) = self.slots[i].node.as_ref() else { return };
        if node.elections_started() <= before {
            return;
        }
        let Some(term) = node.followed() else { return };
        let calm = self.last_fault.is_none_or(|t| self.now >= t + CALM_AFTER);
        let coordinator = (0..self.slots.len())
            .find(|k| self.slots[*k].node.as_ref().is_some_and(|n| n.is_coordinator() && n.term() == Some(term)));
        if let Some(k) = coordinator.filter(|k| calm && *k != i && !self.is_cut(i, *k)) {
            let at = self.now.duration_since(self.origin);
            self.note(format_args!("slot {i} started an election while {k} coordinates {term}"));
            self.uncalled.push(UncalledElection { at, slot: i, term, coordinator: k });
        }
    }

    /// Node `i` was admitted (or founded its group) as `id`.
    pub(super) fn admitted(&mut self, i: usize, id: NodeId) {
        let split = !self.cut.is_empty() || self.last_fault.is_some_and(|t| self.now < t + CALM_AFTER * 4);
        let slot = &mut self.slots[i];
        if slot.life_ids.last().is_none_or(|(last, _)| *last != id) {
            slot.life_ids.push((id, split));
        }
        slot.admitted_at = Some(self.now);
        slot.story.clear();
    }

    /// Node `i` reported `event`.
    pub(super) fn tell(&mut self, i: usize, event: Event) {
        let story = match event {
            Event::PeerJoined(p) => Story::Joined(p.node_id.unwrap_or_default(), p.name),
            Event::PeerLeft(p) => Story::Left(p.node_id.unwrap_or_default(), p.name),
            _ => return,
        };
        self.slots[i].story.push(story);
    }

    /// When `at` is, from the start of the simulation.
    pub fn elapsed(&self, at: Instant) -> Duration {
        at.duration_since(self.origin)
    }
}

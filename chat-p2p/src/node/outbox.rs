//! Batching, coordinator side: what each member is to receive, gathered over one turn and sent as
//! few `Orders` frames as the frame budget allows, each carrying the commit point.
//!
//! ```text
//!  a turn: Submit, Submit, Ack, Submit … ──► positions n+1 … n+k, each entry (text, Hidden or a
//!          change) appended to every member's outbox
//!  end of the turn (the driver polls and the queue is empty):
//!          per member: Orders{term, first: n+1, entries: [k entries], commit} (split at the frame budget)
//!          a member with nothing new but a commit point that moved: Commit{pos}
//! ```
//!
//! Members acknowledge each `Orders` frame once (`Ack` is cumulative), and the commit point is
//! cumulative too, so a turn costs one frame each way per member however many messages it ordered.
//!
//! A member being admitted is *held*: its outbox fills from the position after its admission but is
//! not sent until its `JoinAck` is (see `admission.rs`), so it receives its snapshot first and then
//! every later position, in order.

use std::collections::BTreeMap;

use chat_core::{NodeId, UserName};

use crate::election::Term;
use crate::ordering::FRAME_BUDGET;
use crate::protocol::{Entry, PeerMsg, Pos};

/// One member's entries not yet sent.
#[derive(Debug, Default)]
struct Outbox {
    /// The index of `entries[0]`.
    first: u64,
    entries: Vec<(Entry, Vec<UserName>)>,
    /// Not sent before the member's `JoinAck`.
    held: bool,
}

/// Every member's outbox, for one term.
#[derive(Debug)]
pub(super) struct Outboxes {
    term: Term,
    boxes: BTreeMap<NodeId, Outbox>,
    /// The commit index last told to the members.
    told: u64,
}

impl Outboxes {
    /// No member yet, for `term`.
    pub(super) fn new(term: Term) -> Self {
        Outboxes { term, boxes: BTreeMap::new(), told: 0 }
    }

    /// A member that receives every position from `next` on (held until its `JoinAck`, if `held`).
    pub(super) fn add(&mut self, id: NodeId, next: u64, held: bool) {
        self.boxes.insert(id, Outbox { first: next, entries: Vec::new(), held });
    }

    /// Forgets a member (removed).
    pub(super) fn remove(&mut self, id: NodeId) {
        self.boxes.remove(&id);
    }

    /// Whether member `id` is held (being admitted).
    pub(super) fn is_held(&self, id: NodeId) -> bool {
        self.boxes.get(&id).is_some_and(|b| b.held)
    }

    /// Releases a held member: its entries go with the next flush.
    pub(super) fn release(&mut self, id: NodeId) {
        if let Some(b) = self.boxes.get_mut(&id) {
            b.held = false;
        }
    }

    /// Appends the entry at `pos` for member `id`.
    pub(super) fn push(&mut self, id: NodeId, pos: Pos, entry: Entry, unknown: Vec<UserName>) {
        let Some(b) = self.boxes.get_mut(&id) else { return };
        if b.entries.is_empty() {
            b.first = pos.index;
        }
        debug_assert_eq!(b.first + b.entries.len() as u64, pos.index, "consecutive positions");
        b.entries.push((entry, unknown));
    }

    /// Whether `id`'s outbox holds something to send now.
    pub(super) fn has_entries(&self, id: NodeId) -> bool {
        self.boxes.get(&id).is_some_and(|b| !b.held && !b.entries.is_empty())
    }

    /// The frames for member `id` now (nothing if it is held): its entries, split at the frame
    /// budget, each with the commit index; or, with nothing to send, a `Commit` if the commit point
    /// moved since the members were last told (`commit_moved`).
    pub(super) fn take(&mut self, id: NodeId, commit: u64, commit_moved: bool) -> Vec<PeerMsg> {
        let term = self.term;
        let Some(b) = self.boxes.get_mut(&id).filter(|b| !b.held) else { return Vec::new() };
        if b.entries.is_empty() {
            return if commit_moved && commit > 0 {
                vec![PeerMsg::Commit { pos: Pos::new(term, commit) }]
            } else {
                Vec::new()
            };
        }
        let mut frames = Vec::new();
        let mut first = b.first;
        let mut batch = Vec::new();
        let mut weight = 0;
        for (entry, unknown) in b.entries.drain(..) {
            let w = entry.weight() + 34 * unknown.len();
            if !batch.is_empty() && weight + w > FRAME_BUDGET {
                let n = batch.len() as u64;
                frames.push(PeerMsg::Orders { term, first, entries: std::mem::take(&mut batch), commit });
                first += n;
                weight = 0;
            }
            weight += w;
            batch.push((entry, unknown));
        }
        let n = batch.len() as u64;
        frames.push(PeerMsg::Orders { term, first, entries: batch, commit });
        b.first = first + n;
        frames
    }

    /// The members with an outbox.
    pub(super) fn members(&self) -> Vec<NodeId> {
        self.boxes.keys().copied().collect()
    }

    /// Records that the members were told commit index `commit`; whether it moved.
    pub(super) fn tell(&mut self, commit: u64) -> bool {
        let moved = commit > self.told;
        self.told = self.told.max(commit);
        moved
    }
}

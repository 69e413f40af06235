//! Total order through the coordinator: the sequencer (coordinator side), the member log, and the
//! failover merge.
//!
//! ```text
//!  sender ──Submit(id)──► coordinator: observe sent_at, stamp = clock.tick(), pos = (term, n)
//!                          ──Order(pos, text | Hidden)──► every member (FIFO TCP)
//!  member ──Ack(term, n)──► coordinator: commit = min over members of acked n
//!                          ──Commit(pos)──► every member: deliver everything up to pos, in order
//! ```
//!
//! A message is delivered only once every member holds it (stable), so whatever any node has
//! delivered, every member of that term holds. A new coordinator collects what its members hold
//! ([`plan_fills`]) and completes each member's log *within the member's own last term* before
//! ordering anything in the new term. Positions are unique, each node delivers in increasing
//! position order and skips IDs it already delivered, so two nodes deliver common messages in the
//! same relative order. Entries are never copied across terms of different lineages (two
//! partitions), which is what keeps the order consistent after a heal.

use std::collections::{BTreeMap, VecDeque};

use chat_core::{DedupWindow, NodeId, UserName};

use crate::election::Term;
use crate::protocol::{Entry, Pos};

/// Rough byte budget for the entries of one frame (the codec limit is 256 KiB).
pub const FRAME_BUDGET: usize = 200 * 1024;

/// A member's log: undelivered entries and a window of delivered ones.
#[derive(Debug, Clone)]
pub struct Log {
    received: BTreeMap<Pos, (Entry, Vec<UserName>)>,
    last: Option<Pos>,
    recent: VecDeque<(Pos, Entry)>,
    delivered: DedupWindow,
    window: usize,
}

impl Log {
    /// An empty log keeping `window` delivered entries for failover.
    pub fn new(window: usize) -> Self {
        Log {
            received: BTreeMap::new(),
            last: None,
            recent: VecDeque::new(),
            delivered: DedupWindow::new(window.saturating_mul(8).max(64)),
            window: window.max(1),
        }
    }

    /// The last delivered position.
    pub fn last(&self) -> Option<Pos> {
        self.last
    }

    /// Sets the starting point of a joiner: nothing at or before `pos` will be delivered, and
    /// nothing held before is kept (it belongs to a group this node left, or the coordinator sends
    /// it again: completing it now would interleave that group's order with the new one's).
    pub fn start_at(&mut self, pos: Pos) {
        self.last = Some(pos);
        self.received.clear();
        self.recent.clear();
    }

    /// Stores an ordered entry; false if already delivered or held.
    pub fn receive(&mut self, pos: Pos, entry: Entry, unknown: Vec<UserName>) -> bool {
        if self.last.is_some_and(|l| pos <= l) || self.received.contains_key(&pos) {
            return false;
        }
        self.received.insert(pos, (entry, unknown));
        true
    }

    /// Highest index of `term` up to which every position is held or delivered (contiguous: a
    /// gap stops it, so an acknowledgement never covers an entry this member lacks).
    pub fn held_index(&self, term: Term) -> u64 {
        let mut index = self.last.filter(|l| l.term == term).map_or(0, |l| l.index);
        let Some(from) = index.checked_add(1) else { return index };
        for pos in self.received.range(Pos::new(term, from)..=Pos::new(term, u64::MAX)).map(|(p, _)| p) {
            if Some(pos.index) != index.checked_add(1) {
                break;
            }
            index = pos.index;
        }
        index
    }

    /// The term of the newest entry held or delivered: the lineage this member is in.
    pub fn lineage(&self) -> Option<Term> {
        self.received.keys().next_back().copied().max(self.last).map(|p| p.term)
    }

    /// Records `id` as delivered without an entry: a joiner's history (it was ordered before the
    /// join, possibly not yet committed; if a new coordinator orders it again, it is not
    /// delivered a second time, out of its place).
    pub fn mark_delivered(&mut self, id: chat_core::MessageId) {
        self.delivered.insert(id);
    }

    /// Whether `id` was delivered here.
    pub fn was_delivered(&self, id: &chat_core::MessageId) -> bool {
        self.delivered.contains(id)
    }

    /// Delivers every held entry up to `upto`, in order; returns the new ones (duplicates of
    /// already delivered IDs are skipped, their positions consumed).
    pub fn commit(&mut self, upto: Pos) -> Vec<(Pos, Entry, Vec<UserName>)> {
        let mut out = Vec::new();
        while let Some((&pos, _)) = self.received.first_key_value() {
            if pos > upto {
                break;
            }
            let Some((entry, unknown)) = self.received.remove(&pos) else { break };
            self.last = Some(pos);
            self.recent.push_back((pos, entry.clone()));
            if self.recent.len() > self.window {
                self.recent.pop_front();
            }
            // A message delivered before (ordered again by another coordinator) is skipped; a change
            // of the group is applied once per position.
            if entry.message_id().is_none_or(|id| self.delivered.insert(id)) {
                out.push((pos, entry, unknown));
            }
        }
        out
    }

    /// What to send a new coordinator: recent delivered entries and everything held, within the
    /// frame budget (the newest are kept).
    pub fn sync_entries(&self) -> Vec<(Pos, Entry)> {
        let mut out: Vec<(Pos, Entry)> = Vec::new();
        let mut budget = FRAME_BUDGET;
        let all = self.recent.iter().cloned().chain(self.received.iter().map(|(p, (e, _))| (*p, e.clone())));
        let all: Vec<(Pos, Entry)> = all.collect();
        for (pos, entry) in all.into_iter().rev() {
            let w = entry.weight();
            if w > budget {
                break;
            }
            budget -= w;
            out.push((pos, entry));
        }
        out.reverse();
        out
    }
}

/// The coordinator's ordering state for one term.
#[derive(Debug, Clone)]
pub struct Sequencer {
    term: Term,
    next: u64,
    acked: BTreeMap<NodeId, u64>,
    commit: u64,
}

impl Sequencer {
    /// A fresh term with these members (the coordinator included).
    pub fn new(term: Term, members: impl IntoIterator<Item = NodeId>) -> Self {
        Sequencer { term, next: 1, acked: members.into_iter().map(|m| (m, 0)).collect(), commit: 0 }
    }

    /// The term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The next position to assign.
    pub fn next_pos(&mut self) -> Pos {
        let pos = Pos::new(self.term, self.next);
        self.next += 1;
        pos
    }

    /// The last position assigned (index 0 if none).
    pub fn last_pos(&self) -> Pos {
        Pos::new(self.term, self.next - 1)
    }

    /// The commit point, if anything is committed.
    pub fn commit_pos(&self) -> Option<Pos> {
        (self.commit > 0).then(|| Pos::new(self.term, self.commit))
    }

    /// The commit index (0: nothing committed in this term).
    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    /// A newcomer holds nothing before now and needs nothing before now. A member admitted again
    /// (it rejoins in place) likewise: it gets the state as of now, so it counts as holding it.
    /// Returns a new commit point if that unblocked one (a member admitted again was the laggard).
    pub fn add_member(&mut self, id: NodeId) -> Option<Pos> {
        self.acked.insert(id, self.next - 1);
        self.advance()
    }

    /// Removes a member; returns a new commit point if that unblocked one.
    pub fn remove_member(&mut self, id: NodeId) -> Option<Pos> {
        self.acked.remove(&id);
        self.advance()
    }

    /// Records an acknowledgement; returns a new commit point if any.
    pub fn ack(&mut self, from: NodeId, term: Term, index: u64) -> Option<Pos> {
        if term != self.term {
            return None;
        }
        let a = self.acked.get_mut(&from)?;
        *a = (*a).max(index.min(self.next - 1));
        self.advance()
    }

    fn advance(&mut self) -> Option<Pos> {
        let min = self.acked.values().copied().min().unwrap_or(self.next - 1);
        (min > self.commit).then(|| {
            self.commit = min;
            Pos::new(self.term, min)
        })
    }
}

/// What one member reported in the failover sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Its last delivered position.
    pub last: Option<Pos>,
    /// Its lineage: the term of the newest entry it holds.
    pub lineage: Option<Term>,
    /// The entries it sent.
    pub entries: Vec<(Pos, Entry)>,
}

/// The failover merge: for each member, the entries to order again (and commit) so that its log
/// is complete within its own lineage. Entries of a position are merged preferring the full text;
/// a member gets the contiguous run after its last delivered position, in its lineage only.
pub fn plan_fills(reports: &BTreeMap<NodeId, Report>) -> BTreeMap<NodeId, Vec<(Pos, Entry)>> {
    let mut merged: BTreeMap<Pos, Entry> = BTreeMap::new();
    for report in reports.values() {
        for (pos, entry) in &report.entries {
            match (merged.get(pos), entry) {
                (Some(Entry::Visible(_) | Entry::Change(_)), _) | (Some(Entry::Hidden(_)), Entry::Hidden(_)) => {}
                _ => {
                    merged.insert(*pos, entry.clone());
                }
            }
        }
    }
    let mut plan = BTreeMap::new();
    for (id, report) in reports {
        let Some(lineage) = report.lineage else { continue };
        let mut fills = Vec::new();
        let mut prev = report.last.filter(|l| l.term == lineage).map(|l| l.index);
        for (pos, entry) in merged.range(Pos::new(lineage, 0)..=Pos::new(lineage, u64::MAX)) {
            if report.last.is_some_and(|l| *pos <= l) {
                continue;
            }
            if prev.is_some_and(|p| pos.index != p + 1) {
                break;
            }
            prev = Some(pos.index);
            fills.push((*pos, entry.clone()));
        }
        plan.insert(*id, fills);
    }
    plan
}

#[cfg(test)]
mod tests;

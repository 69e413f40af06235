//! The failover sync, coordinator side: a new coordinator collects what every member holds and
//! completes each member's log within its own last term before it orders anything new.
//!
//! ```text
//!  won term T ──SyncRequest{T, members}──► every member ──► SyncReply{T, last, entries} (+ pending Submits)
//!      │                                    (a reply stamped more than MAX_CLOCK_JUMP ahead: dropped)
//!      │                                                          │
//!      │◄─────────────────────────────────────────────────────────┘  (or the failure timeout: removed)
//!      ▼ every member answered
//!  a member holds a newer term? ──yes──► take a term above it (a new sync)
//!      │ no
//!      ▼
//!  plan_fills: Order the missing entries of each member's lineage, Commit them; then order what
//!  was queued meanwhile and this node's own pending messages
//! ```
//!
//! The member side (adopting the term and the view, answering) is [`super::member::Follower::answer_sync`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use chat_core::{DedupWindow, MessageBuffer, NodeId, Timestamp};

use super::Next;
use super::common::Common;
use super::coordinator::Coordinator;
use super::flood::Flood;
use super::sequencing::order_to;
use crate::election::Term;
use crate::ordering::{Report, Sequencer, entry_for, plan_fills};
use crate::protocol::{Entry, Member, PeerMsg, Pos, Submission};

/// The sync of a new term, while it runs.
#[derive(Debug)]
pub(super) struct SyncState {
    /// Members that have not answered yet.
    pub(super) waiting: BTreeSet<NodeId>,
    /// What each member (this node included) holds.
    pub(super) reports: BTreeMap<NodeId, Report>,
    /// When members that have not answered are given up on.
    pub(super) deadline: Instant,
}

impl Coordinator {
    /// Won `term`: asks every member what it holds before ordering anything new. A coordinator
    /// that takes a newer term keeps its `previous` state's history and ordered IDs.
    pub(super) fn start(common: &mut Common, now: Instant, term: Term, previous: Option<Coordinator>) -> Self {
        let me = common.me();
        common.alloc.new_block();
        let members: Vec<Member> = common.view.iter().cloned().collect();
        let others: BTreeSet<NodeId> = common.view.ids().into_iter().filter(|id| *id != me).collect();
        let (full, known) = match previous {
            Some(old) => (old.full, old.known),
            None => (MessageBuffer::new(common.cfg.history), DedupWindow::new(common.cfg.sync_window * 16)),
        };
        let mut reports = BTreeMap::new();
        reports.insert(me, common.report());
        tracing::info!(%me, epoch = term.epoch, members = members.len(), "coordinator: syncing members");
        for id in &others {
            common.send_id(*id, PeerMsg::SyncRequest { term, members: members.clone() });
        }
        let alive = common.view.ids().into_iter().map(|id| (id, now)).collect();
        Coordinator {
            seq: Sequencer::new(term, common.view.ids()),
            syncing: Some(SyncState { waiting: others, reports, deadline: now + common.cfg.timeout }),
            queued: VecDeque::new(),
            alive,
            next_heartbeat: now,
            beats: 0,
            last_beacon: None,
            full,
            known,
            flood: Flood::new(common.cfg.limits),
        }
    }

    /// A member's answer to the sync (of this term; anything else is answered `NotMember`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_sync_reply(
        &mut self,
        common: &mut Common,
        now: Instant,
        from: NodeId,
        sender: std::net::SocketAddr,
        term: Term,
        last: Option<Pos>,
        entries: Vec<(Pos, Entry)>,
        clock: u64,
    ) -> Next {
        let current = common.term().unwrap_or_default();
        if term != current {
            common.send_to(sender, PeerMsg::NotMember { term: current });
            return Next::Stay;
        }
        // A reply stamped too far ahead is dropped whole: the member counts as not answering.
        let stamps = entries.iter().filter_map(|(_, e)| match e {
            Entry::Visible(m) => Some(m.lamport.counter),
            Entry::Hidden(_) => None,
        });
        let highest = stamps.chain([clock]).max().unwrap_or(clock);
        if !common.admits_clock("SyncReply", from, highest) {
            return Next::Stay;
        }
        common.clock.observe(Timestamp::new(clock, from));
        let lineage = entries.last().map(|(p, _)| *p).max(last).map(|p| p.term);
        if let Some(sync) = self.syncing.as_mut()
            && sync.waiting.remove(&from)
        {
            sync.reports.insert(from, Report { last, lineage, entries });
        }
        self.finish_sync(common, now)
    }

    /// Ends the sync once every member answered or the deadline passed: fills every member's log,
    /// then orders what waited. If a member holds a newer term than this one, asks the node to take
    /// a term above it instead ([`Next::ReassertAbove`]).
    pub(super) fn finish_sync(&mut self, common: &mut Common, now: Instant) -> Next {
        let Some(sync) = self.syncing.as_ref() else { return Next::Stay };
        if !sync.waiting.is_empty() && now < sync.deadline {
            return Next::Stay;
        }
        let own = self.seq.term();
        let newest = sync.reports.values().flat_map(|r| [r.lineage, r.last.map(|p| p.term)]).flatten().max();
        if let Some(newest) = newest.filter(|t| *t > own) {
            // Two partitions reached the same epoch and a member followed the other one: this
            // term would order positions below what that member holds. Take a newer term.
            tracing::info!(me = %common.me(), %newest, "a member holds a newer term: taking a term above it");
            return Next::ReassertAbove(newest);
        }
        let Some(sync) = self.syncing.take() else { return Next::Stay };
        for id in sync.waiting {
            tracing::info!(%id, "member did not answer the sync: removed");
            self.remove_member(common, id);
        }
        let me = common.me();
        for (id, fills) in plan_fills(&sync.reports) {
            let Some(last) = fills.last().map(|(p, _)| *p) else { continue };
            let Some(name) = common.view.get(id).map(|m| m.name.clone()) else { continue };
            for (pos, entry) in fills {
                if let Entry::Visible(m) = &entry {
                    common.clock.observe(m.lamport);
                }
                let entry = match entry {
                    Entry::Visible(m) => entry_for(&m, &name),
                    hidden => hidden,
                };
                self.known.insert(entry.id());
                order_to(common, id, pos, entry, Vec::new());
            }
            if id == me {
                common.commit(last);
            } else {
                common.send_id(id, PeerMsg::Commit { pos: last });
            }
        }
        for report in sync.reports.values() {
            for (_, entry) in &report.entries {
                self.known.insert(entry.id());
                if let Entry::Visible(m) = entry {
                    common.clock.observe(m.lamport);
                }
            }
        }
        tracing::info!(%me, term = %own, "sync done: ordering");
        let queued: Vec<(NodeId, Submission)> = self.queued.drain(..).collect();
        for (from, sub) in queued {
            self.on_submit(common, now, from, sub);
        }
        // This node's own pending messages next (submitted by the node, paced, once this returns).
        common.pending.resend_all();
        Next::Stay
    }
}

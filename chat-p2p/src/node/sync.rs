//! The failover sync, coordinator side: a new coordinator collects what every member holds and
//! completes each member's log within its own last term before it orders anything new.
//!
//! ```text
//!  won term T ──SyncRequest{T}──► every member of its view ──► SyncReply{T, last, entries} (+ pending Submits)
//!      │                          (a reply stamped more than MAX_CLOCK_JUMP ahead: dropped)
//!      │                                                          │
//!      │◄─────────────────────────────────────────────────────────┘  (or the failure timeout)
//!      ▼ every member answered
//!  a member holds a newer term? ──yes──► take a term above it (a new sync)
//!      │ no
//!      ▼
//!  plan_fills: one Orders frame per member with the missing entries of its lineage, committed
//!  (messages and changes alike: every member ends with the same state); then Left for every member
//!  that did not answer, the queued submissions, this node's own pending messages; then the program
//!  hears of the new coordinator
//! ```
//!
//! Members do not take the coordinator's view: the view is part of the state every member derives
//! from the log, and after the fills every member of one lineage holds the same log. The member side
//! (answering) is [`super::member::Follower::answer_sync`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use chat_core::{DedupWindow, NodeId, Timestamp};

use super::Next;
use super::archive::Archive;
use super::common::Common;
use super::coordinator::Coordinator;
use super::flood::Flood;
use super::outbox::Outboxes;
use crate::election::Term;
use crate::group::Change;
use crate::ordering::{FRAME_BUDGET, Report, Sequencer, plan_fills};
use crate::protocol::{Entry, PeerMsg, Pos, Submission};

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
    /// that takes a newer term keeps its `previous` state's archive and ordered IDs.
    pub(super) fn start(common: &mut Common, now: Instant, term: Term, previous: Option<Coordinator>) -> Self {
        let me = common.me();
        let ids = common.group.view().ids();
        let others: BTreeSet<NodeId> = ids.iter().copied().filter(|id| *id != me).collect();
        let (archive, known, last_time) = match previous {
            Some(old) => (old.archive, old.known, old.last_time),
            None => (Archive::new(common.cfg.history), DedupWindow::new(common.cfg.sync_window * 16), 0),
        };
        let mut reports = BTreeMap::new();
        reports.insert(me, common.report());
        tracing::info!(%me, epoch = term.epoch, members = ids.len(), "coordinator: syncing members");
        for id in &others {
            common.send_id(*id, PeerMsg::SyncRequest { term });
        }
        Coordinator {
            head: common.group.clone(),
            seq: Sequencer::new(term, ids.iter().copied()),
            outbox: Outboxes::new(term),
            admitting: Vec::new(),
            answered: BTreeMap::new(),
            syncing: Some(SyncState { waiting: others, reports, deadline: now + common.cfg.timeout }),
            queued: VecDeque::new(),
            alive: ids.iter().map(|id| (*id, now)).collect(),
            next_heartbeat: now,
            beats: 0,
            last_beacon: None,
            archive,
            known,
            flood: Flood::new(common.cfg.limits),
            last_time,
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
        if term != self.term() {
            return self.not_member(common, sender);
        }
        // A reply stamped too far ahead is dropped whole: the member counts as not answering.
        let stamps = entries.iter().filter_map(|(_, e)| match e {
            Entry::Visible(m) => Some(m.lamport.counter),
            Entry::Hidden(_) | Entry::Change(_) => None,
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
        let own = self.term();
        let newest = sync.reports.values().flat_map(|r| [r.lineage, r.last.map(|p| p.term)]).flatten().max();
        if let Some(newest) = newest.filter(|t| *t > own) {
            // Two partitions reached the same epoch and a member followed the other one: this
            // term would order positions below what that member holds. Take a newer term.
            tracing::info!(me = %common.me(), %newest, "a member holds a newer term: taking a term above it");
            return Next::ReassertAbove(newest);
        }
        let Some(sync) = self.syncing.take() else { return Next::Stay };
        self.fill(common, &sync.reports);
        // The archive: what this node ordered before, delivered, and what the members could see.
        let reported = sync.reports.values().flat_map(|r| r.entries.iter()).filter_map(|(_, e)| match e {
            Entry::Visible(m) => Some(m.clone()),
            Entry::Hidden(_) | Entry::Change(_) => None,
        });
        let mine = self.archive.iter().cloned().chain(common.history.iter().cloned());
        self.archive = Archive::gathered(common.cfg.history, mine.chain(reported));
        // From here on, the state every member holds after the fills.
        let me = common.me();
        self.head = common.group.clone();
        // The old coordinator may have ordered this node's own removal (it lost its link to it):
        // every member has it now, so this node joins again, first thing in its term (in its own
        // log too: the head has it before it is ordered).
        let rejoin = (!self.head.view().contains(me)).then(|| Change::Joined(common.member()));
        if let Some(change) = &rejoin {
            self.head.apply(change);
        }
        let ids = self.head.view().ids();
        self.seq = Sequencer::new(own, ids.iter().copied());
        self.outbox = Outboxes::new(own);
        for id in &ids {
            if *id != me {
                self.outbox.add(*id, 1, false);
                self.alive.entry(*id).or_insert(now);
            }
        }
        if let Some(change) = rejoin {
            self.order_change(common, now, change);
        }
        self.alive.retain(|id, _| ids.contains(id));
        for id in ids {
            if id != me && !sync.reports.contains_key(&id) {
                tracing::info!(%id, "member did not answer the sync: removed");
                self.remove_member(common, now, id);
            }
        }
        tracing::info!(%me, term = %own, "sync done: ordering");
        common.report_coordinator(own);
        let queued: Vec<(NodeId, Submission)> = self.queued.drain(..).collect();
        for (from, sub) in queued {
            if self.knows(from) {
                self.on_submit(common, now, from, sub);
            }
        }
        // This node's own pending messages and room requests next.
        common.pending.resend_all();
        for (req, op) in common.rooms.for_new_coordinator() {
            self.on_room(common, now, me, req, op);
        }
        Next::Stay
    }

    /// Completes every member's log within its lineage: one `Orders` frame (or a few) each, which
    /// commits what it carries; this node's own log at once.
    fn fill(&mut self, common: &mut Common, reports: &BTreeMap<NodeId, Report>) {
        let me = common.me();
        for report in reports.values() {
            for (_, entry) in &report.entries {
                if let Some(id) = entry.message_id() {
                    self.known.insert(id);
                }
                if let Entry::Visible(m) = entry {
                    common.clock.observe(m.lamport);
                }
            }
        }
        for (id, fills) in plan_fills(reports) {
            let Some(&(last, _)) = fills.last() else { continue };
            if id == me {
                for (pos, entry) in fills {
                    common.log.receive(pos, entry, Vec::new());
                }
                common.commit(last);
                continue;
            }
            let Some(member) = common.group.view().get(id).cloned() else { continue };
            let mut batch: Vec<(Entry, Vec<chat_core::UserName>)> = Vec::new();
            let mut first = fills[0].0;
            let mut weight = 0;
            for (pos, entry) in fills {
                let entry = match entry {
                    Entry::Visible(m) => common.group.entry_for(&m, &member.name),
                    other => other,
                };
                let w = entry.weight();
                if !batch.is_empty() && (weight + w > FRAME_BUDGET || pos.term != first.term) {
                    let entries = std::mem::take(&mut batch);
                    let msg = PeerMsg::Orders { term: first.term, first: first.index, entries, commit: 0 };
                    common.send_to(member.addr, msg);
                    first = pos;
                    weight = 0;
                }
                weight += w;
                batch.push((entry, Vec::new()));
            }
            let msg = PeerMsg::Orders { term: first.term, first: first.index, entries: batch, commit: last.index };
            common.send_to(member.addr, msg);
        }
    }
}

//! The coordinator side of a node: admission, heartbeats, failure detection, sequencing, the
//! failover sync and partition merges.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{ChatMessage, DedupWindow, ErrorCode, Event, MessageBuffer, NodeId, Recipients, Timestamp, UserName};

use super::{MAX_PEERS, Node};
use crate::election::Term;
use crate::ordering::{FRAME_BUDGET, Report, Sequencer, entry_for, plan_fills};
use crate::protocol::{Entry, Envelope, Member, PeerMsg, Submission};

/// Whether coordinator term `a` wins over `b` when two groups meet: the higher coordinator ID
/// (Bully's rule), the higher epoch between equal IDs.
pub(super) fn outranks(a: Term, b: Term) -> bool {
    (a.coordinator, a.epoch) > (b.coordinator, b.epoch)
}

/// Heartbeats between two multicast beacons.
const BEACON_EVERY: u32 = 4;

#[derive(Debug)]
struct SyncState {
    waiting: BTreeSet<NodeId>,
    reports: BTreeMap<NodeId, Report>,
    deadline: Instant,
}

/// What only the coordinator keeps.
#[derive(Debug)]
pub(super) struct CoordState {
    seq: Sequencer,
    syncing: Option<SyncState>,
    queued: VecDeque<(NodeId, Submission)>,
    alive: BTreeMap<NodeId, Instant>,
    next_heartbeat: Instant,
    beats: u32,
    full: MessageBuffer,
    known: DedupWindow,
}

impl CoordState {
    pub(super) fn is_syncing(&self) -> bool {
        self.syncing.is_some()
    }

    pub(super) fn heard(&mut self, from: NodeId, now: Instant) {
        if let Some(t) = self.alive.get_mut(&from) {
            *t = now;
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        match &self.syncing {
            Some(s) => s.deadline.min(self.next_heartbeat),
            None => self.next_heartbeat,
        }
    }
}

impl Node {
    fn me(&self) -> NodeId {
        self.id.unwrap_or_default()
    }

    /// Won a term: collect what every member holds before ordering anything new.
    pub(super) fn become_coordinator(&mut self, now: Instant, term: Term) {
        let me = self.me();
        self.alloc.new_block();
        let members: Vec<Member> = self.view.iter().cloned().collect();
        let others: BTreeSet<NodeId> = self.view.ids().into_iter().filter(|id| *id != me).collect();
        let (full, known) = match self.coord.take() {
            Some(old) => (old.full, old.known),
            None => (MessageBuffer::new(self.cfg.history), DedupWindow::new(self.cfg.sync_window * 16)),
        };
        let mut reports = BTreeMap::new();
        reports.insert(me, self.report());
        tracing::info!(%me, epoch = term.epoch, members = members.len(), "coordinator: syncing members");
        for id in &others {
            self.send_id(*id, PeerMsg::SyncRequest { term, members: members.clone() });
        }
        let alive = self.view.ids().into_iter().map(|id| (id, now)).collect();
        self.coord = Some(CoordState {
            seq: Sequencer::new(term, self.view.ids()),
            syncing: Some(SyncState { waiting: others, reports, deadline: now + self.cfg.timeout }),
            queued: VecDeque::new(),
            alive,
            next_heartbeat: now,
            beats: 0,
            full,
            known,
        });
        self.maybe_finish_sync(now);
    }

    fn maybe_finish_sync(&mut self, now: Instant) {
        let Some(c) = self.coord.as_mut() else { return };
        let Some(sync) = c.syncing.as_ref() else { return };
        if !sync.waiting.is_empty() && now < sync.deadline {
            return;
        }
        let own = c.seq.term();
        let newest = sync.reports.values().flat_map(|r| [r.lineage, r.last.map(|p| p.term)]).flatten().max();
        if let Some(newest) = newest.filter(|t| *t > own) {
            // Two partitions reached the same epoch and a member followed the other one: this
            // term would order positions below what that member holds. Take a newer term.
            tracing::info!(me = %self.me(), %newest, "a member holds a newer term: taking a term above it");
            self.bully.reassert_above(newest.epoch);
            self.pump_election(now);
            return;
        }
        let Some(sync) = c.syncing.take() else { return };
        for id in sync.waiting {
            tracing::info!(%id, "member did not answer the sync: removed");
            self.remove_member(now, id);
        }
        let plan = plan_fills(&sync.reports);
        let term = self.coord.as_ref().map(|c| c.seq.term());
        for (id, fills) in plan {
            let Some(last) = fills.last().map(|(p, _)| *p) else { continue };
            let Some(name) = self.view.get(id).map(|m| m.name.clone()) else { continue };
            for (pos, entry) in fills {
                if let Entry::Visible(m) = &entry {
                    self.clock.observe(m.lamport);
                }
                let entry = match entry {
                    Entry::Visible(m) => entry_for(&m, &name),
                    hidden => hidden,
                };
                if let Some(c) = self.coord.as_mut() {
                    c.known.insert(entry.id());
                }
                self.order_to(id, pos, entry, Vec::new());
            }
            if id == self.me() {
                self.commit(last);
            } else {
                self.send_id(id, PeerMsg::Commit { pos: last });
            }
        }
        for report in sync.reports.values() {
            for (_, entry) in &report.entries {
                if let Some(c) = self.coord.as_mut() {
                    c.known.insert(entry.id());
                }
                if let Entry::Visible(m) = entry {
                    self.clock.observe(m.lamport);
                }
            }
        }
        tracing::info!(me = %self.me(), ?term, "sync done: ordering");
        let queued: Vec<(NodeId, Submission)> =
            self.coord.as_mut().map(|c| c.queued.drain(..).collect()).unwrap_or_default();
        for (from, sub) in queued {
            self.on_submit(from, sub);
        }
        let own: Vec<Submission> = self.pending.values().cloned().collect();
        let me = self.me();
        for sub in own {
            self.on_submit(me, sub);
        }
    }

    /// Sends (or, for itself, stores and acknowledges) one ordered entry.
    fn order_to(&mut self, id: NodeId, pos: crate::protocol::Pos, entry: Entry, unknown: Vec<UserName>) {
        if id == self.me() {
            self.log.receive(pos, entry, unknown);
        } else {
            self.send_id(id, PeerMsg::Order { pos, entry, unknown });
        }
    }

    /// Handles what only a coordinator handles; false to fall through to the member side.
    pub(super) fn coordinator_receive(&mut self, now: Instant, env: &Envelope) -> bool {
        let Some(from) = env.from else {
            if let PeerMsg::JoinRequest { name, addr, nonce, clock } = &env.msg {
                self.clock.observe(Timestamp::new(*clock, NodeId::default()));
                self.on_join_request(now, name.clone(), *addr, *nonce);
                return true;
            }
            return false;
        };
        let member = self.view.contains(from);
        let term = self.term().unwrap_or_default();
        match &env.msg {
            PeerMsg::SyncReply { term: t, last, entries, clock } if *t == term => {
                self.clock.observe(Timestamp::new(*clock, from));
                let lineage = entries.last().map(|(p, _)| *p).max(*last).map(|p| p.term);
                if let Some(sync) = self.coord.as_mut().and_then(|c| c.syncing.as_mut()) {
                    if sync.waiting.remove(&from) {
                        let report = Report { last: *last, lineage, entries: entries.clone() };
                        sync.reports.insert(from, report);
                    }
                }
                self.maybe_finish_sync(now);
            }
            PeerMsg::Submit(sub) if member => self.on_submit(from, sub.clone()),
            PeerMsg::Ack { term, index } if member => {
                let commit = self.coord.as_mut().and_then(|c| c.seq.ack(from, *term, *index));
                self.broadcast_commit(commit);
            }
            PeerMsg::Alive { .. } if member => {}
            PeerMsg::Leave if member => self.remove_member(now, from),
            // A node this coordinator dropped (silence, broken link) still follows it: tell it to
            // rejoin instead of answering its elections forever.
            PeerMsg::Election(_) if !member && from != self.me() => {
                self.send_to(env.addr, PeerMsg::NotMember { term });
            }
            PeerMsg::Stale { term: newer, addr } if *newer > term => {
                tracing::info!(me = %self.me(), newer = %newer, "stale coordinator: rejoining the current group");
                self.rejoin(now, Some(*addr));
            }
            PeerMsg::Submit(_) | PeerMsg::Ack { .. } | PeerMsg::Alive { .. } | PeerMsg::SyncReply { .. } => {
                self.send_to(env.addr, PeerMsg::NotMember { term });
            }
            _ => return false,
        }
        true
    }

    pub(super) fn on_submit(&mut self, from: NodeId, sub: Submission) {
        let me = self.me();
        let Some(c) = self.coord.as_mut() else { return };
        if c.syncing.is_some() {
            if c.queued.len() < super::MAX_PENDING * 4 {
                c.queued.push_back((from, sub));
            }
            return;
        }
        if c.known.contains(&sub.id) {
            // Ordered before (in an earlier term): the sender learns it, as a member would.
            if from == me {
                self.ordered_elsewhere(sub.id);
            } else {
                self.send_id(from, PeerMsg::Duplicate { id: sub.id });
            }
            return;
        }
        let unknown: Vec<UserName> =
            sub.recipients.names().iter().filter(|n| self.view.by_name(n).is_none()).cloned().collect();
        if !matches!(sub.recipients, Recipients::Broadcast) && unknown.len() == sub.recipients.names().len() {
            let reason = format!("not online: {}", unknown.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(","));
            let wire = PeerMsg::Rejected { id: sub.id, code: ErrorCode::UnknownUser, reason };
            if from == me {
                let env = self.envelope(wire);
                self.member_receive_local(env);
            } else {
                self.send_id(from, wire);
            }
            return;
        }
        self.clock.observe(sub.sent_at);
        let lamport = self.clock.tick();
        let msg = ChatMessage { id: sub.id, sender: sub.sender, recipients: sub.recipients, body: sub.body, lamport };
        let Some(c) = self.coord.as_mut() else { return };
        c.known.insert(msg.id);
        c.full.insert(msg.clone());
        let pos = c.seq.next_pos();
        let members: Vec<Member> = self.view.iter().cloned().collect();
        for m in members {
            let unknown = if m.id == from { unknown.clone() } else { Vec::new() };
            self.order_to(m.id, pos, entry_for(&msg, &m.name), unknown);
        }
        let commit = self.coord.as_mut().and_then(|c| c.seq.ack(me, pos.term, pos.index));
        self.broadcast_commit(commit);
    }

    fn member_receive_local(&mut self, env: Envelope) {
        if let PeerMsg::Rejected { id, code, reason } = env.msg {
            if self.pending.remove(&id).is_some() {
                let error = chat_core::CoreError::Rejected { code, message: reason };
                self.out.push_back(super::Output::SendFailed { id, error });
            }
        }
    }

    fn broadcast_commit(&mut self, commit: Option<crate::protocol::Pos>) {
        let Some(pos) = commit else { return };
        let me = self.me();
        for id in self.view.ids() {
            if id != me {
                self.send_id(id, PeerMsg::Commit { pos });
            }
        }
        self.commit(pos);
    }

    pub(super) fn on_join_request(&mut self, now: Instant, name: UserName, addr: SocketAddr, nonce: u64) {
        let Some(c) = self.coord.as_ref() else { return };
        if c.syncing.is_some() {
            return; // the joiner retries
        }
        let term = self.term().unwrap_or_default();
        let refuse = |code, reason: String| PeerMsg::JoinRefused { nonce, code, reason };
        let id = match self.view.by_name(&name) {
            Some(m) if m.addr == addr => m.id, // a retry whose answer was lost
            Some(_) => {
                let wire = refuse(ErrorCode::NameTaken, format!("the name {name} is taken"));
                self.send_to(addr, wire);
                return;
            }
            None if self.view.len() >= MAX_PEERS => {
                self.send_to(addr, refuse(ErrorCode::Busy, "the group is full".into()));
                return;
            }
            None => {
                let id = self.alloc.next_id(&mut self.rng);
                let member = Member { id, name: name.clone(), addr };
                for other in self.view.ids() {
                    if other != self.me() {
                        self.send_id(other, PeerMsg::Joined { term, member: member.clone() });
                    }
                }
                self.view.insert(member);
                self.sync_peers();
                if let Some(c) = self.coord.as_mut() {
                    c.seq.add_member(id);
                    c.alive.insert(id, now);
                }
                if let Some(info) = self.peer_info(id) {
                    self.event(Event::PeerJoined(info));
                }
                tracing::info!(%name, %id, "admitted");
                id
            }
        };
        let Some(c) = self.coord.as_ref() else { return };
        let mut history = c.full.last_visible_to(&name, self.cfg.history);
        let mut budget = FRAME_BUDGET / 2;
        let keep = history.iter().rev().take_while(|m| {
            let w = m.body.len() + 128;
            budget = budget.saturating_sub(w);
            budget > 0
        });
        let skip = history.len() - keep.count();
        history.drain(..skip);
        let wire = PeerMsg::JoinAck {
            nonce,
            id,
            term,
            members: self.view.iter().cloned().collect(),
            history,
            start: c.seq.last_pos(),
            clock: self.clock.counter(),
        };
        self.send_to(addr, wire);
    }

    /// Removes a member and tells the others.
    pub(super) fn remove_member(&mut self, _now: Instant, id: NodeId) {
        let Some(info) = self.peer_info(id) else { return };
        self.view.remove(id);
        self.sync_peers();
        let term = self.term().unwrap_or_default();
        for other in self.view.ids() {
            if other != self.me() {
                self.send_id(other, PeerMsg::Left { term, id });
            }
        }
        let commit = self.coord.as_mut().and_then(|c| {
            c.alive.remove(&id);
            if let Some(s) = c.syncing.as_mut() {
                s.waiting.remove(&id);
            }
            c.seq.remove_member(id)
        });
        self.broadcast_commit(commit);
        tracing::info!(%id, name = %info.name, "member left");
        self.event(Event::PeerLeft(info));
    }

    /// Another coordinator's beacon: after a partition heals, the coordinator with the lower
    /// `(ID, epoch)` hands its whole group over. It tells every member (`Stale`, with the winner's
    /// address) and rejoins the winner itself; the members rejoin too and get fresh IDs from the
    /// winner's allocator. Their unordered messages stay pending and are resubmitted after the join.
    ///
    /// A member that knows no coordinator hearing the beacon of a coordinator outside its view (it
    /// was left behind by its group) joins that coordinator.
    pub(super) fn on_beacon(&mut self, now: Instant, other: Term, addr: SocketAddr) {
        if self.coord.is_none() && self.term().is_none() && !self.view.contains(other.coordinator) {
            tracing::info!(me = %self.me(), %other, "no coordinator here: joining the beaconing one");
            self.rejoin(now, Some(addr));
            return;
        }
        let Some(mine) = self.term() else { return };
        if self.coord.is_none() || addr == self.cfg.addr || !outranks(other, mine) {
            return;
        }
        tracing::info!(me = %self.me(), %other, "found a higher coordinator: handing the group over");
        let me = self.me();
        for id in self.view.ids() {
            if id != me {
                self.send_id(id, PeerMsg::Stale { term: other, addr });
            }
        }
        self.rejoin(now, Some(addr));
    }

    pub(super) fn coordinator_timeout(&mut self, now: Instant) {
        self.maybe_finish_sync(now);
        let Some(c) = self.coord.as_mut() else { return };
        if now < c.next_heartbeat {
            return;
        }
        c.next_heartbeat = now + self.cfg.heartbeat;
        c.beats += 1;
        let beacon = c.beats % BEACON_EVERY == 1;
        let commit = c.seq.commit_pos();
        let dead: Vec<NodeId> =
            c.alive.iter().filter(|(_, t)| now >= **t + self.cfg.timeout).map(|(id, _)| *id).collect();
        let syncing = c.syncing.is_some();
        let me = self.me();
        for id in dead {
            if id != me {
                tracing::info!(%id, "member silent: removed");
                self.remove_member(now, id);
            }
        }
        let term = self.term().unwrap_or_default();
        if !syncing {
            for id in self.view.ids() {
                if id != me {
                    self.send_id(id, PeerMsg::Heartbeat { term, commit, clock: self.clock.counter() });
                }
            }
        }
        if beacon {
            let env = self.envelope(PeerMsg::Beacon { term, addr: self.cfg.addr });
            self.out.push_back(super::Output::Multicast(env));
        }
    }
}

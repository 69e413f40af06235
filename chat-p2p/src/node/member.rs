//! The member side of a node: joining, following the coordinator, delivering, resubmitting.

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{CoreError, Event, NodeId};

use super::{Node, Output, Phase};
use crate::election::{Bully, ElectionConfig, ElectionInput, ElectionMsg, Term};
use crate::ordering::Report;
use crate::protocol::{Entry, Envelope, Member, PeerMsg, Pos, Submission};

impl Node {
    pub(super) fn election_config(&self) -> ElectionConfig {
        ElectionConfig { answer_timeout: self.cfg.timeout / 2, announce_timeout: self.cfg.timeout }
    }

    /// (Re)starts joining: multicast, known peers, and `target` if given.
    pub(super) fn rejoin(&mut self, now: Instant, target: Option<SocketAddr>) {
        let nonce = self.rng.next_u64();
        self.coord = None;
        self.bully.step_down();
        self.phase =
            Phase::Joining { nonce, retry_at: now + self.cfg.heartbeat * 2, give_up_at: now + self.cfg.join_timeout };
        self.send_join_requests(nonce, target);
    }

    pub(super) fn send_join_requests(&mut self, nonce: u64, target: Option<SocketAddr>) {
        let clock = self.clock.counter();
        let wire = PeerMsg::JoinRequest { name: self.cfg.name.clone(), addr: self.cfg.addr, nonce, clock };
        let env = self.envelope(wire.clone());
        self.out.push_back(Output::Multicast(env));
        let mut targets = self.cfg.peers.clone();
        targets.extend(target);
        targets.retain(|a| *a != self.cfg.addr);
        targets.dedup();
        for to in targets {
            self.send_to(to, wire.clone());
        }
    }

    /// Nobody answered: found a group, as its first coordinator.
    pub(super) fn found(&mut self, now: Instant) {
        let id = self.alloc.next_id(&mut self.rng);
        tracing::info!(name = %self.cfg.name, %id, "no coordinator answered: founding a group");
        let member = Member { id, name: self.cfg.name.clone(), addr: self.cfg.addr };
        self.become_member(now, id, vec![member]);
        self.bully.handle(now, ElectionInput::Start);
        self.pump_election(now);
    }

    fn become_member(&mut self, now: Instant, id: NodeId, members: Vec<Member>) {
        let max_epoch = self.bully.max_epoch();
        self.id = Some(id);
        self.clock.set_node(id);
        self.alloc.observe(id);
        for m in &members {
            self.alloc.observe(m.id);
        }
        self.view.replace(members);
        self.bully = Bully::new(id, self.election_config());
        self.bully.observe_epoch(max_epoch);
        self.sync_peers();
        self.phase = Phase::Member;
        self.last_heard = now;
        self.out.push_back(Output::Joined { id });
    }

    pub(super) fn receive_joining(&mut self, now: Instant, env: Envelope, our_nonce: u64) {
        match env.msg {
            PeerMsg::JoinAck { nonce, id, term, members, history, start, clock } if nonce == our_nonce => {
                tracing::info!(name = %self.cfg.name, %id, coordinator = %term.coordinator, "joined");
                self.become_member(now, id, members);
                self.bully.adopt(term);
                self.followed = Some(term);
                self.clock.observe(chat_core::Timestamp::new(clock, term.coordinator));
                self.log.start_at(start);
                for m in history {
                    self.clock.observe(m.lamport);
                    self.log.mark_delivered(m.id);
                    // Ordered by this group before we (re)joined it: it is in our history.
                    self.ordered_elsewhere(m.id);
                    self.history.insert(m);
                }
                if let Some(c) = self.view.get(term.coordinator) {
                    let event = Event::CoordinatorChanged { name: c.name.clone(), node_id: c.id, epoch: term.epoch };
                    self.event(event);
                }
                let pending: Vec<Submission> = self.pending.values().cloned().collect();
                for sub in pending {
                    self.forward_submission(sub);
                }
                if id > term.coordinator {
                    self.bully.handle(now, ElectionInput::Start);
                    self.pump_election(now);
                }
            }
            PeerMsg::JoinRefused { nonce, code, reason } if nonce == our_nonce => {
                tracing::warn!(name = %self.cfg.name, %code, %reason, "join refused");
                self.phase = Phase::Left;
                self.out.push_back(Output::Refused { code, reason });
            }
            _ => {}
        }
    }

    /// Sends a submission to the coordinator, or to itself when coordinator.
    pub(super) fn forward_submission(&mut self, sub: Submission) {
        if self.phase != Phase::Member {
            return;
        }
        match (self.coord.is_some(), self.coordinator_addr()) {
            (true, _) => {
                let me = self.id.unwrap_or_default();
                self.on_submit(me, sub);
            }
            (false, Some(addr)) => self.send_to(addr, PeerMsg::Submit(sub)),
            (false, None) => {}
        }
    }

    pub(super) fn member_timeout(&mut self, now: Instant) {
        if self.bully.is_electing() {
            return;
        }
        let me = self.id.unwrap_or_default();
        let silent = now >= self.last_heard + self.cfg.timeout;
        let lower = self.coordinator().is_some_and(|c| c < me);
        if silent || lower || self.coordinator().is_none() {
            if silent {
                tracing::info!(me = %me, coordinator = ?self.coordinator(), "coordinator silent: starting an election");
                self.bully.step_down();
            }
            self.last_heard = now;
            self.bully.handle(now, ElectionInput::Start);
            self.pump_election(now);
        }
    }

    pub(super) fn link_down(&mut self, now: Instant, addr: SocketAddr) {
        if self.phase != Phase::Member {
            return;
        }
        if self.coord.is_some() {
            let id = self.view.iter().find(|m| m.addr == addr).map(|m| m.id);
            if let Some(id) = id.filter(|id| Some(*id) != self.id) {
                self.remove_member(now, id);
            }
        } else if self.coordinator_addr() == Some(addr) {
            tracing::info!(%addr, "link to the coordinator broke");
            self.last_heard = now - self.cfg.timeout;
            self.member_timeout(now);
        }
    }

    pub(super) fn leave(&mut self, now: Instant) {
        if self.phase == Phase::Member {
            if self.coord.is_some() {
                self.bully.handle(now, ElectionInput::Leave);
                self.pump_election(now);
            } else if let Some(addr) = self.coordinator_addr() {
                self.send_to(addr, PeerMsg::Leave);
            }
        }
        self.phase = Phase::Left;
        self.coord = None;
        let ids: Vec<_> = self.pending.keys().copied().collect();
        for id in ids {
            self.out
                .push_back(Output::SendFailed { id, error: CoreError::Closed("left before it was ordered".into()) });
        }
        self.pending.clear();
    }

    /// What this member reports to a new coordinator.
    pub(super) fn report(&self) -> Report {
        Report { last: self.log.last(), lineage: self.log.lineage(), entries: self.log.sync_entries() }
    }

    /// Handles a frame as a member (also used by the coordinator for what it does not handle).
    pub(super) fn member_receive(&mut self, now: Instant, env: Envelope) {
        let Some(from) = env.from else {
            if let PeerMsg::JoinRequest { .. } = env.msg {
                self.forward_join(env);
            }
            return;
        };
        let from_coordinator = self.coordinator() == Some(from);
        match env.msg {
            // Elections are held within a group: a node outside the view (an orphan of an older
            // group, or a member of another one) is not answered, so it cannot stall here.
            PeerMsg::Election(msg) if self.view.contains(from) => {
                self.bully.handle(now, ElectionInput::Receive { from, msg });
                self.pump_election(now);
            }
            PeerMsg::SyncRequest { term, members } => self.on_sync_request(now, from, env.addr, term, members),
            PeerMsg::Heartbeat { term, commit, clock } => {
                if from_coordinator && Some(term) == self.term() {
                    self.last_heard = now;
                    self.clock.observe(chat_core::Timestamp::new(clock, from));
                    if let Some(pos) = commit {
                        self.commit(pos);
                    }
                    self.send_to(env.addr, PeerMsg::Alive { term });
                } else if self.term().is_some_and(|t| t > term) {
                    if let Some(addr) = self.coordinator_addr() {
                        let current = self.term().unwrap_or(term);
                        self.send_to(env.addr, PeerMsg::Stale { term: current, addr });
                    }
                }
            }
            // Kept even while this node is between coordinators, if it is the term this node was
            // following (it re-adopts that term after an election): positions are unique per term,
            // and dropping it would leave a gap. Never from another group's coordinator: the log
            // holds one chain of terms.
            PeerMsg::Order { pos, entry, unknown }
                if from_coordinator
                    || (self.term().is_none() && from == pos.term.coordinator && self.followed == Some(pos.term)) =>
            {
                self.last_heard = now;
                self.log.receive(pos, entry, unknown);
                if Some(pos.term) == self.term() {
                    let index = self.log.held_index(pos.term);
                    self.send_to(env.addr, PeerMsg::Ack { term: pos.term, index });
                }
            }
            PeerMsg::Commit { pos } if from_coordinator => self.commit(pos),
            PeerMsg::Joined { term, member } if from_coordinator && Some(term) == self.term() => {
                self.alloc.observe(member.id);
                let id = member.id;
                if self.view.insert(member) {
                    self.sync_peers();
                    if let Some(info) = self.peer_info(id) {
                        self.event(Event::PeerJoined(info));
                    }
                }
            }
            PeerMsg::Left { term, id } if from_coordinator && Some(term) == self.term() => {
                if Some(id) == self.id {
                    self.rejoin(now, Some(env.addr));
                } else if let Some(info) = self.peer_info(id) {
                    self.view.remove(id);
                    self.sync_peers();
                    self.event(Event::PeerLeft(info));
                }
            }
            PeerMsg::Stale { term, addr } if from_coordinator && self.term().is_some_and(|t| t != term) => {
                tracing::info!(me = ?self.id, winner = %term, "the group is handed over: rejoining");
                self.rejoin(now, Some(addr));
            }
            // From our coordinator, or from any coordinator while we follow none (we called an
            // election into a group that had dropped us): rejoin through it.
            PeerMsg::NotMember { .. } if from_coordinator || self.term().is_none() => {
                tracing::info!(me = ?self.id, "expelled by the coordinator: rejoining");
                self.rejoin(now, Some(env.addr));
            }
            PeerMsg::Duplicate { id } => self.ordered_elsewhere(id),
            PeerMsg::Rejected { id, code, reason } if self.pending.remove(&id).is_some() => {
                let error = CoreError::Rejected { code, message: reason };
                self.out.push_back(Output::SendFailed { id, error });
            }
            PeerMsg::JoinRequest { .. } => self.forward_join(env),
            _ => {}
        }
    }

    fn forward_join(&mut self, env: Envelope) {
        if let Some(addr) = self.coordinator_addr() {
            let msg = Envelope { from: None, addr: env.addr, msg: env.msg };
            self.out.push_back(Output::Send { to: addr, msg });
        }
    }

    fn on_sync_request(&mut self, now: Instant, from: NodeId, addr: SocketAddr, term: Term, members: Vec<Member>) {
        let me = self.id.unwrap_or_default();
        if self.term().is_some_and(|t| t > term) {
            return;
        }
        if self.term() != Some(term) {
            self.bully
                .handle(now, ElectionInput::Receive { from, msg: ElectionMsg::Coordinator { epoch: term.epoch } });
            self.pump_election(now);
        }
        if self.term() != Some(term) {
            return;
        }
        self.coord = None;
        self.last_heard = now;
        for m in &members {
            self.alloc.observe(m.id);
        }
        self.view.replace(members);
        self.sync_peers();
        if !self.view.contains(me) {
            return;
        }
        let report = self.report();
        let wire = PeerMsg::SyncReply { term, last: report.last, entries: report.entries, clock: self.clock.counter() };
        self.send_to(addr, wire);
        let pending: Vec<Submission> = self.pending.values().cloned().collect();
        for sub in pending {
            self.send_to(addr, PeerMsg::Submit(sub));
        }
    }

    /// An own pending message turned out to be ordered already (a `Duplicate` answer, a joiner's
    /// history, a coordinator's own resubmission): it is reported sent, once.
    pub(super) fn ordered_elsewhere(&mut self, id: chat_core::MessageId) {
        if self.pending.remove(&id).is_some() {
            self.out.push_back(Output::Sent { id, unknown: Vec::new() });
        }
    }

    /// Delivers everything held up to `pos`.
    pub(super) fn commit(&mut self, pos: Pos) {
        for (_, entry, unknown) in self.log.commit(pos) {
            if let Entry::Visible(msg) = entry {
                self.clock.observe(msg.lamport);
                self.history.insert(msg.clone());
                if self.pending.remove(&msg.id).is_some() {
                    self.out.push_back(Output::Sent { id: msg.id, unknown });
                }
                self.event(Event::Message(msg));
            }
        }
    }
}

//! The state every role of a node shares, and the handlers that do not depend on the role.
//!
//! [`Common`] holds what a node keeps whatever it is doing: its ID, the group's state as of the
//! last position it delivered ([`Group`]: members, rooms, IDs handed out), the member log and the
//! history, the Lamport clock, its own messages not yet ordered (and their pacing, `pending.rs`),
//! its own room requests (`rooms.rs`), the Bully election and the counters of refused input. The
//! roles ([`super::joining`], [`super::member`], [`super::coordinator`]) keep only what is theirs
//! and act on this state through these methods, which queue outputs and at most ask for a role
//! change (a `Next`): only the node makes one.
//!
//! **One story.** The group's state changes only when a [`Change`] of the log is delivered
//! ([`Common::commit`]), in log order, and every event about members and rooms (`PeerJoined`,
//! `PeerLeft`, `RoomJoined`, `RoomLeft`) is reported then: every node reports the same ones in the
//! same order.
//!
//! **Peer clocks.** Every Lamport stamp another node sends is checked with
//! [`Common::admits_clock`] before it is observed: one more than [`MAX_CLOCK_JUMP`] ahead of this
//! node's clock is refused (the message is dropped, or a `Submit` is answered
//! `Rejected { protocol }`), counted and traced, so no peer can push the clock towards its end.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{
    ChatMessage, CoreError, DedupWindow, ErrorCode, Event, LamportClock, MAX_CLOCK_JUMP, MessageBuffer, MessageId,
    NodeId, OutgoingMessage, PeerInfo, Timestamp, UserName,
};

use super::pending::Pending;
use super::rooms::RoomRequests;
use super::{Counters, MAX_PEERS, MAX_PENDING, Next, NodeConfig, Output};
use crate::election::{Bully, ElectionConfig, ElectionInput, Term};
use crate::group::{Applied, Change, Group, OFFLINE_MESSAGES};
use crate::membership::Rng;
use crate::ordering::{Log, Report};
use crate::protocol::{Entry, Envelope, Member, PeerKey, PeerMsg, Pos, Submission};

/// What every role of a node shares; see the module documentation.
#[derive(Debug)]
pub(super) struct Common {
    /// The settings.
    pub(super) cfg: NodeConfig,
    /// Nonces.
    pub(super) rng: Rng,
    /// This process's tag, in every term it wins (see `election/messages.rs`).
    pub(super) tag: u64,
    /// This node's ID, once admitted (kept while rejoining: it names the sender, and the node asks
    /// for it back).
    pub(super) id: Option<NodeId>,
    /// The Bully election (also the source of the current term).
    pub(super) bully: Bully,
    /// The group's state as of the last delivered position.
    pub(super) group: Group,
    /// Ordered entries, delivered and not yet delivered.
    pub(super) log: Log,
    /// Delivered messages, for the program.
    pub(super) history: MessageBuffer,
    /// The Lamport clock.
    pub(super) clock: LamportClock,
    /// Own messages not yet ordered, resubmitted to every new coordinator, paced.
    pub(super) pending: Pending,
    /// Own room requests not yet answered, and answers waiting for their position.
    pub(super) rooms: RoomRequests,
    /// Sequence number of the next own message.
    pub(super) next_seq: u64,
    /// The last term this node followed (kept while it is between coordinators).
    pub(super) followed: Option<Term>,
    /// The last coordinator reported to the program (so a term re-adopted is not reported twice).
    pub(super) reported: Option<Term>,
    /// Addresses of nodes heard from, for answering nodes outside the view (bounded).
    pub(super) addrs: HashMap<NodeId, SocketAddr>,
    /// The wall-clock time last given ([`super::Input::Clock`]), in ms since the Unix epoch.
    pub(super) wall: u64,
    /// A delivered change removed this node from the group: it rejoins.
    pub(super) expelled: bool,
    /// Elections this node started (joins never start one; only failures do).
    pub(super) elections: u64,
    /// Input refused or throttled so far.
    pub(super) counters: Counters,
    /// Offline messages already delivered here (a `Collected` change seen twice delivers once).
    pub(super) collected: DedupWindow,
    /// Outputs not yet polled.
    pub(super) out: VecDeque<Output>,
}

impl Common {
    /// The state of a node that has not joined anything yet.
    pub(super) fn new(cfg: NodeConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let tag = rng.next_u64();
        Common {
            rng,
            tag,
            id: None,
            bully: Bully::new(NodeId(0), ElectionConfig::default()).with_tag(tag),
            group: Group::default(),
            log: Log::new(cfg.sync_window),
            history: MessageBuffer::new(cfg.history),
            clock: LamportClock::new(NodeId(0)),
            pending: Pending::default(),
            rooms: RoomRequests::default(),
            // Message IDs are (node ID, sequence number). Node IDs are small and, across a
            // partition, two processes may hold the same one: each process starts its sequence at
            // a random multiple of 2^20 (below 2^53, exact in JSON), so no two collide in practice.
            next_seq: ((tag & 0xFFFF_FFFF) << 20) + 1,
            followed: None,
            reported: None,
            addrs: HashMap::new(),
            wall: 0,
            expelled: false,
            elections: 0,
            counters: Counters::default(),
            collected: DedupWindow::new(OFFLINE_MESSAGES),
            out: VecDeque::new(),
            cfg,
        }
    }

    // ---------------------------------------------------------------- getters

    /// This node's ID (0 before it has one).
    pub(super) fn me(&self) -> NodeId {
        self.id.unwrap_or_default()
    }

    /// The coordinator, if known.
    pub(super) fn coordinator(&self) -> Option<NodeId> {
        self.bully.coordinator()
    }

    /// The current term, if a coordinator is known.
    pub(super) fn term(&self) -> Option<Term> {
        self.bully.term()
    }

    /// Whether `from` is the coordinator this node follows.
    pub(super) fn follows(&self, from: NodeId) -> bool {
        self.coordinator() == Some(from)
    }

    /// Where node `id` listens, if known.
    pub(super) fn addr_of(&self, id: NodeId) -> Option<SocketAddr> {
        self.group.view().get(id).map(|m| m.addr).or_else(|| self.addrs.get(&id).copied())
    }

    /// The coordinator's listening address, if known.
    pub(super) fn coordinator_addr(&self) -> Option<SocketAddr> {
        self.coordinator().and_then(|c| self.addr_of(c))
    }

    /// A member as the program sees it.
    pub(super) fn peer_info(&self, id: NodeId) -> Option<PeerInfo> {
        self.group.view().get(id).map(|m| PeerInfo {
            name: m.name.clone(),
            node_id: Some(m.id),
            addr: Some(m.addr),
            coordinator: self.coordinator() == Some(m.id),
        })
    }

    /// A user as the program sees it: the member of that name, or just the name.
    pub(super) fn person(&self, name: &UserName) -> PeerInfo {
        self.group
            .view()
            .by_name(name)
            .and_then(|m| self.peer_info(m.id))
            .unwrap_or_else(|| PeerInfo::named(name.clone()))
    }

    /// The election timeouts, derived from the failure timeout.
    pub(super) fn election_config(&self) -> ElectionConfig {
        ElectionConfig { answer_timeout: self.cfg.timeout / 2, announce_timeout: self.cfg.timeout }
    }

    /// What this node reports to a new coordinator.
    pub(super) fn report(&self) -> Report {
        Report { last: self.log.last(), lineage: self.log.lineage(), entries: self.log.sync_entries() }
    }

    // ---------------------------------------------------------------- outputs

    /// `msg` as this node sends it.
    pub(super) fn envelope(&self, msg: PeerMsg) -> Envelope {
        // A join request is signed by nobody: the ID a rejoiner held travels in the request, and
        // after a partition another node may hold that number (which the receiver would refuse).
        let from = if matches!(msg, PeerMsg::JoinRequest { .. }) { None } else { self.id };
        Envelope { from, addr: self.cfg.addr, msg }
    }

    /// This node as a member of the group (its ID, name, address and key).
    pub(super) fn member(&self) -> Member {
        Member { id: self.me(), name: self.cfg.name.clone(), addr: self.cfg.addr, key: self.cfg.key }
    }

    /// Sends `msg` to the node listening at `to`.
    pub(super) fn send_to(&mut self, to: SocketAddr, msg: PeerMsg) {
        let msg = self.envelope(msg);
        self.out.push_back(Output::Send { to, msg });
    }

    /// Sends `msg` to node `to`, if its address is known.
    pub(super) fn send_id(&mut self, to: NodeId, msg: PeerMsg) {
        if let Some(addr) = self.addr_of(to) {
            self.send_to(addr, msg);
        }
    }

    /// Multicasts `msg` to the discovery group (never with `--peer`: no multicast is used then).
    pub(super) fn multicast(&mut self, msg: PeerMsg) {
        if self.cfg.peers.is_empty() {
            let env = self.envelope(msg);
            self.out.push_back(Output::Multicast(env));
        }
    }

    /// Reports an event to the program.
    pub(super) fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    /// Reports `term`'s coordinator to the program, unless it was the last one reported.
    pub(super) fn report_coordinator(&mut self, term: Term) {
        if self.reported == Some(term) {
            return;
        }
        if let Some(m) = self.group.view().get(term.coordinator) {
            let event = Event::CoordinatorChanged { name: m.name.clone(), node_id: m.id, epoch: term.epoch };
            self.reported = Some(term);
            self.event(event);
        }
    }

    /// Tells the election who the members are.
    pub(super) fn sync_peers(&mut self) {
        self.bully.set_peers(self.group.view().ids());
    }

    /// Starts an election (the coordinator failed, or there is nobody to ask), and counts it.
    pub(super) fn start_election(&mut self, now: Instant) {
        if !self.bully.is_electing() {
            self.elections += 1;
        }
        self.bully.handle(now, ElectionInput::Start);
    }

    // ---------------------------------------------------------------- shared state changes

    /// Remembers where node `from` listens (the table is bounded: it is cleared when full).
    pub(super) fn heard(&mut self, from: NodeId, addr: SocketAddr) {
        if self.addrs.len() >= 4 * MAX_PEERS {
            self.addrs.clear();
        }
        self.addrs.insert(from, addr);
    }

    /// Becomes member `id` of a group whose state is `group`, with a fresh election that remembers
    /// the highest epoch heard of.
    pub(super) fn become_member(&mut self, id: NodeId, group: Group) {
        let max_epoch = self.bully.max_epoch();
        self.id = Some(id);
        self.clock.set_node(id);
        self.group = group;
        self.expelled = false;
        self.bully = Bully::new(id, self.election_config()).with_tag(self.tag);
        self.bully.observe_epoch(max_epoch);
        self.sync_peers();
        self.out.push_back(Output::Joined { id });
    }

    /// Makes an own message: its ID, its Lamport send time; kept pending until it is ordered.
    pub(super) fn new_submission(&mut self, msg: OutgoingMessage) -> Result<Submission, CoreError> {
        chat_core::check_body(&msg.body)?;
        if self.pending.len() >= MAX_PENDING {
            return Err(CoreError::Rejected {
                code: ErrorCode::Busy,
                message: "too many unacknowledged messages".into(),
            });
        }
        if !self.clock.admits(msg.sent_at) {
            let message = format!(
                "the message's Lamport clock ({}) is more than {MAX_CLOCK_JUMP} ahead of this node's ({})",
                msg.sent_at.counter,
                self.clock.counter()
            );
            return Err(CoreError::Rejected { code: ErrorCode::Protocol, message });
        }
        let id = MessageId::new(self.me(), self.next_seq);
        self.next_seq += 1;
        let sent_at = self.clock.observe(msg.sent_at);
        let sub = Submission { id, sender: self.cfg.name.clone(), recipients: msg.recipients, body: msg.body, sent_at };
        self.pending.add(sub.clone());
        Ok(sub)
    }

    /// Delivers everything held up to `pos`, in order: messages to the program, changes to the
    /// group's state (and their events), room answers once their change is in.
    pub(super) fn commit(&mut self, pos: Pos) {
        for (at, entry, unknown) in self.log.commit(pos) {
            match entry {
                Entry::Visible(msg) => {
                    self.clock.observe(msg.lamport);
                    self.history.insert(msg.clone());
                    if self.pending.remove(&msg.id) {
                        // The coordinator names only members and known offline users as recipients,
                        // and this node's group is the coordinator's as of the message's position:
                        // the recipients who are not members are the offline ones, kept for.
                        let view = self.group.view();
                        let queued =
                            msg.recipients.names().iter().filter(|n| view.by_name(n).is_none()).cloned().collect();
                        self.out.push_back(Output::Sent { id: msg.id, unknown, queued });
                    }
                    self.event(Event::Message(msg));
                }
                Entry::Hidden(_) => {}
                Entry::Change(change) => self.apply(&change),
            }
            self.resolve_rooms(at);
        }
    }

    /// Applies a delivered change and reports what it did.
    fn apply(&mut self, change: &Change) {
        let me = self.cfg.name.clone();
        let was_in = matches!(change, Change::RoomParted { room, .. } if self.group.in_room(&me, room));
        // A transient member (a one-shot) is never reported.
        let before = match change {
            Change::Left(id) if !self.group.is_quiet(*id) => self.peer_info(*id),
            _ => None,
        };
        match self.group.apply(change) {
            Applied::Nothing => {}
            Applied::Joined(m) => {
                self.sync_peers();
                if Some(m.id) != self.id
                    && !self.group.is_quiet(m.id)
                    && let Some(info) = self.peer_info(m.id)
                {
                    self.event(Event::PeerJoined(info));
                }
            }
            Applied::Left(m) => {
                self.sync_peers();
                if Some(m.id) == self.id {
                    self.expelled = true;
                } else if let Some(info) = before {
                    self.event(Event::PeerLeft(info));
                }
            }
            Applied::RoomJoined { room, name } => {
                if self.group.in_room(&me, &room) {
                    let peer = self.person(&name);
                    self.event(Event::RoomJoined { room, peer });
                }
            }
            Applied::RoomParted { room, name } => {
                if was_in {
                    let peer = self.person(&name);
                    self.event(Event::RoomLeft { room, peer });
                }
            }
            Applied::Kept => {}
            Applied::Collected { name, messages, dropped } => {
                let mine = self.group.view().by_name(&name).is_some_and(|m| Some(m.id) == self.id);
                if mine {
                    self.collect(messages, dropped);
                }
            }
        }
    }

    /// This node's user is back: what the group kept for it while it was offline, as messages (only
    /// the ones addressed to it), and a notice if some were dropped.
    fn collect(&mut self, messages: Vec<ChatMessage>, dropped: u64) {
        let me = self.cfg.name.clone();
        if dropped > 0 && messages.first().is_none_or(|m| !self.collected.contains(&m.id)) {
            let text = format!(
                "{dropped} older messages kept for you while you were offline were dropped (the group keeps at most {OFFLINE_MESSAGES} per user)"
            );
            self.event(Event::Notice { text });
        }
        for msg in messages.into_iter().filter(|m| m.is_visible_to(&me)) {
            if !self.collected.insert(msg.id) {
                continue;
            }
            if !self.admits_clock("a kept message", msg.sender.clone(), msg.lamport.counter) {
                continue;
            }
            self.clock.observe(msg.lamport);
            self.log.mark_delivered(msg.id);
            self.history.insert(msg.clone());
            self.out.push_back(Output::Offline(msg));
        }
    }

    /// An own pending message turned out to be ordered already (a `Duplicate` answer, a joiner's
    /// history, a coordinator's own resubmission): it is reported sent, once.
    pub(super) fn ordered_elsewhere(&mut self, id: MessageId) {
        if self.pending.remove(&id) {
            self.out.push_back(Output::Sent { id, unknown: Vec::new(), queued: Vec::new() });
        }
    }

    /// An own pending message was refused by the coordinator (this node's own, or another's).
    pub(super) fn rejected(&mut self, id: MessageId, code: ErrorCode, reason: String) {
        if self.pending.remove(&id) {
            let error = CoreError::Rejected { code, message: reason };
            self.out.push_back(Output::SendFailed { id, error });
        }
    }

    /// Fails every own message and room request not yet done (the node leaves).
    pub(super) fn fail_pending(&mut self) {
        for id in self.pending.take_all() {
            self.out
                .push_back(Output::SendFailed { id, error: CoreError::Closed("left before it was ordered".into()) });
        }
        for req in self.rooms.take_all() {
            let error = CoreError::Closed("left before the room request was done".into());
            self.out.push_back(Output::RoomDone { req, result: Err(error) });
        }
    }

    /// Whether a Lamport counter `stamp` received in `what` from `from` may be observed: at most
    /// [`MAX_CLOCK_JUMP`] ahead of this node's clock. A refused one is counted and traced.
    pub(super) fn admits_clock(&mut self, what: &str, from: impl fmt::Display, stamp: u64) -> bool {
        if self.clock.admits(Timestamp::new(stamp, NodeId::default())) {
            return true;
        }
        self.counters.clock_refused += 1;
        tracing::warn!(me = ?self.id, %from, stamp, clock = self.clock.counter(), "{what} refused: its clock is too far ahead");
        false
    }

    /// Why a stamp `counter` is refused, for the sender.
    pub(super) fn clock_too_far(&self, counter: u64) -> String {
        format!(
            "your Lamport clock ({counter}) is more than {MAX_CLOCK_JUMP} ahead of the coordinator's ({})",
            self.clock.counter()
        )
    }

    // ---------------------------------------------------------------- handlers shared by the roles

    /// A `Heartbeat` of an older term than the one followed here: tell its sender who rules now.
    pub(super) fn answer_stale_heartbeat(&mut self, sender: SocketAddr, term: Term) {
        if self.term().is_some_and(|t| t > term)
            && let Some(addr) = self.coordinator_addr()
        {
            let current = self.term().unwrap_or(term);
            self.send_to(sender, PeerMsg::Stale { term: current, addr });
        }
    }

    /// A node outside this node's view speaks to it as to a member of its group (an election, a
    /// sync): if this node follows a coordinator, tell the stranger where to rejoin. With a group
    /// secret only a node this group removed is answered (its link's key is a departed member's):
    /// an insider cannot make members dial an address of its choice.
    pub(super) fn answer_stranger(&mut self, sender: SocketAddr, link: Option<PeerKey>) {
        if self.cfg.key.is_some() && !link.is_some_and(|k| self.group.departed_key(k)) {
            return;
        }
        if let (Some(term), Some(addr)) = (self.term(), self.coordinator_addr())
            && addr != sender
        {
            self.send_to(sender, PeerMsg::Stale { term, addr });
        }
    }

    /// `NotMember` from the coordinator, or from a member of this node's view while this node
    /// follows nobody or only itself (it called an election into a group that had dropped it):
    /// rejoin through its sender.
    pub(super) fn on_not_member(&mut self, from: NodeId, sender: SocketAddr) -> Next {
        let alone = self.term().is_none_or(|t| t.coordinator == self.me());
        if !self.follows(from) && (!alone || !self.group.view().contains(from)) {
            return Next::Stay;
        }
        tracing::info!(me = ?self.id, "not a member of the group any more: rejoining");
        Next::Rejoin(Some(sender))
    }
}

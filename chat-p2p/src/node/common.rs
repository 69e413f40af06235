//! The state every role of a node shares, and the handlers that do not depend on the role.
//!
//! [`Common`] holds what a node keeps whatever it is doing: its ID, the group view and the ID
//! allocator, the member log and the history, the Lamport clock, its own messages not yet ordered
//! (and their pacing, `pending.rs`), the Bully election and the counters of refused input. The
//! roles ([`super::joining`], [`super::member`], [`super::coordinator`]) keep only what is theirs
//! and act on this state through these methods, which queue outputs and at most ask for a role
//! change (a `Next`): only the node makes one.
//!
//! **Peer clocks.** Every Lamport stamp another node sends is checked with
//! [`Common::admits_clock`] before it is observed: one more than [`MAX_CLOCK_JUMP`] ahead of this
//! node's clock is refused (the message is dropped, or a `Submit` is answered
//! `Rejected { protocol }`), counted and traced, so no peer can push the clock towards its end.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;

use chat_core::{
    CoreError, ErrorCode, Event, LamportClock, MAX_CLOCK_JUMP, MessageBuffer, MessageId, NodeId, OutgoingMessage,
    PeerInfo, Timestamp,
};

use super::pending::Pending;
use super::{Counters, MAX_PEERS, MAX_PENDING, Next, NodeConfig, Output};
use crate::election::{Bully, ElectionConfig, Term};
use crate::membership::{Allocator, Rng, View};
use crate::ordering::{Log, Report};
use crate::protocol::{Entry, Envelope, Member, PeerMsg, Pos, Submission};

/// What every role of a node shares; see the module documentation.
#[derive(Debug)]
pub(super) struct Common {
    /// The settings.
    pub(super) cfg: NodeConfig,
    /// Nonces and ID blocks.
    pub(super) rng: Rng,
    /// This node's ID, once admitted (kept while rejoining: it names the sender until a new one).
    pub(super) id: Option<NodeId>,
    /// The Bully election (also the source of the current term).
    pub(super) bully: Bully,
    /// The members of the group.
    pub(super) view: View,
    /// The node-ID allocator (used by coordinators, replicated by everybody).
    pub(super) alloc: Allocator,
    /// Ordered entries, delivered and not yet delivered.
    pub(super) log: Log,
    /// Delivered messages, for the program and for joiners.
    pub(super) history: MessageBuffer,
    /// The Lamport clock.
    pub(super) clock: LamportClock,
    /// Own messages not yet ordered, resubmitted to every new coordinator, paced.
    pub(super) pending: Pending,
    /// Sequence number of the next own message.
    pub(super) next_seq: u64,
    /// The last term this node followed (kept while it is between coordinators).
    pub(super) followed: Option<Term>,
    /// Addresses of nodes heard from, for answering nodes outside the view (bounded).
    pub(super) addrs: HashMap<NodeId, SocketAddr>,
    /// Input refused or throttled so far.
    pub(super) counters: Counters,
    /// Outputs not yet polled.
    pub(super) out: VecDeque<Output>,
}

impl Common {
    /// The state of a node that has not joined anything yet.
    pub(super) fn new(cfg: NodeConfig) -> Self {
        Common {
            rng: Rng::new(cfg.seed),
            id: None,
            bully: Bully::new(NodeId(0), ElectionConfig::default()),
            view: View::default(),
            alloc: Allocator::default(),
            log: Log::new(cfg.sync_window),
            history: MessageBuffer::new(cfg.history),
            clock: LamportClock::new(NodeId(0)),
            pending: Pending::default(),
            next_seq: 1,
            followed: None,
            addrs: HashMap::new(),
            counters: Counters::default(),
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

    /// The coordinator's listening address, if known.
    pub(super) fn coordinator_addr(&self) -> Option<SocketAddr> {
        self.coordinator().and_then(|c| self.view.get(c)).map(|m| m.addr)
    }

    /// A member as the program sees it.
    pub(super) fn peer_info(&self, id: NodeId) -> Option<PeerInfo> {
        self.view.get(id).map(|m| PeerInfo {
            name: m.name.clone(),
            node_id: Some(m.id),
            addr: Some(m.addr),
            coordinator: self.coordinator() == Some(m.id),
        })
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
        Envelope { from: self.id, addr: self.cfg.addr, msg }
    }

    /// Sends `msg` to the node listening at `to`.
    pub(super) fn send_to(&mut self, to: SocketAddr, msg: PeerMsg) {
        let msg = self.envelope(msg);
        self.out.push_back(Output::Send { to, msg });
    }

    /// Sends `msg` to node `to`, if its address is known.
    pub(super) fn send_id(&mut self, to: NodeId, msg: PeerMsg) {
        if let Some(addr) = self.view.get(to).map(|m| m.addr).or_else(|| self.addrs.get(&to).copied()) {
            self.send_to(addr, msg);
        }
    }

    /// Multicasts `msg` to the discovery group.
    pub(super) fn multicast(&mut self, msg: PeerMsg) {
        let env = self.envelope(msg);
        self.out.push_back(Output::Multicast(env));
    }

    /// Reports an event to the program.
    pub(super) fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    /// Tells the election who the members are.
    pub(super) fn sync_peers(&mut self) {
        self.bully.set_peers(self.view.ids());
    }

    // ---------------------------------------------------------------- shared state changes

    /// Remembers where node `from` listens (the table is bounded: it is cleared when full).
    pub(super) fn heard(&mut self, from: NodeId, addr: SocketAddr) {
        if self.addrs.len() >= 4 * MAX_PEERS {
            self.addrs.clear();
        }
        self.addrs.insert(from, addr);
    }

    /// Becomes member `id` of a group of `members`, with a fresh election that remembers the
    /// highest epoch heard of.
    pub(super) fn become_member(&mut self, id: NodeId, members: Vec<Member>) {
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

    /// Delivers everything held up to `pos`.
    pub(super) fn commit(&mut self, pos: Pos) {
        for (_, entry, unknown) in self.log.commit(pos) {
            if let Entry::Visible(msg) = entry {
                self.clock.observe(msg.lamport);
                self.history.insert(msg.clone());
                if self.pending.remove(&msg.id) {
                    self.out.push_back(Output::Sent { id: msg.id, unknown });
                }
                self.event(Event::Message(msg));
            }
        }
    }

    /// An own pending message turned out to be ordered already (a `Duplicate` answer, a joiner's
    /// history, a coordinator's own resubmission): it is reported sent, once.
    pub(super) fn ordered_elsewhere(&mut self, id: MessageId) {
        if self.pending.remove(&id) {
            self.out.push_back(Output::Sent { id, unknown: Vec::new() });
        }
    }

    /// An own pending message was refused by the coordinator (this node's own, or another's).
    pub(super) fn rejected(&mut self, id: MessageId, code: ErrorCode, reason: String) {
        if self.pending.remove(&id) {
            let error = CoreError::Rejected { code, message: reason };
            self.out.push_back(Output::SendFailed { id, error });
        }
    }

    /// Fails every own message not yet ordered (the node leaves).
    pub(super) fn fail_pending(&mut self) {
        for id in self.pending.take_all() {
            self.out
                .push_back(Output::SendFailed { id, error: CoreError::Closed("left before it was ordered".into()) });
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

    /// `NotMember` from the coordinator, or from any coordinator while this node follows none (it
    /// called an election into a group that had dropped it): rejoin through its sender.
    pub(super) fn on_not_member(&mut self, from: NodeId, sender: SocketAddr) -> Next {
        if !self.follows(from) && self.term().is_some() {
            return Next::Stay;
        }
        tracing::info!(me = ?self.id, "expelled by the coordinator: rejoining");
        Next::Rejoin(Some(sender))
    }
}

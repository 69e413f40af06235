//! One P2P node as a sans-IO state machine: join, membership, heartbeats, failure detection,
//! Bully election, sequencing, failover sync and history, composed.
//!
//! ```text
//!            ┌──────────┐ JoinAck              ┌──────────┐ won the election  ┌─────────────┐
//!  start ───►│ Joining  │─────────────────────►│  Member  │──────────────────►│ Coordinator │
//!            └──────────┘                      └──────────┘◄──────────────────└─────────────┘
//!              │ no answer within join_timeout       ▲   NotMember: rejoin      │ higher term /
//!              └──────────► founds a group ──────────┼──────────────────────────┘ Stale / Beacon
//! ```
//!
//! Driving it (as quinn-proto): call [`Node::handle`], [`Node::submit`] or
//! [`Node::handle_timeout`], then drain [`Node::poll_output`] and sleep until
//! [`Node::poll_timeout`]. It never reads the clock, never touches a socket; randomness comes from
//! the seed in [`NodeConfig`].

mod coordinator;
mod member;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_core::{
    ChatMessage, CoreError, ErrorCode, Event, LamportClock, MessageBuffer, MessageId, NodeId, OutgoingMessage,
    PeerInfo, UserName,
};

use crate::election::{Bully, ElectionConfig, ElectionOutput, Term};
use crate::membership::{Allocator, Rng, View};
use crate::ordering::Log;
use crate::protocol::{Envelope, PeerMsg, Submission};

use coordinator::CoordState;

/// Most members a group admits.
pub const MAX_PEERS: usize = 256;
/// Most unacknowledged own messages; further sends fail with `busy`.
pub const MAX_PENDING: usize = 1024;

/// Settings of a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The user name to join with.
    pub name: UserName,
    /// The address this node accepts TCP connections on.
    pub addr: SocketAddr,
    /// Known nodes to join through (besides multicast).
    pub peers: Vec<SocketAddr>,
    /// Coordinator heartbeat interval.
    pub heartbeat: Duration,
    /// Silence after which a coordinator or member is considered dead.
    pub timeout: Duration,
    /// How long to look for a coordinator before founding a group.
    pub join_timeout: Duration,
    /// Messages kept in the history (and sent to joiners).
    pub history: usize,
    /// Delivered entries kept for the failover sync.
    pub sync_window: usize,
    /// Seed for nonces and ID blocks.
    pub seed: u64,
}

impl NodeConfig {
    /// Defaults: heartbeat 250 ms, timeout 1 s, join timeout 1.5 s, history 1000, window 256.
    pub fn new(name: UserName, addr: SocketAddr, seed: u64) -> Self {
        NodeConfig {
            name,
            addr,
            peers: Vec::new(),
            heartbeat: Duration::from_millis(250),
            timeout: Duration::from_secs(1),
            join_timeout: Duration::from_millis(1500),
            history: chat_core::buffer::DEFAULT_HISTORY,
            sync_window: 256,
            seed,
        }
    }
}

/// What the node receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A frame from a TCP connection.
    Receive(Envelope),
    /// A multicast datagram.
    Datagram(Envelope),
    /// The TCP link to the node listening at this address broke (messages in flight are lost).
    LinkDown(SocketAddr),
    /// Leave cleanly (hand over first if coordinator).
    Leave,
}

/// What the node asks its driver to do or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a frame over TCP to the node listening at `to`.
    Send {
        /// Destination address.
        to: SocketAddr,
        /// The frame.
        msg: Envelope,
    },
    /// Send a datagram to the multicast group.
    Multicast(Envelope),
    /// Report an event to the program.
    Event(Event),
    /// An own message was ordered.
    Sent {
        /// Its ID.
        id: MessageId,
        /// Named recipients that were not online.
        unknown: Vec<UserName>,
    },
    /// An own message was refused.
    SendFailed {
        /// Its ID.
        id: MessageId,
        /// Why.
        error: CoreError,
    },
    /// This node has (a new) ID.
    Joined {
        /// The ID.
        id: NodeId,
    },
    /// The join was refused; the node is closed.
    Refused {
        /// Why.
        code: ErrorCode,
        /// Human-readable reason.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Joining { nonce: u64, retry_at: Instant, give_up_at: Instant },
    Member,
    Left,
}

/// One node; see the module documentation.
#[derive(Debug)]
pub struct Node {
    cfg: NodeConfig,
    rng: Rng,
    phase: Phase,
    id: Option<NodeId>,
    bully: Bully,
    view: View,
    alloc: Allocator,
    log: Log,
    history: MessageBuffer,
    clock: LamportClock,
    pending: BTreeMap<MessageId, Submission>,
    next_seq: u64,
    coord: Option<CoordState>,
    /// The last term this node followed (kept while it is between coordinators).
    followed: Option<Term>,
    last_heard: Instant,
    /// Addresses of nodes heard from, for answering nodes outside the view (bounded).
    addrs: HashMap<NodeId, SocketAddr>,
    out: VecDeque<Output>,
}

impl Node {
    /// A node that starts joining at `now`.
    pub fn new(now: Instant, cfg: NodeConfig) -> Self {
        let mut node = Node {
            rng: Rng::new(cfg.seed),
            phase: Phase::Left,
            id: None,
            bully: Bully::new(NodeId(0), ElectionConfig::default()),
            view: View::default(),
            alloc: Allocator::default(),
            log: Log::new(cfg.sync_window),
            history: MessageBuffer::new(cfg.history),
            clock: LamportClock::new(NodeId(0)),
            pending: BTreeMap::new(),
            next_seq: 1,
            coord: None,
            followed: None,
            last_heard: now,
            addrs: HashMap::new(),
            out: VecDeque::new(),
            cfg,
        };
        node.rejoin(now, None);
        node
    }

    // ---------------------------------------------------------------- getters

    /// This node's ID, once admitted.
    pub fn id(&self) -> Option<NodeId> {
        self.id
    }

    /// The user name.
    pub fn name(&self) -> &UserName {
        &self.cfg.name
    }

    /// The coordinator, if known.
    pub fn coordinator(&self) -> Option<NodeId> {
        self.bully.coordinator()
    }

    /// The current term, if a coordinator is known.
    pub fn term(&self) -> Option<Term> {
        self.bully.term()
    }

    /// Whether this node is the coordinator (and done syncing).
    pub fn is_coordinator(&self) -> bool {
        self.coord.as_ref().is_some_and(|c| !c.is_syncing()) && self.bully.is_coordinator()
    }

    /// Whether the node is a member of a group (not joining, not left).
    pub fn is_member(&self) -> bool {
        self.phase == Phase::Member
    }

    /// Whether the node has left or was refused.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Left
    }

    /// The members, this node included, with the coordinator flagged.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let coordinator = self.coordinator();
        self.view
            .iter()
            .map(|m| PeerInfo {
                name: m.name.clone(),
                node_id: Some(m.id),
                addr: Some(m.addr),
                coordinator: Some(m.id) == coordinator,
            })
            .collect()
    }

    /// The last `limit` messages this node may see, oldest first.
    pub fn history(&self, limit: usize) -> Vec<ChatMessage> {
        self.history.last(limit)
    }

    /// Own messages not yet ordered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    // ---------------------------------------------------------------- inputs

    /// Submits an own message; returns its ID at once. The message is kept until the coordinator
    /// orders it, and resubmitted to every new coordinator.
    pub fn submit(&mut self, _now: Instant, msg: OutgoingMessage) -> Result<MessageId, CoreError> {
        if self.phase == Phase::Left {
            return Err(CoreError::Closed("the node has left".into()));
        }
        chat_core::check_body(&msg.body)?;
        if self.pending.len() >= MAX_PENDING {
            return Err(CoreError::Rejected {
                code: ErrorCode::Busy,
                message: "too many unacknowledged messages".into(),
            });
        }
        let origin = self.id.unwrap_or_default();
        let id = MessageId::new(origin, self.next_seq);
        self.next_seq += 1;
        let sent_at = self.clock.observe(msg.sent_at);
        let sub = Submission { id, sender: self.cfg.name.clone(), recipients: msg.recipients, body: msg.body, sent_at };
        self.pending.insert(id, sub.clone());
        self.forward_submission(sub);
        Ok(id)
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Receive(env) => self.receive(now, env, false),
            Input::Datagram(env) => self.receive(now, env, true),
            Input::LinkDown(addr) => self.link_down(now, addr),
            Input::Leave => self.leave(now),
        }
    }

    /// Fires every deadline that has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Left => return,
            Phase::Joining { nonce, retry_at, give_up_at } => {
                if now >= give_up_at {
                    self.found(now);
                } else if now >= retry_at {
                    self.send_join_requests(nonce, None);
                    let retry_at = now + self.cfg.heartbeat * 2;
                    self.phase = Phase::Joining { nonce, retry_at, give_up_at };
                }
                return;
            }
            Phase::Member => {}
        }
        self.bully.handle_timeout(now);
        self.pump_election(now);
        if self.coord.is_some() {
            self.coordinator_timeout(now);
        } else {
            self.member_timeout(now);
        }
    }

    // ---------------------------------------------------------------- outputs

    /// The next output, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Node::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mine = match self.phase {
            Phase::Left => return None,
            Phase::Joining { retry_at, give_up_at, .. } => return Some(retry_at.min(give_up_at)),
            Phase::Member => match &self.coord {
                Some(c) => Some(c.deadline()),
                // While electing, the election's own deadlines drive progress.
                None if self.bully.is_electing() => None,
                None => Some(self.last_heard + self.cfg.timeout),
            },
        };
        [mine, self.bully.poll_timeout()].into_iter().flatten().min()
    }

    // ---------------------------------------------------------------- plumbing

    fn envelope(&self, wire: PeerMsg) -> Envelope {
        Envelope { from: self.id, addr: self.cfg.addr, msg: wire }
    }

    fn send_to(&mut self, to: SocketAddr, wire: PeerMsg) {
        let msg = self.envelope(wire);
        self.out.push_back(Output::Send { to, msg });
    }

    fn send_id(&mut self, to: NodeId, wire: PeerMsg) {
        if let Some(addr) = self.view.get(to).map(|m| m.addr).or_else(|| self.addrs.get(&to).copied()) {
            self.send_to(addr, wire);
        }
    }

    fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    fn coordinator_addr(&self) -> Option<SocketAddr> {
        self.coordinator().and_then(|c| self.view.get(c)).map(|m| m.addr)
    }

    fn peer_info(&self, id: NodeId) -> Option<PeerInfo> {
        self.view.get(id).map(|m| PeerInfo {
            name: m.name.clone(),
            node_id: Some(m.id),
            addr: Some(m.addr),
            coordinator: self.coordinator() == Some(m.id),
        })
    }

    fn sync_peers(&mut self) {
        self.bully.set_peers(self.view.ids());
    }

    /// Drains the election's outputs into node outputs.
    fn pump_election(&mut self, now: Instant) {
        while let Some(o) = self.bully.poll_output() {
            match o {
                ElectionOutput::Send { to, msg } => self.send_id(to, PeerMsg::Election(msg)),
                ElectionOutput::CoordinatorChanged { term } => self.coordinator_changed(now, term),
            }
        }
    }

    fn coordinator_changed(&mut self, now: Instant, term: Term) {
        self.last_heard = now;
        if let Some(held) = self.log.lineage().filter(|l| *l > term && Some(term.coordinator) != self.id) {
            // Following `term` would order positions below ones this node holds (it followed
            // another side of a partition that reached a newer term). Refuse, and call an election
            // claiming an epoch above `held`: the coordinator answers by taking a newer term.
            tracing::info!(me = ?self.id, offered = %term, %held, "refusing a term older than the log");
            self.bully.step_down();
            self.bully.observe_epoch(held.epoch + 1);
            self.bully.handle(now, crate::election::ElectionInput::Start);
            self.pump_election(now);
            return;
        }
        let readopted = self.followed == Some(term);
        self.followed = Some(term);
        if Some(term.coordinator) == self.id {
            self.become_coordinator(now, term);
        } else {
            self.coord = None;
            // Acknowledge what arrived while no coordinator was known, so commits resume.
            let index = self.log.held_index(term);
            if index > 0 {
                self.send_id(term.coordinator, PeerMsg::Ack { term, index });
            }
            // Messages submitted while no coordinator was known went nowhere. A new term's sync asks
            // for them (`SyncRequest`); a term adopted again after an election does not: send them now
            // (a copy the coordinator already ordered is answered `Duplicate`).
            if readopted {
                let pending: Vec<Submission> = self.pending.values().cloned().collect();
                for sub in pending {
                    self.send_id(term.coordinator, PeerMsg::Submit(sub));
                }
            }
        }
        if let Some(m) = self.view.get(term.coordinator) {
            let event = Event::CoordinatorChanged { name: m.name.clone(), node_id: m.id, epoch: term.epoch };
            self.event(event);
        }
    }

    fn receive(&mut self, now: Instant, env: Envelope, datagram: bool) {
        if self.phase == Phase::Left {
            return;
        }
        if let Phase::Joining { nonce, .. } = self.phase {
            self.receive_joining(now, env, nonce);
            return;
        }
        if datagram {
            match env.msg {
                PeerMsg::Beacon { term, addr } => self.on_beacon(now, term, addr),
                PeerMsg::JoinRequest { name, addr, nonce, clock } if self.coord.is_some() => {
                    self.clock.observe(chat_core::Timestamp::new(clock, NodeId::default()));
                    self.on_join_request(now, name, addr, nonce)
                }
                _ => {}
            }
            return;
        }
        if let Some(from) = env.from {
            if self.addrs.len() >= 4 * MAX_PEERS {
                self.addrs.clear();
            }
            self.addrs.insert(from, env.addr);
            if let Some(c) = self.coord.as_mut() {
                c.heard(from, now);
            }
        }
        if self.coord.is_some() && self.coordinator_receive(now, &env) {
            return;
        }
        self.member_receive(now, env);
    }
}

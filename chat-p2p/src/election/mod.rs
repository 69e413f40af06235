//! The Bully election as a sans-IO state machine.
//!
//! ```text
//!                 start() / coordinator lost / Resign received
//!                               │
//!                               ▼
//!          no higher peer ┌────────────┐ higher peers exist: Election ──► each higher ID
//!        ┌────────────────│   start    │───────────────────────┐
//!        ▼                └────────────┘                       ▼
//!  ┌───────────┐  answer deadline, no Answer          ┌──────────────┐
//!  │  I win:   │◄──────────────────────────────────────│  Electing    │
//!  │ epoch+1,  │                                       └──────────────┘
//!  │Coordinator│                                 Answer │
//!  │ ──► all   │                                        ▼
//!  └───────────┘   announce deadline, none came  ┌──────────────┐  Coordinator(higher term)
//!        ▲        ┌──────────── restart ◄────────│  Awaiting    │──────────► Idle (follower)
//!        │        ▼                               └──────────────┘
//!      start()                                   
//! ```
//!
//! Rules, with `me` the local ID:
//! - `Election` from a lower ID: reply `Answer`. If coordinator, re-announce `Coordinator` to it; if
//!   following a coordinator believed alive (the node has not stepped down), that is all: an election
//!   runs only when a coordinator fails, and the candidate hears from its coordinator again (the
//!   node re-adopts the term it followed). Otherwise (no coordinator known) start an own election
//!   (unless one is running).
//! - `Coordinator{e, tag}` from `j`: the term this node last followed, offered again while it is
//!   between coordinators, is re-adopted whatever `j`'s rank (its coordinator was alive after all).
//!   Otherwise, if `j > me` and `(e, j, tag)` is newer than the known term, accept it (a stale
//!   coordinator steps down this way). If `j < me`, bully: start an election, which wins with an
//!   epoch above `e`. An older term is answered with the current `Coordinator` so its sender learns
//!   it is stale.
//! - `Resign` from the current coordinator: start an election at once (no timeout to wait for).
//!
//! Nobody starts an election because a node joined: the driver calls [`ElectionInput::Start`] only
//! when its coordinator falls silent, its link to it breaks, or (founding) there is nobody to ask.
//!
//! Call order (as in quinn-proto): feed [`Bully::handle`] / [`Bully::handle_timeout`], then drain
//! [`Bully::poll_output`] and re-arm the timer from [`Bully::poll_timeout`].

mod messages;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use chat_core::NodeId;

pub use messages::{ElectionMsg, Term};

/// Timeouts of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionConfig {
    /// How long a candidate waits for an `Answer` before declaring itself coordinator.
    pub answer_timeout: Duration,
    /// How long a candidate that got an `Answer` waits for the `Coordinator` announcement before
    /// starting again.
    pub announce_timeout: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig { answer_timeout: Duration::from_millis(500), announce_timeout: Duration::from_secs(1) }
    }
}

/// Something the election tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionOutput {
    /// Send `msg` to node `to`.
    Send {
        /// Destination node.
        to: NodeId,
        /// The message.
        msg: ElectionMsg,
    },
    /// A coordinator is now known (possibly this node).
    CoordinatorChanged {
        /// Its term.
        term: Term,
    },
}

/// What the election receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionInput {
    /// Start an election (the coordinator is silent or gone, or this node just joined).
    Start,
    /// A message from node `from`.
    Receive {
        /// The sender.
        from: NodeId,
        /// The message.
        msg: ElectionMsg,
    },
    /// This node leaves cleanly: if coordinator, hand over (`Resign` to every peer).
    Leave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Electing { deadline: Instant },
    Awaiting { deadline: Instant },
    Left,
}

/// The Bully state machine of one node.
#[derive(Debug, Clone)]
pub struct Bully {
    me: NodeId,
    /// This process's tag, in every term it wins.
    tag: u64,
    /// The last term adopted (kept while between coordinators): offered again, it is re-adopted.
    last: Option<Term>,
    config: ElectionConfig,
    peers: BTreeSet<NodeId>,
    term: Option<Term>,
    max_epoch: u64,
    state: State,
    out: VecDeque<ElectionOutput>,
}

impl Bully {
    /// A node `me` that knows no coordinator and no peer yet.
    pub fn new(me: NodeId, config: ElectionConfig) -> Self {
        Bully {
            me,
            tag: 0,
            last: None,
            config,
            peers: BTreeSet::new(),
            term: None,
            max_epoch: 0,
            state: State::Idle,
            out: VecDeque::new(),
        }
    }

    /// The same machine, winning its terms with this process tag.
    #[must_use]
    pub fn with_tag(mut self, tag: u64) -> Self {
        self.tag = tag;
        self
    }

    // ---- getters ----

    /// The current coordinator, if known.
    pub fn coordinator(&self) -> Option<NodeId> {
        self.term.map(|t| t.coordinator)
    }

    /// The current term, if a coordinator is known.
    pub fn term(&self) -> Option<Term> {
        self.term
    }

    /// Whether this node is the coordinator.
    pub fn is_coordinator(&self) -> bool {
        self.coordinator() == Some(self.me)
    }

    /// Whether an election is running here.
    pub fn is_electing(&self) -> bool {
        matches!(self.state, State::Electing { .. } | State::Awaiting { .. })
    }

    /// The highest epoch heard of.
    pub fn max_epoch(&self) -> u64 {
        self.max_epoch
    }

    /// This node's ID.
    pub fn id(&self) -> NodeId {
        self.me
    }

    // ---- inputs ----

    /// Replaces the set of known peers (the local node is ignored if present).
    pub fn set_peers(&mut self, peers: impl IntoIterator<Item = NodeId>) {
        self.peers = peers.into_iter().filter(|p| *p != self.me).collect();
    }

    /// Records an epoch learned elsewhere (heartbeats, join acknowledgements, sync).
    pub fn observe_epoch(&mut self, epoch: u64) {
        self.max_epoch = self.max_epoch.max(epoch);
    }

    /// Adopts a term learned outside an election (a join acknowledgement), if newer.
    pub fn adopt(&mut self, term: Term) {
        self.observe_epoch(term.epoch);
        if self.term.is_none_or(|t| term > t) {
            self.set_term(term);
            self.state = State::Idle;
        }
    }

    /// The last term adopted, kept while between coordinators.
    pub fn last_term(&self) -> Option<Term> {
        self.last
    }

    /// While coordinator, takes a new term above `epoch` (announced to every peer): a member
    /// reported a term at least as new as this coordinator's.
    pub fn reassert_above(&mut self, epoch: u64) {
        if self.is_coordinator() {
            self.observe_epoch(epoch);
            self.win();
        }
    }

    /// Forgets the coordinator without an election (it stepped down, or is silent): the caller
    /// starts an election or waits for a new coordinator to call.
    pub fn step_down(&mut self) {
        self.term = None;
        if self.state != State::Left {
            self.state = State::Idle;
        }
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: ElectionInput) {
        match input {
            ElectionInput::Start => self.start(now),
            ElectionInput::Leave => self.leave(),
            ElectionInput::Receive { from, msg } => self.receive(now, from, msg),
        }
    }

    /// Fires whatever deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Electing { deadline } if now >= deadline => self.win(),
            State::Awaiting { deadline } if now >= deadline => {
                tracing::debug!(me = %self.me, "no coordinator announced after an answer: restarting the election");
                self.state = State::Idle;
                self.start(now);
            }
            _ => {}
        }
    }

    // ---- outputs ----

    /// The next output, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ElectionOutput> {
        self.out.pop_front()
    }

    /// When [`Bully::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Electing { deadline } | State::Awaiting { deadline } => Some(deadline),
            State::Idle | State::Left => None,
        }
    }

    // ---- internals ----

    fn set_term(&mut self, term: Term) {
        self.term = Some(term);
        self.last = Some(term);
    }

    fn announce(term: Term) -> ElectionMsg {
        ElectionMsg::Coordinator { epoch: term.epoch, tag: term.tag }
    }

    fn send(&mut self, to: NodeId, msg: ElectionMsg) {
        self.out.push_back(ElectionOutput::Send { to, msg });
    }

    fn start(&mut self, now: Instant) {
        if self.state != State::Idle {
            return;
        }
        let higher: Vec<NodeId> = self.peers.range(NodeId(self.me.0 + 1)..).copied().collect();
        if higher.is_empty() {
            self.win();
            return;
        }
        tracing::debug!(me = %self.me, ?higher, "starting an election");
        for to in higher {
            self.send(to, ElectionMsg::Election { epoch: self.max_epoch });
        }
        self.state = State::Electing { deadline: now + self.config.answer_timeout };
    }

    fn win(&mut self) {
        // Saturating: an epoch comes from the network, and a hostile `u64::MAX` must not wrap it.
        self.max_epoch = self.max_epoch.saturating_add(1);
        let term = Term::tagged(self.max_epoch, self.me, self.tag);
        tracing::info!(me = %self.me, epoch = term.epoch, "won the election");
        self.set_term(term);
        self.state = State::Idle;
        let peers: Vec<NodeId> = self.peers.iter().copied().collect();
        for to in peers {
            self.send(to, Self::announce(term));
        }
        self.out.push_back(ElectionOutput::CoordinatorChanged { term });
    }

    fn leave(&mut self) {
        if self.is_coordinator() {
            let epoch = self.term.map_or(0, |t| t.epoch);
            let peers: Vec<NodeId> = self.peers.iter().copied().collect();
            for to in peers {
                self.send(to, ElectionMsg::Resign { epoch });
            }
        }
        self.state = State::Left;
    }

    fn receive(&mut self, now: Instant, from: NodeId, msg: ElectionMsg) {
        if self.state == State::Left {
            return;
        }
        self.observe_epoch(msg.epoch());
        match msg {
            ElectionMsg::Election { .. } => {
                if from < self.me {
                    self.send(from, ElectionMsg::Answer { epoch: self.max_epoch });
                    match self.term {
                        // The caller has heard of a newer epoch than this coordinator's (another
                        // group's, before a partition healed): take a term above it, so every
                        // position this coordinator orders from now on is newer than anything the
                        // caller holds.
                        Some(term) if term.coordinator == self.me && msg.epoch() > term.epoch => self.win(),
                        Some(term) if term.coordinator == self.me => self.send(from, Self::announce(term)),
                        // Following a coordinator believed alive: the answer is enough; no election
                        // while the coordinator lives (the candidate hears from it again).
                        Some(_) => {}
                        None => self.start(now),
                    }
                }
            }
            ElectionMsg::Answer { .. } => {
                if from > self.me && matches!(self.state, State::Electing { .. }) {
                    self.state = State::Awaiting { deadline: now + self.config.announce_timeout };
                }
            }
            ElectionMsg::Coordinator { epoch, tag } => {
                let offered = Term::tagged(epoch, from, tag);
                if self.term.is_none() && self.last == Some(offered) {
                    // The coordinator this node followed is alive after all: the election is over.
                    tracing::info!(me = %self.me, coordinator = %from, epoch, "the coordinator is back: following it again");
                    self.set_term(offered);
                    self.state = State::Idle;
                    self.out.push_back(ElectionOutput::CoordinatorChanged { term: offered });
                } else if from < self.me {
                    // Bully: a lower node claims the role while this one is alive.
                    if self.is_coordinator() && self.term.is_some_and(|t| t > offered) {
                        let current = self.term.unwrap_or_default();
                        self.send(from, Self::announce(current));
                    } else {
                        self.term = None;
                        self.state = if self.state == State::Left { State::Left } else { State::Idle };
                        self.start(now);
                    }
                } else if self.term.is_none_or(|t| offered > t) {
                    tracing::info!(me = %self.me, coordinator = %from, epoch, "new coordinator");
                    self.set_term(offered);
                    self.state = State::Idle;
                    self.out.push_back(ElectionOutput::CoordinatorChanged { term: offered });
                } else if self.term == Some(offered) {
                    // The coordinator we follow re-announced itself to our election: it is alive,
                    // so the election is over (without this, we would elect again forever).
                    self.state = State::Idle;
                } else if let Some(current) = self.term.filter(|t| *t > offered && t.coordinator == self.me) {
                    // A stale coordinator: tell it who rules now.
                    self.send(from, Self::announce(current));
                }
            }
            ElectionMsg::Resign { epoch } => {
                if self.term.is_some_and(|t| t.coordinator == from && t.epoch == epoch) {
                    tracing::info!(me = %self.me, coordinator = %from, "coordinator resigned: electing at once");
                    self.term = None;
                    self.peers.remove(&from);
                    self.state = State::Idle;
                    self.start(now);
                }
            }
        }
    }
}

//! One P2P node as a sans-IO state machine: join, membership, heartbeats, failure detection,
//! Bully election, sequencing, rooms, failover sync and history, composed.
//!
//! A node is in one role at a time, each with its own state and methods; what every role shares
//! (ID, the group's state as of the last delivered position, log, history, clock, own pending
//! messages and their pacing (`pending.rs`), own room requests (`rooms.rs`), the election) is
//! `Common` (`common.rs`). Input from peers is never trusted: far-ahead clocks, names
//! that break the naming rules or imitate a member's, and submissions over a member's rate are
//! refused and counted ([`Node::counters`]); see `guard_tests.rs`. Who a frame is from is checked
//! against the link it came over (with a group secret, links are authenticated and each member's
//! ID is bound to its key): see `identity.rs` and `identity_tests.rs`.
//!
//! ```text
//!            ┌──────────┐ JoinAck              ┌──────────┐ won the election  ┌─────────────┐
//!  start ───►│ Joining  │─────────────────────►│  Member  │──────────────────►│ Coordinator │
//!            └──────────┘                      └──────────┘◄──────────────────└─────────────┘
//!              │ no answer within join_timeout       ▲   NotMember: rejoin      │ newer term /
//!              └──────────► founds a group ──────────┼──────────────────────────┘ Stale / Beacon
//!                (with --peer: closed instead)
//! ```
//!
//! A member becomes coordinator only through an election, and an election starts only when the
//! coordinator fails (silence, a broken link, `Resign`): a node that joins never takes over.
//!
//! | role          | state                                   | file             |
//! |---------------|-----------------------------------------|------------------|
//! | `Joining`     | nonce, retry and give-up deadlines      | `joining.rs`     |
//! | `Member`      | when the coordinator was last heard     | `member.rs`      |
//! | `Coordinator` | head of the log, sequencer, outboxes, sync, liveness, archive, rate buckets | `coordinator.rs`, `admission.rs`, `sequencing.rs`, `outbox.rs`, `archive.rs`, `flood.rs`, `sync.rs`, `rooms.rs` |
//! | `Left`        | nothing: the node is closed             |                  |
//!
//! Every input goes through one dispatch point, `Node::receive` in `dispatch.rs` (a `match` on
//! the role and the message), to the role that owns it; the role's handler answers what the node
//! does next (stay, rejoin, become another role, take a newer term), and the node then drains the
//! election, whose outcome (`CoordinatorChanged`) is the other way roles change.
//!
//! Driving it (as quinn-proto): give the wall clock ([`Input::Clock`]), call [`Node::handle`],
//! [`Node::submit`], [`Node::room_request`] or [`Node::handle_timeout`] (as many as a turn has),
//! then drain [`Node::poll_output`] and sleep until [`Node::poll_timeout`]. The coordinator batches:
//! what it ordered during the turn goes out when the output queue runs dry (`outbox.rs`). It never
//! reads the clock, never touches a socket; randomness comes from the seed in [`NodeConfig`].

mod admission;
mod archive;
mod common;
mod coordinator;
mod dispatch;
mod flood;
#[cfg(test)]
mod guard_tests;
mod identity;
#[cfg(test)]
mod identity_tests;
mod io;
mod joining;
mod member;
#[cfg(test)]
mod offline_tests;
mod outbox;
mod pending;
mod rooms;
mod sequencing;
mod sync;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{ChatMessage, CoreError, MessageId, NodeId, OutgoingMessage, PeerInfo, UserName};

pub use flood::{
    DEFAULT_BYTE_RATE, DEFAULT_FLOOD_STRIKES, DEFAULT_MESSAGE_RATE, FLOOD_GRACE, Limits, MIN_FLOOD_STRIKES,
};
pub use io::{Channel, Counters, Input, MAX_PEERS, MAX_PENDING, NodeConfig, Output, Untrusted};
pub use joining::MAX_HOLDS;
pub use pending::{MAX_RETRY_AFTER, SUBMIT_WINDOW};
pub use rooms::{JOIN_HISTORY, MAX_ROOM_REQUESTS};

use crate::election::Term;
use crate::protocol::{Envelope, PeerMsg};
use common::Common;
use coordinator::Coordinator;
use joining::Joining;
use member::Follower;

/// What the node is doing.
#[derive(Debug)]
enum Role {
    /// Looking for a group.
    Joining(Joining),
    /// A member following a coordinator (or electing one).
    Member(Follower),
    /// The coordinator of the group.
    Coordinator(Box<Coordinator>),
    /// Left or refused: closed.
    Left,
}

/// What a role's handler asks the node to do next.
#[derive(Debug)]
#[must_use]
enum Next {
    /// Stay in this role.
    Stay,
    /// Join again, through this address too if given.
    Rejoin(Option<SocketAddr>),
    /// Switch to this role.
    Become(Role),
    /// As coordinator, take a new term above this one (a member holds it).
    ReassertAbove(Term),
}

/// Who a received message comes from, as far as the node can tell.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// A multicast datagram (from anybody).
    Multicast,
    /// A TCP frame from a node without an ID (a joiner, or a request a member forwarded).
    Anonymous,
    /// A TCP frame from node `id`.
    Node(NodeId),
}

/// One node; see the module documentation.
#[derive(Debug)]
pub struct Node {
    common: Common,
    role: Role,
}

impl Node {
    /// A node that starts joining at `now` (or, with [`NodeConfig::found`], founds a group).
    pub fn new(now: Instant, cfg: NodeConfig) -> Self {
        let found = cfg.found;
        let mut node = Node { common: Common::new(cfg), role: Role::Left };
        if found {
            let next = joining::found(&mut node.common, now);
            node.apply(now, next);
        } else {
            node.rejoin(now, None);
        }
        node
    }

    // ---------------------------------------------------------------- getters

    /// This node's ID, once admitted.
    pub fn id(&self) -> Option<NodeId> {
        self.common.id
    }

    /// The user name.
    pub fn name(&self) -> &UserName {
        &self.common.cfg.name
    }

    /// The coordinator, if known.
    pub fn coordinator(&self) -> Option<NodeId> {
        self.common.coordinator()
    }

    /// The current term, if a coordinator is known.
    pub fn term(&self) -> Option<Term> {
        self.common.term()
    }

    /// Whether this node is the coordinator (and done syncing).
    pub fn is_coordinator(&self) -> bool {
        matches!(&self.role, Role::Coordinator(c) if !c.is_syncing()) && self.common.bully.is_coordinator()
    }

    /// Whether the node is a member of a group (not joining, not left).
    pub fn is_member(&self) -> bool {
        matches!(self.role, Role::Member(_) | Role::Coordinator(_))
    }

    /// Whether the node has left or was refused.
    pub fn is_closed(&self) -> bool {
        matches!(self.role, Role::Left)
    }

    /// The members, this node included, by ID, with the coordinator flagged: the group as of the
    /// last position this node delivered (the same list at every node once the group is quiet).
    /// Transient members (one-shots) are not listed, except this node itself.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let group = &self.common.group;
        let listed = |id: &NodeId| !group.is_quiet(*id) || Some(*id) == self.common.id;
        group.view().ids().into_iter().filter(listed).filter_map(|id| self.common.peer_info(id)).collect()
    }

    /// The last `limit` messages this node may see, oldest first.
    pub fn history(&self, limit: usize) -> Vec<ChatMessage> {
        self.history_of(None, limit).unwrap_or_default()
    }

    /// Elections this node started because its coordinator failed (joins never start one).
    pub fn elections_started(&self) -> u64 {
        self.common.elections
    }

    /// The term this node last followed (kept while it is between coordinators).
    pub fn followed(&self) -> Option<Term> {
        self.common.followed
    }

    /// Own messages not yet ordered.
    pub fn pending(&self) -> usize {
        self.common.pending.len()
    }

    /// The Lamport counter.
    pub fn clock(&self) -> u64 {
        self.common.clock.counter()
    }

    /// The key of the member listening at `addr`, if the group has a secret and a member listens
    /// there: a link the driver opens to `addr` must be authenticated with it, so frames meant for a
    /// member reach only that member.
    pub fn key_at(&self, addr: SocketAddr) -> Option<crate::protocol::PeerKey> {
        let view = match &self.role {
            Role::Coordinator(c) => c.head.view(),
            _ => self.common.group.view(),
        };
        view.iter().find(|m| m.addr == addr).and_then(|m| m.key)
    }

    /// What the node refused or throttled so far.
    pub fn counters(&self) -> Counters {
        self.common.counters
    }

    /// The settings.
    pub fn config(&self) -> &NodeConfig {
        &self.common.cfg
    }

    // ---------------------------------------------------------------- inputs

    /// Submits an own message; returns its ID at once. The message is kept until the coordinator
    /// orders it, and resubmitted to every new coordinator (paced: see `pending.rs`). A `sent_at`
    /// more than [`chat_core::MAX_CLOCK_JUMP`] ahead of the node's clock is refused (`protocol`).
    pub fn submit(&mut self, now: Instant, msg: OutgoingMessage) -> Result<MessageId, CoreError> {
        if self.is_closed() {
            return Err(CoreError::Closed("the node has left".into()));
        }
        let id = self.common.new_submission(msg)?.id;
        self.flush_pending(now);
        Ok(id)
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Receive(env) => self.receive_frame(now, None, env),
            Input::Authenticated { key, env } => self.receive_frame(now, Some(key), env),
            Input::Untrusted { what, channel } => self.untrusted(now, what, channel),
            Input::Datagram(Envelope { addr, msg, .. }) => self.receive(now, Via::Multicast, None, addr, msg),
            Input::LinkDown(addr) => {
                let common = &mut self.common;
                let next = match &mut self.role {
                    Role::Member(f) => f.link_down(common, now, addr),
                    Role::Coordinator(c) => c.link_down(common, now, addr),
                    Role::Joining(_) | Role::Left => Next::Stay,
                };
                self.apply(now, next);
            }
            Input::Unreachable(addr) => {
                let common = &mut self.common;
                let next = match &mut self.role {
                    Role::Member(f) => f.unreachable(common, addr),
                    Role::Coordinator(c) => c.link_down(common, now, addr),
                    Role::Joining(_) | Role::Left => Next::Stay,
                };
                self.apply(now, next);
            }
            Input::Leave => self.leave(now),
            Input::Clock { unix_ms } => self.common.wall = self.common.wall.max(unix_ms),
        }
        self.flush_pending(now);
    }

    /// Fires every deadline that has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.role {
            Role::Left => return,
            Role::Joining(j) => {
                let next = j.on_timeout(&mut self.common, now);
                self.apply(now, next);
                return;
            }
            Role::Member(_) | Role::Coordinator(_) => {}
        }
        self.common.bully.handle_timeout(now);
        self.pump_election(now);
        if matches!(self.role, Role::Coordinator(_)) {
            self.finish_sync(now);
        }
        let common = &mut self.common;
        let next = match &mut self.role {
            Role::Coordinator(c) => c.on_timeout(common, now),
            Role::Member(f) => f.on_timeout(common, now),
            Role::Joining(_) | Role::Left => Next::Stay,
        };
        self.apply(now, next);
        self.flush_pending(now);
    }

    /// Submits what the pacing of own messages allows now: to the coordinator followed, or, as the
    /// coordinator (done syncing), straight into the sequencer.
    fn flush_pending(&mut self, now: Instant) {
        let common = &mut self.common;
        common.pending.expire(now);
        match &mut self.role {
            Role::Member(_) => {
                let Some(to) = common.coordinator_addr() else { return };
                while let Some(sub) = common.pending.next(now) {
                    common.send_to(to, PeerMsg::Submit(sub));
                }
            }
            Role::Coordinator(c) if !c.is_syncing() => {
                let me = common.me();
                while let Some(sub) = common.pending.next(now) {
                    c.on_submit(common, now, me, sub);
                }
            }
            Role::Coordinator(_) | Role::Joining(_) | Role::Left => {}
        }
    }

    // ---------------------------------------------------------------- outputs

    /// The next output, if any. Once the queue runs dry, the coordinator's batches of the turn are
    /// queued (`outbox.rs`), so drain it completely after each turn.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.common.out.is_empty()
            && let Role::Coordinator(c) = &mut self.role
        {
            c.flush(&mut self.common);
        }
        self.common.out.pop_front()
    }

    /// When [`Node::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mine = match &self.role {
            Role::Left => return None,
            Role::Joining(j) => return Some(j.deadline()),
            Role::Coordinator(c) => Some(c.deadline()),
            Role::Member(f) => f.deadline(&self.common),
        };
        [mine, self.common.bully.poll_timeout(), self.common.pending.deadline()].into_iter().flatten().min()
    }
}

//! The joining role: looking for a group, being admitted, or founding one.
//!
//! ```text
//!  start ──► JoinRequest: by multicast, or (with --peer) by TCP to each given peer only
//!              │ (and to the coordinator a node was sent to; naming the ID this process held, if any)
//!              │ every 2 heartbeats: again
//!              ├── JoinAck (our nonce) ────► member: ID, term, the group's state, history; pending
//!              │     messages resubmitted. No election: the coordinator stays whatever the IDs.
//!              │     (history stamped above the ack's clock + MAX_CLOCK_JUMP, or a state over its
//!              │      bounds: ignored, an inconsistent ack; with a secret: not over the link of the
//!              │      coordinator it names, or not listing this node under its own key: ignored)
//!              ├── JoinRefused (our nonce) ─► closed (e.g. name_taken)
//!              ├── JoinHold (our nonce) ────► a group is electing: keep asking (the deadline moves,
//!              │                               at most MAX_HOLDS times)
//!              └── join timeout ──────────► with --peer, or quiet, never a member before: closed (NoGroup)
//!                                            if it met only nodes of another secret: closed (auth_failed)
//!                                            otherwise: founds a group (ID 1, or the ID it held),
//!                                            then an election it wins
//!  --found ──► founds a group at once
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{ChatMessage, ErrorCode, LamportClock, NodeId, Timestamp};

use super::common::Common;
use super::identity::refuse_foreign;
use super::member::Follower;
use super::{Next, Output, Role, Untrusted};
use crate::election::Term;
use crate::group::{Group, Snapshot};
use crate::protocol::{Member, PeerKey, PeerMsg, Pos};

/// Most times a joiner waits one more join timeout because a group said it is electing.
pub const MAX_HOLDS: u32 = 10;

/// A node looking for a group.
#[derive(Debug)]
pub(super) struct Joining {
    /// Random number the answer must echo (answers to an earlier attempt are ignored).
    nonce: u64,
    /// When to send the requests again.
    retry_at: Instant,
    /// When to stop looking and found a group (or give up).
    give_up_at: Instant,
    /// `JoinHold` answers that moved the deadline so far.
    holds: u32,
    /// Traffic under another secret (or needing one) met meanwhile: at the give-up time the node
    /// stops with `auth_failed` instead of founding a group (`identity.rs`).
    pub(super) foreign: Option<Untrusted>,
}

/// What a `JoinAck` carries besides the nonce.
#[derive(Debug)]
pub(super) struct Admission {
    /// The ID given to this node.
    pub(super) id: NodeId,
    /// The coordinator's term.
    pub(super) term: Term,
    /// The group's state at `start`.
    pub(super) state: Snapshot,
    /// Recent messages this node may see.
    pub(super) history: Vec<ChatMessage>,
    /// The position of the state.
    pub(super) start: Pos,
    /// The coordinator's Lamport counter.
    pub(super) clock: u64,
}

impl Joining {
    /// Starts looking: a fresh nonce, no coordinator, requests to the group (or the given peers)
    /// and to `target` (the coordinator a node was sent to).
    pub(super) fn start(common: &mut Common, now: Instant, target: Option<SocketAddr>) -> Self {
        let nonce = common.rng.next_u64();
        common.bully.step_down();
        let joining = Joining {
            nonce,
            retry_at: now + common.cfg.heartbeat * 2,
            give_up_at: now + common.cfg.join_timeout,
            holds: 0,
            foreign: None,
        };
        joining.send_requests(common, target);
        joining
    }

    /// When [`Joining::on_timeout`] must run next.
    pub(super) fn deadline(&self) -> Instant {
        self.retry_at.min(self.give_up_at)
    }

    fn send_requests(&self, common: &mut Common, target: Option<SocketAddr>) {
        let clock = common.clock.counter();
        let (name, addr, key) = (common.cfg.name.clone(), common.cfg.addr, common.cfg.key);
        let quiet = common.cfg.quiet;
        let msg = PeerMsg::JoinRequest { name, addr, nonce: self.nonce, clock, key, id: common.id, quiet };
        common.multicast(msg.clone());
        let mut targets = common.cfg.peers.clone();
        targets.extend(target);
        targets.retain(|a| *a != common.cfg.addr);
        targets.dedup();
        for to in targets {
            common.send_to(to, msg.clone());
        }
    }

    /// Asks again; once the join timeout has passed, founds a group (or gives up).
    pub(super) fn on_timeout(&mut self, common: &mut Common, now: Instant) -> Next {
        if now >= self.give_up_at {
            if let Some(what) = self.foreign {
                return refuse_foreign(common, what);
            }
            if (!common.cfg.peers.is_empty() || common.cfg.quiet) && common.id.is_none() {
                let peers = common.cfg.peers.clone();
                tracing::info!(name = %common.cfg.name, ?peers, "no peer answered: not founding a group");
                common.out.push_back(Output::NoGroup { peers });
                return Next::Become(Role::Left);
            }
            return found(common, now);
        }
        if now >= self.retry_at {
            self.send_requests(common, None);
            self.retry_at = now + common.cfg.heartbeat * 2;
        }
        Next::Stay
    }

    /// A group said it is electing a coordinator: keep asking a while longer.
    pub(super) fn on_hold(&mut self, common: &Common, now: Instant, nonce: u64) -> Next {
        if nonce == self.nonce && self.holds < MAX_HOLDS {
            self.holds += 1;
            self.give_up_at = self.give_up_at.max(now + common.cfg.join_timeout);
        }
        Next::Stay
    }

    /// Admitted: takes the state, the term and the history, and resubmits every pending message.
    ///
    /// The joiner has no clock in common with the group yet (a group that has ordered a million
    /// messages is far ahead of a fresh node, honestly), so it adopts the coordinator's counter as a
    /// client adopts the server's; what it checks is that the ack is consistent: no history stamp
    /// more than [`chat_core::MAX_CLOCK_JUMP`] above the ack's own clock, a state within its bounds.
    pub(super) fn on_ack(
        &self,
        common: &mut Common,
        now: Instant,
        nonce: u64,
        link: Option<PeerKey>,
        ack: Admission,
    ) -> Next {
        if nonce != self.nonce {
            return Next::Stay;
        }
        let Admission { id, term, state, history, start, clock } = ack;
        if common.cfg.key.is_some() {
            let key_of = |who: NodeId| state.members.iter().find(|m| m.id == who).and_then(|m| m.key);
            if link.is_none() || key_of(term.coordinator) != link || key_of(id) != common.cfg.key {
                common.counters.identity_refused += 1;
                tracing::warn!(name = %common.cfg.name, "JoinAck ignored: not from the coordinator it names, or not to this key");
                return Next::Stay;
            }
        }
        if let Some(reason) = state.refusal() {
            tracing::warn!(name = %common.cfg.name, %reason, "JoinAck ignored");
            return Next::Stay;
        }
        let theirs = LamportClock::starting_at(term.coordinator, clock);
        if let Some(m) = history.iter().find(|m| !theirs.admits(m.lamport)) {
            common.counters.clock_refused += 1;
            let stamp = m.lamport.counter;
            tracing::warn!(name = %common.cfg.name, stamp, clock, "JoinAck ignored: its history is stamped beyond its clock");
            return Next::Stay;
        }
        tracing::info!(name = %common.cfg.name, %id, coordinator = %term.coordinator, "joined");
        common.become_member(id, Group::from_snapshot(state));
        common.bully.adopt(term);
        common.followed = Some(term);
        common.clock.observe(Timestamp::new(clock, term.coordinator));
        common.log.start_at(start);
        for m in history {
            common.clock.observe(m.lamport);
            common.log.mark_delivered(m.id);
            // Ordered by this group before we (re)joined it: it is in our history.
            common.ordered_elsewhere(m.id);
            common.history.insert(m);
        }
        common.report_coordinator(term);
        // Every pending message and room request goes to the coordinator (paced, once a member).
        common.pending.resend_all();
        common.resend_rooms();
        Next::Become(Role::Member(Follower::new(now)))
    }

    /// Refused (e.g. the name is taken): the node is closed. The program reports it; no log line.
    pub(super) fn on_refused(&self, common: &mut Common, nonce: u64, code: ErrorCode, reason: String) -> Next {
        if nonce != self.nonce {
            return Next::Stay;
        }
        tracing::debug!(name = %common.cfg.name, %code, %reason, "join refused");
        common.out.push_back(Output::Refused { code, reason });
        Next::Become(Role::Left)
    }
}

/// Founds a group as its only member, and calls the election it wins: a fresh node takes ID 1; a
/// node that lost its group keeps its ID and what it knew of the group (the numbering goes on).
pub(super) fn found(common: &mut Common, now: Instant) -> Next {
    let key = common.cfg.key;
    let (id, base) = match common.id {
        Some(id) => (id, common.group.clone()),
        None => (Group::default().id_for(&common.cfg.name, key, None), Group::default()),
    };
    tracing::info!(name = %common.cfg.name, %id, "founding a group");
    let member = Member { id, name: common.cfg.name.clone(), addr: common.cfg.addr, key };
    common.become_member(id, base.alone(member));
    // Not counted as an election: there is nobody to elect among.
    common.bully.handle(now, crate::election::ElectionInput::Start);
    Next::Become(Role::Member(Follower::new(now)))
}

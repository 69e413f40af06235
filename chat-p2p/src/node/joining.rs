//! The joining role: looking for a group, being admitted, or founding one.
//!
//! ```text
//!  start ──► JoinRequest (multicast, and TCP to every known peer and the given target)
//!              │ every 2 heartbeats: again
//!              ├── JoinAck (our nonce) ────► member: view, term, history, resubmit pending
//!              │     (history stamped above the ack's clock + MAX_CLOCK_JUMP: ignored, an inconsistent ack;
//!              │      with a secret: not over the link of the coordinator it names, or not listing
//!              │      this node under its own key: ignored)
//!              ├── JoinRefused (our nonce) ─► closed (e.g. name_taken)
//!              └── join timeout ──────────► founds a group: an ID of its own, then an election it wins;
//!                                            or, if it met only nodes of another secret (`identity.rs`),
//!                                            closed with auth_failed
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{ChatMessage, ErrorCode, Event, LamportClock, NodeId, Timestamp};

use super::common::Common;
use super::identity::refuse_foreign;
use super::member::Follower;
use super::{Next, Output, Role, Untrusted};
use crate::election::{ElectionInput, Term};
use crate::protocol::{Member, PeerKey, PeerMsg, Pos};

/// A node looking for a group.
#[derive(Debug)]
pub(super) struct Joining {
    /// Random number the answer must echo (answers to an earlier attempt are ignored).
    nonce: u64,
    /// When to send the requests again.
    retry_at: Instant,
    /// When to stop looking and found a group.
    give_up_at: Instant,
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
    /// Every member, this node included.
    pub(super) members: Vec<Member>,
    /// Recent messages this node may see.
    pub(super) history: Vec<ChatMessage>,
    /// The last position ordered before this node was admitted.
    pub(super) start: Pos,
    /// The coordinator's Lamport counter.
    pub(super) clock: u64,
}

impl Joining {
    /// Starts looking: a fresh nonce, no coordinator, requests to the group, the known peers and
    /// `target` (the coordinator a node was sent to).
    pub(super) fn start(common: &mut Common, now: Instant, target: Option<SocketAddr>) -> Self {
        let nonce = common.rng.next_u64();
        common.bully.step_down();
        let joining = Joining {
            nonce,
            retry_at: now + common.cfg.heartbeat * 2,
            give_up_at: now + common.cfg.join_timeout,
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
        let msg = PeerMsg::JoinRequest { name, addr, nonce: self.nonce, clock, key };
        common.multicast(msg.clone());
        let mut targets = common.cfg.peers.clone();
        targets.extend(target);
        targets.retain(|a| *a != common.cfg.addr);
        targets.dedup();
        for to in targets {
            common.send_to(to, msg.clone());
        }
    }

    /// Asks again, or founds a group once the join timeout has passed.
    pub(super) fn on_timeout(&mut self, common: &mut Common, now: Instant) -> Next {
        if now >= self.give_up_at {
            return match self.foreign {
                Some(what) => refuse_foreign(common, what),
                None => found(common, now),
            };
        }
        if now >= self.retry_at {
            self.send_requests(common, None);
            self.retry_at = now + common.cfg.heartbeat * 2;
        }
        Next::Stay
    }

    /// Admitted: takes the view, the term and the history, and resubmits every pending message.
    ///
    /// The joiner has no clock in common with the group yet (a group that has ordered a million
    /// messages is far ahead of a fresh node, honestly), so it adopts the coordinator's counter as a
    /// client adopts the server's; what it checks is that the ack is consistent: no history stamp
    /// more than [`chat_core::MAX_CLOCK_JUMP`] above the ack's own clock.
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
        let Admission { id, term, members, history, start, clock } = ack;
        if common.cfg.key.is_some() {
            let key_of = |who: NodeId| members.iter().find(|m| m.id == who).and_then(|m| m.key);
            if link.is_none() || key_of(term.coordinator) != link || key_of(id) != common.cfg.key {
                common.counters.identity_refused += 1;
                tracing::warn!(name = %common.cfg.name, "JoinAck ignored: not from the coordinator it names, or not to this key");
                return Next::Stay;
            }
        }
        let theirs = LamportClock::starting_at(term.coordinator, clock);
        if let Some(m) = history.iter().find(|m| !theirs.admits(m.lamport)) {
            common.counters.clock_refused += 1;
            let stamp = m.lamport.counter;
            tracing::warn!(name = %common.cfg.name, stamp, clock, "JoinAck ignored: its history is stamped beyond its clock");
            return Next::Stay;
        }
        tracing::info!(name = %common.cfg.name, %id, coordinator = %term.coordinator, "joined");
        common.become_member(id, members);
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
        if let Some(c) = common.view.get(term.coordinator) {
            let event = Event::CoordinatorChanged { name: c.name.clone(), node_id: c.id, epoch: term.epoch };
            common.event(event);
        }
        // Every pending message goes to the new coordinator (paced, once this node is a member).
        common.pending.resend_all();
        if id > term.coordinator {
            common.bully.handle(now, ElectionInput::Start);
        }
        Next::Become(Role::Member(Follower::new(now)))
    }

    /// Refused (e.g. the name is taken): the node is closed.
    pub(super) fn on_refused(&self, common: &mut Common, nonce: u64, code: ErrorCode, reason: String) -> Next {
        if nonce != self.nonce {
            return Next::Stay;
        }
        tracing::warn!(name = %common.cfg.name, %code, %reason, "join refused");
        common.out.push_back(Output::Refused { code, reason });
        Next::Become(Role::Left)
    }
}

/// Nobody answered: founds a group, as its only member, and calls the election it wins.
fn found(common: &mut Common, now: Instant) -> Next {
    let id = common.alloc.next_id(&mut common.rng);
    tracing::info!(name = %common.cfg.name, %id, "no coordinator answered: founding a group");
    let member = Member { id, name: common.cfg.name.clone(), addr: common.cfg.addr, key: common.cfg.key };
    common.become_member(id, vec![member]);
    common.bully.handle(now, ElectionInput::Start);
    Next::Become(Role::Member(Follower::new(now)))
}

//! The node's one dispatch point, [`Node::receive`], and the role changes it leads to.
//!
//! Every message a node receives is routed here, by a `match` on the node's role, where the
//! message came from ([`Via`]) and the message, to the handler of the role that owns it. Handlers
//! answer with a [`Next`] that [`Node::apply`] carries out; then the election is drained, and its
//! outcome (`CoordinatorChanged`) may change the role again ([`Node::coordinator_changed`]).
//! "A member" below means a member of this node's view: the delivered one for a member, the head
//! of the log for the coordinator.
//!
//! | message                                  | joining | member                      | coordinator                   |
//! |------------------------------------------|---------|-----------------------------|-------------------------------|
//! | `JoinAck` / `JoinRefused` / `JoinHold` (our nonce) | admitted (with a secret: only over the named coordinator's link) / closed / waits longer | - | - |
//! | `JoinRequest`                            | -       | forwarded to the coordinator (none: `JoinHold`) | admits or refuses |
//! | `Beacon` (multicast)                     | -       | joins it if it follows nobody | hands over if its term is newer |
//! | `Election` from a member                 | -       | election                    | election                      |
//! | `Election` / `SyncRequest` from a stranger | -     | `Stale` if it follows a coordinator | `NotMember`             |
//! | `SyncRequest` from a member              | -       | adopts the term, `SyncReply` | steps down, the same          |
//! | `SyncReply`, `Submit`, `Ack`, `Alive`, `Leave`, `Room` | - | -                 | sync, sequencing, liveness, rooms |
//! | `Heartbeat`                              | -       | alive / re-follows / answers a stale one | answers a stale one |
//! | `Orders`, `Commit`, `RoomAnswer`         | -       | log, delivery, own room requests | -                        |
//! | `Stale`                                  | -       | rejoins the new group       | rejoins if the term is newer (or its sync finds it was dropped) |
//! | `NotMember`, `Duplicate`, `Rejected`     | -       | rejoin / sent / send failed | the same                      |
//! | `RateLimited` from the coordinator       | -       | pauses own submissions      | -                             |

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_core::NodeId;

use super::admission::JoinRequest;
use super::coordinator::Coordinator;
use super::joining::{Admission, Joining};
use super::member::Follower;
use super::{Next, Node, Role, Via};
use crate::election::{ElectionInput, ElectionMsg, ElectionOutput, Term};
use crate::protocol::{PeerKey, PeerMsg};

impl Node {
    // ---------------------------------------------------------------- dispatch

    /// Whether `id` is a member as this node sees it (the head of the log, for the coordinator).
    pub(super) fn knows(&self, id: NodeId) -> bool {
        match &self.role {
            Role::Coordinator(c) => c.knows(id),
            _ => self.common.group.view().contains(id),
        }
    }

    /// The one dispatch point: routes a received message to the role that owns it.
    ///
    /// `via` is the sender as `Common::identify` established it (`identity.rs`); `link` the key of the link the
    /// frame came over, if it was authenticated (a joiner checks its `JoinAck` with it).
    pub(super) fn receive(&mut self, now: Instant, via: Via, link: Option<PeerKey>, sender: SocketAddr, msg: PeerMsg) {
        let known = matches!(via, Via::Node(from) if self.knows(from));
        if let (Via::Node(from), Role::Member(_) | Role::Coordinator(_)) = (via, &mut self.role) {
            self.common.heard(from, sender);
            if let Role::Coordinator(c) = &mut self.role {
                c.heard(from, now);
            }
        }
        let common = &mut self.common;
        let next = match (&mut self.role, via, msg) {
            (Role::Left, ..) => Next::Stay,

            // Joining: only the answer to our request counts, however it arrives.
            (Role::Joining(j), _, PeerMsg::JoinAck { nonce, id, term, state, history, start, clock }) => {
                j.on_ack(common, now, nonce, link, Admission { id, term, state, history, start, clock })
            }
            (Role::Joining(j), _, PeerMsg::JoinRefused { nonce, code, reason }) => {
                j.on_refused(common, nonce, code, reason)
            }
            (Role::Joining(j), _, PeerMsg::JoinHold { nonce }) => j.on_hold(common, now, nonce),
            (Role::Joining(_), ..) => Next::Stay,

            // Discovery datagrams, and join requests over TCP.
            (Role::Coordinator(c), Via::Multicast, PeerMsg::Beacon { term, addr }) => c.on_beacon(common, term, addr),
            (Role::Member(f), Via::Multicast, PeerMsg::Beacon { term, addr }) => f.on_beacon(common, term, addr),
            // Multicast, straight from the joiner, forwarded by a member, or from a rejoiner that
            // still signs with its old ID: the coordinator answers them all itself.
            (Role::Coordinator(c), _, PeerMsg::JoinRequest { name, addr, nonce, clock, key, id, quiet }) => {
                c.on_join_request(common, now, JoinRequest { name, addr, nonce, clock, key, id, quiet })
            }
            (Role::Member(f), via, msg @ PeerMsg::JoinRequest { .. }) => {
                f.on_join_request(common, sender, msg, matches!(via, Via::Multicast))
            }
            (_, Via::Multicast | Via::Anonymous, _) => Next::Stay,

            // Elections are held within a group: a node outside the view (an orphan of an older
            // group, or a member of another one) is told where the group is, so it cannot stall here.
            (_, Via::Node(from), PeerMsg::Election(msg)) if known => {
                common.bully.handle(now, ElectionInput::Receive { from, msg });
                Next::Stay
            }
            // The failover sync.
            (_, Via::Node(from), PeerMsg::SyncRequest { term }) if known => {
                return self.on_sync_request(now, from, sender, term);
            }
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Election(_) | PeerMsg::SyncRequest { .. }) => {
                c.on_stranger_election(common, from, sender)
            }
            (Role::Member(_), Via::Node(_), PeerMsg::Election(_) | PeerMsg::SyncRequest { .. }) => {
                common.answer_stranger(sender, link);
                Next::Stay
            }
            (Role::Coordinator(c), Via::Node(from), PeerMsg::SyncReply { term, last, entries, clock }) => {
                c.on_sync_reply(common, now, from, sender, term, last, entries, clock)
            }

            // What a coordinator handles.
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Submit(sub)) => {
                c.on_member_submit(common, now, from, sender, sub)
            }
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Ack { term, index }) => {
                c.on_ack(common, now, from, sender, term, index)
            }
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Alive { .. }) => c.on_alive(common, from, sender),
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Leave) => c.on_leave(common, now, from),
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Stale { term, addr }) => {
                c.on_stale(common, from, term, addr)
            }
            (Role::Coordinator(c), Via::Node(_), PeerMsg::Heartbeat { term, .. }) => {
                // Another coordinator's heartbeat (it missed the newer term): tell it.
                if term < c.term() {
                    let current = c.term();
                    common.send_to(sender, PeerMsg::Stale { term: current, addr: common.cfg.addr });
                }
                Next::Stay
            }
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Room { req, op }) => {
                if !known {
                    c.not_member(common, sender)
                } else if c.is_syncing() {
                    Next::Stay // asked again once the sync is done (its node resends)
                } else {
                    c.on_room(common, now, from, req, op);
                    Next::Stay
                }
            }

            // What a member handles.
            (Role::Member(f), Via::Node(from), PeerMsg::Heartbeat { term, commit, clock }) => {
                f.on_heartbeat(common, now, from, sender, term, commit, clock)
            }
            (Role::Member(f), Via::Node(from), PeerMsg::Orders { term, first, entries, commit }) => {
                f.on_orders(common, now, from, sender, term, first, entries, commit)
            }
            (Role::Member(f), Via::Node(from), PeerMsg::Commit { pos }) => f.on_commit(common, from, sender, pos),
            (Role::Member(f), Via::Node(from), PeerMsg::Stale { term, addr }) => f.on_stale(common, from, term, addr),
            (Role::Member(f), Via::Node(from), PeerMsg::RoomAnswer { req, pos, outcome }) => {
                f.on_room_answer(common, from, req, pos, outcome)
            }

            // Answers about this node's own messages, and expulsion, whatever its role.
            (_, Via::Node(from), PeerMsg::NotMember { .. }) => common.on_not_member(from, sender),
            (_, Via::Node(_), PeerMsg::Duplicate { id }) => {
                common.ordered_elsewhere(id);
                Next::Stay
            }
            (_, Via::Node(_), PeerMsg::Rejected { id, code, reason }) => {
                common.rejected(id, code, reason);
                Next::Stay
            }
            (_, Via::Node(from), PeerMsg::RateLimited { id, retry_after_ms }) => {
                // Only the coordinator followed may slow this node down.
                if common.follows(from) && common.pending.rate_limited(&id, now, Duration::from_millis(retry_after_ms))
                {
                    common.counters.paused += 1;
                    tracing::debug!(%id, retry_after_ms, "over the coordinator's rate limit: waiting");
                }
                Next::Stay
            }

            // Not for this role (a coordinator follows nobody; a member orders nothing), or not
            // sent over TCP.
            (
                Role::Member(_),
                Via::Node(_),
                PeerMsg::SyncReply { .. }
                | PeerMsg::Submit(_)
                | PeerMsg::Ack { .. }
                | PeerMsg::Alive { .. }
                | PeerMsg::Leave
                | PeerMsg::Room { .. },
            )
            | (
                Role::Coordinator(_),
                Via::Node(_),
                PeerMsg::Orders { .. } | PeerMsg::Commit { .. } | PeerMsg::RoomAnswer { .. },
            )
            | (
                _,
                Via::Node(_),
                PeerMsg::JoinAck { .. }
                | PeerMsg::JoinRefused { .. }
                | PeerMsg::JoinHold { .. }
                | PeerMsg::Beacon { .. },
            ) => Next::Stay,
        };
        self.apply(now, next);
    }

    /// Carries out what a role's handler asked for, then drains the election (which may change
    /// the role in turn).
    pub(super) fn apply(&mut self, now: Instant, next: Next) {
        match next {
            Next::Stay => {}
            Next::Rejoin(target) => self.rejoin(now, target),
            Next::Become(role) => self.role = role,
            Next::ReassertAbove(newest) => self.common.bully.reassert_above(newest.epoch),
        }
        self.pump_election(now);
    }

    // ---------------------------------------------------------------- role changes

    /// (Re)starts joining: multicast (or the given peers), and `target` if given.
    pub(super) fn rejoin(&mut self, now: Instant, target: Option<SocketAddr>) {
        self.role = Role::Joining(Joining::start(&mut self.common, now, target));
    }

    /// Leaves cleanly: a coordinator resigns, a member says goodbye; own pending messages fail.
    pub(super) fn leave(&mut self, now: Instant) {
        match &self.role {
            Role::Coordinator(_) => {
                self.common.bully.handle(now, ElectionInput::Leave);
                self.pump_election(now);
            }
            Role::Member(_) => {
                if let Some(addr) = self.common.coordinator_addr() {
                    self.common.send_to(addr, PeerMsg::Leave);
                }
            }
            Role::Joining(_) | Role::Left => {}
        }
        self.role = Role::Left;
        self.common.fail_pending();
    }

    /// Drains the election's outputs into node outputs.
    pub(super) fn pump_election(&mut self, now: Instant) {
        while let Some(o) = self.common.bully.poll_output() {
            match o {
                ElectionOutput::Send { to, msg } => self.common.send_id(to, PeerMsg::Election(msg)),
                ElectionOutput::CoordinatorChanged { term } => self.coordinator_changed(now, term),
            }
        }
    }

    /// The election settled on `term`: this node coordinates it, or follows it.
    fn coordinator_changed(&mut self, now: Instant, term: Term) {
        if let Role::Member(f) = &mut self.role {
            f.heard(now);
        }
        let common = &mut self.common;
        if let Some(held) = common.log.lineage().filter(|l| *l > term && Some(term.coordinator) != common.id) {
            // Following `term` would order positions below ones this node holds (it followed
            // another side of a partition that reached a newer term). Refuse, and call an election
            // claiming an epoch above `held`: the coordinator answers by taking a newer term.
            tracing::info!(me = ?common.id, offered = %term, %held, "refusing a term older than the log");
            common.bully.step_down();
            common.bully.observe_epoch(held.epoch.saturating_add(1));
            common.bully.handle(now, ElectionInput::Start);
            self.pump_election(now);
            return;
        }
        let readopted = common.followed == Some(term);
        common.followed = Some(term);
        if Some(term.coordinator) == common.id {
            let previous = match std::mem::replace(&mut self.role, Role::Left) {
                Role::Coordinator(c) => Some(*c),
                _ => None,
            };
            self.role = Role::Coordinator(Box::new(Coordinator::start(common, now, term, previous)));
            self.finish_sync(now);
        } else {
            let follower = Follower::new(now);
            follower.follow(common, term, readopted);
            self.role = Role::Member(follower);
            common.report_coordinator(term);
        }
    }

    /// As coordinator, ends the failover sync if it is due.
    pub(super) fn finish_sync(&mut self, now: Instant) {
        if let Role::Coordinator(c) = &mut self.role {
            let next = c.finish_sync(&mut self.common, now);
            self.apply(now, next);
        }
    }

    /// A new coordinator's `SyncRequest` (from a member): follow its term (through the election,
    /// which may refuse it) and answer with what this node holds.
    fn on_sync_request(&mut self, now: Instant, from: NodeId, sender: SocketAddr, term: Term) {
        if self.common.term().is_some_and(|t| t > term) {
            return;
        }
        if self.common.term() != Some(term) {
            let msg = ElectionMsg::Coordinator { epoch: term.epoch, tag: term.tag };
            self.common.bully.handle(now, ElectionInput::Receive { from, msg });
            self.pump_election(now);
        }
        if self.common.term() != Some(term) {
            return;
        }
        if !matches!(self.role, Role::Member(_)) {
            self.role = Role::Member(Follower::new(now));
        }
        Follower::answer_sync(&mut self.common, sender, term);
    }
}

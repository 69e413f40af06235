//! The node's one dispatch point, [`Node::receive`], and the role changes it leads to.
//!
//! Every message a node receives is routed here, by a `match` on the node's role, where the
//! message came from ([`Via`]) and the message, to the handler of the role that owns it. Handlers
//! answer with a [`Next`] that [`Node::apply`] carries out; then the election is drained, and its
//! outcome (`CoordinatorChanged`) may change the role again ([`Node::coordinator_changed`]).
//!
//! | message                                  | joining | member                      | coordinator                   |
//! |------------------------------------------|---------|-----------------------------|-------------------------------|
//! | `JoinAck` / `JoinRefused` (our nonce)    | admitted (with a secret: only over the named coordinator's link) / closed | - | - |
//! | `JoinRequest`                            | -       | forwarded to the coordinator (not multicast) | admits or refuses |
//! | `Beacon` (multicast)                     | -       | joins it if it follows nobody | hands over if outranked     |
//! | `Election` from a member                 | -       | election                    | election                      |
//! | `Election` from a stranger               | -       | -                           | `NotMember`                   |
//! | `SyncRequest`                            | -       | adopts the term and view, `SyncReply` | steps down, the same |
//! | `SyncReply`, `Submit`, `Ack`, `Alive`, `Leave` | - | -                           | sync, sequencing, liveness    |
//! | `Heartbeat`                              | -       | alive / answers a stale one | answers a stale one           |
//! | `Order`, `Commit`, `Joined`, `Left`      | -       | log, delivery, view         | -                             |
//! | `Stale`                                  | -       | rejoins the new group       | rejoins if the term is newer  |
//! | `NotMember`, `Duplicate`, `Rejected`     | -       | rejoin / sent / send failed | the same                      |
//! | `RateLimited` from the coordinator       | -       | pauses own submissions      | -                             |

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_core::{Event, NodeId};

use super::admission::JoinRequest;
use super::coordinator::Coordinator;
use super::joining::{Admission, Joining};
use super::member::Follower;
use super::{Next, Node, Role, Via};
use crate::election::{ElectionInput, ElectionMsg, ElectionOutput, Term};
use crate::protocol::{Member, PeerKey, PeerMsg};

impl Node {
    // ---------------------------------------------------------------- dispatch

    /// The one dispatch point: routes a received message to the role that owns it.
    ///
    /// `via` is the sender as `Common::identify` established it (`identity.rs`); `link` the key of the link the
    /// frame came over, if it was authenticated (a joiner checks its `JoinAck` with it).
    pub(super) fn receive(&mut self, now: Instant, via: Via, link: Option<PeerKey>, sender: SocketAddr, msg: PeerMsg) {
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
            (Role::Joining(j), _, PeerMsg::JoinAck { nonce, id, term, members, history, start, clock }) => {
                j.on_ack(common, now, nonce, link, Admission { id, term, members, history, start, clock })
            }
            (Role::Joining(j), _, PeerMsg::JoinRefused { nonce, code, reason }) => {
                j.on_refused(common, nonce, code, reason)
            }
            (Role::Joining(_), ..) => Next::Stay,

            // Discovery datagrams, and join requests over TCP.
            (Role::Coordinator(c), Via::Multicast, PeerMsg::Beacon { term, addr }) => c.on_beacon(common, term, addr),
            (Role::Member(f), Via::Multicast, PeerMsg::Beacon { term, addr }) => f.on_beacon(common, term, addr),
            // Multicast, straight from the joiner, forwarded by a member, or from a rejoiner that
            // still signs with its old ID: the coordinator answers them all itself.
            (Role::Coordinator(c), _, PeerMsg::JoinRequest { name, addr, nonce, clock, key }) => {
                c.on_join_request(common, now, JoinRequest { name, addr, nonce, clock, key })
            }
            (Role::Member(f), Via::Anonymous | Via::Node(_), msg @ PeerMsg::JoinRequest { .. }) => {
                f.forward_join(common, sender, msg)
            }
            (_, Via::Multicast | Via::Anonymous, _) => Next::Stay,

            // Elections are held within a group: a node outside the view (an orphan of an older
            // group, or a member of another one) is not answered, so it cannot stall here.
            (_, Via::Node(from), PeerMsg::Election(msg)) if common.view.contains(from) => {
                common.bully.handle(now, ElectionInput::Receive { from, msg });
                Next::Stay
            }
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Election(_)) => {
                c.on_stranger_election(common, from, sender)
            }
            (Role::Member(_), Via::Node(_), PeerMsg::Election(_)) => Next::Stay,

            // The failover sync.
            (_, Via::Node(from), PeerMsg::SyncRequest { term, members }) => {
                return self.on_sync_request(now, from, sender, term, members);
            }
            (Role::Coordinator(c), Via::Node(from), PeerMsg::SyncReply { term, last, entries, clock }) => {
                c.on_sync_reply(common, now, from, sender, term, last, entries, clock)
            }

            // What a coordinator handles.
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Submit(sub)) => {
                c.on_member_submit(common, now, from, sender, sub)
            }
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Ack { term, index }) => {
                c.on_ack(common, from, sender, term, index)
            }
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Alive { .. }) => c.on_alive(common, from, sender),
            (Role::Coordinator(c), Via::Node(from), PeerMsg::Leave) => c.on_leave(common, from),
            (Role::Coordinator(c), Via::Node(_), PeerMsg::Stale { term, addr }) => c.on_stale(common, term, addr),
            (Role::Coordinator(_), Via::Node(_), PeerMsg::Heartbeat { term, .. }) => {
                common.answer_stale_heartbeat(sender, term);
                Next::Stay
            }

            // What a member handles.
            (Role::Member(f), Via::Node(from), PeerMsg::Heartbeat { term, commit, clock }) => {
                f.on_heartbeat(common, now, from, sender, term, commit, clock)
            }
            (Role::Member(f), Via::Node(from), PeerMsg::Order { pos, entry, unknown }) => {
                f.on_order(common, now, from, sender, pos, entry, unknown)
            }
            (Role::Member(f), Via::Node(from), PeerMsg::Commit { pos }) => f.on_commit(common, from, pos),
            (Role::Member(f), Via::Node(from), PeerMsg::Joined { term, member }) => {
                f.on_joined(common, from, term, member)
            }
            (Role::Member(f), Via::Node(from), PeerMsg::Left { term, id }) => f.on_left(common, from, sender, term, id),
            (Role::Member(f), Via::Node(from), PeerMsg::Stale { term, addr }) => f.on_stale(common, from, term, addr),

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
                | PeerMsg::Leave,
            )
            | (
                Role::Coordinator(_),
                Via::Node(_),
                PeerMsg::Order { .. } | PeerMsg::Commit { .. } | PeerMsg::Joined { .. } | PeerMsg::Left { .. },
            )
            | (_, Via::Node(_), PeerMsg::JoinAck { .. } | PeerMsg::JoinRefused { .. } | PeerMsg::Beacon { .. }) => {
                Next::Stay
            }
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

    /// (Re)starts joining: multicast, known peers, and `target` if given.
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
        }
        let common = &mut self.common;
        if let Some(m) = common.view.get(term.coordinator) {
            let event = Event::CoordinatorChanged { name: m.name.clone(), node_id: m.id, epoch: term.epoch };
            common.event(event);
        }
    }

    /// As coordinator, ends the failover sync if it is due.
    pub(super) fn finish_sync(&mut self, now: Instant) {
        if let Role::Coordinator(c) = &mut self.role {
            let next = c.finish_sync(&mut self.common, now);
            self.apply(now, next);
        }
    }

    /// A new coordinator's `SyncRequest`: follow its term (through the election, which may refuse
    /// it), take its view, and answer with what this node holds.
    fn on_sync_request(&mut self, now: Instant, from: NodeId, sender: SocketAddr, term: Term, members: Vec<Member>) {
        if self.common.term().is_some_and(|t| t > term) {
            return;
        }
        if self.common.term() != Some(term) {
            let msg = ElectionMsg::Coordinator { epoch: term.epoch };
            self.common.bully.handle(now, ElectionInput::Receive { from, msg });
            self.pump_election(now);
        }
        if self.common.term() != Some(term) {
            return;
        }
        self.role = Role::Member(Follower::new(now));
        let common = &mut self.common;
        for m in &members {
            common.alloc.observe(m.id);
        }
        common.view.replace(members);
        common.sync_peers();
        if common.view.contains(common.me()) {
            Follower::answer_sync(common, sender, term);
        }
    }
}

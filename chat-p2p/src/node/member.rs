//! The member role: following the coordinator, holding and delivering what it orders, and
//! calling an election when it falls silent.
//!
//! | from the coordinator followed        | the member                                                |
//! |--------------------------------------|-----------------------------------------------------------|
//! | `Heartbeat` (current term)           | notes it is alive, observes its clock, delivers up to the commit point, answers `Alive` |
//! | `Heartbeat` / `Order` stamped more than `MAX_CLOCK_JUMP` ahead | dropped, counted, traced    |
//! | `Order`                              | holds the entry, acknowledges the contiguous prefix held (`Ack`) |
//! | `RateLimited` for an own message     | pauses own submissions for the wait, then one at a time (`pending.rs`) |
//! | `Commit`                             | delivers everything held up to the position               |
//! | `Joined` / `Left`                    | updates the view (`Left` naming this node: rejoin)        |
//! | `Stale` (another term)               | the group was handed over: rejoins at the address given   |
//!
//! A member that hears nothing for the failure timeout, whose link to the coordinator breaks, or
//! that outranks its coordinator, starts an election; while an election runs, the election's own
//! deadlines drive it. A link to the coordinator that cannot be *opened* (`Unreachable`: refused, or
//! a full accept queue) is not a sign of death: the heartbeats, which come on the coordinator's own
//! link, decide; at the next one the member acknowledges again and resubmits what was lost.

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{Event, NodeId, Timestamp, UserName};

use super::common::Common;
use super::{Next, Output};
use crate::election::{ElectionInput, Term};
use crate::protocol::{Entry, Envelope, Member, PeerMsg, Pos};

/// A member following a coordinator (or between coordinators, while an election runs).
#[derive(Debug)]
pub(super) struct Follower {
    /// When the coordinator was last heard from.
    last_heard: Instant,
    /// Frames to the coordinator were lost (its link could not be opened): at the next heartbeat,
    /// acknowledge again and resubmit every pending message.
    resync: bool,
}

impl Follower {
    /// A member that has just heard from its coordinator (or started following one).
    pub(super) fn new(now: Instant) -> Self {
        Follower { last_heard: now, resync: false }
    }

    /// When the coordinator counts as silent; none while an election runs (its deadlines rule).
    pub(super) fn deadline(&self, common: &Common) -> Option<Instant> {
        (!common.bully.is_electing()).then(|| self.last_heard + common.cfg.timeout)
    }

    /// Notes that a coordinator was heard from (or a term was adopted) at `now`.
    pub(super) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// Starts following `term`'s coordinator: acknowledges what arrived while no coordinator was
    /// known, and resubmits pending messages if the term is one it followed before.
    pub(super) fn follow(&self, common: &mut Common, term: Term, readopted: bool) {
        // Acknowledge what arrived while no coordinator was known, so commits resume.
        let index = common.log.held_index(term);
        if index > 0 {
            common.send_id(term.coordinator, PeerMsg::Ack { term, index });
        }
        // Messages submitted while no coordinator was known went nowhere. A new term's sync asks
        // for them (`SyncRequest`); a term adopted again after an election does not: send them now
        // (a copy the coordinator already ordered is answered `Duplicate`).
        if readopted {
            common.pending.resend_all();
        }
    }

    /// The coordinator is silent, unknown or outranked by this node: start an election.
    pub(super) fn on_timeout(&mut self, common: &mut Common, now: Instant) -> Next {
        if common.bully.is_electing() {
            return Next::Stay;
        }
        let me = common.me();
        let silent = now >= self.last_heard + common.cfg.timeout;
        let lower = common.coordinator().is_some_and(|c| c < me);
        if silent || lower || common.coordinator().is_none() {
            if silent {
                tracing::info!(me = %me, coordinator = ?common.coordinator(), "coordinator silent: starting an election");
                common.bully.step_down();
            }
            self.last_heard = now;
            common.bully.handle(now, ElectionInput::Start);
        }
        Next::Stay
    }

    /// A link broke: if it was the one to the coordinator, that counts as its silence.
    pub(super) fn link_down(&mut self, common: &mut Common, now: Instant, addr: SocketAddr) -> Next {
        if common.coordinator_addr() != Some(addr) {
            return Next::Stay;
        }
        tracing::info!(%addr, "link to the coordinator broke");
        self.last_heard = now - common.cfg.timeout;
        self.on_timeout(common, now)
    }

    /// No link to `addr` could be opened: if it is the coordinator, what was sent to it is lost, but
    /// it may well be alive (busy); its heartbeats decide, and the next one triggers a resync.
    pub(super) fn unreachable(&mut self, common: &Common, addr: SocketAddr) -> Next {
        if common.coordinator_addr() == Some(addr) {
            tracing::info!(%addr, "the coordinator could not be reached: resyncing at its next heartbeat");
            self.resync = true;
        }
        Next::Stay
    }

    /// The coordinator is alive; anything else is answered if it is stale.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_heartbeat(
        &mut self,
        common: &mut Common,
        now: Instant,
        from: NodeId,
        sender: SocketAddr,
        term: Term,
        commit: Option<Pos>,
        clock: u64,
    ) -> Next {
        if !(common.follows(from) && Some(term) == common.term()) {
            common.answer_stale_heartbeat(sender, term);
            return Next::Stay;
        }
        if !common.admits_clock("Heartbeat", from, clock) {
            return Next::Stay;
        }
        self.last_heard = now;
        common.clock.observe(Timestamp::new(clock, from));
        if let Some(pos) = commit {
            common.commit(pos);
        }
        common.send_to(sender, PeerMsg::Alive { term });
        if std::mem::take(&mut self.resync) {
            self.follow(common, term, true);
        }
        Next::Stay
    }

    /// An ordered entry: held, and the contiguous prefix held acknowledged.
    ///
    /// Kept even while this node is between coordinators, if it is the term this node was
    /// following (it re-adopts that term after an election): positions are unique per term, and
    /// dropping it would leave a gap. Never from another group's coordinator: the log holds one
    /// chain of terms.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_order(
        &mut self,
        common: &mut Common,
        now: Instant,
        from: NodeId,
        sender: SocketAddr,
        pos: Pos,
        entry: Entry,
        unknown: Vec<UserName>,
    ) -> Next {
        let between = common.term().is_none() && from == pos.term.coordinator && common.followed == Some(pos.term);
        if !(common.follows(from) || between) {
            return Next::Stay;
        }
        if let Entry::Visible(m) = &entry
            && !common.admits_clock("Order", from, m.lamport.counter)
        {
            return Next::Stay;
        }
        self.last_heard = now;
        common.pending.ordered(&entry.id());
        common.log.receive(pos, entry, unknown);
        if Some(pos.term) == common.term() {
            let index = common.log.held_index(pos.term);
            common.send_to(sender, PeerMsg::Ack { term: pos.term, index });
        }
        Next::Stay
    }

    /// Everything held up to `pos` is stable: deliver it.
    pub(super) fn on_commit(&self, common: &mut Common, from: NodeId, pos: Pos) -> Next {
        if common.follows(from) {
            common.commit(pos);
        }
        Next::Stay
    }

    /// The coordinator admitted a member.
    pub(super) fn on_joined(&self, common: &mut Common, from: NodeId, term: Term, member: Member) -> Next {
        if !(common.follows(from) && Some(term) == common.term()) {
            return Next::Stay;
        }
        common.alloc.observe(member.id);
        let id = member.id;
        if common.view.insert(member) {
            common.sync_peers();
            if let Some(info) = common.peer_info(id) {
                common.event(Event::PeerJoined(info));
            }
        }
        Next::Stay
    }

    /// The coordinator removed a member; if it is this node, it rejoins.
    pub(super) fn on_left(
        &self,
        common: &mut Common,
        from: NodeId,
        sender: SocketAddr,
        term: Term,
        id: NodeId,
    ) -> Next {
        if !(common.follows(from) && Some(term) == common.term()) {
            return Next::Stay;
        }
        if Some(id) == common.id {
            return Next::Rejoin(Some(sender));
        }
        if let Some(info) = common.peer_info(id) {
            common.view.remove(id);
            common.sync_peers();
            common.event(Event::PeerLeft(info));
        }
        Next::Stay
    }

    /// The coordinator handed its group over to the one at `addr`: rejoin there.
    pub(super) fn on_stale(&self, common: &mut Common, from: NodeId, term: Term, addr: SocketAddr) -> Next {
        if !(common.follows(from) && common.term().is_some_and(|t| t != term)) {
            return Next::Stay;
        }
        tracing::info!(me = ?common.id, winner = %term, "the group is handed over: rejoining");
        Next::Rejoin(Some(addr))
    }

    /// A member that knows no coordinator hearing the beacon of a coordinator outside its view (it
    /// was left behind by its group) joins that coordinator.
    pub(super) fn on_beacon(&self, common: &mut Common, other: Term, addr: SocketAddr) -> Next {
        if common.term().is_some() || common.view.contains(other.coordinator) {
            return Next::Stay;
        }
        tracing::info!(me = %common.me(), %other, "no coordinator here: joining the beaconing one");
        Next::Rejoin(Some(addr))
    }

    /// Hands a `JoinRequest` that arrived here to the coordinator, as if the joiner had sent it there.
    pub(super) fn forward_join(&self, common: &mut Common, joiner: SocketAddr, msg: PeerMsg) -> Next {
        if let Some(to) = common.coordinator_addr() {
            let msg = Envelope { from: None, addr: joiner, msg };
            common.out.push_back(Output::Send { to, msg });
        }
        Next::Stay
    }

    /// Answers a new coordinator's `SyncRequest` (the node already follows `term` and took its
    /// view): what this member holds, then (paced, see `pending.rs`) every pending message.
    pub(super) fn answer_sync(common: &mut Common, sender: SocketAddr, term: Term) {
        let report = common.report();
        let msg =
            PeerMsg::SyncReply { term, last: report.last, entries: report.entries, clock: common.clock.counter() };
        common.send_to(sender, msg);
        common.pending.resend_all();
    }
}

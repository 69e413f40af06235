//! The member role: following the coordinator, holding and delivering what it orders, and
//! calling an election when it fails.
//!
//! | from the coordinator followed        | the member                                                |
//! |--------------------------------------|-----------------------------------------------------------|
//! | `Heartbeat` (current term)           | notes it is alive, observes its clock, delivers up to the commit point, answers `Alive` |
//! | `Heartbeat` of the term it followed, while electing | its coordinator is alive after all: follows it again |
//! | `Heartbeat` / `Orders` stamped more than `MAX_CLOCK_JUMP` ahead | dropped, counted, traced  |
//! | `Orders`                             | holds the entries, delivers up to the commit point, acknowledges the contiguous prefix held (`Ack`, once per frame) |
//! | `RateLimited` for an own message     | pauses own submissions for the wait, then one at a time (`pending.rs`) |
//! | `Commit`                             | delivers everything held up to the position               |
//! | `RoomAnswer`                         | the answer to an own room request (`rooms.rs`)             |
//! | `Stale` (another term)               | the group was handed over: rejoins at the address given   |
//!
//! | from anybody else                    | the member                                                |
//! |--------------------------------------|-----------------------------------------------------------|
//! | `Election` / `SyncRequest` from a node outside its view | `Stale` with its coordinator's address, if it follows one (the stranger was dropped from the group: it rejoins) |
//! | `Stale` from a member of its view while it follows nobody | rejoins at the address given (it was dropped from the group) |
//! | `JoinRequest` while it follows nobody | `JoinHold`: the joiner keeps asking instead of founding a group |
//!
//! A member starts an election only when its coordinator fails: it hears nothing for the failure
//! timeout, or its link to the coordinator breaks. Joining never starts one, whatever the joiner's
//! ID. While an election runs, the election's own deadlines drive it. A link to the coordinator that
//! cannot be *opened* (`Unreachable`: refused, or a full accept queue) is not a sign of death: the
//! heartbeats, which come on the coordinator's own link, decide; at the next one the member
//! acknowledges again and resubmits what was lost.
//!
//! **Suspended processes.** A member whose silence deadline passed more than a failure timeout ago
//! was not running (frozen, suspended): it did not miss the coordinator, the coordinator missed it.
//! It asks the coordinator (`Alive`) and waits one more timeout before it calls an election; if it
//! was removed meanwhile, the coordinator's `NotMember` sends it back as a joiner, with its ID.

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{NodeId, Timestamp, UserName};

use super::common::Common;
use super::{Next, Output};
use crate::election::Term;
use crate::protocol::{Entry, Envelope, PeerMsg, Pos};

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
            common.resend_rooms();
        }
    }

    /// The coordinator is silent or unknown: start an election (after a check, if this process
    /// itself was not running).
    pub(super) fn on_timeout(&mut self, common: &mut Common, now: Instant) -> Next {
        if common.bully.is_electing() {
            return Next::Stay;
        }
        let timeout = common.cfg.timeout;
        if now < self.last_heard + timeout && common.term().is_some() {
            return Next::Stay;
        }
        if let Some(term) = common.term()
            && now >= self.last_heard + timeout + timeout
            && let Some(to) = common.coordinator_addr()
        {
            tracing::info!(me = %common.me(), late = ?now - self.last_heard, "woke up late: asking the coordinator before electing");
            self.last_heard = now;
            common.send_to(to, PeerMsg::Alive { term });
            return Next::Stay;
        }
        tracing::info!(me = %common.me(), coordinator = ?common.coordinator(), "coordinator silent: starting an election");
        common.bully.step_down();
        self.last_heard = now;
        common.start_election(now);
        Next::Stay
    }

    /// A link broke: if it was the one to the coordinator, that counts as its failure.
    pub(super) fn link_down(&mut self, common: &mut Common, now: Instant, addr: SocketAddr) -> Next {
        if common.coordinator_addr() != Some(addr) || common.bully.is_electing() {
            return Next::Stay;
        }
        tracing::info!(%addr, "link to the coordinator broke: starting an election");
        common.bully.step_down();
        self.last_heard = now;
        common.start_election(now);
        Next::Stay
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

    /// The coordinator is alive; the coordinator followed before an election is too (follow it
    /// again); anything else is answered if it is stale.
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
        let back = common.term().is_none() && common.bully.last_term() == Some(term) && from == term.coordinator;
        if !(back || (common.follows(from) && Some(term) == common.term())) {
            common.answer_stale_heartbeat(sender, term);
            return Next::Stay;
        }
        if !common.admits_clock("Heartbeat", from, clock) {
            return Next::Stay;
        }
        if back {
            tracing::info!(me = %common.me(), coordinator = %from, "the coordinator is alive: following it again");
            common.bully.adopt(term);
            self.follow(common, term, true);
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
        self.expelled(common, sender)
    }

    /// A batch of ordered entries: held, delivered up to the commit point, and the contiguous
    /// prefix held acknowledged.
    ///
    /// Kept even while this node is between coordinators, if it is the term this node was
    /// following (it re-adopts that term after an election): positions are unique per term, and
    /// dropping them would leave a gap. Never from another group's coordinator: the log holds one
    /// chain of terms.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_orders(
        &mut self,
        common: &mut Common,
        now: Instant,
        from: NodeId,
        sender: SocketAddr,
        term: Term,
        first: u64,
        entries: Vec<(Entry, Vec<UserName>)>,
        commit: u64,
    ) -> Next {
        let between = common.term().is_none() && from == term.coordinator && common.followed == Some(term);
        if !(common.follows(from) || between) {
            return Next::Stay;
        }
        let too_far = entries.iter().find_map(|(e, _)| match e {
            Entry::Visible(m) if !common.clock.admits(m.lamport) => Some(m.lamport.counter),
            _ => None,
        });
        if let Some(stamp) = too_far
            && !common.admits_clock("Orders", from, stamp)
        {
            return Next::Stay;
        }
        self.last_heard = now;
        for (k, (entry, unknown)) in entries.into_iter().enumerate() {
            if let Some(id) = entry.message_id() {
                common.pending.ordered(&id);
            }
            common.log.receive(Pos::new(term, first + k as u64), entry, unknown);
        }
        if commit > 0 {
            common.commit(Pos::new(term, commit));
        }
        if Some(term) == common.term() {
            let index = common.log.held_index(term);
            common.send_to(sender, PeerMsg::Ack { term, index });
        }
        self.expelled(common, sender)
    }

    /// Everything held up to `pos` is stable: deliver it.
    pub(super) fn on_commit(&self, common: &mut Common, from: NodeId, sender: SocketAddr, pos: Pos) -> Next {
        if common.follows(from) {
            common.commit(pos);
        }
        self.expelled(common, sender)
    }

    /// A delivered change removed this node: rejoin through the coordinator.
    fn expelled(&self, common: &mut Common, coordinator: SocketAddr) -> Next {
        if std::mem::take(&mut common.expelled) {
            tracing::info!(me = %common.me(), "removed from the group: rejoining");
            return Next::Rejoin(Some(coordinator));
        }
        Next::Stay
    }

    /// The answer to an own room request, from the coordinator followed.
    pub(super) fn on_room_answer(
        &self,
        common: &mut Common,
        from: NodeId,
        req: u64,
        pos: Option<Pos>,
        outcome: Result<crate::protocol::RoomOutcome, (chat_core::ErrorCode, String)>,
    ) -> Next {
        if common.follows(from) {
            common.room_answered(req, pos, outcome);
        }
        Next::Stay
    }

    /// The coordinator handed its group over to the one at `addr`, or a member says this node is
    /// not in the group any more: rejoin there.
    pub(super) fn on_stale(&self, common: &mut Common, from: NodeId, term: Term, addr: SocketAddr) -> Next {
        let handed_over = common.follows(from) && common.term().is_some_and(|t| t != term);
        let dropped = common.term().is_none() && common.group.view().contains(from);
        if !(handed_over || dropped) {
            return Next::Stay;
        }
        tracing::info!(me = ?common.id, winner = %term, "the group is elsewhere: rejoining");
        Next::Rejoin(Some(addr))
    }

    /// A member that knows no coordinator hearing the beacon of a coordinator outside its view (it
    /// was left behind by its group) joins that coordinator.
    pub(super) fn on_beacon(&self, common: &mut Common, other: Term, addr: SocketAddr) -> Next {
        if common.term().is_some() || common.group.view().contains(other.coordinator) {
            return Next::Stay;
        }
        tracing::info!(me = %common.me(), %other, "no coordinator here: joining the beaconing one");
        Next::Rejoin(Some(addr))
    }

    /// A `JoinRequest` that arrived here: handed to the coordinator, as if the joiner had sent it
    /// there; while there is none (an election runs), the joiner is told to keep asking. A
    /// multicast one is the coordinator's to answer, unless there is none.
    pub(super) fn on_join_request(
        &self,
        common: &mut Common,
        joiner: SocketAddr,
        msg: PeerMsg,
        multicast: bool,
    ) -> Next {
        match common.coordinator_addr() {
            Some(to) if !multicast => {
                let msg = Envelope { from: None, addr: joiner, msg };
                common.out.push_back(Output::Send { to, msg });
            }
            Some(_) => {}
            None => {
                if let PeerMsg::JoinRequest { nonce, addr, .. } = msg {
                    common.send_to(addr, PeerMsg::JoinHold { nonce });
                }
            }
        }
        Next::Stay
    }

    /// Answers a new coordinator's `SyncRequest` (the node already follows `term`): what this member
    /// holds, then (paced, see `pending.rs`) every pending message and room request.
    pub(super) fn answer_sync(common: &mut Common, sender: SocketAddr, term: Term) {
        let report = common.report();
        let msg =
            PeerMsg::SyncReply { term, last: report.last, entries: report.entries, clock: common.clock.counter() };
        common.send_to(sender, msg);
        common.pending.resend_all();
        common.resend_rooms();
    }
}

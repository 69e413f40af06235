//! The coordinator role: heartbeats, failure detection, the head of the log, and handing the group
//! over to a newer coordinator. Admitting and removing members is in [`super::admission`]; what a
//! submission must pass and how entries are ordered in [`super::sequencing`] (flood control in
//! `flood.rs`, batching in `outbox.rs`); room requests in [`super::sequencing`] too; the failover
//! sync (the first thing it does in a term) in [`super::sync`].
//!
//! | from a member (or a stranger)  | the coordinator                                                  |
//! |--------------------------------|------------------------------------------------------------------|
//! | `JoinRequest`                  | orders `Joined`, then (once committed) `JoinAck`; or `JoinRefused` |
//! | `Submit`                       | orders it into every member's outbox; `Duplicate` / `Rejected` / `RateLimited` (see [`super::sequencing`]) |
//! | `Room`                         | orders `RoomJoined` / `RoomParted`, answers `RoomAnswer`           |
//! | `Ack`                          | advances the commit point (told with the next batch, or `Commit`) |
//! | `Alive`                        | nothing more (every frame counts as a sign of life)             |
//! | `Leave`, silence, broken or unopenable link | orders `Left` (what was queued for it is lost)     |
//! | `SyncReply`                    | see [`super::sync`]                                              |
//! | `Submit` / `Ack` / `Alive` / `SyncReply` / `Election` from a non-member | `NotMember`: rejoin |
//! | `Stale` (newer term; or any, from a member, before its sync is done) | its term is over: rejoins the current group |
//! | `Beacon` (multicast) of a newer term | `Stale` to every member, then rejoins it                   |
//!
//! The coordinator keeps two copies of the group's state: `head`, after every change it ordered
//! (what admission, recipients and rooms are decided on), and the node's own `Common::group`, after
//! every change delivered (what the program sees, the same as every member's).
//!
//! **Suspended processes.** A coordinator whose heartbeat comes due more than a failure timeout
//! late was not running (a frozen or suspended process, a stalled machine): its members are not
//! silent, it was. It gives every member a fresh timeout instead of removing them all; if the group
//! moved on meanwhile, their answers (`Stale`) send it back as a member.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{DedupWindow, NodeId};

use super::Next;
use super::admission::Admitting;
use super::archive::Archive;
use super::common::Common;
use super::flood::Flood;
use super::outbox::Outboxes;
use super::sync::SyncState;
use crate::election::Term;
use crate::group::Group;
use crate::ordering::Sequencer;
use crate::protocol::{PeerMsg, Submission};

/// Heartbeats between two multicast beacons.
const BEACON_EVERY: u32 = 4;

/// What only the coordinator keeps.
#[derive(Debug)]
pub(super) struct Coordinator {
    /// The group's state after every change ordered (ahead of the delivered one).
    pub(super) head: Group,
    /// Positions of this term and what every member acknowledged.
    pub(super) seq: Sequencer,
    /// What every member is to receive at the end of the turn.
    pub(super) outbox: Outboxes,
    /// Members being admitted: their `JoinAck` goes once their `Joined` is committed.
    pub(super) admitting: Vec<Admitting>,
    /// The nonce of the request each member's `JoinAck` answered (this term): a copy of that request
    /// arriving later (a retry that crossed the answer) is ignored, not taken for a member that
    /// believes it is out. Bounded by the members: an entry goes when its member does.
    pub(super) answered: BTreeMap<NodeId, u64>,
    /// The failover sync, until it is done.
    pub(super) syncing: Option<SyncState>,
    /// Submissions received during the sync, ordered after it.
    pub(super) queued: VecDeque<(NodeId, Submission)>,
    /// When each member was last heard from.
    pub(super) alive: BTreeMap<NodeId, Instant>,
    /// When the next heartbeat is due.
    pub(super) next_heartbeat: Instant,
    /// Heartbeats sent this term (every [`BEACON_EVERY`]th also beacons).
    pub(super) beats: u32,
    /// When this coordinator last beaconed (it also beacons when it hears a datagram it cannot
    /// authenticate, at most once a heartbeat: `identity.rs`).
    pub(super) last_beacon: Option<Instant>,
    /// The last messages ordered, in full, for histories.
    pub(super) archive: Archive,
    /// IDs of messages ordered (kept across own terms), to answer resubmissions `Duplicate`.
    pub(super) known: DedupWindow,
    /// Every member's rate buckets (fresh each term).
    pub(super) flood: Flood,
    /// The wall-clock time stamped on the last message ordered (never goes back).
    pub(super) last_time: u64,
}

impl Coordinator {
    /// Whether the failover sync is still running (nothing new is ordered meanwhile).
    pub(super) fn is_syncing(&self) -> bool {
        self.syncing.is_some()
    }

    /// The term.
    pub(super) fn term(&self) -> Term {
        self.seq.term()
    }

    /// Whether `id` is a member (by the head of the log).
    pub(super) fn knows(&self, id: NodeId) -> bool {
        self.head.view().contains(id)
    }

    /// Notes a sign of life from member `from`.
    pub(super) fn heard(&mut self, from: NodeId, now: Instant) {
        if let Some(t) = self.alive.get_mut(&from) {
            *t = now;
        }
    }

    /// Sends `msg` to member `id` (by the head of the log), after what its outbox holds.
    pub(super) fn send_member(&mut self, common: &mut Common, id: NodeId, msg: PeerMsg) {
        if self.outbox.has_entries(id) {
            self.flush_member(common, id);
        }
        match self.head.view().get(id).map(|m| m.addr) {
            Some(addr) => common.send_to(addr, msg),
            None => common.send_id(id, msg),
        }
    }

    /// When [`Coordinator::on_timeout`] (or the end of the sync) is due.
    pub(super) fn deadline(&self) -> Instant {
        match &self.syncing {
            Some(s) => s.deadline.min(self.next_heartbeat),
            None => self.next_heartbeat,
        }
    }

    /// Heartbeats (with the commit point), silent members removed, a beacon now and then.
    pub(super) fn on_timeout(&mut self, common: &mut Common, now: Instant) -> Next {
        if now < self.next_heartbeat {
            return Next::Stay;
        }
        let timeout = common.cfg.timeout;
        if now >= self.next_heartbeat + timeout {
            tracing::info!(me = %common.me(), late = ?now - self.next_heartbeat, "woke up late: every member gets a fresh timeout");
            for t in self.alive.values_mut() {
                *t = now;
            }
        }
        self.next_heartbeat = now + common.cfg.heartbeat;
        self.beats += 1;
        let beacon = self.beats % BEACON_EVERY == 1;
        let me = common.me();
        let dead: Vec<NodeId> =
            self.alive.iter().filter(|(id, t)| **id != me && now >= **t + timeout).map(|(id, _)| *id).collect();
        for id in dead {
            tracing::info!(%id, "member silent: removed");
            self.remove_member(common, now, id);
        }
        if self.syncing.is_none() {
            let term = self.term();
            let commit = self.seq.commit_pos();
            for id in self.head.view().ids() {
                if id != me && !self.outbox.is_held(id) {
                    let clock = common.clock.counter();
                    self.send_member(common, id, PeerMsg::Heartbeat { term, commit, clock });
                }
            }
        }
        if beacon {
            self.beacon(common, now);
        }
        Next::Stay
    }

    /// Multicasts this coordinator's presence.
    pub(super) fn beacon(&mut self, common: &mut Common, now: Instant) {
        let term = self.term();
        common.multicast(PeerMsg::Beacon { term, addr: common.cfg.addr });
        self.last_beacon = Some(now);
    }

    /// A link broke, or could not be opened: the member at the other end is removed (what was
    /// queued for it is lost, so it could not follow the order any more; it rejoins).
    pub(super) fn link_down(&mut self, common: &mut Common, now: Instant, addr: SocketAddr) -> Next {
        let id = self.head.view().iter().find(|m| m.addr == addr).map(|m| m.id);
        if let Some(id) = id.filter(|id| Some(*id) != common.id) {
            self.remove_member(common, now, id);
        }
        Next::Stay
    }

    /// A member's answer to a heartbeat (the frame itself was the sign of life).
    pub(super) fn on_alive(&self, common: &mut Common, from: NodeId, sender: SocketAddr) -> Next {
        if self.knows(from) { Next::Stay } else { self.not_member(common, sender) }
    }

    /// A node outside the group calls an election here: a node this coordinator dropped (silence,
    /// broken link) still follows it. Tell it to rejoin instead of answering its elections forever.
    pub(super) fn on_stranger_election(&self, common: &mut Common, from: NodeId, sender: SocketAddr) -> Next {
        if from == common.me() { Next::Stay } else { self.not_member(common, sender) }
    }

    /// "Your term is over" (from a member or a coordinator): a newer term rules; and before this
    /// coordinator's sync is done, a member of its view that follows another coordinator means it
    /// took over a group that had moved on without it (it was cut off or suspended). Rejoin.
    pub(super) fn on_stale(&self, common: &mut Common, from: NodeId, newer: Term, addr: SocketAddr) -> Next {
        let member = self.is_syncing() && common.group.view().contains(from) && newer != self.term();
        if newer <= self.term() && !member {
            return Next::Stay;
        }
        tracing::info!(me = %common.me(), newer = %newer, "stale coordinator: rejoining the current group");
        Next::Rejoin(Some(addr))
    }

    /// Another coordinator's beacon: after a partition heals, the coordinator of the older term
    /// hands its whole group over. It tells every member (`Stale`, with the winner's address) and
    /// rejoins the winner itself; the members rejoin too, each asking for its ID back. Their
    /// unordered messages stay pending and are resubmitted after the join.
    pub(super) fn on_beacon(&mut self, common: &mut Common, other: Term, addr: SocketAddr) -> Next {
        if addr == common.cfg.addr || other <= self.term() {
            return Next::Stay;
        }
        tracing::info!(me = %common.me(), %other, "found a newer coordinator: handing the group over");
        let me = common.me();
        for id in self.head.view().ids() {
            if id != me {
                self.send_member(common, id, PeerMsg::Stale { term: other, addr });
            }
        }
        Next::Rejoin(Some(addr))
    }

    /// "You are not a member of my group: rejoin."
    pub(super) fn not_member(&self, common: &mut Common, sender: SocketAddr) -> Next {
        common.send_to(sender, PeerMsg::NotMember { term: self.term() });
        Next::Stay
    }

    /// Sends what member `id`'s outbox holds.
    fn flush_member(&mut self, common: &mut Common, id: NodeId) {
        let commit = self.seq.commit_index();
        let Some(addr) = self.head.view().get(id).map(|m| m.addr) else { return };
        for msg in self.outbox.take(id, commit, false) {
            common.send_to(addr, msg);
        }
    }

    /// The end of a turn: every member's batch, and the commit point to those with nothing new.
    pub(super) fn flush(&mut self, common: &mut Common) {
        let commit = self.seq.commit_index();
        let moved = self.outbox.tell(commit);
        let me = common.me();
        for id in self.outbox.members() {
            if id == me {
                continue;
            }
            let Some(addr) = self.head.view().get(id).map(|m| m.addr) else { continue };
            for msg in self.outbox.take(id, commit, moved) {
                common.send_to(addr, msg);
            }
        }
    }
}

//! The coordinator role: heartbeats, failure detection, sequencing and handing the group over to
//! a higher coordinator. Admitting and removing members is in [`super::admission`]; what a
//! submission must pass and the `Order` / `Ack` / `Commit` exchange in [`super::sequencing`] (flood
//! control in `flood.rs`); the failover sync (the first thing it does in a term) in [`super::sync`].
//!
//! | from a member (or a stranger)  | the coordinator                                                  |
//! |--------------------------------|------------------------------------------------------------------|
//! | `JoinRequest`                  | admits (`JoinAck` + `Joined` to the others) or refuses (`JoinRefused`) |
//! | `Submit`                       | orders it: `Order` to every member, then `Commit` once all hold it; `Duplicate` / `Rejected` / `RateLimited` (see [`super::sequencing`]) |
//! | `Ack`                          | advances the commit point; `Commit` to every member when it moves |
//! | `Alive`                        | nothing more (every frame counts as a sign of life)             |
//! | `Leave`                        | removes the member (`Left` to the others)                        |
//! | broken or unopenable link to a member | removes it (what was queued for it is lost)               |
//! | `SyncReply`                    | see [`super::sync`]                                              |
//! | `Submit` / `Ack` / `Alive` / `SyncReply` / `Election` from a non-member | `NotMember`: rejoin |
//! | `Stale` (newer term)           | its term is over: rejoins the current group                     |
//! | `Beacon` (multicast) of a coordinator that outranks it | `Stale` to every member, then rejoins it |
//!
//! When the coordinator tells itself something, it calls the shared code directly: its own
//! entries go straight into its log, its own submissions straight into [`Coordinator::on_submit`],
//! and their outcomes (`Sent`, `SendFailed`) straight to the program.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{DedupWindow, MessageBuffer, NodeId};

use super::Next;
use super::common::Common;
use super::flood::Flood;
use super::sync::SyncState;
use crate::election::Term;
use crate::ordering::Sequencer;
use crate::protocol::{PeerMsg, Submission};

/// Whether coordinator term `a` wins over `b` when two groups meet: the higher coordinator ID
/// (Bully's rule), the higher epoch between equal IDs.
pub(super) fn outranks(a: Term, b: Term) -> bool {
    (a.coordinator, a.epoch) > (b.coordinator, b.epoch)
}

/// Heartbeats between two multicast beacons.
const BEACON_EVERY: u32 = 4;

/// What only the coordinator keeps.
#[derive(Debug)]
pub(super) struct Coordinator {
    /// Positions of this term and what every member acknowledged.
    pub(super) seq: Sequencer,
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
    /// Every message ordered, in full, for joiners' histories (kept across own terms).
    pub(super) full: MessageBuffer,
    /// IDs of messages ordered (kept across own terms), to answer resubmissions `Duplicate`.
    pub(super) known: DedupWindow,
    /// Every member's rate buckets (fresh each term).
    pub(super) flood: Flood,
}

impl Coordinator {
    /// Whether the failover sync is still running (nothing new is ordered meanwhile).
    pub(super) fn is_syncing(&self) -> bool {
        self.syncing.is_some()
    }

    /// Notes a sign of life from member `from`.
    pub(super) fn heard(&mut self, from: NodeId, now: Instant) {
        if let Some(t) = self.alive.get_mut(&from) {
            *t = now;
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
        self.next_heartbeat = now + common.cfg.heartbeat;
        self.beats += 1;
        let beacon = self.beats % BEACON_EVERY == 1;
        let commit = self.seq.commit_pos();
        let timeout = common.cfg.timeout;
        let dead: Vec<NodeId> = self.alive.iter().filter(|(_, t)| now >= **t + timeout).map(|(id, _)| *id).collect();
        let syncing = self.syncing.is_some();
        let me = common.me();
        for id in dead {
            if id != me {
                tracing::info!(%id, "member silent: removed");
                self.remove_member(common, id);
            }
        }
        let term = common.term().unwrap_or_default();
        if !syncing {
            for id in common.view.ids() {
                if id != me {
                    let clock = common.clock.counter();
                    common.send_id(id, PeerMsg::Heartbeat { term, commit, clock });
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
        let term = common.term().unwrap_or_default();
        common.multicast(PeerMsg::Beacon { term, addr: common.cfg.addr });
        self.last_beacon = Some(now);
    }

    /// A link broke, or could not be opened: the member at the other end is removed (what was
    /// queued for it is lost, so it could not follow the order any more; it rejoins).
    pub(super) fn link_down(&mut self, common: &mut Common, addr: SocketAddr) -> Next {
        let id = common.view.iter().find(|m| m.addr == addr).map(|m| m.id);
        if let Some(id) = id.filter(|id| Some(*id) != common.id) {
            self.remove_member(common, id);
        }
        Next::Stay
    }

    /// A member's answer to a heartbeat (the frame itself was the sign of life).
    pub(super) fn on_alive(&self, common: &mut Common, from: NodeId, sender: SocketAddr) -> Next {
        if common.view.contains(from) { Next::Stay } else { not_member(common, sender) }
    }

    /// A node outside the view calls an election here: a node this coordinator dropped (silence,
    /// broken link) still follows it. Tell it to rejoin instead of answering its elections forever.
    pub(super) fn on_stranger_election(&self, common: &mut Common, from: NodeId, sender: SocketAddr) -> Next {
        if from == common.me() { Next::Stay } else { not_member(common, sender) }
    }

    /// A member says this coordinator's term is over: rejoin the current group.
    pub(super) fn on_stale(&self, common: &mut Common, newer: Term, addr: SocketAddr) -> Next {
        if newer <= common.term().unwrap_or_default() {
            return Next::Stay;
        }
        tracing::info!(me = %common.me(), newer = %newer, "stale coordinator: rejoining the current group");
        Next::Rejoin(Some(addr))
    }

    /// Another coordinator's beacon: after a partition heals, the coordinator with the lower
    /// `(ID, epoch)` hands its whole group over. It tells every member (`Stale`, with the winner's
    /// address) and rejoins the winner itself; the members rejoin too and get fresh IDs from the
    /// winner's allocator. Their unordered messages stay pending and are resubmitted after the join.
    pub(super) fn on_beacon(&self, common: &mut Common, other: Term, addr: SocketAddr) -> Next {
        let Some(mine) = common.term() else { return Next::Stay };
        if addr == common.cfg.addr || !outranks(other, mine) {
            return Next::Stay;
        }
        tracing::info!(me = %common.me(), %other, "found a higher coordinator: handing the group over");
        let me = common.me();
        for id in common.view.ids() {
            if id != me {
                common.send_id(id, PeerMsg::Stale { term: other, addr });
            }
        }
        Next::Rejoin(Some(addr))
    }
}

/// "You are not a member of my group: rejoin."
pub(super) fn not_member(common: &mut Common, sender: SocketAddr) -> Next {
    let term = common.term().unwrap_or_default();
    common.send_to(sender, PeerMsg::NotMember { term });
    Next::Stay
}

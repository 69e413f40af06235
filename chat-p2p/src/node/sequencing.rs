//! Sequencing, coordinator side: what a submission must pass before it gets a position, and the
//! `Order` / `Ack` / `Commit` exchange after.
//!
//! | a `Submit` (from a member, or this node's own)             | the coordinator                                  |
//! |------------------------------------------------------------|--------------------------------------------------|
//! | from a node outside the view                               | `NotMember`: rejoin                              |
//! | during the failover sync                                   | queued (bounded, per member too), handled when the sync ends |
//! | ordered before (its `MessageId` is known)                  | `Duplicate` (no charge)                          |
//! | over the sender's rate                                     | `RateLimited { id, retry_after_ms }`, or removal as a flooder (`flood.rs`) |
//! | `sent_at` more than `MAX_CLOCK_JUMP` ahead of the coordinator's clock | `Rejected { protocol }`; the clock does not move |
//! | body over `MAX_BODY_LEN`                                   | `Rejected { too_long }`                          |
//! | named recipients, none a member                            | `Rejected { unknown_user }`                      |
//! | otherwise                                                  | stamped, `Order` to every member (text or `Hidden`), `Commit` once all hold it |
//!
//! Names are resolved as chat-core's "same name": `ALICE` reaches `alice`, and the stored
//! recipients are the members' names as registered (once each; names of nobody are dropped and
//! reported to the sender as `unknown`). The sender's name is the one the view holds for the node
//! that submitted, whatever the `Submit` claims.

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{ChatMessage, ErrorCode, NodeId, Recipients, UserName};

use super::Next;
use super::common::Common;
use super::coordinator::{Coordinator, not_member};
use super::flood::{Verdict, millis_up};
use crate::election::Term;
use crate::membership::View;
use crate::ordering::entry_for;
use crate::protocol::{Entry, Member, PeerMsg, Pos, Submission};

/// Most submissions of one member queued during the failover sync: far more than an honest node
/// has in flight (a window of [`super::SUBMIT_WINDOW`] before the sync and one after its reply).
const QUEUED_PER_MEMBER: usize = 8 * super::SUBMIT_WINDOW;

impl Coordinator {
    /// A member's submission; a stranger is told to rejoin. The sender's name is taken from the view.
    pub(super) fn on_member_submit(
        &mut self,
        common: &mut Common,
        now: Instant,
        from: NodeId,
        sender: SocketAddr,
        mut sub: Submission,
    ) -> Next {
        let Some(name) = common.view.get(from).map(|m| m.name.clone()) else {
            return not_member(common, sender);
        };
        sub.sender = name;
        self.on_submit(common, now, from, sub);
        Next::Stay
    }

    /// Orders a submission of member `from` (this node's own too), if it passes every check of the
    /// module documentation: every member gets the entry (the text if it may see it); it commits
    /// once every member holds it.
    pub(super) fn on_submit(&mut self, common: &mut Common, now: Instant, from: NodeId, sub: Submission) {
        let me = common.me();
        if self.syncing.is_some() {
            // Bounded, and per member: an honest node has at most a few windows in flight, so a
            // flooder cannot crowd the others' submissions out of the queue.
            let theirs = self.queued.iter().filter(|(f, _)| *f == from).count();
            if self.queued.len() < super::MAX_PENDING * 4 && theirs < QUEUED_PER_MEMBER {
                self.queued.push_back((from, sub));
            }
            return;
        }
        if self.known.contains(&sub.id) {
            // Ordered before (in an earlier term): the sender learns it, as a member would.
            if from == me {
                common.ordered_elsewhere(sub.id);
            } else {
                common.send_id(from, PeerMsg::Duplicate { id: sub.id });
            }
            return;
        }
        if !self.admit_rate(common, now, from, &sub) {
            return;
        }
        if from != me && !common.admits_clock("Submit", from, sub.sent_at.counter) {
            let reason = common.clock_too_far(sub.sent_at.counter);
            return refuse(common, from, sub.id, ErrorCode::Protocol, reason);
        }
        if let Err(e) = chat_core::check_body(&sub.body) {
            return refuse(common, from, sub.id, ErrorCode::TooLong, e.to_string());
        }
        let (recipients, unknown) = match resolve(&common.view, sub.recipients) {
            Ok(resolved) => resolved,
            Err(unknown) => {
                let names: Vec<&str> = unknown.iter().map(UserName::as_str).collect();
                let reason = format!("not online: {}", names.join(","));
                return refuse(common, from, sub.id, ErrorCode::UnknownUser, reason);
            }
        };
        common.clock.observe(sub.sent_at);
        let lamport = common.clock.tick();
        let msg = ChatMessage { id: sub.id, sender: sub.sender, recipients, body: sub.body, lamport, time: 0 };
        self.known.insert(msg.id);
        self.full.insert(msg.clone());
        if from == me {
            common.pending.ordered(&msg.id);
        }
        let pos = self.seq.next_pos();
        let members: Vec<Member> = common.view.iter().cloned().collect();
        for m in members {
            let unknown = if m.id == from { unknown.clone() } else { Vec::new() };
            order_to(common, m.id, pos, entry_for(&msg, &m.name), unknown);
        }
        let commit = self.seq.ack(me, pos.term, pos.index);
        broadcast_commit(common, commit);
    }

    /// Flood control for `sub` from `from`; false if it must not be ordered now (the answer, or the
    /// flooder's removal, is done). This node's own messages wait in `pending` instead.
    fn admit_rate(&mut self, common: &mut Common, now: Instant, from: NodeId, sub: &Submission) -> bool {
        let me = common.me();
        match self.flood.charge(now, from, sub.body.len()) {
            Verdict::Pass => true,
            Verdict::Limited(wait) | Verdict::Flood(wait) if from == me => {
                common.pending.rate_limited(&sub.id, now, wait);
                false
            }
            Verdict::Limited(wait) => {
                common.counters.rate_limited += 1;
                tracing::debug!(%from, ?wait, "submission over the rate limit");
                common.send_id(from, PeerMsg::RateLimited { id: sub.id, retry_after_ms: millis_up(wait) });
                false
            }
            Verdict::Flood(_) => {
                common.counters.flooders_removed += 1;
                tracing::warn!(%from, "kept submitting over the rate limit after warnings: removed");
                let reason = "kept submitting over the rate limit after warnings".to_string();
                common.send_id(from, PeerMsg::Rejected { id: sub.id, code: ErrorCode::Flood, reason });
                self.remove_member(common, from);
                self.flood.forget(from);
                false
            }
        }
    }

    /// A member holds every position of `term` up to `index`.
    pub(super) fn on_ack(
        &mut self,
        common: &mut Common,
        from: NodeId,
        sender: SocketAddr,
        term: Term,
        index: u64,
    ) -> Next {
        if !common.view.contains(from) {
            return not_member(common, sender);
        }
        let commit = self.seq.ack(from, term, index);
        broadcast_commit(common, commit);
        Next::Stay
    }
}

/// Refuses submission `id` of `from` (this node's own: its send fails at once).
fn refuse(common: &mut Common, from: NodeId, id: chat_core::MessageId, code: ErrorCode, reason: String) {
    if from == common.me() {
        common.rejected(id, code, reason);
    } else {
        common.send_id(from, PeerMsg::Rejected { id, code, reason });
    }
}

/// The recipients as the members' registered names (each once) and the names that are nobody's;
/// `Err` with those if no named recipient is a member.
fn resolve(view: &View, recipients: Recipients) -> Result<(Recipients, Vec<UserName>), Vec<UserName>> {
    match recipients {
        Recipients::Broadcast => Ok((Recipients::Broadcast, Vec::new())),
        // Rooms are not replicated in P2P mode yet: nobody is a member.
        Recipients::Room(_) => Err(Vec::new()),
        Recipients::Unicast(name) => match view.by_name(&name) {
            Some(m) => Ok((Recipients::Unicast(m.name.clone()), Vec::new())),
            None => Err(vec![name]),
        },
        Recipients::Multicast(list) => {
            let mut known: Vec<UserName> = Vec::new();
            let mut unknown = Vec::new();
            for name in list {
                match view.by_name(&name) {
                    Some(m) if !known.contains(&m.name) => known.push(m.name.clone()),
                    Some(_) => {}
                    None => unknown.push(name),
                }
            }
            if known.is_empty() { Err(unknown) } else { Ok((Recipients::Multicast(known), unknown)) }
        }
    }
}

/// Sends one ordered entry to member `id`, or, for this node itself, stores it.
pub(super) fn order_to(common: &mut Common, id: NodeId, pos: Pos, entry: Entry, unknown: Vec<UserName>) {
    if id == common.me() {
        common.log.receive(pos, entry, unknown);
    } else {
        common.send_id(id, PeerMsg::Order { pos, entry, unknown });
    }
}

/// Tells every other member the new commit point, and delivers up to it here.
pub(super) fn broadcast_commit(common: &mut Common, commit: Option<Pos>) {
    let Some(pos) = commit else { return };
    let me = common.me();
    for id in common.view.ids() {
        if id != me {
            common.send_id(id, PeerMsg::Commit { pos });
        }
    }
    common.commit(pos);
}

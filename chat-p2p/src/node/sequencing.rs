//! Sequencing, coordinator side: what a submission must pass before it gets a position, how every
//! entry (a message or a change of the group) is ordered into every member's outbox, and the
//! acknowledgements that commit it.
//!
//! | a `Submit` (from a member, or this node's own)             | the coordinator                                  |
//! |------------------------------------------------------------|--------------------------------------------------|
//! | from a node outside the group                              | `NotMember`: rejoin                              |
//! | during the failover sync                                   | queued (bounded, per member too), handled when the sync ends |
//! | ordered before (its `MessageId` is known)                  | `Duplicate` (no charge)                          |
//! | over the sender's rate                                     | `RateLimited { id, retry_after_ms }`, or removal as a flooder (`flood.rs`) |
//! | `sent_at` more than `MAX_CLOCK_JUMP` ahead of the coordinator's clock | `Rejected { protocol }`; the clock does not move |
//! | body over `MAX_BODY_LEN`                                   | `Rejected { too_long }`                          |
//! | named recipients, none a member nor a known offline user   | `Rejected { unknown_user }`                      |
//! | to a room its sender is not in                             | `Rejected { not_member }`                        |
//! | otherwise                                                  | stamped (Lamport and wall clock), one position, an entry in every member's outbox (text or `Hidden`); committed once every member acknowledged it |
//!
//! Names are resolved as chat-core's "same name": `ALICE` reaches `alice`, and the stored
//! recipients are the members' names as registered (once each; names of nobody are dropped and
//! reported to the sender as `unknown`). A named recipient who is not a member but a known offline
//! user (a departed member, see `group/offline.rs`) stays a recipient: the message is ordered, and a
//! `Kept` change right after it keeps it for those users (the sender's receipt lists them as
//! `queued`). The sender's name is the one the group holds for the node
//! that submitted, whatever the `Submit` claims. A room message is stored under the room's name as
//! it is known, and only the room's members (and its sender) get its text.
//!
//! Acknowledgements and commits are cumulative: a member acknowledges each batch once, the
//! coordinator delivers its own copy as soon as everybody holds a position, and tells the members
//! with the next batch (`outbox.rs`).

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{ChatMessage, ErrorCode, NodeId, Recipients, UserName};

use super::Next;
use super::common::Common;
use super::coordinator::Coordinator;
use super::flood::{Verdict, millis_up};
use crate::election::Term;
use crate::group::{Change, Group};
use crate::protocol::{Entry, PeerMsg, Pos, Submission};

/// Most submissions of one member queued during the failover sync: far more than an honest node
/// has in flight (a window of [`super::SUBMIT_WINDOW`] before the sync and one after its reply).
const QUEUED_PER_MEMBER: usize = 8 * super::SUBMIT_WINDOW;

impl Coordinator {
    /// A member's submission; a stranger is told to rejoin. The sender's name is taken from the group.
    pub(super) fn on_member_submit(
        &mut self,
        common: &mut Common,
        now: Instant,
        from: NodeId,
        sender: SocketAddr,
        mut sub: Submission,
    ) -> Next {
        let Some(name) = self.head.view().get(from).map(|m| m.name.clone()) else {
            return self.not_member(common, sender);
        };
        sub.sender = name;
        self.on_submit(common, now, from, sub);
        Next::Stay
    }

    /// Orders a submission of member `from` (this node's own too), if it passes every check of the
    /// module documentation.
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
                self.send_member(common, from, PeerMsg::Duplicate { id: sub.id });
            }
            return;
        }
        if !self.admit_rate(common, now, from, &sub) {
            return;
        }
        if from != me && !common.admits_clock("Submit", from, sub.sent_at.counter) {
            let reason = common.clock_too_far(sub.sent_at.counter);
            return self.refuse(common, from, sub.id, ErrorCode::Protocol, reason);
        }
        if let Err(e) = chat_core::check_body(&sub.body) {
            return self.refuse(common, from, sub.id, ErrorCode::TooLong, e.to_string());
        }
        let (recipients, unknown, offline) = match resolve(&self.head, &sub.sender, sub.recipients) {
            Ok(resolved) => resolved,
            Err((code, reason)) => return self.refuse(common, from, sub.id, code, reason),
        };
        common.clock.observe(sub.sent_at);
        let lamport = common.clock.tick();
        self.last_time = self.last_time.max(common.wall);
        let msg =
            ChatMessage { id: sub.id, sender: sub.sender, recipients, body: sub.body, lamport, time: self.last_time };
        self.known.insert(msg.id);
        if from == me {
            common.pending.ordered(&msg.id);
        }
        let kept = (!offline.is_empty()).then(|| Change::Kept { names: offline, msg: msg.clone() });
        self.order_message(common, now, from, msg, unknown);
        if let Some(kept) = kept {
            self.order_change(common, now, kept);
        }
    }

    /// Gives `msg` the next position: every member's outbox gets the entry it may see (the sender
    /// also the names of nobody), this node's log its own.
    fn order_message(
        &mut self,
        common: &mut Common,
        now: Instant,
        from: NodeId,
        msg: ChatMessage,
        unknown: Vec<UserName>,
    ) {
        let pos = self.seq.next_pos();
        let me = common.me();
        let everybody = msg.recipients == Recipients::Broadcast;
        let (head, outbox) = (&self.head, &mut self.outbox);
        for m in head.view().iter() {
            let entry = if everybody { Entry::Visible(msg.clone()) } else { head.entry_for(&msg, &m.name) };
            let unknown = if m.id == from { unknown.clone() } else { Vec::new() };
            if m.id == me {
                common.log.receive(pos, entry, unknown);
            } else {
                outbox.push(m.id, pos, entry, unknown);
            }
        }
        self.archive.push(msg);
        let commit = self.seq.ack(me, pos.term, pos.index);
        self.advance(common, now, commit);
    }

    /// Gives a change of the group the next position (every member's outbox, this node's log) and
    /// applies it to the head. A member that leaves gets no more entries, its own `Left` included; a
    /// joiner gets the entries after its `Joined` (its snapshot has that one).
    pub(super) fn order_change(&mut self, common: &mut Common, now: Instant, change: Change) -> Pos {
        let mut commit = None;
        if let Change::Left(id) = &change {
            self.head.apply(&change);
            commit = self.seq.remove_member(*id);
        }
        let pos = self.seq.next_pos();
        let me = common.me();
        for id in self.head.view().ids() {
            let entry = Entry::Change(change.clone());
            if id == me {
                common.log.receive(pos, entry, Vec::new());
            } else {
                self.outbox.push(id, pos, entry, Vec::new());
            }
        }
        if !matches!(change, Change::Left(_)) {
            self.head.apply(&change);
        }
        self.advance(common, now, commit);
        let commit = self.seq.ack(me, pos.term, pos.index);
        self.advance(common, now, commit);
        pos
    }

    /// The commit point moved (if `commit` is one): deliver here, and answer members whose snapshot
    /// is now committed. The members hear of it at the end of the turn.
    pub(super) fn advance(&mut self, common: &mut Common, now: Instant, commit: Option<Pos>) {
        if let Some(pos) = commit {
            common.commit(pos);
            self.answer_admitted(common, now);
        }
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
                self.send_member(common, from, PeerMsg::RateLimited { id: sub.id, retry_after_ms: millis_up(wait) });
                false
            }
            Verdict::Flood(_) => {
                common.counters.flooders_removed += 1;
                tracing::warn!(%from, "kept submitting over the rate limit after warnings: removed");
                let reason = "kept submitting over the rate limit after warnings".to_string();
                self.send_member(common, from, PeerMsg::Rejected { id: sub.id, code: ErrorCode::Flood, reason });
                self.remove_member(common, now, from);
                self.flood.forget(from);
                false
            }
        }
    }

    /// A member holds every position of `term` up to `index`.
    pub(super) fn on_ack(
        &mut self,
        common: &mut Common,
        now: Instant,
        from: NodeId,
        sender: SocketAddr,
        term: Term,
        index: u64,
    ) -> Next {
        if !self.knows(from) {
            return self.not_member(common, sender);
        }
        if self.outbox.is_held(from) {
            return Next::Stay; // an acknowledgement of an earlier admission, not of its snapshot
        }
        let commit = self.seq.ack(from, term, index);
        self.advance(common, now, commit);
        Next::Stay
    }

    /// Refuses submission `id` of `from` (this node's own: its send fails at once).
    fn refuse(&mut self, common: &mut Common, from: NodeId, id: chat_core::MessageId, code: ErrorCode, reason: String) {
        if from == common.me() {
            common.rejected(id, code, reason);
        } else {
            self.send_member(common, from, PeerMsg::Rejected { id, code, reason });
        }
    }
}

/// Resolved recipients: as stored, the names of nobody, the offline users among them.
type Resolved = (Recipients, Vec<UserName>, Vec<UserName>);

/// The recipients as the members' and known offline users' registered names (each once), the names
/// that are nobody's, and the offline ones; refused if no named recipient is a member or a known
/// offline user, or if `sender` is not in the room it writes to.
fn resolve(group: &Group, sender: &UserName, recipients: Recipients) -> Result<Resolved, (ErrorCode, String)> {
    let view = group.view();
    let nobody = |unknown: Vec<UserName>| {
        let names: Vec<&str> = unknown.iter().map(UserName::as_str).collect();
        (ErrorCode::UnknownUser, format!("not online: {}", names.join(",")))
    };
    // A member's name, or a known offline user's (flagged), as registered.
    let find = |name: &UserName| match view.by_name(name) {
        Some(m) => Some((m.name.clone(), false)),
        None => group.offline_user(name).map(|n| (n, true)),
    };
    match recipients {
        Recipients::Broadcast => Ok((Recipients::Broadcast, Vec::new(), Vec::new())),
        Recipients::Room(room) => match group.room(&room) {
            Some(known) if group.in_room(sender, &room) => {
                Ok((Recipients::Room(known.clone()), Vec::new(), Vec::new()))
            }
            _ => Err((ErrorCode::NotMember, format!("you are not in {room}: /join {room} first"))),
        },
        Recipients::Unicast(name) => match find(&name) {
            Some((known, offline)) => {
                let offline = if offline { vec![known.clone()] } else { Vec::new() };
                Ok((Recipients::Unicast(known), Vec::new(), offline))
            }
            None => Err(nobody(vec![name])),
        },
        Recipients::Multicast(list) => {
            let mut known: Vec<UserName> = Vec::new();
            let mut unknown = Vec::new();
            let mut away = Vec::new();
            for name in list {
                match find(&name) {
                    Some((n, _)) if known.contains(&n) => {}
                    Some((n, offline)) => {
                        if offline {
                            away.push(n.clone());
                        }
                        known.push(n);
                    }
                    None => unknown.push(name),
                }
            }
            if known.is_empty() { Err(nobody(unknown)) } else { Ok((Recipients::Multicast(known), unknown, away)) }
        }
    }
}

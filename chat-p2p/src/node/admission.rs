//! Who is in the group, coordinator side: admitting joiners and removing members. Both are changes
//! ordered in the log (`Joined`, `Left`), so every member reports them in the same order.
//!
//! ```text
//!  JoinRequest{name, addr, nonce, clock, key, id} ──► name free, room left: ID (its old one back if the
//!        │                                             departed list agrees, else the next) ──► Joined at q
//!        │      (the joiner is held: what is ordered after q waits in its outbox)
//!        │      q committed (every other member holds it) ──► JoinAck{ID, term, state at q, history, start q}
//!        │                                                    then the joiner's outbox (q+1 …)
//!        │      (quiet: JoinedQuietly instead of Joined: nobody reports it, nor its Left)
//!        ├── the same name, address and key as a member:
//!        │       asking for that member's ID back: it is admitted again in place (no Joined: it never left)
//!        │       otherwise (it is being admitted, or its JoinAck answered this very request, a retry
//!        │       that crossed the answer): a copy, ignored
//!        ├── name breaks the naming rules ───► JoinRefused{invalid_name}
//!        ├── the same name as a member's ────► JoinRefused{name_taken}
//!        ├── with a secret: no key, or a member's key ──► JoinRefused{protocol}
//!        ├── group full ─────────────────────► JoinRefused{busy}
//!        ├── syncing ────────────────────────► no answer: the joiner retries
//!        └── clock > ours + MAX_CLOCK_JUMP ──► dropped (counted, traced)
//!  Leave / silence / broken link / no sync answer / flood ──► Left ordered (commit may advance)
//!  a joiner with the name and key of an offline queue ──► Collected{name, messages} right after its Joined
//! ```
//!
//! The `JoinAck` waits for its `Joined` to be committed so that no joiner ever holds an ID the
//! other members do not know: if this coordinator dies first, the next one has not handed that ID
//! out, and the joiner, never answered, asks again. The joiner's liveness clock starts when its
//! `JoinAck` is sent, not before (its link may take a while to open).
//!
//! Names are admitted as the server admits them: only through [`UserName::new`] (names decoded from
//! the wire are checked only for safety), and "the same name" is chat-core's (case and look-alikes
//! folded): while `alice` is a member, `ALICE` or an all-Cyrillic `аӏісе` is refused as taken, and
//! a mixed-script `аlice` (Cyrillic `а`) as invalid. A name must arrive normalized (NFKC), as every
//! node sends it, so the member keeps exactly the name it asked for.
//!
//! With a group secret, the new member's ID is bound to the key its request names (`Member.key`):
//! from then on every node takes that ID only from frames over links authenticated with that key
//! (`identity.rs`). A request whose key is already a member's is refused, so nobody can attach a
//! second name to another member's key.

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{ErrorCode, NodeId, Timestamp, UserName};

use super::common::Common;
use super::coordinator::Coordinator;
use super::{MAX_PEERS, Next};
use crate::group::Change;
use crate::ordering::FRAME_BUDGET;
use crate::protocol::{Member, PeerKey, PeerMsg, Pos};

/// A `JoinRequest`'s fields.
#[derive(Debug)]
pub(super) struct JoinRequest {
    /// The name asked for.
    pub(super) name: UserName,
    /// Where the joiner listens (the answer goes there).
    pub(super) addr: SocketAddr,
    /// Echoed in the answer.
    pub(super) nonce: u64,
    /// The joiner's Lamport counter.
    pub(super) clock: u64,
    /// The joiner's static key (with a group secret).
    pub(super) key: Option<PeerKey>,
    /// The ID the joiner held before.
    pub(super) id: Option<NodeId>,
    /// A transient member (not announced, not listed, collects nothing).
    pub(super) quiet: bool,
}

/// A member admitted, waiting for its snapshot's position to be committed.
#[derive(Debug, Clone)]
pub(super) struct Admitting {
    /// Its ID.
    pub(super) id: NodeId,
    /// The index (this term) of its snapshot: everything up to it is in the state it gets.
    pub(super) at: u64,
    /// Its request's nonce.
    pub(super) nonce: u64,
    /// Where it listens.
    pub(super) addr: SocketAddr,
    /// The archive's mark when it was admitted: its history is what was ordered before.
    pub(super) mark: u64,
}

impl Coordinator {
    /// A node asks to be admitted (by multicast, by TCP, or forwarded by a member).
    pub(super) fn on_join_request(&mut self, common: &mut Common, now: Instant, request: JoinRequest) -> Next {
        let JoinRequest { name, addr, nonce, clock, key, id: claim, quiet } = request;
        if !common.admits_clock("JoinRequest", addr, clock) {
            return Next::Stay;
        }
        common.clock.observe(Timestamp::new(clock, NodeId::default()));
        if self.syncing.is_some() {
            return Next::Stay; // the joiner retries
        }
        let refuse = |code, reason: String| PeerMsg::JoinRefused { nonce, code, reason };
        if let Some(reason) = naming_refusal(&name) {
            tracing::info!(%addr, %reason, "join refused: invalid name");
            common.send_to(addr, refuse(ErrorCode::InvalidName, reason));
            return Next::Stay;
        }
        if let Some(reason) = self.key_refusal(common, &name, addr, key) {
            tracing::info!(%addr, %reason, "join refused");
            common.send_to(addr, refuse(ErrorCode::Protocol, reason));
            return Next::Stay;
        }
        match self.head.view().by_name(&name).cloned() {
            Some(m) if m.addr == addr && m.name == name && m.key == key => {
                let admitting = self.admitting.iter().any(|a| a.id == m.id);
                let answered = self.answered.get(&m.id) == Some(&nonce);
                if !admitting && !answered && claim.is_some() {
                    // It believes it is out (it was told so, or lost its coordinator; after a
                    // partition it may even believe it holds another number): admit it again in
                    // place, under the ID this group knows it by. Nobody else sees anything: it
                    // never left.
                    tracing::info!(id = %m.id, %name, "admitted again");
                    let commit = self.seq.add_member(m.id);
                    let at = self.seq.last_pos().index;
                    self.outbox.add(m.id, at + 1, true);
                    self.alive.remove(&m.id);
                    self.admitting.push(Admitting { id: m.id, at, nonce, addr, mark: self.archive.mark() });
                    self.advance(common, now, commit);
                    self.answer_admitted(common, now);
                }
            }
            Some(m) => {
                let reason = if m.name == name {
                    format!("the name {name} is taken")
                } else {
                    format!("the name {name} is too much like {}, a member", m.name)
                };
                common.send_to(addr, refuse(ErrorCode::NameTaken, reason));
            }
            None if self.head.view().len() >= MAX_PEERS => {
                common.send_to(addr, refuse(ErrorCode::Busy, "the group is full".into()));
            }
            None => {
                let id = self.head.id_for(&name, key, claim);
                self.admit(common, now, Member { id, name, addr, key }, nonce, quiet);
            }
        }
        Next::Stay
    }

    /// Orders a newcomer's `Joined`; its `JoinAck` goes once that is committed.
    fn admit(&mut self, common: &mut Common, now: Instant, member: Member, nonce: u64, quiet: bool) {
        let (id, addr) = (member.id, member.addr);
        tracing::info!(name = %member.name, %id, "admitting");
        let mark = self.archive.mark();
        // A quiet member (a one-shot) is not the user back: it leaves the queue for the user's return.
        let queue = if quiet { None } else { self.head.collectable(&member.name, member.key) };
        let change = if quiet { Change::JoinedQuietly(member) } else { Change::Joined(member) };
        let pos = self.order_change(common, now, change);
        let commit = self.seq.add_member(id);
        self.outbox.add(id, pos.index + 1, true);
        self.admitting.push(Admitting { id, at: pos.index, nonce, addr, mark });
        self.advance(common, now, commit);
        // Already committed if nobody else had to acknowledge it (a group of one).
        self.answer_admitted(common, now);
        // Back under the key its queue is bound to: what was kept for it, right after its `Joined`
        // (so before anything else it gets), in the change itself (its snapshot may be taken later).
        if let Some(q) = queue {
            tracing::info!(name = %q.name, %id, kept = q.messages.len(), dropped = q.dropped, "delivering offline messages");
            let change = Change::Collected { name: q.name, messages: q.messages, dropped: q.dropped };
            self.order_change(common, now, change);
        }
    }

    /// Sends the `JoinAck` of every member whose snapshot position is committed, then its outbox.
    pub(super) fn answer_admitted(&mut self, common: &mut Common, now: Instant) {
        let commit = self.seq.commit_index();
        let due: Vec<Admitting> = self.admitting.iter().filter(|a| a.at <= commit).cloned().collect();
        if due.is_empty() {
            return;
        }
        self.admitting.retain(|a| a.at > commit);
        let term = self.term();
        for a in due {
            let Some(name) = common.group.view().get(a.id).map(|m| m.name.clone()) else { continue };
            let state = common.group.snapshot();
            let weight = 128 * (state.members.len() + state.departed.len())
                + 48 * state.rooms.len()
                + common.group.offline_weight();
            let mut budget = (FRAME_BUDGET / 2).saturating_sub(weight);
            let mut history = self.archive.last_before(a.mark, common.cfg.history, |m| common.group.may_see(m, &name));
            let keep = history.iter().rev().take_while(|m| {
                budget = budget.saturating_sub(m.body.len() + 128);
                budget > 0
            });
            let skip = history.len() - keep.count();
            history.drain(..skip);
            let clock = common.clock.counter();
            let start = Pos::new(term, a.at);
            let ack = PeerMsg::JoinAck { nonce: a.nonce, id: a.id, term, state, history, start, clock };
            common.send_to(a.addr, ack);
            self.answered.insert(a.id, a.nonce);
            self.outbox.release(a.id);
            self.alive.insert(a.id, now);
        }
    }

    /// A member left cleanly; a stranger's `Leave` is ignored.
    pub(super) fn on_leave(&mut self, common: &mut Common, now: Instant, from: NodeId) -> Next {
        self.remove_member(common, now, from);
        Next::Stay
    }

    /// Removes a member: orders its `Left` (every member reports it when it is delivered).
    pub(super) fn remove_member(&mut self, common: &mut Common, now: Instant, id: NodeId) {
        if !self.knows(id) || Some(id) == common.id {
            return;
        }
        self.alive.remove(&id);
        if let Some(s) = self.syncing.as_mut() {
            // Nothing is ordered during the sync (the term's positions start after it): a member
            // that does not answer is removed when the sync ends.
            s.waiting.remove(&id);
            return;
        }
        self.flood.forget(id);
        self.outbox.remove(id);
        self.admitting.retain(|a| a.id != id);
        self.answered.remove(&id);
        tracing::info!(%id, "member removed");
        self.order_change(common, now, Change::Left(id));
    }

    /// Why a request's key may not join, with a group secret: it has none, or it is already another
    /// member's (a retry with the same name and address is fine).
    fn key_refusal(&self, common: &Common, name: &UserName, addr: SocketAddr, key: Option<PeerKey>) -> Option<String> {
        common.cfg.key?;
        let Some(key) = key else { return Some("a join request without a key, in a group with a secret".into()) };
        self.head
            .view()
            .iter()
            .find(|m| m.key == Some(key) && !(m.name == *name && m.addr == addr))
            .map(|m| format!("the key {key} is already member {}'s", m.id))
    }
}

/// Why `name` (decoded from the wire) may not join, if it may not: every naming rule of
/// [`UserName::new`], and the normalized form.
fn naming_refusal(name: &UserName) -> Option<String> {
    match UserName::new(name.as_str()) {
        Err(e) => Some(e.to_string()),
        Ok(normalized) if normalized != *name => {
            Some(format!("invalid user name {:?}: it is not in normalized form (NFKC): {normalized}", name.as_str()))
        }
        Ok(_) => None,
    }
}

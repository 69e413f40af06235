//! Who is in the group, coordinator side: admitting joiners and removing members.
//!
//! ```text
//!  JoinRequest{name, addr, nonce, clock, key} ──► name free, room left: a fresh ID ──► Joined ──► every other member
//!                                                                            └──► JoinAck{ID, term, members,
//!                                                                                 history, start, clock} ──► joiner
//!                                            name breaks the naming rules ───► JoinRefused{invalid_name}
//!                                            the same name as a member's ────► JoinRefused{name_taken}
//!                                            (a retry: same name, address and key: the same ID again)
//!                                            with a secret: no key, or a member's key ──► JoinRefused{protocol}
//!                                            group full ─────────────────────► JoinRefused{busy}
//!                                            syncing ────────────────────────► no answer: the joiner retries
//!                                            clock > ours + MAX_CLOCK_JUMP ──► dropped (counted, traced)
//!  Leave / silence / broken link / no sync answer / flood ──► removed: Left ──► every other member (commit may advance)
//! ```
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

use chat_core::{ErrorCode, Event, NodeId, Timestamp, UserName};

use super::common::Common;
use super::coordinator::Coordinator;
use super::sequencing::broadcast_commit;
use super::{MAX_PEERS, Next};
use crate::election::Term;
use crate::ordering::FRAME_BUDGET;
use crate::protocol::{Member, PeerKey, PeerMsg};

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
}

impl Coordinator {
    /// A node asks to be admitted (by multicast, by TCP, or forwarded by a member).
    pub(super) fn on_join_request(&mut self, common: &mut Common, now: Instant, request: JoinRequest) -> Next {
        let JoinRequest { name, addr, nonce, clock, key } = request;
        if !common.admits_clock("JoinRequest", addr, clock) {
            return Next::Stay;
        }
        common.clock.observe(Timestamp::new(clock, NodeId::default()));
        if self.syncing.is_some() {
            return Next::Stay; // the joiner retries
        }
        let term = common.term().unwrap_or_default();
        let refuse = |code, reason: String| PeerMsg::JoinRefused { nonce, code, reason };
        if let Some(reason) = naming_refusal(&name) {
            tracing::info!(%addr, %reason, "join refused: invalid name");
            common.send_to(addr, refuse(ErrorCode::InvalidName, reason));
            return Next::Stay;
        }
        if let Some(reason) = key_refusal(common, &name, addr, key) {
            tracing::info!(%addr, %reason, "join refused");
            common.send_to(addr, refuse(ErrorCode::Protocol, reason));
            return Next::Stay;
        }
        let id = match common.view.by_name(&name) {
            Some(m) if m.addr == addr && m.name == name && m.key == key => m.id, // a retry whose answer was lost
            Some(m) => {
                let reason = if m.name == name {
                    format!("the name {name} is taken")
                } else {
                    format!("the name {name} is too much like {}, a member", m.name)
                };
                common.send_to(addr, refuse(ErrorCode::NameTaken, reason));
                return Next::Stay;
            }
            None if common.view.len() >= MAX_PEERS => {
                common.send_to(addr, refuse(ErrorCode::Busy, "the group is full".into()));
                return Next::Stay;
            }
            None => self.admit(common, now, term, Member { id: NodeId::default(), name: name.clone(), addr, key }),
        };
        let mut history = self.full.last_visible_to(&name, common.cfg.history);
        let mut budget = FRAME_BUDGET / 2;
        let keep = history.iter().rev().take_while(|m| {
            let w = m.body.len() + 128;
            budget = budget.saturating_sub(w);
            budget > 0
        });
        let skip = history.len() - keep.count();
        history.drain(..skip);
        let members = common.view.iter().cloned().collect();
        let clock = common.clock.counter();
        let ack = PeerMsg::JoinAck { nonce, id, term, members, history, start: self.seq.last_pos(), clock };
        common.send_to(addr, ack);
        Next::Stay
    }

    /// Gives a newcomer (its `id` is ignored) a fresh ID and tells the others.
    fn admit(&mut self, common: &mut Common, now: Instant, term: Term, mut member: Member) -> NodeId {
        let id = common.alloc.next_id(&mut common.rng);
        member.id = id;
        let name = member.name.clone();
        let me = common.me();
        for other in common.view.ids() {
            if other != me {
                common.send_id(other, PeerMsg::Joined { term, member: member.clone() });
            }
        }
        common.view.insert(member);
        common.sync_peers();
        self.seq.add_member(id);
        self.alive.insert(id, now);
        if let Some(info) = common.peer_info(id) {
            common.event(Event::PeerJoined(info));
        }
        tracing::info!(%name, %id, "admitted");
        id
    }

    /// A member left cleanly; a stranger's `Leave` is ignored.
    pub(super) fn on_leave(&mut self, common: &mut Common, from: NodeId) -> Next {
        if common.view.contains(from) {
            self.remove_member(common, from);
        }
        Next::Stay
    }

    /// Removes a member and tells the others.
    pub(super) fn remove_member(&mut self, common: &mut Common, id: NodeId) {
        let Some(info) = common.peer_info(id) else { return };
        common.view.remove(id);
        common.sync_peers();
        let term = common.term().unwrap_or_default();
        let me = common.me();
        for other in common.view.ids() {
            if other != me {
                common.send_id(other, PeerMsg::Left { term, id });
            }
        }
        self.alive.remove(&id);
        if let Some(s) = self.syncing.as_mut() {
            s.waiting.remove(&id);
        }
        self.flood.forget(id);
        let commit = self.seq.remove_member(id);
        broadcast_commit(common, commit);
        tracing::info!(%id, name = %info.name, "member left");
        common.event(Event::PeerLeft(info));
    }
}

/// Why a request's key may not join, with a group secret: it has none, or it is already another
/// member's (a retry with the same name and address is fine).
fn key_refusal(common: &Common, name: &UserName, addr: SocketAddr, key: Option<PeerKey>) -> Option<String> {
    common.cfg.key?;
    let Some(key) = key else { return Some("a join request without a key, in a group with a secret".into()) };
    common
        .view
        .iter()
        .find(|m| m.key == Some(key) && !(m.name == *name && m.addr == addr))
        .map(|m| format!("the key {key} is already member {}'s", m.id))
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

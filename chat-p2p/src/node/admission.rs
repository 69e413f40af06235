//! Who is in the group, coordinator side: admitting joiners and removing members.
//!
//! ```text
//!  JoinRequest{name, addr, nonce, clock} ──► name free, room left: a fresh ID ──► Joined ──► every other member
//!                                                                            └──► JoinAck{ID, term, members,
//!                                                                                 history, start, clock} ──► joiner
//!                                            name breaks the naming rules ───► JoinRefused{invalid_name}
//!                                            the same name as a member's ────► JoinRefused{name_taken}
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

use std::net::SocketAddr;
use std::time::Instant;

use chat_core::{ErrorCode, Event, NodeId, Timestamp, UserName};

use super::common::Common;
use super::coordinator::Coordinator;
use super::sequencing::broadcast_commit;
use super::{MAX_PEERS, Next};
use crate::election::Term;
use crate::ordering::FRAME_BUDGET;
use crate::protocol::{Member, PeerMsg};

impl Coordinator {
    /// A node asks to be admitted (by multicast, by TCP, or forwarded by a member).
    pub(super) fn on_join_request(
        &mut self,
        common: &mut Common,
        now: Instant,
        name: UserName,
        addr: SocketAddr,
        nonce: u64,
        clock: u64,
    ) -> Next {
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
        let id = match common.view.by_name(&name) {
            Some(m) if m.addr == addr && m.name == name => m.id, // a retry whose answer was lost
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
            None => self.admit(common, now, term, name.clone(), addr),
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

    /// Gives a newcomer an ID and tells the others.
    fn admit(&mut self, common: &mut Common, now: Instant, term: Term, name: UserName, addr: SocketAddr) -> NodeId {
        let id = common.alloc.next_id(&mut common.rng);
        let member = Member { id, name: name.clone(), addr };
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

//! Who receives a message: a broadcast goes to the shared stream (every logged-in user, the sender
//! included); a unicast or multicast to the named users that have a session, and to its sender; a
//! room message to the room's members that have a session (the sender is one). Named users who are
//! offline but known (see `offline`) get it at their next login; a detached session gets it when it
//! resumes (see `resume`).
//!
//! | addressing | recipients             | outputs                                                        |
//! |------------|------------------------|----------------------------------------------------------------|
//! | broadcast  | —                      | `Store`, `Stream(Message)`, `Reply(Sent)`                      |
//! | unicast    | has a session          | `Store`, `Deliver` to [target, sender], `Reply(Sent)`          |
//! | unicast    | offline, known         | `Store` (queued), `Deliver` to [sender], `Reply(Sent { queued })` |
//! | unicast    | nobody knows the name  | `Reply(Rejected { unknown_user })`                              |
//! | multicast  | some known             | `Store` (known names kept), `Deliver`, `Reply(Sent { unknown, queued })` |
//! | multicast  | none known             | `Reply(Rejected { unknown_user })`                              |
//! | room       | sender a member        | `Store`, `Deliver` to the members online, `Reply(Sent)`         |
//! | room       | sender not a member    | `Reply(Rejected { not_member })`                                |
//! | any, with a key already answered | —  | `Reply(Sent)` as before; nothing stored (an idempotent retry)   |
//! | any        | body over the limit    | `Reply(Rejected { too_long })`                                  |
//! | any        | `sent_at` more than `MAX_CLOCK_JUMP` ahead of the server's clock | `Reply(Rejected { protocol })` |
//! | any        | sender not logged in   | `Reply(Rejected { protocol })`                                  |
//! | any        | over the rate limit    | `Reply(RateLimited)` or `Kick { flood }` (see `limits`)         |

use std::time::Instant;

use chat_core::{ErrorCode, MAX_BODY_LEN, MAX_CLOCK_JUMP, Recipients, Timestamp, UserName};

use super::commit::Visible;
use super::sessions::Receipt;
use super::throttle::Admit;
use super::{ConnId, Router};
use crate::journal::record::Stored;
use crate::protocol::ServerFrame;

/// Where an accepted message goes.
enum Audience {
    /// The shared stream.
    Everyone,
    /// These connections only.
    Only(Vec<ConnId>),
}

/// A resolved addressing: the audience, the recipients to store, the unknown and the queued names.
struct Resolved {
    audience: Audience,
    recipients: Recipients,
    unknown: Vec<UserName>,
    queued: Vec<UserName>,
}

impl Router {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: u64,
        recipients: Recipients,
        body: String,
        sent_at: Timestamp,
        key: u64,
    ) {
        let Some(sender) = self.sessions.name_of(conn).cloned() else {
            return self.reject(conn, req, ErrorCode::Protocol, "log in first".into());
        };
        if key != 0
            && let Some(r) = self.sessions.session_registered(&sender).and_then(|s| s.receipt(key)).cloned()
        {
            return self.reply(conn, ServerFrame::Sent { req, id: r.id, unknown: r.unknown, queued: r.queued });
        }
        if let Some(why) = self.commit.failed() {
            return self.reject(conn, req, ErrorCode::StorageUnavailable, why.to_string());
        }
        match self.admit_send(now, conn, req, body.len()) {
            Admit::Go => {}
            Admit::Done => return,
            Admit::Hold(until) => return self.hold(now, conn, until, req, recipients, body, sent_at, key),
        }
        if !self.clock.admits(sent_at) {
            let message = format!(
                "your Lamport clock ({}) is more than {MAX_CLOCK_JUMP} ahead of the server's ({})",
                sent_at.counter,
                self.clock.counter()
            );
            return self.reject(conn, req, ErrorCode::Protocol, message);
        }
        if body.len() > MAX_BODY_LEN {
            let message = format!("message body is {} bytes, the limit is {MAX_BODY_LEN}", body.len());
            return self.reject(conn, req, ErrorCode::TooLong, message);
        }
        let Resolved { audience, recipients, unknown, queued } = match self.resolve(conn, &sender, recipients) {
            Ok(resolved) => resolved,
            Err((code, message)) => return self.reject(conn, req, code, message),
        };
        let message = self.order(sender.clone(), recipients, body, sent_at);
        self.store(Stored { message: message.clone(), key, queued: queued.clone(), unknown: unknown.clone() });
        let (id, seq) = (message.id, message.id.seq);
        match audience {
            Audience::Everyone => self.stream(ServerFrame::Message(message), seq),
            Audience::Only(conns) => {
                self.visible(Visible::Deliver { conns, frame: ServerFrame::Message(message), seq })
            }
        }
        if key != 0 {
            let receipt = Receipt { id, unknown: unknown.clone(), queued: queued.clone() };
            self.sessions.update(&sender, |s| s.remember(key, receipt));
        }
        self.reply(conn, ServerFrame::Sent { req, id, unknown, queued });
    }

    /// The audience of a message from `conn` (user `sender`) and what to store; `Err` with the
    /// refusal if nobody named is known, or the sender is not in the room.
    fn resolve(
        &self,
        conn: ConnId,
        sender: &UserName,
        recipients: Recipients,
    ) -> Result<Resolved, (ErrorCode, String)> {
        let only = |audience, recipients, unknown, queued| Ok(Resolved { audience, recipients, unknown, queued });
        match recipients {
            Recipients::Broadcast => only(Audience::Everyone, Recipients::Broadcast, Vec::new(), Vec::new()),
            Recipients::Room(room) => {
                if !self.rooms.is_member(sender, &room) {
                    return Err((ErrorCode::NotMember, format!("you are not in {room}: /join it first")));
                }
                let room = self.rooms.name(&room).cloned().unwrap_or(room);
                let conns = self.room_conns(&room);
                only(Audience::Only(conns), Recipients::Room(room), Vec::new(), Vec::new())
            }
            Recipients::Unicast(name) => {
                let mut conns = Vec::new();
                let (registered, queued) = match self.sessions.lookup(&name) {
                    Some((registered, target)) => {
                        conns.extend(target.filter(|&t| t != conn));
                        (registered.clone(), Vec::new())
                    }
                    None => match self.offline.find(&name) {
                        Some(known) => (known.clone(), vec![known.clone()]),
                        None => {
                            return Err((ErrorCode::UnknownUser, format!("{name} is not online (and unknown here)")));
                        }
                    },
                };
                conns.push(conn);
                only(Audience::Only(conns), Recipients::Unicast(registered), Vec::new(), queued)
            }
            Recipients::Multicast(list) => {
                // Names are resolved to the users with a session, or known (any case); the stored list
                // is theirs, once each.
                let mut known: Vec<UserName> = Vec::new();
                let mut conns: Vec<ConnId> = Vec::new();
                let (mut unknown, mut queued) = (Vec::new(), Vec::new());
                for name in list {
                    if known.iter().any(|k| k.same_as(&name)) {
                        continue;
                    }
                    if let Some((registered, target)) = self.sessions.lookup(&name) {
                        known.push(registered.clone());
                        conns.extend(target.filter(|t| !conns.contains(t)));
                    } else if let Some(registered) = self.offline.find(&name) {
                        known.push(registered.clone());
                        queued.push(registered.clone());
                    } else {
                        unknown.push(name);
                    }
                }
                if known.is_empty() {
                    let names: Vec<&str> = unknown.iter().map(UserName::as_str).collect();
                    return Err((
                        ErrorCode::UnknownUser,
                        format!("none of {} is online (or known here)", names.join(", ")),
                    ));
                }
                if !conns.contains(&conn) {
                    conns.push(conn);
                }
                only(Audience::Only(conns), Recipients::Multicast(known), unknown, queued)
            }
        }
    }
}

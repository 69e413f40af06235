//! Who receives a message: a broadcast goes to the shared stream (every logged-in user, the sender
//! included); a unicast or multicast to the named users that are online, and to its sender.
//!
//! | addressing | recipients online      | outputs                                                        |
//! |------------|------------------------|----------------------------------------------------------------|
//! | broadcast  | —                      | `Store`, `Stream(Message)`, `Reply(Sent)`                      |
//! | unicast    | the target             | `Store`, `Deliver` to [target, sender], `Reply(Sent)`          |
//! | unicast    | not online             | `Reply(Rejected { unknown_user })`                              |
//! | multicast  | some                   | `Store` (only online names kept), `Deliver`, `Reply(Sent { unknown })` |
//! | multicast  | none                   | `Reply(Rejected { unknown_user })`                              |
//! | any        | body over the limit    | `Reply(Rejected { too_long })`                                  |
//! | any        | `sent_at` more than `MAX_CLOCK_JUMP` ahead of the server's clock | `Reply(Rejected { protocol })` |
//! | any        | sender not logged in   | `Reply(Rejected { protocol })`                                  |
//! | any        | over the rate limit    | `Reply(RateLimited)` or `Kick { flood }` (see `limits`)         |

use std::time::Instant;

use chat_core::{ErrorCode, MAX_BODY_LEN, MAX_CLOCK_JUMP, Recipients, Timestamp, UserName};

use super::commit::Visible;
use super::{ConnId, Router};
use crate::protocol::ServerFrame;

/// Where an accepted message goes.
enum Audience {
    /// The shared stream.
    Everyone,
    /// These connections only.
    Only(Vec<ConnId>),
}

impl Router {
    pub(super) fn send(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: u64,
        recipients: Recipients,
        body: String,
        sent_at: Timestamp,
    ) {
        let Some(sender) = self.sessions.name_of(conn).cloned() else {
            return self.reject(conn, req, ErrorCode::Protocol, "log in first".into());
        };
        if let Some(why) = self.commit.failed() {
            return self.reject(conn, req, ErrorCode::StorageUnavailable, why.to_string());
        }
        if !self.admit_send(now, conn, req, body.len()) {
            return;
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
        let (audience, recipients, unknown) = match self.resolve(conn, recipients) {
            Ok(resolved) => resolved,
            Err(message) => return self.reject(conn, req, ErrorCode::UnknownUser, message),
        };
        let message = self.accept(sender, recipients, body, sent_at);
        let (id, seq) = (message.id, message.id.seq);
        match audience {
            Audience::Everyone => self.stream(ServerFrame::Message(message), seq),
            Audience::Only(conns) => {
                self.visible(Visible::Deliver { conns, frame: ServerFrame::Message(message), seq })
            }
        }
        self.reply(conn, ServerFrame::Sent { req, id, unknown });
    }

    /// The audience of a message from `conn`, the recipients to store, and the named recipients that
    /// are not online; `Err` with the refusal if nobody named is online.
    fn resolve(&self, conn: ConnId, recipients: Recipients) -> Result<(Audience, Recipients, Vec<UserName>), String> {
        match recipients {
            Recipients::Broadcast => Ok((Audience::Everyone, Recipients::Broadcast, Vec::new())),
            Recipients::Unicast(name) => match self.sessions.lookup(&name) {
                Some((registered, target)) => {
                    let conns = if target == conn { vec![conn] } else { vec![target, conn] };
                    Ok((Audience::Only(conns), Recipients::Unicast(registered.clone()), Vec::new()))
                }
                None => Err(format!("{name} is not online")),
            },
            Recipients::Multicast(list) => {
                // Names are resolved to the users online (any case); the stored list is theirs, once each.
                let mut known: Vec<UserName> = Vec::new();
                let mut conns: Vec<ConnId> = Vec::new();
                let mut unknown = Vec::new();
                for name in list {
                    match self.sessions.lookup(&name) {
                        Some((registered, target)) if !conns.contains(&target) => {
                            known.push(registered.clone());
                            conns.push(target);
                        }
                        Some(_) => {}
                        None => unknown.push(name),
                    }
                }
                if known.is_empty() {
                    let names: Vec<&str> = unknown.iter().map(UserName::as_str).collect();
                    return Err(format!("none of {} is online", names.join(", ")));
                }
                if !conns.contains(&conn) {
                    conns.push(conn);
                }
                Ok((Audience::Only(conns), Recipients::Multicast(known), unknown))
            }
        }
    }
}

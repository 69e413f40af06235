//! Sessions that outlive their connection: detaching, resuming, and the end of the grace period.
//!
//! | event                                         | outcome                                              |
//! |-----------------------------------------------|------------------------------------------------------|
//! | the connection drops without `Leave`          | the session is detached until `now + grace`; the name stays taken; nobody is told |
//! | a login presents the session's token and the cursor `c` (the highest sequence number the client received) | `Resumed`, `Welcome { resumed: Some(n) }`, then the `n` messages it is entitled to with a sequence number above `c`, in order, then live traffic |
//! | ... while the session is still attached to another connection (a half-open one) | that connection is kicked first |
//! | the grace period ends                         | `SessionEnded`, `Stream(Left { timeout })`            |
//! | the server restarts                           | sessions open in the journal are detached again, for a full grace period from the start (`Record(Kept)`) |
//!
//! **Entitled** means what the session would have received had it stayed connected: broadcasts
//! stored after the session began, the unicasts and multicasts naming the user or sent by it, the
//! messages of the rooms it was a member of when they were stored, and the offline messages it was
//! given when it began. They come from the recent-message ring (`recent`); if the ring no longer
//! holds everything after the cursor, the client is told in a `Notice` how far back the replay goes.
//!
//! Detached sessions are bounded by the connection limit: beyond it the one detached longest ends first.

use std::time::Instant;

use chat_core::{ChatMessage, ErrorCode, Recipients, UserName};

use super::commit::Visible;
use super::sessions::{Presented, Session};
use super::{ConnId, Output, Router, restore::RouterState};
use crate::journal::Record;
use crate::protocol::{ServerFrame, SessionInfo};

/// The departure reason of a session whose grace period ended.
pub const TIMEOUT: &str = "timeout";

impl Router {
    /// `conn` dropped without a `Leave`: its session waits for a resume.
    pub(super) fn detach(&mut self, now: Instant, conn: ConnId) {
        self.legacy_readers.remove(&conn);
        if self.sessions.detach(conn, now + self.config.grace).is_none() {
            return;
        }
        let limit = self.config.admission.max_connections;
        while self.sessions.detached() > limit {
            let Some(name) = self.sessions.pop_earliest_detached() else { break };
            self.end_session(None, &name, TIMEOUT.into());
        }
    }

    /// Ends the sessions whose grace period is over.
    pub(super) fn expire_sessions(&mut self, now: Instant) {
        for name in self.sessions.expired(now) {
            self.end_session(None, &name, TIMEOUT.into());
        }
    }

    /// Resumes `name`'s session on `conn`.
    pub(super) fn resume(&mut self, _now: Instant, conn: ConnId, name: UserName, resume: Presented) {
        if let Some(old) = self.sessions.attach(&name, conn) {
            let reason = "this session was resumed on another connection".to_string();
            self.outputs.push_back(Output::Kick { conn: old, code: ErrorCode::Protocol, reason });
            self.legacy_readers.remove(&old);
            self.gone(old);
            self.sessions.forget(old);
        }
        self.logged_in(conn);
        self.outputs.push_back(Output::Resumed { conn, name: name.clone() });
        let Some((_, session)) = self.sessions.session(&name) else { return };
        let (missed, complete) = self.missed(&name, session, resume.cursor);
        let info = SessionInfo {
            token: resume.token,
            grace_ms: self.config.grace.as_millis() as u64,
            rooms: self.rooms.of(&name),
            resumed: Some(missed.len() as u64),
            offline: 0,
        };
        self.welcome(conn, &name, info);
        if !complete {
            let text = "the server no longer holds every message since you were disconnected: \
                        older ones are in the history"
                .to_string();
            self.reply(conn, ServerFrame::Notice { text });
        }
        for m in missed {
            let seq = m.id.seq;
            self.visible(Visible::Deliver { conns: vec![conn], frame: ServerFrame::Message(m), seq });
        }
        self.subscribe(conn);
    }

    /// What `name`'s session is entitled to above `cursor`, oldest first, and whether the ring held
    /// all of it.
    fn missed(&self, name: &UserName, session: &Session, cursor: u64) -> (Vec<ChatMessage>, bool) {
        let mut missed: Vec<ChatMessage> = session.backlog.iter().filter(|m| m.id.seq > cursor).cloned().collect();
        let (since, complete) = self.recent.since(cursor.max(session.after));
        missed.extend(since.filter(|m| self.entitled(name, m)).cloned());
        (missed, complete)
    }

    /// Whether a session of `name` that began before `m` was stored receives `m`.
    pub(super) fn entitled(&self, name: &UserName, m: &ChatMessage) -> bool {
        if m.sender.same_as(name) {
            return true;
        }
        match &m.recipients {
            Recipients::Broadcast => true,
            Recipients::Unicast(to) => to.same_as(name),
            Recipients::Multicast(list) => list.iter().any(|to| to.same_as(name)),
            Recipients::Room(room) => self.rooms.was_member(name, room, m.id.seq),
        }
    }

    /// Loads the journal's state (see `restore`).
    pub(super) fn restore(&mut self, state: RouterState) {
        for m in state.history {
            self.recent.push(m);
        }
        for (room, name, after) in state.memberships {
            let _ = self.rooms.join(&name, &room, after);
        }
        for name in &state.known {
            self.offline.know(name);
        }
        for (name, m) in state.offline {
            self.offline.keep(&name, m);
        }
        let mut restored = Vec::new();
        for kept in state.sessions {
            // A session of an old journal has no token: it cannot be resumed, so it is simply over.
            let Some(token) = kept.token else { continue };
            let mut session = Session::new(None, token, kept.after, kept.quiet);
            session.keys = kept.keys.into();
            session.backlog = kept.backlog;
            if self.sessions.start(kept.name.clone(), session) {
                restored.push(kept.name);
            }
        }
        self.restored = Some(restored);
    }

    /// On the first input after a start: the restored sessions' grace period begins, and the journal
    /// records that they go on.
    pub(super) fn start_restored(&mut self, now: Instant) {
        let Some(names) = self.restored.take() else { return };
        let after = self.last_seq;
        for name in names {
            self.sessions.set_expiry(&name, now + self.config.grace);
            self.outputs.push_back(Output::Record(Record::Kept { name, after }));
        }
    }
}

//! `History` answers: the last messages a user may see (of one room, or of everything), in frames
//! of bounded size.

use chat_core::{ChatMessage, ErrorCode, RoomName};

use super::{ConnId, Router};
use crate::protocol::ServerFrame;

/// Largest total body size of the messages in one `History` frame; longer answers are chunked.
pub const HISTORY_CHUNK_BYTES: usize = 128 * 1024;

impl Router {
    pub(super) fn history(&mut self, conn: ConnId, req: u64, limit: usize, room: Option<RoomName>) {
        let Some(name) = self.sessions.name_of(conn).cloned() else {
            return self.reject(conn, req, ErrorCode::Protocol, "log in first".into());
        };
        let limit = limit.min(self.config.history);
        let messages = match &room {
            Some(room) => {
                if !self.rooms.is_member(&name, room) {
                    return self.reject(conn, req, ErrorCode::NotMember, format!("you are not in {room}"));
                }
                self.recent.last_matching(limit, |m| m.recipients.room().is_some_and(|r| r.same_as(room)))
            }
            None => self.recent.last_matching(limit, |m| self.may_see(&name, m)),
        };
        let room = room.map(|r| self.rooms.name(&r).cloned().unwrap_or(r));
        self.answer_history(conn, req, messages, room);
    }

    /// Whether `name` may see `m` now: broadcasts, its own messages, the unicasts and multicasts
    /// naming it, and the messages of the rooms it is in.
    fn may_see(&self, name: &chat_core::UserName, m: &ChatMessage) -> bool {
        match &m.recipients {
            chat_core::Recipients::Room(room) => self.rooms.is_member(name, room),
            _ => {
                m.sender.same_as(name)
                    || m.recipients.includes(name)
                    || m.recipients.names().iter().any(|n| n.same_as(name))
            }
        }
    }

    /// Answers `req` with `messages`, oldest first, in frames of at most [`HISTORY_CHUNK_BYTES`].
    pub(super) fn answer_history(
        &mut self,
        conn: ConnId,
        req: u64,
        messages: Vec<ChatMessage>,
        room: Option<RoomName>,
    ) {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for m in messages {
            if !chunk.is_empty() && bytes + m.body.len() > HISTORY_CHUNK_BYTES {
                let messages = std::mem::take(&mut chunk);
                self.reply(conn, ServerFrame::History { req, messages, done: false, room: room.clone() });
                bytes = 0;
            }
            bytes += m.body.len();
            chunk.push(m);
        }
        self.reply(conn, ServerFrame::History { req, messages: chunk, done: true, room });
    }
}

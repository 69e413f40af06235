//! `History` answers: the last messages a user may see, in frames of bounded size.

use super::{ConnId, Router};
use crate::protocol::ServerFrame;
use chat_core::ErrorCode;

/// Largest total body size of the messages in one `History` frame; longer answers are chunked.
pub const HISTORY_CHUNK_BYTES: usize = 128 * 1024;

impl Router {
    pub(super) fn history(&mut self, conn: ConnId, req: u64, limit: usize) {
        let Some(name) = self.sessions.name_of(conn) else {
            return self.reject(conn, req, ErrorCode::Protocol, "log in first".into());
        };
        let messages = self.history.last_visible_to(name, limit.min(self.history.capacity()));
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for m in messages {
            if !chunk.is_empty() && bytes + m.body.len() > HISTORY_CHUNK_BYTES {
                let messages = std::mem::take(&mut chunk);
                self.reply(conn, ServerFrame::History { req, messages, done: false });
                bytes = 0;
            }
            bytes += m.body.len();
            chunk.push(m);
        }
        self.reply(conn, ServerFrame::History { req, messages: chunk, done: true });
    }
}

//! The slow-consumer policy: nobody waits for a reader that cannot keep up.
//!
//! | fact reported by the shell                      | decision                                        |
//! |-------------------------------------------------|-------------------------------------------------|
//! | `QueueFull`: a frame for `conn` did not fit its private queue | kick `conn` (`slow_consumer`)     |
//! | `Lag`: a subscribed reader is more than `backlog_bytes` behind the head | kick it                 |
//! | `Lag`: every other reader is at or past `p`     | `Trim { upto: p }`: the stream may drop bytes below |
//!
//! In cluster mode (`RouterConfig::replicated`) a kick only disconnects: the instance announces it
//! through the shared log and every replica ends the session when it applies that (`Input::Kicked`).
//!
//! A kick ends the session at once, without a grace period (`SessionEnded`, `Left` announced to the
//! others), and tells the shell to drop the connection's queue and attempt a last `Closing` frame.

use chat_core::ErrorCode;

use super::{ConnId, Output, Router};

/// What a kicked reader is told, whichever limit it broke.
pub(super) const SLOW_REASON: &str = "too slow: outgoing backlog over its limit";

impl Router {
    /// Disconnects `conn` as a slow consumer.
    pub(super) fn kick(&mut self, conn: ConnId, reason: &str) {
        if self.config.replicated {
            // Only this instance knows that its reader is slow: it kicks the connection and says so
            // through the shared log, and every replica then ends the session (`Input::Kicked`).
            if self.sessions.is_known(conn) {
                let (code, reason) = (ErrorCode::SlowConsumer, reason.to_string());
                self.outputs.push_back(Output::Kick { conn, code, reason });
            }
            return;
        }
        self.disconnect(conn, ErrorCode::SlowConsumer, reason, "slow_consumer");
    }

    /// Disconnects `conn` at once (`Kick { code, reason }`) and ends its session as a departure for
    /// `left_reason`, announced to the others.
    pub(super) fn disconnect(&mut self, conn: ConnId, code: ErrorCode, reason: &str, left_reason: &str) {
        if !self.sessions.is_known(conn) {
            return;
        }
        self.outputs.push_back(Output::Kick { conn, code, reason: reason.to_string() });
        self.legacy_readers.remove(&conn);
        self.end_session_of(conn, left_reason.into());
    }

    /// Applies the backlog limit to the reported stream positions, then allows trimming below the
    /// slowest remaining reader.
    pub(super) fn lag(&mut self, head: u64, cursors: &[(ConnId, u64)]) {
        let mut upto = head;
        let mut slow = Vec::new();
        for &(conn, cursor) in cursors {
            if !self.sessions.is_subscribed(conn) {
                continue;
            }
            let cursor = cursor.min(head);
            if head - cursor > self.config.backlog_bytes {
                slow.push(conn);
            } else {
                upto = upto.min(cursor);
            }
        }
        for conn in slow {
            self.kick(conn, SLOW_REASON);
        }
        self.outputs.push_back(Output::Trim { upto });
    }
}

//! What the router does with flood control's verdicts (see `limits`): answers, holds and pauses.
//!
//! A connection over its limit is told once when to retry, and the shell stops reading it until its
//! refusal window is over: the flooder's sends wait in its own socket (TCP back-pressure) instead of
//! being read, refused and answered one by one while honest users wait behind them.
//!
//! | input                                   | outputs                                                         |
//! |-----------------------------------------|-----------------------------------------------------------------|
//! | `Send` within the limits                | as usual (see `routing`)                                        |
//! | `Send` over a limit                     | `Reply(RateLimited { req, retry_after_ms })`, `Pause { conn, until }` (the shell stops reading `conn`) |
//! | `Send` inside the refusal window (it was read before the pause took effect, or the shell cannot pause) | nothing now: held, in order, behind the others held; beyond [`MAX_HELD_SENDS`] or [`MAX_HELD_BYTES`]: `Reply(RateLimited { retry_after_ms: until - now })` |
//! | any `Send` from a connection with sends held | held behind them (order is kept)                         |
//! | refused or early, still flooding after [`FLOOD_GRACE`](super::FLOOD_GRACE) | `Kick { flood }`, `SessionEnded`, `Stream(Left { flood })`; what was held is dropped |
//! | timeout: the window is over             | the held sends are handled in order as if they arrived now, until one is refused again (a new window); nothing held and no window: `Resume { conn }` |
//! | `StorageFailed`                         | each held send: `Reply(Rejected { storage_unavailable })`       |
//!
//! So a connection gets at most one `rate_limited` per refusal window (more only past the holding
//! bounds, which a shell that pauses never reaches), and every send it wrote gets exactly one answer.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use chat_core::{ErrorCode, Recipients, Timestamp};

use super::{ConnId, Output, Router, Verdict, retry_after_ms};
use crate::protocol::ServerFrame;

/// Most sends held per connection while its refusal window lasts (a pausing shell reads at most this
/// many frames of one connection ahead of the owner, see `server::connection`).
pub const MAX_HELD_SENDS: usize = 256;
/// Most body bytes held per connection (as much as one per-connection byte burst).
pub const MAX_HELD_BYTES: usize = 1024 * 1024;

/// A send waiting for its connection's refusal window to end.
#[derive(Debug)]
struct HeldSend {
    req: u64,
    recipients: Recipients,
    body: String,
    sent_at: Timestamp,
    key: u64,
}

/// Held sends and paused connections.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    /// Sends held per connection, with their body bytes.
    held: HashMap<ConnId, (VecDeque<HeldSend>, usize)>,
    /// Paused connections, by the end of their refusal window.
    windows: BTreeSet<(Instant, ConnId)>,
    /// The end of each paused connection's window.
    paused: HashMap<ConnId, Instant>,
}

impl Throttle {
    /// The earliest end of a refusal window.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.windows.first().map(|(at, _)| *at)
    }

    /// Whether `conn` has sends held.
    pub(super) fn holds(&self, conn: ConnId) -> bool {
        self.held.contains_key(&conn)
    }

    fn pause(&mut self, conn: ConnId, until: Instant) {
        if let Some(old) = self.paused.insert(conn, until) {
            self.windows.remove(&(old, conn));
        }
        self.windows.insert((until, conn));
    }

    /// Forgets `conn`: what it had held is dropped.
    pub(super) fn forget(&mut self, conn: ConnId) {
        self.held.remove(&conn);
        if let Some(until) = self.paused.remove(&conn) {
            self.windows.remove(&(until, conn));
        }
    }
}

/// What flood control lets a send do.
pub(super) enum Admit {
    /// Go on.
    Go,
    /// Stop: it was answered (or its connection disconnected).
    Done,
    /// Hold it until the connection's window ends at this instant.
    Hold(Instant),
}

impl Router {
    /// Flood control for a send of `bytes` from `conn` (see the module documentation).
    pub(super) fn admit_send(&mut self, now: Instant, conn: ConnId, req: u64, bytes: usize) -> Admit {
        if let Some(&until) = self.throttle.paused.get(&conn)
            && self.throttle.holds(conn)
        {
            // Behind the sends held: keep the order (a strike only if sent inside the window).
            if now < until && self.flood.charge(now, conn, bytes) == Verdict::Flood {
                return self.flooded(conn);
            }
            return Admit::Hold(until);
        }
        match self.flood.charge(now, conn, bytes) {
            Verdict::Pass => Admit::Go,
            Verdict::Limited { wait, until } => {
                self.rate_limited(conn, req, wait);
                self.throttle.pause(conn, until);
                self.outputs.push_back(Output::Pause { conn, until });
                Admit::Done
            }
            Verdict::Early { until } => Admit::Hold(until),
            Verdict::Flood => self.flooded(conn),
        }
    }

    fn flooded(&mut self, conn: ConnId) -> Admit {
        self.disconnect(conn, ErrorCode::Flood, "kept sending over the rate limit after warnings", "flood");
        Admit::Done
    }

    fn rate_limited(&mut self, conn: ConnId, req: u64, wait: std::time::Duration) {
        self.reply(conn, ServerFrame::RateLimited { req, retry_after_ms: retry_after_ms(wait) });
    }

    /// Holds a send until `conn`'s window ends at `until`, or refuses it past the holding bounds.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hold(
        &mut self,
        now: Instant,
        conn: ConnId,
        until: Instant,
        req: u64,
        recipients: Recipients,
        body: String,
        sent_at: Timestamp,
        key: u64,
    ) {
        let (queue, bytes) = self.throttle.held.entry(conn).or_default();
        if queue.len() >= MAX_HELD_SENDS || *bytes + body.len() > MAX_HELD_BYTES {
            if queue.is_empty() {
                self.throttle.held.remove(&conn);
            }
            return self.rate_limited(conn, req, until.saturating_duration_since(now));
        }
        *bytes += body.len();
        queue.push_back(HeldSend { req, recipients, body, sent_at, key });
    }

    /// Ends the refusal windows that are over: their held sends go on (see the module documentation).
    pub(super) fn end_windows(&mut self, now: Instant) {
        while let Some(&(at, conn)) = self.throttle.windows.first()
            && at <= now
        {
            self.release_held(now, conn);
        }
    }

    /// `conn`'s window is over (or it may be): handles its held sends in order until one is refused
    /// again; resumes reading it once nothing is held and no window is open.
    pub(super) fn release_held(&mut self, now: Instant, conn: ConnId) {
        let Some(&until) = self.throttle.paused.get(&conn) else { return };
        if now < until {
            return;
        }
        self.throttle.windows.remove(&(until, conn));
        self.throttle.paused.remove(&conn);
        while !self.throttle.paused.contains_key(&conn) {
            let Some((queue, bytes)) = self.throttle.held.get_mut(&conn) else { break };
            let Some(send) = queue.pop_front() else { break };
            *bytes -= send.body.len();
            if queue.is_empty() {
                self.throttle.held.remove(&conn);
            }
            let HeldSend { req, recipients, body, sent_at, key } = send;
            self.send(now, conn, req, recipients, body, sent_at, key);
        }
        if !self.throttle.paused.contains_key(&conn) && self.sessions.is_known(conn) {
            self.outputs.push_back(Output::Resume { conn });
        }
    }

    /// Storage failed: every held send is refused with `storage_unavailable`.
    pub(super) fn refuse_held(&mut self, message: &str) {
        let mut held: Vec<_> = self.throttle.held.drain().collect();
        held.sort_by_key(|(conn, _)| *conn);
        for (conn, (queue, _)) in held {
            for send in queue {
                self.reject(conn, send.req, ErrorCode::StorageUnavailable, message.to_string());
            }
        }
    }
}

//! Flood control: per-connection token buckets on messages and bytes sent.
//!
//! | a `Send` from a logged-in user          | decision                                                    |
//! |-----------------------------------------|-------------------------------------------------------------|
//! | within both buckets                     | accepted (one strike forgiven)                              |
//! | over either bucket                      | `Reply(RateLimited { req, retry_after_ms })`, not delivered, one strike |
//! | over, with `flood_strikes` strikes for at least [`FLOOD_GRACE`] | `Kick { flood }`, `SessionEnded`, `Stream(Left { flood })` |
//!
//! In cluster mode the replicated router runs without flood control: each instance charges its own
//! connections before it publishes their sends (`server::cluster`), on its own clock, so a refused
//! send never enters the shared log.
//!
//! The client library waits `retry_after_ms` and sends again, so a program or a script piping lines
//! into `chat-cli` is slowed down and loses nothing; a client that ignores the answer and keeps
//! sending collects strikes and is disconnected. The defaults ([`Limits::default`]) are far above what
//! a chatty person or a bot sends; `serve --no-rate-limit` disables them (for benchmarks).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chat_core::ErrorCode;
use chat_core::rate::{Rate, TokenBucket};

use super::{ConnId, Router};
use crate::protocol::ServerFrame;

/// Default message rate: 50 per second, bursts of 200.
pub const DEFAULT_MESSAGE_RATE: Rate = Rate { per_second: 50, burst: 200 };
/// Default byte rate (message bodies): 256 KiB per second, bursts of 1 MiB.
pub const DEFAULT_BYTE_RATE: Rate = Rate { per_second: 256 * 1024, burst: 1024 * 1024 };
/// Default number of unheeded `rate_limited` answers before a connection is disconnected (`flood`).
pub const DEFAULT_FLOOD_STRIKES: u32 = 20;
/// How long a connection keeps being refused before it counts as flooding: its warnings have had time
/// to reach it, so a client that heeds them is never disconnected.
pub const FLOOD_GRACE: Duration = Duration::from_secs(1);

/// Flood-control settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages per connection.
    pub messages: Rate,
    /// Body bytes per connection.
    pub bytes: Rate,
    /// Strikes (refusals not yet made up for by accepted sends) tolerated before `flood`.
    pub flood_strikes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { messages: DEFAULT_MESSAGE_RATE, bytes: DEFAULT_BYTE_RATE, flood_strikes: DEFAULT_FLOOD_STRIKES }
    }
}

/// One connection's buckets.
#[derive(Debug, Clone)]
struct Buckets {
    messages: TokenBucket,
    bytes: TokenBucket,
    strikes: u32,
    /// When the current run of strikes began.
    since: Option<Instant>,
}

/// The flood-control state of every connection that has sent something.
#[derive(Debug, Default)]
pub(crate) struct Flood {
    limits: Option<Limits>,
    conns: HashMap<ConnId, Buckets>,
}

/// What flood control decided about one send.
pub(crate) enum Verdict {
    /// Go on.
    Pass,
    /// Refused; retry after this long.
    Limited(Duration),
    /// Disconnect the connection.
    Flood,
}

impl Flood {
    pub(crate) fn new(limits: Option<Limits>) -> Self {
        Flood { limits, conns: HashMap::new() }
    }

    /// Charges one message of `bytes` body bytes to `conn` at `now`.
    pub(crate) fn charge(&mut self, now: Instant, conn: ConnId, bytes: usize) -> Verdict {
        let Some(limits) = self.limits else { return Verdict::Pass };
        let b = self.conns.entry(conn).or_insert_with(|| Buckets {
            messages: TokenBucket::full(limits.messages, now),
            bytes: TokenBucket::full(limits.bytes, now),
            strikes: 0,
            since: None,
        });
        // Both buckets are checked before either is charged, so a refusal costs nothing.
        let mut probe = b.clone();
        let wait =
            [probe.messages.take(now, 1).err(), probe.bytes.take(now, bytes as u64).err()].into_iter().flatten().max();
        match wait {
            None => {
                b.messages = probe.messages;
                b.bytes = probe.bytes;
                b.strikes = b.strikes.saturating_sub(1);
                if b.strikes == 0 {
                    b.since = None;
                }
                Verdict::Pass
            }
            Some(_) if b.strikes >= limits.flood_strikes && b.since.is_some_and(|t| now >= t + FLOOD_GRACE) => {
                Verdict::Flood
            }
            Some(wait) => {
                b.strikes = b.strikes.saturating_add(1);
                b.since.get_or_insert(now);
                Verdict::Limited(wait)
            }
        }
    }

    /// Forgets `conn`.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }
}

impl Router {
    /// Flood control for a send of `bytes` from `conn`; false if the send must not go on (the answer
    /// or the disconnection is already output).
    pub(super) fn admit_send(&mut self, now: Instant, conn: ConnId, req: u64, bytes: usize) -> bool {
        match self.flood.charge(now, conn, bytes) {
            Verdict::Pass => true,
            Verdict::Limited(wait) => {
                let retry_after_ms = u64::try_from(wait.as_millis().max(1)).unwrap_or(u64::MAX);
                self.reply(conn, ServerFrame::RateLimited { req, retry_after_ms });
                false
            }
            Verdict::Flood => {
                self.disconnect(conn, ErrorCode::Flood, "kept sending over the rate limit after warnings", "flood");
                false
            }
        }
    }
}

//! A load generator for pub/sub fan-out: C subscribers, P publishers, one histogram of latencies.
//! It is the engine of `chat-cli bench`; the `tests` package drives it too (`fanbench` against
//! ours, Redis and NATS; the in-process load tests).
//!
//! It speaks the chat protocol through chat-transport's real codec ([`ChatPubSub`]): handshake,
//! `Login`, `Send` (broadcast or unicast), reading `Message`; publishers also consume their `Sent`
//! replies and echoes. Other protocols plug in through the [`PubSub`] trait (`fanbench` adds Redis
//! and NATS), so the client-side cost is the same for every target.
//!
//! ```text
//!  publisher p ── publish(body) ──► server ── body ──► subscriber s    latency = now − stamp(body)
//!      ▲    └─ reads acks / echoes                         │
//!      └──── Window: published − delivered / C < W ◄──────┘ (Rate: R per second per publisher)
//! ```
//!
//! | pattern              | a publisher sends                      | flow control (`Pace::Window(W)`)        |
//! |----------------------|----------------------------------------|-----------------------------------------|
//! | [`Pattern::Fanout`]  | to everyone                            | all publishers together: W messages not yet delivered to every subscriber |
//! | [`Pattern::Unicast`] | to subscriber `j ≠ p` (seeded, random) | each publisher: W messages not yet delivered |
//!
//! **Bodies** are `size` bytes of ASCII: 16 lower-case hex digits of the send time (nanoseconds
//! since the run's origin, strictly increasing per publisher), then 8 hex digits of the publisher
//! index (if `size >= 24`), then `x`.
//!
//! **Checks**: every subscriber checks each message (`audit.rs`): nothing twice, the server's order
//! (the protocol's order key, if it has one) and each publisher's order (stamps), nothing not meant
//! for it; in a fan-out every subscriber must see the same server order. A run counts only if
//! [`LoadReport::complete`]: everything delivered, no [`Violations`], no errors.
//!
//! **Bounds**: every connection is opened within [`OPEN_TIMEOUT`], every read and wait gives up at
//! the run's deadline (`timeout`), every loop is bounded by its message count. The read path does
//! not allocate per message.
//!
//! | file            | owns                                                                      |
//! |-----------------|---------------------------------------------------------------------------|
//! | `mod.rs`        | this map, the limits, the run's parameters ([`LoadConfig`]), [`RunProgress`] |
//! | `protocol.rs`   | the [`PubSub`] trait; [`Party`], [`Dest`], [`Incoming`], body [`Stamp`]s    |
//! | `chat.rs`       | [`ChatPubSub`]: the chat protocol through chat-transport's codec          |
//! | `views.rs`      | borrowed views of the server's frames (no allocation per message)         |
//! | `shared.rs`     | the state the tasks of one run share; opening one connection              |
//! | `tls.rs`        | [`LoadTls`]: TLS on every connection (a pinned fingerprint or a CA file); [`Conn`] |
//! | `subscriber.rs` | one subscriber task: check, count and time what arrives                   |
//! | `audit.rs`      | a subscriber's checks (sans-IO) and the [`Violations`] they count         |
//! | `publisher.rs`  | one publisher task: publish as the pace allows; unicast recipients        |
//! | `run.rs`        | [`run`]: one load, from the first connection to the report                |
//! | `idle.rs`       | [`hold_idle`]: many idle connections held open                            |
//! | `report.rs`     | [`LoadReport`], [`Percentiles`]                                           |

use std::net::SocketAddr;
use std::time::Duration;

mod audit;
mod chat;
mod idle;
mod protocol;
mod publisher;
mod report;
mod run;
mod shared;
mod subscriber;
mod tls;
mod views;

pub use audit::Violations;
pub use chat::{ChatPubSub, PRE_WELCOME_HEARTBEAT};
pub use idle::{IdleConfig, IdleReport, hold_idle};
pub use protocol::{Dest, Incoming, Party, PubSub, Stamp, read_more, write_body};
pub use report::{LoadReport, Percentiles, percentiles};
pub use run::run;
pub use tls::{Conn, LoadTls, connect};

/// Bytes of hex at the start of every body: the send time in nanoseconds since the run's origin.
pub const STAMP_LEN: usize = 16;
/// Bytes of hex after the stamp: the publisher's index (only if the body has room for them).
pub const SENDER_LEN: usize = 8;
/// Connections opened at once during setup (the next batch waits until these are ready).
pub const CONNECT_BATCH: usize = 100;
/// Longest time allowed to open one connection (connect, handshake, login or subscribe).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// Most bytes a publisher writes with one `write_all`.
pub const MAX_WRITE: usize = 64 * 1024;
/// Most bytes a read buffer grows by at once.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// Longest nap of a publisher waiting for its window (it is woken earlier by deliveries).
pub(crate) const WINDOW_NAP: Duration = Duration::from_millis(20);
/// How often [`run`] reports progress.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Largest latency recorded, in microseconds (60 s); larger ones are clamped.
pub(crate) const MAX_LATENCY_US: u64 = 60_000_000;

/// How publishers are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Closed loop: at most this many messages published but not yet delivered (see [`Pattern`]).
    Window(u64),
    /// Open loop: this many messages per second per publisher, whatever the deliveries.
    Rate(u64),
}

/// Who publishes to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Every publisher sends to everyone; the window is shared by all publishers.
    Fanout,
    /// Publisher `p` sends each message to a random subscriber other than `p` (as many publishers
    /// as subscribers); the window is per publisher (1 = one message in flight at a time).
    Unicast {
        /// Seed of the random recipients.
        seed: u64,
    },
}

/// Parameters of one run of [`run`].
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server (loopback).
    pub addr: SocketAddr,
    /// Number of subscribers (C).
    pub subscribers: usize,
    /// Number of publishers (P).
    pub publishers: usize,
    /// Messages each publisher sends.
    pub messages: u64,
    /// Bytes per body (at least [`STAMP_LEN`]; [`Pattern::Unicast`] needs [`STAMP_LEN`] + [`SENDER_LEN`]).
    pub size: usize,
    /// Closed or open loop.
    pub pace: Pace,
    /// Fan-out or unicast.
    pub pattern: Pattern,
    /// Bound on the whole run, setup included.
    pub timeout: Duration,
    /// Latencies of messages sent during this first part of the publishing phase are not
    /// recorded (connections and buffers warm up); they still count as deliveries.
    pub warmup: Duration,
    /// TLS on every connection (`None`: plaintext).
    pub tls: Option<LoadTls>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening connections.
    Connecting,
    /// Every connection is open; publishing starts now (reported once).
    Publishing,
    /// Every subscriber has everything, or the deadline passed (reported once).
    Done,
}

/// A progress report, given to the callback of [`run`] every 100 ms and at each phase change.
#[derive(Debug, Clone, Copy)]
pub struct RunProgress {
    /// The phase.
    pub phase: Phase,
    /// Connections open so far.
    pub connected: usize,
    /// Connections that failed to open.
    pub failed: usize,
    /// Messages published so far.
    pub published: u64,
    /// Deliveries to subscribers so far.
    pub delivered: u64,
    /// Deliveries expected in all.
    pub expected: u64,
    /// Time since the run started.
    pub elapsed: Duration,
}

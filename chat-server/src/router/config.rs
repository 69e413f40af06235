//! The router's settings and their defaults.

use std::time::Duration;

use super::{AdmissionConfig, AuthMode, DEFAULT_PRESENCE_LIMIT, Limits, OfflineLimits, RecentLimits, RoomLimits};

/// Longest time join and leave notices wait unpublished so that a burst of them wakes every reader
/// once (a message, which is never delayed, publishes them at once).
pub const NOTICE_DELAY: Duration = Duration::from_millis(20);

/// Default lag behind the shared stream, in bytes, before a reader counts as a slow consumer.
pub const DEFAULT_BACKLOG: u64 = 32 * 1024 * 1024;

/// Default time a session is kept after its connection drops, for a resume.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);

/// Router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Messages kept for `History` answers.
    pub history: usize,
    /// The heartbeat interval announced to clients, in milliseconds.
    pub heartbeat_ms: u64,
    /// Bytes a reader may lag behind the shared stream before it is disconnected (`slow_consumer`).
    pub backlog_bytes: u64,
    /// How long join/leave notices may wait unpublished (see [`NOTICE_DELAY`]).
    pub notice_delay: Duration,
    /// Whether a journal is kept: then what clients see waits for [`Input::Durable`] (default false).
    pub journaled: bool,
    /// Connection limits and the login timeout.
    pub admission: AdmissionConfig,
    /// Flood control per connection (`None`: off).
    pub limits: Option<Limits>,
    /// Whether logging in needs a credential.
    pub auth: AuthMode,
    /// How long a session is kept after its connection drops (zero: it ends at once).
    pub grace: Duration,
    /// The recent-message ring (history answers, resumes).
    pub recent: RecentLimits,
    /// Room count limits.
    pub rooms: RoomLimits,
    /// Offline queue limits.
    pub offline: OfflineLimits,
    /// Joins and leaves are announced to everybody while at most this many users are online
    /// ([`DEFAULT_PRESENCE_LIMIT`]; 0: never). See the router's `presence` module.
    pub presence_limit: usize,
    /// Cluster mode: this router is one replica of a state machine that every instance feeds the
    /// same inputs from a shared log (see `crate::cluster`). Then a slow reader, a fact only its own
    /// instance knows, is only kicked (`Kick`): its instance announces the end through the log
    /// (`Input::Kicked`) so that every replica ends the session at the same point (default false).
    pub replicated: bool,
    /// Seed of the generator of session tokens: the shell gives a random one (a fixed one makes a
    /// test's tokens predictable).
    pub seed: [u8; 32],
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            history: 1000,
            heartbeat_ms: 5000,
            backlog_bytes: DEFAULT_BACKLOG,
            notice_delay: NOTICE_DELAY,
            journaled: false,
            admission: AdmissionConfig::default(),
            limits: Some(Limits::default()),
            auth: AuthMode::Open,
            grace: DEFAULT_GRACE,
            recent: RecentLimits::default(),
            rooms: RoomLimits::default(),
            offline: OfflineLimits::default(),
            presence_limit: DEFAULT_PRESENCE_LIMIT,
            replicated: false,
            seed: [0; 32],
        }
    }
}

//! Cluster mode (`serve --cluster nats://...`): N server instances share users, rooms and one order
//! through NATS JetStream. Opt-in; the embedded journal stays the default.
//!
//! **A replicated state machine.** One JetStream stream (three replicas by default) is the log.
//! Each instance turns what its own connections do that changes shared state (logins, sends, room
//! joins and parts, the end of a connection) into [`Entry`]s, publishes them in batches, and applies
//! *every* batch of the stream, in stream order, to its own copy of the same [`crate::router::Router`]
//! ([`Replica`]). Every replica therefore holds the same sessions, names (the first claim in the log
//! wins), rooms, offline queues, sequence numbers and recent messages; each instance performs only the
//! outputs addressed to its own connections (connection IDs carry the instance in their high 32
//! bits) and keeps its own fan-out stream for its own readers. A client whose instance dies resumes
//! on another with its token and cursor: every replica knows the session and can replay from its ring.
//!
//! ```text
//!  clients ─► instance A: connections ─► entries ─► publisher (1 batch in flight) ─┐
//!  clients ─► instance B: ...                                                      ▼
//!                                                       JetStream stream (R3): one order
//!  instance A ◄─ ordered consumer ◄───────────────────────────────────────────────┘
//!      Replica: every batch → Router (same inputs, same order, same log time on every instance)
//!      → outputs for A's connections performed; the others dropped
//! ```
//!
//! **Determinism.** Time that changes shared state comes from the log (the stream's timestamps, made
//! monotonic): it is the router's `now` and clock, so grace periods and login deadlines end at the
//! same point of the log everywhere; an idle instance publishes a `Tick` every [`TICK`] so log time
//! moves when nothing else happens. Session tokens are drawn by the instance that accepted the login;
//! only their SHA-256 enters the log. What only one instance can know (a slow reader) is announced
//! through the log (`Kicked`) before any replica acts on it.
//!
//! **Acknowledgement.** A `Sent` is the router's answer to a `Send` it applied from the stream: the
//! batch is then stored by a quorum of NATS nodes. Nothing waits for a local journal.
//!
//! **Instances** claim a random 32-bit ID with a create-only key-value entry `instances.<id>` and
//! refresh it (a lease, see `lease`); every instance sweeps the leases of the others and publishes
//! `Down { id }` for a lease that is gone. Every replica then detaches that instance's sessions.
//!
//! | module      | owns                                                                       |
//! |-------------|----------------------------------------------------------------------------|
//! | `entry`     | the log format: batches of entries, message IDs                            |
//! | `replica`   | sans-IO: applies batches to a router, in order, with log time              |
//! | `nats`      | connecting (options, the version check), the stream and the bucket         |
//! | `publisher` | the publishing task: group commit, one batch in flight, retries, stalls     |
//! | `reader`    | the ordered consumer feeding batches to the owner task                     |
//! | `lease`     | the instance's lease and the sweep of the others'                          |
//! | `logview`   | `chat-cli log show --cluster` / `log verify --cluster`                     |
//! | `accounts`  | the accounts' changes the log carries, and how a replica applies them      |
//! | `admin`     | `chat-cli account … --cluster`: hash here, publish the change, read its outcome |
//!
//! **Accounts** (`--auth accounts`, or registered names under `--auth open`) are entries of the log
//! too: every replica holds the same account table, built from password *hashes* and token hashes
//! that `chat-cli account … --cluster` computed before publishing. A login with a credential is
//! verified by the instance that accepted it, against its replica's table, off the owner task; only
//! the verdict (an `Authenticated` login under the account's name) enters the log.

pub mod accounts;
pub mod admin;
pub mod entry;
mod lease;
pub mod logview;
mod nats;
pub(crate) mod publisher;
pub(crate) mod reader;
pub mod replica;
#[cfg(test)]
mod replica_tests;

use std::path::PathBuf;
use std::time::Duration;

pub use entry::{BatchHeader, Entry, MAX_BATCH_BYTES, conn_base, decode_batch, instance_of};
pub(crate) use lease::Lease;
pub use nats::{Link, MIN_NATS_VERSION, connect, parse_version};
pub use replica::{Applied, INSTANCE_DOWN, Replica};

use crate::router::RouterConfig;

/// Default stream name (`--cluster-stream`).
pub const DEFAULT_STREAM: &str = "CHAT";
/// Default number of stream replicas (`--cluster-replicas`): three NATS nodes, a quorum of two.
pub const DEFAULT_REPLICAS: usize = 3;
/// Default lease of an instance (`--cluster-lease-ms`): another instance marks it down this long
/// after its last refresh. Longer than the 4-7 s a NATS failover (a stream leader killed) was measured
/// to take, so an instance alive through one is not marked down.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// How often an idle instance publishes a `Tick` (log time moves on) and sweeps the leases.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a publish may wait for JetStream's acknowledgement before it is retried (same message ID).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a message ID is remembered by the stream: retries within it are stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How to reach NATS and what to create there.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:port`, or `tls://host:port`), tried in turn.
    pub urls: Vec<String>,
    /// The stream's name (the bucket is `<stream>_instances`, the subject `chat.<stream>`).
    pub stream: String,
    /// Replicas of the stream and the bucket (3 for three NATS nodes; 1 for a single server).
    pub replicas: usize,
    /// How long an instance's lease lasts without a refresh.
    pub lease: Duration,
    /// A NATS credentials file (JWT and NKey seed).
    pub creds: Option<PathBuf>,
    /// A NATS user and password.
    pub user: Option<(String, String)>,
    /// A NATS token.
    pub token: Option<String>,
    /// TLS: trust the CA certificates in this PEM file (and require TLS).
    pub ca: Option<PathBuf>,
    /// TLS: present this client certificate and key (PEM).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Require TLS even without `ca` (the system's roots are trusted).
    pub require_tls: bool,
}

impl ClusterConfig {
    /// The defaults for these URLs.
    pub fn new(urls: Vec<String>) -> Self {
        ClusterConfig {
            urls,
            stream: DEFAULT_STREAM.into(),
            replicas: DEFAULT_REPLICAS,
            lease: DEFAULT_LEASE,
            creds: None,
            user: None,
            token: None,
            ca: None,
            client_cert: None,
            require_tls: false,
        }
    }

    /// The subject the stream holds.
    pub fn subject(&self) -> String {
        format!("chat.{}", self.stream)
    }

    /// The key-value bucket of the instances' leases.
    pub fn bucket(&self) -> String {
        format!("{}_instances", self.stream)
    }
}

/// The router settings of a replica: `base` with what replication needs (no journal holds, no
/// notice debounce on local time, slow readers announced through the log, and no flood control:
/// each instance charges its own connections before publishing, see `server::cluster`).
pub fn replicated(base: RouterConfig) -> RouterConfig {
    RouterConfig { journaled: false, notice_delay: Duration::ZERO, replicated: true, limits: None, ..base }
}

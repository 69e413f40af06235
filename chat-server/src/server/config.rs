//! [`ServerConfig`]: every setting of a server, its defaults, and the router settings it implies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{DEFAULT_BACKLOG, DEFAULT_GRACE, DEFAULT_HEARTBEAT, DEFAULT_LISTEN, DEFAULT_LOGIN_TIMEOUT};
use super::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PENDING_PER_ADDR, DEFAULT_OUTBOX};
use crate::journal::FsyncPolicy;
use crate::router::{AdmissionConfig, AuthMode, DEFAULT_PRESENCE_LIMIT, Limits, RouterConfig};
use crate::tls::TlsServer;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Where the journal lives; `None` runs without a persistent log.
    pub data_dir: Option<PathBuf>,
    /// When the journal syncs to disk.
    pub fsync: FsyncPolicy,
    /// Messages kept for history.
    pub history: usize,
    /// Heartbeat interval (silence for three is a dead connection).
    pub heartbeat: Duration,
    /// Most simultaneous connections; more are refused with `busy`.
    pub max_connections: usize,
    /// Frames queued per connection (unicasts, multicasts, replies) before it counts as a slow consumer.
    pub outbox_capacity: usize,
    /// Bytes a connection may lag behind the broadcast stream before it counts as a slow consumer.
    pub backlog_bytes: u64,
    /// Time a connection has to log in after it is accepted; then it is closed.
    pub login_timeout: Duration,
    /// Most connections one source address may have that have not logged in; more get `busy`.
    pub max_pending_per_addr: usize,
    /// Flood control per connection (`None`: off, as for benchmarks).
    pub limits: Option<Limits>,
    /// Whether logging in needs a password or token (`Accounts` needs a data directory).
    pub auth: AuthMode,
    /// TLS: every connection must speak it (`None`: plaintext).
    pub tls: Option<TlsServer>,
    /// How long a session is kept after its connection drops, for a resume (zero: not kept).
    pub grace: Duration,
    /// Where to accept connections speaking seed 000's text protocol (`None`: nowhere, the default).
    /// Plaintext, without credentials: see [`crate::text`].
    pub text_listen: Option<SocketAddr>,
    /// Cluster mode: this server is one instance of several sharing a NATS JetStream log (see
    /// [`crate::cluster`]); `data_dir` is then not used. `None` (the default): a single server.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Where to serve the web client: its page and its WebSocket (`None`: nowhere, the default). Over
    /// TLS when [`ServerConfig::tls`] is set. See [`crate::web`].
    pub web_listen: Option<SocketAddr>,
    /// Origins (`SCHEME://HOST[:PORT]`) whose pages may open the WebSocket besides the server's own
    /// page (see [`crate::web::OriginPolicy`]).
    pub web_origins: Vec<String>,
    /// Joins and leaves are announced to everybody while at most this many users are online
    /// ([`DEFAULT_PRESENCE_LIMIT`] by default; 0: never).
    pub presence_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            data_dir: Some(PathBuf::from("chat-data")),
            fsync: FsyncPolicy::default(),
            history: 1000,
            heartbeat: DEFAULT_HEARTBEAT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            outbox_capacity: DEFAULT_OUTBOX,
            backlog_bytes: DEFAULT_BACKLOG,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            max_pending_per_addr: DEFAULT_MAX_PENDING_PER_ADDR,
            limits: Some(Limits::default()),
            auth: AuthMode::Open,
            tls: None,
            grace: DEFAULT_GRACE,
            text_listen: None,
            cluster: None,
            web_listen: None,
            web_origins: Vec::new(),
            presence_limit: DEFAULT_PRESENCE_LIMIT,
        }
    }
}

impl ServerConfig {
    /// The router's settings for this server.
    pub(super) fn router(&self) -> RouterConfig {
        RouterConfig {
            history: self.history,
            heartbeat_ms: self.heartbeat.as_millis() as u64,
            backlog_bytes: self.backlog_bytes,
            journaled: self.data_dir.is_some(),
            admission: AdmissionConfig {
                max_connections: self.max_connections,
                max_pending_per_addr: self.max_pending_per_addr,
                login_timeout: self.login_timeout,
            },
            limits: self.limits,
            auth: self.auth,
            grace: self.grace,
            presence_limit: self.presence_limit,
            seed: rand::random(),
            ..RouterConfig::default()
        }
    }
}

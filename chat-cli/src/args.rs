//! Command-line arguments. Global flags are accepted before or after a subcommand (the ones a
//! subcommand uses: `applies`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The distributed chat: one binary for the server topology and the peer-to-peer topology.
#[derive(Debug, Parser)]
#[command(name = "chat-cli", version, about, long_about = None)]
pub struct Cli {
    /// Topology: `server` (a central server) or `p2p` (every node is client and server).
    #[arg(long, value_enum, default_value_t = Mode::Server, global = true, env = "CHAT_MODE")]
    pub mode: Mode,
    /// One JSON object per line on standard output, for scripts and bots.
    #[arg(long, global = true)]
    pub json: bool,
    /// Your user name (asked for interactively if missing and standard input is a terminal).
    #[arg(long, global = true, env = "CHAT_NAME")]
    pub name: Option<String>,
    /// Server address to join, HOST:PORT (server mode); several, comma-separated, are tried in turn.
    #[arg(long, global = true, default_value = "127.0.0.1:7878", env = "CHAT_SERVER")]
    pub server: String,
    /// Do not reconnect when the connection to the server is lost: exit instead.
    #[arg(long, global = true)]
    pub no_reconnect: bool,
    /// Show Lamport timestamps in human output.
    #[arg(long, global = true)]
    pub show_clock: bool,
    /// How human output shows when each message was ordered (strftime, local time).
    #[arg(long, global = true, default_value = "%H:%M", value_name = "FORMAT")]
    pub time_format: String,
    /// Show no times in human output.
    #[arg(long, global = true)]
    pub no_time: bool,
    /// On a terminal, the line mode (a `> ` prompt, output scrolling above it) instead of the
    /// full-screen client.
    #[arg(long, global = true)]
    pub plain: bool,
    /// Full-screen client: no terminal bell on a mention of your name or a private message.
    #[arg(long, global = true)]
    pub no_bell: bool,
    /// Address to listen on: the server's (`serve`, default 127.0.0.1:7878) or this node's (p2p, default 127.0.0.1:0).
    #[arg(long, global = true)]
    pub listen: Option<SocketAddr>,
    /// Heartbeat interval in milliseconds (server default 5000, p2p default 250).
    #[arg(long, global = true)]
    pub heartbeat_ms: Option<u64>,
    /// P2P: multicast group for discovery, IP:PORT.
    #[arg(long, global = true)]
    pub group: Option<String>,
    /// P2P: interface for multicast (default 127.0.0.1; a LAN address for LAN use).
    #[arg(long, global = true)]
    pub interface: Option<String>,
    /// P2P: join through this known node instead of multicast discovery (repeatable). No multicast
    /// is used; if none answers within the join timeout, chat-cli exits 1 naming them.
    #[arg(long = "peer", global = true)]
    pub peers: Vec<SocketAddr>,
    /// P2P: start a new group at once instead of looking for one (its first node gets ID 1).
    #[arg(long, global = true, conflicts_with = "peers")]
    pub found: bool,
    /// P2P: coordinator failure timeout in milliseconds (default 1000, or four heartbeats with --heartbeat-ms).
    #[arg(long, global = true)]
    pub timeout_ms: Option<u64>,
    /// P2P: the group secret, from this file (make one with `chat-cli secret new FILE`). Only nodes
    /// holding it get in: links are authenticated and encrypted (Noise), datagrams sealed.
    #[arg(long, global = true, value_name = "FILE", env = "CHAT_GROUP_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// P2P, with --secret-file: this node's identity key, kept in this file (made on first use, mode
    /// 0600; default $XDG_DATA_HOME/chat-cli/p2p-keys/NAME.key). The same key on every start lets a
    /// user collect the messages kept for them while offline.
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// P2P: allow a non-loopback --listen or --interface without a group secret (anyone who can
    /// reach this node can then join and forge). A server's is `serve --insecure`.
    #[arg(long)]
    pub insecure: bool,
    /// P2P: turn this node's flood control off (as coordinator it then rate-limits nobody; for
    /// benchmarks). A server's is turned off with `serve --no-rate-limit`.
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Connect to the server with TLS (trusting it by --ca, --tls-fingerprint, or on first use).
    #[arg(long)]
    pub tls: bool,
    /// With --tls: trust server certificates issued by the CA certificate(s) in this PEM file.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// With --tls: trust exactly the server certificate with this fingerprint (SHA256:<hex>).
    #[arg(long, global = true, value_name = "SHA256:HEX")]
    pub tls_fingerprint: Option<String>,
    /// With --tls and neither --ca nor --tls-fingerprint: where server certificates trusted on first use
    /// are remembered (default: $XDG_STATE_HOME/chat-cli/known_servers).
    #[arg(long, global = true, value_name = "FILE")]
    pub known_servers: Option<PathBuf>,
    /// Log in with a password: read from --password-file, CHAT_PASSWORD, or asked for without echo.
    #[arg(long, global = true)]
    pub password: bool,
    /// The password (login, `account add`/`passwd`), from the first line of this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Log in with a token (`chat-cli account token`), from the first line of this file (or CHAT_TOKEN).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// What to do (default: join).
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// The topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Centralized: `serve` runs the server, the default command joins it.
    Server,
    /// Peer-to-peer: every node is client and server.
    P2p,
}

/// Subcommands.
// Parsed once at start and never moved around: the size of `serve`'s flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Join the chat (the default).
    Join,
    /// Run the server (server mode).
    Serve(Box<ServeArgs>),
    /// Send one message and exit once the server has acknowledged it (exit 0), for scripts: like
    /// `redis-cli PUBLISH` or `nats pub`. Not announced to others.
    Send(SendArgs),
    /// Print messages as they arrive until interrupted, for scripts and logs. Not announced to others.
    Tail(TailArgs),
    /// Measure a running server: the fan-out workload (C subscribers, P publishers), with a progress bar.
    Bench(BenchArgs),
    /// Inspect the server's persistent log.
    Log {
        /// What to do with it.
        #[command(subcommand)]
        action: LogAction,
    },
    /// Make or inspect a P2P group secret file.
    Secret {
        /// What to do.
        #[command(subcommand)]
        action: SecretAction,
    },
    /// Manage the server's accounts (registered names with a password; tokens for bots).
    Account {
        /// What to do.
        #[command(subcommand)]
        action: AccountAction,
        /// The server's data directory (where the accounts file lives).
        #[arg(long, default_value = "chat-data", global = true)]
        data_dir: PathBuf,
        /// The accounts of the cluster on these NATS servers (nats://HOST:PORT, comma-separated)
        /// instead of a data directory: the change goes through the cluster's shared log.
        #[arg(long, value_name = "URL[,URL...]", global = true)]
        cluster: Option<String>,
        /// The cluster's stream.
        #[arg(long, default_value = chat_server::cluster::DEFAULT_STREAM, value_name = "NAME", global = true)]
        cluster_stream: String,
        /// How to authenticate to NATS (with --cluster).
        #[command(flatten)]
        nats: NatsAccess,
    },
}

/// `secret` actions.
#[derive(Debug, Subcommand)]
pub enum SecretAction {
    /// Write a fresh random group secret to FILE (mode 0600; an existing file is never overwritten)
    /// and print its public ID.
    New {
        /// Where to write it.
        file: PathBuf,
    },
    /// Print the public ID of the secret in FILE (compare IDs to check that nodes share a secret).
    Id {
        /// The secret file.
        file: PathBuf,
    },
}

/// `account` actions. Passwords come from --password-file, from standard input when it is not a
/// terminal, or from a prompt without echo.
#[derive(Debug, Subcommand)]
pub enum AccountAction {
    /// Register NAME with a password.
    Add {
        /// The name.
        name: String,
    },
    /// Delete NAME's account.
    Remove {
        /// The name.
        name: String,
    },
    /// List the registered names.
    List,
    /// Set a new password for NAME.
    Passwd {
        /// The name.
        name: String,
    },
    /// Issue a token for NAME (for bots; printed once, stored hashed).
    Token {
        /// The name.
        name: String,
    },
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of the persistent log.
    #[arg(long, default_value = "chat-data")]
    pub data_dir: PathBuf,
    /// Run without a persistent log.
    #[arg(long)]
    pub no_log: bool,
    /// When the log is synced to disk: `batch` (after every group commit), `interval:MS`, or `never`.
    #[arg(long, default_value = "batch")]
    pub fsync: String,
    /// Messages kept for history (survive restarts through the log).
    #[arg(long, default_value_t = 1000)]
    pub history: usize,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = chat_server::server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Private frames (unicasts, multicasts, replies) queued per client before it is disconnected as a slow consumer.
    #[arg(long, default_value_t = chat_server::server::DEFAULT_OUTBOX)]
    pub outbox: usize,
    /// MiB a client may lag behind the broadcast stream before it is disconnected as a slow consumer.
    #[arg(long, default_value_t = chat_server::server::DEFAULT_BACKLOG / (1024 * 1024))]
    pub backlog_mib: u64,
    /// Milliseconds a connection has to log in before it is closed.
    #[arg(long, default_value_t = chat_server::server::DEFAULT_LOGIN_TIMEOUT.as_millis() as u64)]
    pub login_timeout_ms: u64,
    /// Most connections one address may have open without being logged in; more are refused `busy`.
    #[arg(long, default_value_t = chat_server::server::DEFAULT_MAX_PENDING_PER_ADDR)]
    pub max_pending_per_addr: usize,
    /// Messages each connection may send per second, and in a burst: RATE[:BURST].
    #[arg(long, default_value = "50:200")]
    pub rate_limit: String,
    /// Body bytes each connection may send per second, and in a burst: RATE[:BURST] (the burst is at
    /// least the largest body, 64 KiB).
    #[arg(long, default_value = "262144:1048576")]
    pub byte_limit: String,
    /// Turn flood control off (for benchmarks; Redis and NATS have none).
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Messages all the connections of one source address (an IPv6 /64) may send per second together,
    /// and in a burst: RATE[:BURST] [default: 4 times --rate-limit].
    #[arg(long)]
    pub addr_rate_limit: Option<String>,
    /// Body bytes all the connections of one source address may send per second together, and in a
    /// burst: RATE[:BURST] [default: 4 times --byte-limit].
    #[arg(long)]
    pub addr_byte_limit: Option<String>,
    /// Turn the per-address limits off (the per-connection ones stay).
    #[arg(long)]
    pub no_addr_rate_limit: bool,
    /// TLS with a certificate made for you: `self-signed` (kept in DATA_DIR/tls, fingerprint printed).
    #[arg(long, value_name = "self-signed")]
    pub tls: Option<String>,
    /// TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Who may log in: `open` (anyone, but registered names need their password) or `accounts`
    /// (a password or token is required).
    #[arg(long, value_enum, default_value_t = AuthArg::Open)]
    pub auth: AuthArg,
    /// Allow listening on a non-loopback address without TLS and accounts.
    #[arg(long)]
    pub insecure: bool,
    /// Milliseconds a session is kept after its connection drops, so the client can resume it with
    /// nothing lost (0: a dropped connection ends the session at once).
    #[arg(long, default_value_t = chat_server::server::DEFAULT_GRACE.as_millis() as u64)]
    pub grace_ms: u64,
    /// Announce joins and leaves to everybody while at most this many users are online; above it
    /// they are not announced (one notice says so) and `/who` lists who is online. 0: never.
    #[arg(long, value_name = "N", default_value_t = chat_server::server::DEFAULT_PRESENCE_LIMIT)]
    pub presence_limit: usize,
    /// Also serve seed 000's text protocol (the original Python client, `nc`) on this address:
    /// plaintext without credentials, so not with `--auth accounts`, and beyond loopback only with
    /// `--insecure`. Off by default.
    #[arg(long, value_name = "ADDR")]
    pub text_listen: Option<SocketAddr>,
    /// Cluster mode: be one of several servers sharing users, rooms and one order through these NATS
    /// JetStream servers (nats://HOST:PORT, comma-separated; nats-server 2.10 or later). The data
    /// directory is then not used: the stream is the log.
    #[arg(long, value_name = "URL[,URL...]", env = "CHAT_CLUSTER")]
    pub cluster: Option<String>,
    /// Cluster mode: the JetStream stream (the instances of one chat share it).
    #[arg(long, default_value = chat_server::cluster::DEFAULT_STREAM, value_name = "NAME")]
    pub cluster_stream: String,
    /// Cluster mode: replicas of the stream (3 for three NATS nodes, 1 for a single one).
    #[arg(long, default_value_t = chat_server::cluster::DEFAULT_REPLICAS)]
    pub cluster_replicas: usize,
    /// Cluster mode: milliseconds after its last lease refresh before an instance counts as gone
    /// (its sessions are then detached, for their clients to resume elsewhere).
    #[arg(long, default_value_t = chat_server::cluster::DEFAULT_LEASE.as_millis() as u64)]
    pub cluster_lease_ms: u64,
    /// Cluster mode: how to authenticate to NATS.
    #[command(flatten)]
    pub nats: NatsAccess,
    /// Also serve the web client (a page and its WebSocket, `/ws`) on this address: over TLS when the
    /// server has TLS; beyond loopback only with TLS and accounts, or `--insecure`. Off by default.
    #[arg(long, value_name = "ADDR")]
    pub web: Option<SocketAddr>,
    /// An origin (`SCHEME://HOST[:PORT]`) whose pages may open the web client's WebSocket besides the
    /// server's own page reached by IP address or `localhost` (e.g. the page under a DNS name).
    /// Repeatable.
    #[arg(long, value_name = "ORIGIN")]
    pub web_origin: Vec<String>,
}

/// `serve --auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    /// Anyone may log in; registered names need their password or token.
    Open,
    /// Every login needs the password or a token of a registered account.
    Accounts,
}

/// `log` actions.
#[derive(Debug, Subcommand)]
pub enum LogAction {
    /// Print every record, one line each (consumption expanded to one line per delivery).
    Show {
        /// The data directory (or --cluster).
        #[arg(required_unless_present = "cluster", conflicts_with = "cluster")]
        dir: Option<PathBuf>,
        /// One JSON object per record instead (every field, consumption not expanded); with
        /// --cluster, one per batch of the stream.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cluster: LogCluster,
    },
    /// Check the log's consistency; exits 1 with a report on any violation.
    Verify {
        /// The data directory (or --cluster).
        #[arg(required_unless_present = "cluster", conflicts_with = "cluster")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        cluster: LogCluster,
    },
}

/// Which cluster's log `log show` / `log verify` read.
#[derive(Debug, Args)]
pub struct LogCluster {
    /// Read the log of the cluster on these NATS servers (nats://HOST:PORT, comma-separated)
    /// instead of a data directory.
    #[arg(long, value_name = "URL[,URL...]")]
    pub cluster: Option<String>,
    /// The cluster's stream.
    #[arg(long, default_value = chat_server::cluster::DEFAULT_STREAM, value_name = "NAME")]
    pub cluster_stream: String,
    /// How to authenticate to NATS.
    #[command(flatten)]
    pub nats: NatsAccess,
}

/// How to reach a cluster's NATS servers securely (`serve --cluster`, `log … --cluster`,
/// `account … --cluster`).
#[derive(Debug, Args)]
pub struct NatsAccess {
    /// Cluster mode: a NATS credentials file (JWT and NKey seed).
    #[arg(long, value_name = "FILE", global = true)]
    pub cluster_creds: Option<PathBuf>,
    /// Cluster mode: a NATS user and password, USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD", env = "CHAT_CLUSTER_USER", global = true)]
    pub cluster_user: Option<String>,
    /// Cluster mode: a NATS token, from the first line of this file.
    #[arg(long, value_name = "FILE", global = true)]
    pub cluster_token_file: Option<PathBuf>,
    /// Cluster mode: TLS to NATS, trusting the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE", global = true)]
    pub cluster_ca: Option<PathBuf>,
    /// Cluster mode: TLS client certificate for NATS (PEM); needs --cluster-key.
    #[arg(long, value_name = "FILE", global = true)]
    pub cluster_cert: Option<PathBuf>,
    /// Cluster mode: the key of --cluster-cert (PEM).
    #[arg(long, value_name = "FILE", global = true)]
    pub cluster_key: Option<PathBuf>,
    /// Cluster mode: require TLS to NATS (trusting the system's CAs unless --cluster-ca).
    #[arg(long, global = true)]
    pub cluster_tls: bool,
}

/// `send` options (the server is `--server`, the sender `--name`).
#[derive(Debug, Args)]
pub struct SendArgs {
    /// To these users (comma-separated): a unicast, or a multicast for several.
    #[arg(long, value_name = "USER[,USER...]", conflicts_with_all = ["room", "all"])]
    pub to: Option<String>,
    /// To the members of this room (you must be one).
    #[arg(long, value_name = "#ROOM", conflicts_with = "all")]
    pub room: Option<String>,
    /// To everyone online (the default).
    #[arg(long)]
    pub all: bool,
    /// Connect with TLS (as `chat-cli --tls send ...`).
    #[arg(long)]
    pub tls: bool,
    /// The text (several words are joined with spaces).
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
}

/// `tail` options.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only this room's messages (you must be a member).
    #[arg(long, value_name = "#ROOM")]
    pub room: Option<String>,
    /// First print the last N messages.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub history: usize,
    /// Connect with TLS (as `chat-cli --tls tail ...`).
    #[arg(long)]
    pub tls: bool,
}

/// `bench` options (the server is `--server`).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Subscribers (C).
    #[arg(long, default_value_t = 100)]
    pub subs: usize,
    /// Publishers (P).
    #[arg(long, default_value_t = 1)]
    pub pubs: usize,
    /// Messages per publisher.
    #[arg(long, default_value_t = 100_000)]
    pub msgs: u64,
    /// Body size in bytes (at least 16: the send time is carried in the body).
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Closed loop: messages published but not yet delivered to every subscriber.
    #[arg(long, default_value_t = 1000)]
    pub window: u64,
    /// Open loop instead: messages per second per publisher.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

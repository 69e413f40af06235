//! # tests
//!
//! The workspace's cross-crate test package (never published): integration tests that combine
//! crates, fault-injection tests, and load tests. Each crate keeps its own unit tests beside its
//! code; what lives here needs several crates at once or a long run.
//!
//! | item / file        | what                                                                          |
//! |--------------------|-------------------------------------------------------------------------------|
//! | [`TestServer`]     | a `chat_server` server on `127.0.0.1:0`, log on (in a tempdir) or off, stopped by [`TestServer::stop`] or on drop |
//! | [`relay`]          | a loopback TCP relay that cuts every connection through it on demand (network blips) |
//! | `tests/resume.rs`  | sessions resumed through cuts, a restart and the end of the grace period; offline messages across a restart |
//! | [`load`]           | load scenarios over the server topology: broadcast fan-out, unicast closed loop, run by `chat_cli::loadgen` against a [`TestServer`] |
//! | `tests/load.rs`    | a small smoke run (default suite) and the `#[ignore]`d full load runs          |
//! | `src/bin/fanbench.rs`, `src/bench/` | `fanbench`: `chat_cli::loadgen` against ours, Redis (`RedisPubSub`) and NATS (`NatsPubSub`); `RESULT` lines, summary, chart |
//!
//! ## Running the load tests
//!
//! They are not part of the default suite. Run them in release mode, one at a time (they serialize
//! themselves), and read the `LOAD ...` lines:
//!
//! ```text
//! cargo test -p tests --release -- --ignored --nocapture
//! LOAD_CLIENTS=500 LOAD_MESSAGES=200 cargo test -p tests --release -- --ignored --nocapture
//! ```
//!
//! `LOAD_CLIENTS` (default 200) is the number of receiving clients; `LOAD_MESSAGES` (default
//! 500) the number of messages each sender sends (4 senders in the fan-out, one sender per
//! receiving client in the unicast loop). See [`load`] for what is measured and checked.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chat_core::UserName;
use chat_server::ServerError;
use chat_server::journal::FsyncPolicy;
use chat_server::server::{Server, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod load;
pub mod relay;

/// How long [`TestServer::stop`] waits for the server to finish.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a test server keeps its persistent log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Journal in a fresh temporary directory, with the default fsync policy.
    On,
    /// No journal.
    Off,
}

impl Log {
    /// `"on"` or `"off"`, as printed in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Log::On => "on",
            Log::Off => "off",
        }
    }
}

/// Server settings for tests: loopback, port 0, default limits but no flood control (load tests send
/// as fast as they can, as against Redis or NATS), journal in `data_dir` if given.
pub fn server_config(data_dir: Option<&Path>) -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.map(Path::to_path_buf),
        fsync: FsyncPolicy::default(),
        limits: None,
        ..ServerConfig::default()
    }
}

/// A server running in the current tokio runtime. Stop it with [`TestServer::stop`]; dropping it
/// signals shutdown and aborts the task (for tests that fail half-way).
pub struct TestServer {
    /// Where clients connect.
    addr: SocketAddr,
    /// Fires the server's shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The task running [`Server::run`].
    task: Option<JoinHandle<Result<(), ServerError>>>,
    /// The journal's directory, removed after the server stopped.
    dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Binds a server on `127.0.0.1:0` and runs it in a spawned task.
    pub async fn start(log: Log) -> Result<TestServer, ServerError> {
        let dir = match log {
            Log::On => Some(tempfile::tempdir()?),
            Log::Off => None,
        };
        TestServer::start_with(server_config(dir.as_ref().map(|d| d.path())), dir).await
    }

    /// Binds a server with `config` (its `listen` should be loopback) and runs it; `dir`, if any,
    /// is kept until the server is stopped.
    pub async fn start_with(config: ServerConfig, dir: Option<tempfile::TempDir>) -> Result<TestServer, ServerError> {
        let server = Server::bind(config).await?;
        let addr = server.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Ok(TestServer { addr, stop: Some(stop), task: Some(task), dir })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server keeps a journal.
    pub fn log(&self) -> Log {
        if self.dir.is_some() { Log::On } else { Log::Off }
    }

    /// Shuts the server down gracefully and waits up to [`STOP_TIMEOUT`] for it.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else { return Ok(()) };
        let abort = task.abort_handle();
        match tokio::time::timeout(STOP_TIMEOUT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(ServerError::Io(std::io::Error::other(format!("server task failed: {join}")))),
            Err(_) => {
                abort.abort();
                Err(ServerError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "server did not stop in time")))
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A valid user name (panics on an invalid one: for test literals).
pub fn name(s: &str) -> UserName {
    UserName::new(s).unwrap_or_else(|e| panic!("bad test name {s:?}: {e}"))
}

/// The value of environment variable `var` as a number, or `default` if unset; panics if it is
/// set but not a number (a typo in a load-test command should not silently use the default).
pub fn env_usize(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
        Err(_) => default,
    }
}

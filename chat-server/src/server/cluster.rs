//! The owner loop in cluster mode (`serve --cluster`): the same connections, owner and fan-out as a
//! single server, with the shared log of [`crate::cluster`] in place of the journal.
//!
//! ```text
//!  start: read the stream to its end (Replica) ─► claim an instance ID ─► publish `Up`
//!         ─► accept connections once `Up` is applied (log time has caught up with the clock)
//!
//!  select! (biased): shutdown │ a batch of the log │ inbound from connections │ tick │ accept
//!      batch   ─► Replica::apply ─► Router outputs ─► Owner performs those for our connections
//!      inbound ─► shared state? ─► an Entry to the publisher (applied when it comes back)
//!                 otherwise (Ping, History, Who, ...) ─► the router at once, locally
//!      tick    ─► `Tick` if nothing was published for a tick; the sweeper learns the live instances
//! ```
//!
//! | local input                         | goes                                                        |
//! |-------------------------------------|-------------------------------------------------------------|
//! | `Accepted`, `Opened`                | to the local router only (admission, login deadline)        |
//! | `Login`, `Enter` without credential | `Admit` entry: a token drawn here, only its hash published  |
//! | `Enter` / `LoginWith` with a credential | the local router (`Authenticate`): the owner checks it against this replica's accounts off the owner task (argon2); right: `Authenticated` entry under the account's name; wrong: the local router refuses it (`auth_failed`, delayed as on a single server) |
//! | `Send`, `JoinRoom`, `PartRoom`      | entries, once the connection's `Admit` was published; before, the local router refuses them. A `Send` is first charged to the connection's flood control here: over the limit it is answered `RateLimited` (or the connection kicked, `flood`) without entering the log |
//! | `Peers`, `History`, `Rooms`, `Who`, `Ping` | the local router: they read the replica and change nothing |
//! | the connection ends                 | `Gone` entry (or the local router, if it never logged in)   |
//! | the owner kicked or closed it       | `Kicked` / `Gone` entry                                     |
//!
//! Connections come from the TCP listener, the text protocol's and the web listener's upgraded
//! WebSockets (`--web`), all admitted the same way. The replica's account table (built from the
//! log's `Account` entries) is handed to the owner's credential checks whenever it changes.
//!
//! An instance that applies its own `Down` (its lease expired: NATS did not hear from it for a
//! whole lease) tells its clients to go elsewhere and stops with an error, to be restarted.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::UserName;
use chat_transport::Listener;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::accounts_file::AccountsFile;
use super::connection::{Inbound, refuse, serve_connection, serve_tls};
use super::owner::Owner;
use super::text::{refuse_text, serve_text};
use super::web::{Upgraded, refuse_web, serve_web};
use super::{ConnSettings, INBOUND_CAPACITY, SHUTDOWN_GRACE, ServerConfig, TURN_INPUTS, accept_text, accept_web, http};
use crate::ServerError;
use crate::cluster::publisher::Publisher;
use crate::cluster::reader::{self, Delivered};
use crate::cluster::{Applied, Entry, Lease, Link, Replica, TICK, conn_base, replicated};
use crate::protocol::ServerFrame;
use crate::protocol::{ClientFrame, Resume};
use crate::router::{ClusterLogin, ConnId, Flood, Input, Router, RouterState, Verdict};

/// Batches applied in one turn before the owner publishes and hands frames to the writers.
const TURN_BATCHES: usize = 64;
/// How long shutdown waits for the publisher to store what is queued.
const PUBLISH_GRACE: Duration = Duration::from_secs(3);

/// The cluster's state around the owner.
struct Shell {
    replica: Replica,
    publisher: Publisher,
    instance: u32,
    /// Local connections whose `Admit` was published and whose end was not.
    admitted: HashSet<ConnId>,
    /// Local connections' handshake facts: (speaks version 1, can resume).
    flags: HashMap<ConnId, (bool, bool)>,
    last_publish: Instant,
    /// This instance was marked down by the log.
    down: bool,
    /// Flood control of this instance's connections, charged before their sends are published.
    flood: Flood,
    /// Logins with a credential being checked: (quiet, resume) for their `Authenticated` entry.
    credentials: HashMap<ConnId, (bool, Option<Resume>)>,
    /// One of this instance's own batches (its `Up` first) was applied: log time has caught up with
    /// the clock, and connections are accepted. Before, log time is that of the last batch read (the
    /// epoch on a fresh stream), and a login deadline set then would expire at the next batch.
    serving: bool,
}

/// Serves as one instance of the cluster until `shutdown` completes (or the log marks it down).
pub(super) async fn run<L: Listener>(
    mut listener: L,
    mut text: Option<L>,
    web: Option<tokio::net::TcpListener>,
    config: ServerConfig,
    link: Link,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    tokio::pin!(shutdown);
    let mut router = Router::new(replicated(config.router()), RouterState::default());
    let mut replica = Replica::new(Instant::now());
    let subject = link.config.subject();
    let (log_tx, mut log_rx) = mpsc::channel(reader::QUEUE);
    let target = link.stream.get_info().await.map_err(|e| ServerError::Cluster(e.to_string()))?.state.last_sequence;
    let reading = reader::start(link.stream.clone(), subject.clone(), 1, log_tx);
    let started = Instant::now();
    while replica.applied() < target {
        tokio::select! {
            biased;
            () = &mut shutdown => { reading.abort(); return Ok(()); }
            Some(d) = log_rx.recv() => {
                replica.apply(&mut router, d.seq, d.time_ms, &d.payload);
                while router.poll_output().is_some() {}
            }
        }
    }
    info!(batches = target, ms = started.elapsed().as_millis() as u64, "caught up with the shared log");
    let store = link.leases.clone().ok_or_else(|| ServerError::Cluster("no lease bucket".into()))?;
    let instance = Lease::claim(store.clone(), |i| replica.knows(i)).await?;
    let publisher = Publisher::start(link.js.clone(), subject, instance);
    let (live_tx, live_rx) = watch::channel(replica.live());
    let mut lease = Lease::start(store, instance, link.config.lease, live_rx, publisher.sender());

    let (inbound_tx, mut inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
    let mut owner = Owner::new(router, None, AccountsFile::new(None), inbound_tx.clone());
    owner.accounts.set_table(Arc::new(replica.accounts().clone()));
    owner.track_ended();
    let mut shell = Shell {
        replica,
        publisher,
        instance,
        admitted: HashSet::new(),
        flags: HashMap::new(),
        last_publish: Instant::now(),
        down: false,
        flood: Flood::new(config.limits),
        credentials: HashMap::new(),
        serving: false,
    };
    shell.publish(Entry::Up).await?;
    let tracker = TaskTracker::new();
    let stream_reader = owner.stream.reader();
    let settings = ConnSettings { heartbeat: config.heartbeat, outbox: config.outbox_capacity };
    let mut next_conn: ConnId = conn_base(instance);
    let (mut upgrades, http) = http::start(web, &config);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if shell.down {
            error!("this instance was marked down by the cluster (its lease expired): stopping");
            break;
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(first) = log_rx.recv() => {
                shell.apply(&mut owner, first);
                for _ in 0..TURN_BATCHES {
                    match log_rx.try_recv() {
                        Ok(more) => shell.apply(&mut owner, more),
                        Err(_) => break,
                    }
                }
                owner.perform().await?;
                shell.end_turn(&mut owner).await?;
            }
            Some(first) = inbound_rx.recv() => {
                shell.local(&mut owner, first).await?;
                for _ in 0..TURN_INPUTS {
                    match inbound_rx.try_recv() {
                        Ok(more) => shell.local(&mut owner, more).await?,
                        Err(_) => break,
                    }
                }
                shell.end_turn(&mut owner).await?;
            }
            _ = ticker.tick() => {
                if shell.last_publish.elapsed() >= TICK {
                    shell.publish(Entry::Tick).await?;
                }
                live_tx.send_replace(shell.replica.live());
            }
            accepted = listener.accept(), if shell.serving => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                next_conn += 1;
                let conn = next_conn;
                if let Err((code, message)) = owner.accept(shell.replica.now(), conn, peer.ip()).await? {
                    debug!(conn, %peer, %message, "connection refused");
                    tracker.spawn(refuse(stream, code, message));
                    continue;
                }
                shell.flood.connected(conn, peer.ip());
                let (inbound, writers, reader) = (inbound_tx.clone(), tracker.clone(), stream_reader.clone());
                let task = match config.tls.as_ref().map(|t| t.acceptor.clone()) {
                    Some(tls) => tracker.spawn(async move {
                        let _ = serve_tls(conn, stream, tls, inbound, settings, writers, reader).await;
                    }),
                    None => tracker.spawn(async move {
                        let _ = serve_connection(conn, stream, inbound, settings, writers, reader).await;
                    }),
                };
                owner.serving(conn, task.abort_handle());
            }
            accepted = accept_text(&mut text), if shell.serving => {
                let Ok((stream, peer)) = accepted else { continue };
                next_conn += 1;
                let conn = next_conn;
                if let Err((_, message)) = owner.accept(shell.replica.now(), conn, peer.ip()).await? {
                    tracker.spawn(refuse_text(stream, message));
                    continue;
                }
                shell.flood.connected(conn, peer.ip());
                let (inbound, reader) = (inbound_tx.clone(), stream_reader.clone());
                let task = tracker.spawn(serve_text(conn, stream, inbound, settings.outbox, reader));
                owner.serving(conn, task.abort_handle());
            }
            Some(Upgraded { socket, peer }) = accept_web(&mut upgrades), if shell.serving => {
                next_conn += 1;
                let conn = next_conn;
                if let Err((code, message)) = owner.accept(shell.replica.now(), conn, peer.ip()).await? {
                    tracker.spawn(refuse_web(socket, code, message));
                    continue;
                }
                shell.flood.connected(conn, peer.ip());
                let (inbound, reader) = (inbound_tx.clone(), stream_reader.clone());
                let task = tracker.spawn(serve_web(conn, socket, inbound, settings, reader));
                owner.serving(conn, task.abort_handle());
            }
        }
    }
    info!("shutting down");
    drop(listener);
    drop(text);
    drop(upgrades);
    if let Some(http) = http {
        http.abort();
    }
    let marked_down = shell.down;
    // Every session of this instance is detached at once in every replica; its clients resume on
    // another instance (they are told to go by `Closing { shutting_down }`).
    if !marked_down {
        let _ = shell.publish(Entry::Down { instance }).await;
    }
    let Shell { publisher, replica, .. } = shell;
    let stats = publisher.stats.clone();
    // The sweeper holds a sender of the publisher's queue: stopped first, or the queue never closes.
    lease.stop().await;
    if !publisher.close(PUBLISH_GRACE).await {
        warn!("the shared log did not take this instance's last entries before shutdown");
    }
    lease.release().await;
    reading.abort();
    {
        use std::sync::atomic::Ordering::Relaxed;
        info!(
            batches = stats.batches.load(Relaxed),
            entries = stats.entries.load(Relaxed),
            stalls = stats.stalls.load(Relaxed),
            longest_stall_ms = stats.longest_stall_ms.load(Relaxed),
            "published to the shared log"
        );
    }
    let closed = owner.shutdown(replica.now(), None).await;
    drop(owner);
    tracker.close();
    drop(inbound_rx);
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        warn!("some connections did not finish flushing in time");
    }
    if marked_down {
        return Err(ServerError::Cluster("this instance was marked down by the cluster (its lease expired)".into()));
    }
    closed
}

impl Shell {
    /// Queues an entry for the log.
    async fn publish(&mut self, entry: Entry) -> Result<(), ServerError> {
        self.last_publish = Instant::now();
        self.publisher.send(entry).await
    }

    /// Applies one batch of the log.
    fn apply(&mut self, owner: &mut Owner, delivered: Delivered) {
        let applied = self.replica.apply(&mut owner.router, delivered.seq, delivered.time_ms, &delivered.payload);
        if let Applied::Batch { instance, down, accounts, .. } = applied {
            self.down |= down.contains(&self.instance);
            if instance == self.instance && !self.serving {
                self.serving = true;
                info!(instance = format_args!("{instance:08x}"), "serving as one instance of the cluster");
            }
            // Rare (an administrator's change): a fresh snapshot for the credential checks.
            if accounts.iter().any(Result::is_ok) {
                owner.accounts.set_table(Arc::new(self.replica.accounts().clone()));
            }
        }
    }

    /// Ends a turn: the owner publishes and hands over; what it ended is announced.
    async fn end_turn(&mut self, owner: &mut Owner) -> Result<(), ServerError> {
        owner.end_turn(self.replica.now()).await?;
        for (conn, code) in owner.take_ended() {
            self.flags.remove(&conn);
            self.flood.forget(conn);
            if self.admitted.remove(&conn) {
                let entry = match code {
                    Some(code) => Entry::Kicked { conn, reason: code.to_string() },
                    None => Entry::Gone { conn, reason: "closed".into() },
                };
                self.publish(entry).await?;
            }
        }
        Ok(())
    }

    /// One report of a connection task (see the module table).
    async fn local(&mut self, owner: &mut Owner, inbound: Inbound) -> Result<(), ServerError> {
        let now = self.replica.now();
        match inbound {
            Inbound::Open { conn, entry } => {
                self.flags.insert(conn, (entry.legacy, entry.resumable));
                owner.opened(conn, entry);
                owner.router.handle(now, Input::Opened { conn });
            }
            Inbound::Frame { conn, frame } => {
                self.frame(owner, conn, frame).await?;
                owner.applied(conn);
            }
            Inbound::Closed { conn, reason } => {
                owner.closed(conn);
                self.flood.forget(conn);
                self.credentials.remove(&conn);
                self.flags.remove(&conn);
                if self.admitted.remove(&conn) {
                    self.publish(Entry::Gone { conn, reason }).await?;
                } else {
                    owner.router.handle(now, Input::Disconnected { conn, reason });
                }
            }
            // A right credential: the login enters the log under the account's name. A wrong one:
            // the local router refuses it (after the delay its address has earned).
            Inbound::Authenticated { conn, name } => match (name, self.credentials.remove(&conn)) {
                (Some(name), Some((quiet, resume))) => {
                    self.admit(owner, conn, name, quiet, resume, true).await?;
                }
                _ => owner.router.handle(now, Input::Authenticated { conn, name: None }),
            },
        }
        owner.perform().await
    }

    async fn frame(&mut self, owner: &mut Owner, conn: ConnId, frame: ClientFrame) -> Result<(), ServerError> {
        let admitted = self.admitted.contains(&conn);
        let entry = match frame {
            ClientFrame::Login { name } => return self.admit(owner, conn, name, false, None, false).await,
            ClientFrame::Enter(enter) if enter.credential.is_none() => {
                return self.admit(owner, conn, enter.name, enter.quiet, enter.resume, false).await;
            }
            // With a credential: the local router asks for the check (see the module table).
            ClientFrame::Enter(enter) => {
                self.credentials.insert(conn, (enter.quiet, enter.resume.clone()));
                owner.router.handle(self.replica.now(), Input::Enter { conn, enter });
                return Ok(());
            }
            ClientFrame::LoginWith { name, credential } => {
                self.credentials.insert(conn, (false, None));
                owner.router.handle(self.replica.now(), Input::LoginWith { conn, name, credential });
                return Ok(());
            }
            ClientFrame::Send { req, recipients, body, sent_at, key } if admitted => {
                let now = Instant::now();
                match self.flood.charge(now, conn, body.len()) {
                    Verdict::Pass => Entry::Send { conn, req, recipients, body, sent_at, key },
                    // An instance answers every refused send (it neither holds sends nor pauses readers).
                    verdict @ (Verdict::Limited { .. } | Verdict::Early { .. }) => {
                        let wait = match verdict {
                            Verdict::Limited { wait, .. } => wait,
                            Verdict::Early { until } => until.saturating_duration_since(now),
                            _ => unreachable!("matched above"),
                        };
                        let retry_after_ms = crate::router::retry_after_ms(wait);
                        owner.reply_local(conn, &ServerFrame::RateLimited { req, retry_after_ms });
                        return Ok(());
                    }
                    Verdict::Flood => {
                        let reason = "kept sending over the rate limit after warnings".to_string();
                        owner.kick(conn, chat_core::ErrorCode::Flood, reason);
                        return Ok(());
                    }
                }
            }
            ClientFrame::JoinRoom { req, room } if admitted => Entry::JoinRoom { conn, req, room },
            ClientFrame::PartRoom { req, room } if admitted => Entry::PartRoom { conn, req, room },
            other => {
                if let Some(input) = Input::from_frame(conn, other) {
                    owner.router.handle(self.replica.now(), input);
                }
                return Ok(());
            }
        };
        self.publish(entry).await
    }

    /// A login (`account`: its credential was verified, `name` is the account's): a token is drawn
    /// here and only hashes enter the log.
    async fn admit(
        &mut self,
        owner: &mut Owner,
        conn: ConnId,
        name: UserName,
        quiet: bool,
        resume: Option<Resume>,
        account: bool,
    ) -> Result<(), ServerError> {
        let (legacy, resumable) = self.flags.get(&conn).copied().unwrap_or((false, true));
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let minted: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let token = Sha256::digest(minted.as_bytes()).into();
        let claim = resume.as_ref().map(|r| (Sha256::digest(r.token.as_bytes()).into(), r.cursor));
        owner.set_tokens(conn, minted, resume.map(|r| r.token));
        self.admitted.insert(conn);
        let login = ClusterLogin { conn, name, quiet, token, resume: claim, legacy, resumable };
        self.publish(if account { Entry::Authenticated(login) } else { Entry::Admit(login) }).await
    }
}

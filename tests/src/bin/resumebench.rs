//! `resumebench`: how fast sessions come back.
//!
//! ```sh
//! cargo build --release -p tests
//! target/release/resumebench restart --clients 1000      # time from a server restart until every client has resumed
//! target/release/resumebench replay --clients 100 --missed 1000   # messages replayed per second during resumes
//! ```
//!
//! `restart`: N clients (the library's `ServerTransport`, with its default reconnection policy: backoff from
//! 100 ms with jitter) are logged in to a server (in this process, journal on, `--fsync batch`); the server is
//! stopped and a new one started on the same address and data directory; the time from the new server
//! listening until the last client has received `Resumed` is reported.
//!
//! `replay`: N clients reach the server through a relay; the relay cuts them off and refuses them while a
//! publisher (connected directly) broadcasts M messages; then the relay lets them back: every client resumes and
//! receives the M messages it missed. Reported: the time from letting them back until the last client has all
//! of them, and replayed messages per second (N × M over that time).
//!
//! Every wait is bounded; the servers and the relay are stopped at the end. Loopback only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chat_core::{Chat, Event, UserName};
use chat_server::client::{ClientConfig, connect};
use chat_server::server::ServerConfig;
use clap::{Parser, Subcommand};
use tests::relay::Relay;
use tests::{TestServer, server_config};
use tokio::task::JoinSet;

/// Resume benchmarks.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Time from a server restart until every client has resumed.
    Restart {
        /// Clients.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
    },
    /// Messages replayed per second while clients resume.
    Replay {
        /// Clients.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Messages each one missed.
        #[arg(long, default_value_t = 1000)]
        missed: usize,
    },
}

/// Longest wait for any phase.
const WAIT: Duration = Duration::from_secs(120);

fn name(i: usize) -> Result<UserName> {
    UserName::new(format!("r{i}")).context("name")
}

async fn join(addr: SocketAddr, i: usize) -> Result<Chat> {
    let config = ClientConfig::new(addr.to_string(), name(i)?);
    Ok(Chat::new(connect(config).await.with_context(|| format!("client {i}"))?))
}

/// Logs `n` clients in, a few at a time.
async fn join_all(addr: SocketAddr, n: usize) -> Result<Vec<Chat>> {
    let mut chats = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let mut set = JoinSet::new();
        for &i in chunk {
            set.spawn(async move { (i, join(addr, i).await) });
        }
        let mut got: Vec<(usize, Chat)> = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (i, chat) = joined?;
            got.push((i, chat?));
        }
        got.sort_by_key(|(i, _)| *i);
        chats.extend(got.into_iter().map(|(_, c)| c));
    }
    Ok(chats)
}

/// Waits until `chat` has resumed and received `messages` messages; returns when.
async fn resumed(mut chat: Chat, messages: usize) -> Result<(Instant, Chat)> {
    let mut back = false;
    let mut got = 0;
    while !back || got < messages {
        match tokio::time::timeout(WAIT, chat.next_event()).await.context("events in time")? {
            Some(Event::Resumed { .. }) => back = true,
            Some(Event::Message(_)) => got += 1,
            Some(Event::Disconnected { code, reason }) => bail!("disconnected: {code} {reason}"),
            Some(_) => {}
            None => bail!("closed"),
        }
    }
    Ok((Instant::now(), chat))
}

async fn restart(clients: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = ServerConfig { limits: None, ..server_config(Some(dir.path())) };
    let server = TestServer::start_with(config.clone(), None).await?;
    let addr = server.addr();
    let chats = join_all(addr, clients).await?;
    server.stop().await?;
    let server = TestServer::start_with(ServerConfig { listen: addr, ..config }, None).await?;
    let started = Instant::now();
    let mut set = JoinSet::new();
    for chat in chats {
        set.spawn(resumed(chat, 0));
    }
    let mut last = started;
    let mut chats = Vec::new();
    while let Some(done) = set.join_next().await {
        let (at, chat) = done??;
        last = last.max(at);
        chats.push(chat);
    }
    let took = last - started;
    println!("RESULT scenario=restart clients={clients} all_resumed_ms={}", took.as_millis());
    for mut chat in chats {
        let _ = chat.leave().await;
    }
    server.stop().await?;
    Ok(())
}

async fn replay(clients: usize, missed: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = ServerConfig { limits: None, ..server_config(Some(dir.path())) };
    let server = TestServer::start_with(config, None).await?;
    let relay = Relay::start(server.addr()).await?;
    let chats = join_all(relay.addr(), clients).await?;
    let mut publisher = join(server.addr(), clients).await?;
    relay.pause(true);
    relay.cut();
    for i in 0..missed {
        publisher.broadcast(format!("missed {i}")).await?;
    }
    let started = Instant::now();
    relay.pause(false);
    let mut set = JoinSet::new();
    for chat in chats {
        set.spawn(resumed(chat, missed));
    }
    let mut last = started;
    let mut chats = Vec::new();
    while let Some(done) = set.join_next().await {
        let (at, chat) = done??;
        last = last.max(at);
        chats.push(chat);
    }
    let took = (last - started).as_secs_f64();
    let replayed = (clients * missed) as f64;
    println!(
        "RESULT scenario=replay clients={clients} missed={missed} all_caught_up_ms={:.0} replayed_per_s={:.0}",
        took * 1000.0,
        replayed / took
    );
    for mut chat in chats {
        let _ = chat.leave().await;
    }
    let _ = publisher.leave().await;
    drop(relay);
    server.stop().await?;
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        match cli.cmd {
            Cmd::Restart { clients } => restart(clients).await,
            Cmd::Replay { clients, missed } => replay(clients, missed).await,
        }
    })
}

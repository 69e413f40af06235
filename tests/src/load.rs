//! Load scenarios over the server topology, in one process: a [`TestServer`] on `127.0.0.1:0` and
//! hundreds of clients (`chat_server::client::connect` + [`Chat`]), all in the caller's runtime.
//!
//! | scenario              | traffic                                                            | a delivery is          |
//! |-----------------------|--------------------------------------------------------------------|------------------------|
//! | [`Scenario::Fanout`]  | [`FANOUT_SENDERS`] clients broadcast `messages` each               | a broadcast at a client (senders included) |
//! | [`Scenario::Unicast`] | every client sends `messages` unicasts, each to a random other client, one at a time (closed loop) | a unicast at its recipient |
//!
//! Each body carries the sender's index, its per-sender counter and the send instant (nanoseconds
//! since a shared `Instant`), so a receiver records the latency in an HDR histogram and checks:
//! every expected message arrives exactly once, each sender's messages in order, only messages
//! meant for it, and (fan-out) the server order: sequence numbers strictly increase and every
//! client sees the same sequence. Fan-out senders stay at most [`FANOUT_WINDOW`] messages ahead of
//! the slowest client, so nobody becomes a slow consumer.
//!
//! Everything is bounded: each wait by [`IDLE_TIMEOUT`], the whole run by [`LoadConfig::deadline`];
//! every client leaves and the server stops at the end, also on failure.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use chat_core::{Chat, ChatMessage, Event, UserName};
use chat_server::client::{ClientConfig, connect};
use hdrhistogram::Histogram;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::{Log, TestServer, env_usize};

/// Clients that broadcast in the fan-out scenario.
pub const FANOUT_SENDERS: usize = 4;
/// How many broadcasts the fan-out senders may be ahead of the slowest client.
pub const FANOUT_WINDOW: u64 = 1024;
/// Longest wait for any one event, receipt or barrier.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of clients (`LOAD_CLIENTS`).
pub const DEFAULT_CLIENTS: usize = 200;
/// Default number of messages per sender (`LOAD_MESSAGES`).
pub const DEFAULT_MESSAGES: usize = 500;

/// What traffic to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A few senders broadcast; every client receives everything.
    Fanout,
    /// Every client sends unicasts to random others, one at a time.
    Unicast,
}

impl Scenario {
    /// The name printed in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Unicast => "unicast",
        }
    }
}

/// Parameters of one load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent clients (at least 2).
    pub clients: usize,
    /// Messages each sender sends.
    pub messages: usize,
    /// Whether the server keeps its journal.
    pub log: Log,
    /// Seed of the unicast targets (printed in the report on failure).
    pub seed: u64,
    /// Bound on the whole run, connections included.
    pub deadline: Duration,
}

impl LoadConfig {
    /// Sizes from `LOAD_CLIENTS` and `LOAD_MESSAGES` (defaults [`DEFAULT_CLIENTS`],
    /// [`DEFAULT_MESSAGES`]), a 10-minute deadline.
    pub fn from_env(log: Log) -> Self {
        LoadConfig {
            clients: env_usize("LOAD_CLIENTS", DEFAULT_CLIENTS),
            messages: env_usize("LOAD_MESSAGES", DEFAULT_MESSAGES),
            log,
            seed: 0x5EED,
            deadline: Duration::from_secs(600),
        }
    }

    /// A small run for the default test suite: 20 clients, 50 messages each.
    pub fn smoke(log: Log) -> Self {
        LoadConfig { clients: 20, messages: 50, log, seed: 7, deadline: Duration::from_secs(120) }
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct LoadReport {
    /// Which scenario ran.
    pub scenario: Scenario,
    /// Concurrent clients.
    pub clients: usize,
    /// Messages sent in all.
    pub messages: u64,
    /// Messages received by their intended recipients in all.
    pub deliveries: u64,
    /// From the first send to the last delivery.
    pub elapsed: Duration,
    /// Send-to-delivery latency of every delivery, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Whether the server kept its journal.
    pub log: Log,
}

impl LoadReport {
    /// Deliveries per second over [`LoadReport::elapsed`].
    pub fn deliveries_per_second(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for LoadReport {
    /// The one-line summary: `LOAD scenario=... clients=... messages=... deliveries=... deliv_per_s=...
    /// p50_us=... p99_us=... p999_us=... log=on|off`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LOAD scenario={} clients={} messages={} deliveries={} deliv_per_s={:.0} p50_us={} p99_us={} p999_us={} log={}",
            self.scenario.as_str(),
            self.clients,
            self.messages,
            self.deliveries,
            self.deliveries_per_second(),
            self.latency_us.value_at_quantile(0.50),
            self.latency_us.value_at_quantile(0.99),
            self.latency_us.value_at_quantile(0.999),
            self.log.as_str(),
        )
    }
}

/// State shared by the clients of one run.
struct Shared {
    scenario: Scenario,
    config: LoadConfig,
    names: Vec<UserName>,
    /// The shared clock origin: bodies carry nanoseconds since it.
    base: Instant,
    /// When the whole run must be over.
    deadline: Instant,
    /// Unicast: `targets[i][k]` is the recipient of sender `i`'s message `k`.
    targets: Vec<Vec<u32>>,
    /// Fan-out: messages received so far by each client.
    progress: Vec<AtomicU64>,
    /// Fan-out: broadcasts accepted by the server so far.
    sent: AtomicU64,
    /// Every client waits here before leaving, so nobody sends to a client that already left.
    done: Barrier,
}

impl Shared {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn check_deadline(&self) -> anyhow::Result<()> {
        ensure!(Instant::now() < self.deadline, "the run exceeded its deadline of {:?}", self.config.deadline);
        Ok(())
    }

    /// Messages client `me` must receive from others.
    fn expected(&self, me: usize) -> u64 {
        match self.scenario {
            Scenario::Fanout => (FANOUT_SENDERS.min(self.config.clients) * self.config.messages) as u64,
            Scenario::Unicast => self.targets.iter().flatten().filter(|&&t| t as usize == me).count() as u64,
        }
    }
}

/// What one client saw.
struct Receiver {
    me: usize,
    /// Next counter expected from each sender (fan-out) or the last one seen plus one (unicast).
    next: Vec<u64>,
    received: u64,
    echoes: u64,
    last_seq: u64,
    /// Order fingerprint of the sequence numbers received.
    fingerprint: u64,
    last_at_ns: u64,
    latency_us: Histogram<u64>,
}

impl Receiver {
    fn new(me: usize, clients: usize) -> anyhow::Result<Self> {
        Ok(Receiver {
            me,
            next: vec![0; clients],
            received: 0,
            echoes: 0,
            last_seq: 0,
            fingerprint: 0xcbf2_9ce4_8422_2325,
            last_at_ns: 0,
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)?,
        })
    }

    /// Checks and records one event.
    fn event(&mut self, shared: &Shared, event: Event) -> anyhow::Result<()> {
        match event {
            Event::Message(m) => self.message(shared, &m),
            Event::Disconnected { code, reason } => bail!("client {} disconnected: {code} {reason}", self.me),
            Event::Error { code, message } => bail!("client {} got an error: {code} {message}", self.me),
            _ => Ok(()),
        }
    }

    fn message(&mut self, shared: &Shared, m: &ChatMessage) -> anyhow::Result<()> {
        let now_ns = shared.base.elapsed().as_nanos() as u64;
        let mut fields = m.body.split(' ').map(str::parse::<u64>);
        let (Some(Ok(from)), Some(Ok(k)), Some(Ok(sent_ns)), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            bail!("client {}: unexpected body {:?}", self.me, m.body);
        };
        let from = from as usize;
        ensure!(from < shared.names.len() && m.sender == shared.names[from], "client {}: bad sender in {m:?}", self.me);
        if shared.scenario == Scenario::Unicast && from == self.me {
            self.echoes += 1;
            return Ok(());
        }
        match shared.scenario {
            Scenario::Fanout => {
                ensure!(
                    k == self.next[from],
                    "client {}: from {from} got #{k}, expected #{}",
                    self.me,
                    self.next[from]
                );
                ensure!(m.id.seq > self.last_seq, "client {}: server order broken at {}", self.me, m.id);
                self.last_seq = m.id.seq;
                self.fingerprint = (self.fingerprint ^ m.id.seq).wrapping_mul(0x100_0000_01b3);
            }
            Scenario::Unicast => {
                ensure!(k >= self.next[from], "client {}: from {from} got #{k} after #{}", self.me, self.next[from]);
                let target = shared.targets[from].get(k as usize).copied();
                ensure!(target == Some(self.me as u32), "client {}: #{k} from {from} was not for me", self.me);
            }
        }
        self.next[from] = k + 1;
        self.received += 1;
        self.last_at_ns = self.last_at_ns.max(now_ns);
        self.latency_us.saturating_record((now_ns.saturating_sub(sent_ns) / 1000).max(1));
        if shared.scenario == Scenario::Fanout {
            shared.progress[self.me].store(self.received, Ordering::Release);
        }
        Ok(())
    }

    /// Handles every event already queued, without waiting.
    async fn drain_ready(&mut self, shared: &Shared, chat: &mut Chat) -> anyhow::Result<()> {
        // `next_event` is cancel-safe: a zero timeout polls it once and loses nothing.
        while let Ok(event) = timeout(Duration::ZERO, chat.next_event()).await {
            self.event(shared, event.ok_or_else(|| anyhow!("client {}: chat closed", self.me))?)?;
        }
        Ok(())
    }

    /// Waits for one event (at most [`IDLE_TIMEOUT`]) and handles it.
    async fn wait_one(&mut self, shared: &Shared, chat: &mut Chat) -> anyhow::Result<()> {
        shared.check_deadline()?;
        let wait = IDLE_TIMEOUT.min(shared.remaining());
        let event = timeout(wait, chat.next_event())
            .await
            .map_err(|_| anyhow!("client {}: nothing received for {wait:?} ({} so far)", self.me, self.received))?;
        self.event(shared, event.ok_or_else(|| anyhow!("client {}: chat closed", self.me))?)
    }
}

fn body(me: usize, k: usize, base: Instant) -> String {
    format!("{me} {k} {}", base.elapsed().as_nanos() as u64)
}

/// splitmix64, for the unicast targets.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One client's whole life in the run: send its share, receive what it must, wait for everybody.
async fn client(me: usize, mut chat: Chat, shared: Arc<Shared>) -> anyhow::Result<Receiver> {
    let mut rx = Receiver::new(me, shared.config.clients)?;
    let result = client_traffic(&mut rx, &mut chat, &shared).await;
    // Everybody meets here, failed or not, so no one leaves while others still send to it.
    let met = timeout(shared.remaining().min(IDLE_TIMEOUT * 4), shared.done.wait()).await;
    let _ = timeout(IDLE_TIMEOUT, chat.leave()).await;
    result?;
    met.map_err(|_| anyhow!("client {me}: the others did not finish in time"))?;
    Ok(rx)
}

async fn client_traffic(rx: &mut Receiver, chat: &mut Chat, shared: &Shared) -> anyhow::Result<()> {
    let me = rx.me;
    let messages = shared.config.messages;
    match shared.scenario {
        Scenario::Fanout if me < FANOUT_SENDERS => {
            for k in 0..messages {
                // Flow control: stay within the window of the slowest client.
                loop {
                    let slowest = shared.progress.iter().map(|p| p.load(Ordering::Acquire)).min().unwrap_or(0);
                    if shared.sent.load(Ordering::Acquire) < slowest + FANOUT_WINDOW {
                        break;
                    }
                    rx.drain_ready(shared, chat).await?;
                    shared.check_deadline()?;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                timeout(IDLE_TIMEOUT, chat.broadcast(body(me, k, shared.base)))
                    .await
                    .context("broadcast receipt timed out")?
                    .with_context(|| format!("client {me}: broadcast #{k}"))?;
                shared.sent.fetch_add(1, Ordering::AcqRel);
                rx.drain_ready(shared, chat).await?;
            }
        }
        Scenario::Fanout => {}
        Scenario::Unicast => {
            for k in 0..messages {
                let to = shared.names[shared.targets[me][k] as usize].clone();
                timeout(IDLE_TIMEOUT, chat.send_to(to, body(me, k, shared.base)))
                    .await
                    .context("unicast receipt timed out")?
                    .with_context(|| format!("client {me}: unicast #{k}"))?;
                rx.drain_ready(shared, chat).await?;
                shared.check_deadline()?;
            }
        }
    }
    let expected = shared.expected(me);
    let echoes = if shared.scenario == Scenario::Unicast { messages as u64 } else { 0 };
    while rx.received < expected || rx.echoes < echoes {
        rx.wait_one(shared, chat).await?;
    }
    ensure!(rx.received == expected, "client {me}: received {} of {expected}", rx.received);
    Ok(())
}

/// Runs one scenario: starts the server, connects the clients, runs the traffic, checks what every
/// client received, stops everything, and reports.
pub async fn run(scenario: Scenario, config: &LoadConfig) -> anyhow::Result<LoadReport> {
    ensure!(config.clients >= 2, "a load run needs at least 2 clients");
    let server = TestServer::start(config.log).await?;
    let outcome = timeout(config.deadline, run_clients(scenario, config, server.addr())).await;
    let stopped = server.stop().await;
    let report = outcome.map_err(|_| anyhow!("the run exceeded its deadline of {:?}", config.deadline))??;
    stopped?;
    Ok(report)
}

async fn run_clients(
    scenario: Scenario,
    config: &LoadConfig,
    addr: std::net::SocketAddr,
) -> anyhow::Result<LoadReport> {
    let clients = config.clients;
    let names: Vec<UserName> = (0..clients).map(|i| crate::name(&format!("c{i}"))).collect();
    let mut connecting = JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let cfg = ClientConfig::new(addr.to_string(), name.clone());
        connecting.spawn(async move { (i, connect(cfg).await) });
    }
    let mut chats: Vec<Option<Chat>> = (0..clients).map(|_| None).collect();
    while let Some(joined) = connecting.join_next().await {
        let (i, transport) = joined?;
        chats[i] = Some(Chat::new(transport.with_context(|| format!("client {i} could not connect"))?));
    }
    let mut rng = config.seed;
    let targets: Vec<Vec<u32>> = match scenario {
        Scenario::Fanout => Vec::new(),
        Scenario::Unicast => (0..clients)
            .map(|i| {
                (0..config.messages)
                    .map(|_| ((i as u64 + 1 + splitmix(&mut rng) % (clients as u64 - 1)) % clients as u64) as u32)
                    .collect()
            })
            .collect(),
    };
    let base = Instant::now();
    let shared = Arc::new(Shared {
        scenario,
        config: config.clone(),
        names,
        base,
        deadline: base + config.deadline,
        targets,
        progress: (0..clients).map(|_| AtomicU64::new(0)).collect(),
        sent: AtomicU64::new(0),
        done: Barrier::new(clients),
    });
    let mut running = JoinSet::new();
    for (i, chat) in chats.into_iter().enumerate() {
        let chat = chat.ok_or_else(|| anyhow!("client {i} missing"))?;
        let shared = shared.clone();
        running.spawn(async move { (i, client(i, chat, shared).await) });
    }
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut fingerprints = Vec::with_capacity(clients);
    let (mut deliveries, mut last_ns) = (0u64, 0u64);
    let mut first_error = None;
    while let Some(joined) = running.join_next().await {
        match joined? {
            (i, Ok(rx)) => {
                latency_us.add(&rx.latency_us)?;
                deliveries += rx.received;
                last_ns = last_ns.max(rx.last_at_ns);
                fingerprints.push((i, rx.fingerprint));
            }
            (_, Err(e)) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e.context(format!("{} run failed (seed {})", scenario.as_str(), config.seed)));
    }
    if scenario == Scenario::Fanout {
        let (first, reference) = fingerprints[0];
        for &(i, fp) in &fingerprints {
            ensure!(fp == reference, "client {i} saw another message order than client {first}");
        }
    }
    let senders = match scenario {
        Scenario::Fanout => FANOUT_SENDERS.min(clients),
        Scenario::Unicast => clients,
    };
    Ok(LoadReport {
        scenario,
        clients,
        messages: (senders * config.messages) as u64,
        deliveries,
        elapsed: Duration::from_nanos(last_ns),
        latency_us,
        log: config.log,
    })
}

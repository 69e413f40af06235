//! Load scenarios over the server topology, in one process: a [`TestServer`] on `127.0.0.1:0` and
//! hundreds of connections driven by [`chat_cli::loadgen`] (the generator of `chat-cli bench` and
//! `fanbench`: one implementation), all in the caller's runtime.
//!
//! | scenario              | traffic                                                            | a delivery is          |
//! |-----------------------|--------------------------------------------------------------------|------------------------|
//! | [`Scenario::Fanout`]  | [`FANOUT_SENDERS`] publishers broadcast `messages` each to `clients` subscribers, at most [`FANOUT_WINDOW`] ahead of the subscribers | a broadcast at a subscriber |
//! | [`Scenario::Unicast`] | `clients` publishers send `messages` unicasts each, each to a random subscriber other than their own index, one at a time (closed loop) | a unicast at its recipient |
//!
//! Bodies are [`BODY_SIZE`] bytes and carry the publisher's index and its send instant, so every
//! subscriber records the latency and checks (the generator's audit): every expected message
//! arrives exactly once, each publisher's messages in order, only messages meant for it, the
//! server's sequence numbers strictly increase, and (fan-out) every subscriber sees the same
//! sequence. A run with a violation, an error or a missing delivery is an error here.
//!
//! Everything is bounded: each connection by [`loadgen::OPEN_TIMEOUT`], the whole run by
//! [`LoadConfig::deadline`]; every connection closes and the server stops at the end, also on
//! failure.

use std::fmt;
use std::time::Duration;

use anyhow::{anyhow, ensure};
use chat_cli::loadgen::{self, ChatPubSub, Pace, Pattern, Violations};
use hdrhistogram::Histogram;
use tokio::time::timeout;

use crate::{Log, TestServer, env_usize};

/// Publishers that broadcast in the fan-out scenario.
pub const FANOUT_SENDERS: usize = 4;
/// How many broadcasts the fan-out publishers may be ahead of the subscribers (the generator's
/// shared window).
pub const FANOUT_WINDOW: u64 = 1024;
/// Bytes per body: room for the stamp and the publisher's index, so every check applies.
pub const BODY_SIZE: usize = 32;
/// Time the generator gets past [`LoadConfig::deadline`] to close its connections and report.
pub const WIND_DOWN: Duration = Duration::from_secs(10);
/// Default number of clients (`LOAD_CLIENTS`).
pub const DEFAULT_CLIENTS: usize = 200;
/// Default number of messages per sender (`LOAD_MESSAGES`).
pub const DEFAULT_MESSAGES: usize = 500;

/// What traffic to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A few publishers broadcast; every subscriber receives everything.
    Fanout,
    /// Every publisher sends unicasts to random subscribers, one at a time.
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
    /// Subscribers (at least 2); the unicast scenario has as many publishers.
    pub clients: usize,
    /// Messages each publisher sends.
    pub messages: usize,
    /// Whether the server keeps its journal.
    pub log: Log,
    /// Seed of the unicast recipients (printed in the error on failure).
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

    /// The generator's parameters for `scenario` against the server at `addr`.
    fn generator(&self, scenario: Scenario, addr: std::net::SocketAddr) -> loadgen::LoadConfig {
        let (publishers, pace, pattern) = match scenario {
            Scenario::Fanout => (FANOUT_SENDERS.min(self.clients), Pace::Window(FANOUT_WINDOW), Pattern::Fanout),
            Scenario::Unicast => (self.clients, Pace::Window(1), Pattern::Unicast { seed: self.seed }),
        };
        loadgen::LoadConfig {
            addr,
            subscribers: self.clients,
            publishers,
            messages: self.messages as u64,
            size: BODY_SIZE,
            pace,
            pattern,
            timeout: self.deadline,
            warmup: Duration::ZERO,
            tls: None,
        }
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct LoadReport {
    /// Which scenario ran.
    pub scenario: Scenario,
    /// Subscribers.
    pub clients: usize,
    /// Messages published in all.
    pub messages: u64,
    /// Messages received by their intended recipients in all.
    pub deliveries: u64,
    /// From the first publish to the last delivery.
    pub elapsed: Duration,
    /// Send-to-delivery latency of every delivery, in microseconds.
    pub latency_us: Histogram<u64>,
    /// What the subscribers found wrong (all zero, or [`run`] fails).
    pub violations: Violations,
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

/// Runs one scenario: starts the server, runs the generator against it, stops the server, and
/// reports; an error if the run is not complete (a delivery missing, a violation, an error).
pub async fn run(scenario: Scenario, config: &LoadConfig) -> anyhow::Result<LoadReport> {
    ensure!(config.clients >= 2, "a load run needs at least 2 clients");
    let server = TestServer::start(config.log).await?;
    let generator = config.generator(scenario, server.addr());
    let outcome = async {
        let pubsub = ChatPubSub::new("load", config.clients)?;
        timeout(config.deadline + WIND_DOWN, loadgen::run(pubsub, &generator, &mut |_| {}))
            .await
            .map_err(|_| anyhow!("the run exceeded its deadline of {:?}", config.deadline))?
            .map_err(anyhow::Error::from)
    }
    .await;
    let stopped = server.stop().await;
    let report = outcome?;
    stopped?;
    ensure!(
        report.complete(),
        "{} run failed (seed {}): {} of {} deliveries, {} subscriber(s) incomplete, {:?}, errors {:?}",
        scenario.as_str(),
        config.seed,
        report.deliveries,
        report.expected,
        report.incomplete_subscribers,
        report.violations,
        report.errors,
    );
    Ok(LoadReport {
        scenario,
        clients: config.clients,
        messages: report.published,
        deliveries: report.deliveries,
        elapsed: report.elapsed,
        latency_us: report.latency_us,
        violations: report.violations,
        log: config.log,
    })
}

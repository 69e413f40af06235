//! A load generator for pub/sub fan-out: C subscribers, P publishers, one histogram of latencies.
//!
//! It speaks the chat protocol through chat-transport's real codec ([`ChatWire`]): handshake,
//! `Login`, `Send` (broadcast or unicast), reading `Message`; publishers also consume their `Sent`
//! replies and echoes. Other protocols plug in through the [`Wire`] trait (the `fanbench` binary of
//! the `tests` package adds Redis and NATS), so the client-side cost is the same for every target.
//!
//! ```text
//!  publisher p ── publish(body) ──► server ── body ──► subscriber s    latency = now − stamp(body)
//!      ▲    └─ reads acks / echoes                         │
//!      └──── Window: published − delivered / C < W ◄──────┘ (Rate: R per second per publisher)
//! ```
//!
//! | pattern               | a publisher sends                          | flow control (`Pace::Window(W)`)         |
//! |-----------------------|--------------------------------------------|------------------------------------------|
//! | [`Pattern::Fanout`]   | to everyone                                | all publishers together: W messages not yet delivered to every subscriber |
//! | [`Pattern::Unicast`]  | to subscriber `j ≠ p` (seeded, random)     | each publisher: W messages not yet delivered |
//!
//! **Bodies** are `size` bytes of ASCII: 16 lower-case hex digits of the send time (nanoseconds
//! since the run's origin), then 8 hex digits of the publisher index (if `size >= 24`), then `x`.
//!
//! **Bounds**: every connection is opened within [`OPEN_TIMEOUT`], every read and wait gives up at
//! the run's deadline (`timeout`), every loop is bounded by its message count. A run counts only if
//! [`LoadReport::incomplete_subscribers`] is 0.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use chat_core::{NodeId, Recipients, Timestamp, UserName};
use chat_transport::codec::LEN_PREFIX;
use chat_transport::{FrameCodec, MAX_FRAME_LEN, Role, decode_payload_borrowed, encode_frame, handshake};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, timeout};
use tokio_util::codec::Decoder;

use chat_server::protocol::{ClientFrame, ServerFrame};

mod views;
use views::ServerFrameView;

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
const READ_CHUNK: usize = 64 * 1024;
/// Longest nap of a publisher waiting for its window (it is woken earlier by deliveries).
const WINDOW_NAP: Duration = Duration::from_millis(20);
/// How often [`run`] reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Largest latency recorded, in microseconds (60 s); larger ones are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;

/// What a connection is for, with its index (names, channels and subjects derive from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// Receives messages (subscriber `i`: the chat user `{prefix}s{i}`, Redis channel / NATS subject).
    Subscriber(usize),
    /// Publishes messages (publisher `i`).
    Publisher(usize),
}

/// Where one published message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// Every subscriber (a chat broadcast, the shared Redis channel / NATS subject).
    Everyone,
    /// Subscriber `j` only.
    Subscriber(usize),
}

/// One complete frame read from a connection, as the generator needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// A published message, with the stamp parsed from its body.
    Message(Stamp),
    /// The server acknowledged one publish (chat: `Sent`; Redis: the receiver count).
    Ack,
    /// Anything that needs no bookkeeping (notices, pongs, confirmations).
    Other,
}

/// The send time and publisher carried at the start of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Nanoseconds since the run's origin when the message was encoded.
    pub sent_ns: u64,
    /// The publisher's index, if the body was long enough to carry it.
    pub sender: Option<usize>,
}

impl Stamp {
    /// Parses the stamp at the start of `body`; `None` if it does not start with 16 hex digits.
    pub fn parse(body: &[u8]) -> Option<Stamp> {
        let sent_ns = parse_hex(body.get(..STAMP_LEN)?)?;
        let sender = body.get(STAMP_LEN..STAMP_LEN + SENDER_LEN).and_then(parse_hex).map(|s| s as usize);
        Some(Stamp { sent_ns, sender })
    }
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &c| Some(acc << 4 | (c as char).to_digit(16)? as u64))
}

/// Appends a body of `size` bytes (at least [`STAMP_LEN`]) carrying `sent_ns` and `sender`.
pub fn write_body(out: &mut Vec<u8>, size: usize, sent_ns: u64, sender: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let start = out.len();
    for shift in (0..STAMP_LEN).rev() {
        out.push(HEX[(sent_ns >> (shift * 4)) as usize & 0xf]);
    }
    if size >= STAMP_LEN + SENDER_LEN {
        for shift in (0..SENDER_LEN).rev() {
            out.push(HEX[(sender >> (shift * 4)) & 0xf]);
        }
    }
    out.resize(start + size.max(STAMP_LEN), b'x');
}

/// A wire protocol the generator speaks. One value per connection, cloned from a template before
/// the connection opens (and once more after, for a publisher's reader), so it may keep state.
pub trait Wire: Clone + Send + Sync + 'static {
    /// Opens the connection as `party`: handshake, login or subscribe, then waits until the server
    /// confirmed. Returns the bytes read past the confirmation.
    fn open(&mut self, stream: &mut TcpStream, party: Party) -> impl Future<Output = io::Result<BytesMut>> + Send;

    /// Decodes the frame at the start of `buf`, removing it; `Ok(None)` if more bytes are needed.
    /// Anything the protocol requires as an answer (a pong) is appended to `replies`. A frame that
    /// ends the run for this connection (an error, a refusal, a close) is an `Err`.
    fn decode(&mut self, buf: &mut BytesMut, replies: &mut BytesMut) -> io::Result<Option<Incoming>>;

    /// Appends one publish of `body` (ASCII) to `dest`.
    fn encode_publish(&mut self, dest: Dest, body: &[u8], out: &mut BytesMut) -> io::Result<()>;

    /// Whether every publish is answered by one [`Incoming::Ack`].
    fn acks_publishes(&self) -> bool;

    /// How often a client must speak to stay connected, and what it says then; `None` if never.
    fn keepalive(&mut self, out: &mut BytesMut) -> Option<Duration>;
}

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
}

/// Parameters of one run of [`hold_idle`].
#[derive(Debug, Clone)]
pub struct IdleConfig {
    /// The server (loopback).
    pub addr: SocketAddr,
    /// Number of connections to open and hold.
    pub clients: usize,
    /// Bound on the whole run.
    pub timeout: Duration,
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
pub struct Progress {
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

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

/// The outcome of [`run`].
#[derive(Debug)]
pub struct LoadReport {
    /// Messages published in all.
    pub published: u64,
    /// Publishes acknowledged by the server (0 for protocols without acknowledgements).
    pub acked: u64,
    /// Deliveries to subscribers.
    pub deliveries: u64,
    /// Deliveries expected (every subscriber gets every message meant for it).
    pub expected: u64,
    /// From the first publish to the last delivery.
    pub elapsed: Duration,
    /// Time to open every connection.
    pub setup: Duration,
    /// Send-to-delivery latency of every delivery after the warm-up, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Subscribers that did not receive everything (the run does not count unless 0).
    pub incomplete_subscribers: usize,
    /// Distinct errors, with how many connections hit each.
    pub errors: Vec<(String, usize)>,
}

impl LoadReport {
    /// Deliveries per second over [`LoadReport::elapsed`].
    pub fn deliveries_per_second(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Publishes per second over [`LoadReport::elapsed`].
    pub fn published_per_second(&self) -> f64 {
        self.published as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency percentiles.
    pub fn percentiles(&self) -> Percentiles {
        percentiles(&self.latency_us)
    }

    /// Whether the run counts: every subscriber received everything and nothing failed.
    pub fn complete(&self) -> bool {
        self.incomplete_subscribers == 0 && self.deliveries == self.expected && self.errors.is_empty()
    }
}

/// The percentiles of a histogram in microseconds.
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    Percentiles {
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// The outcome of [`hold_idle`].
#[derive(Debug, Clone)]
pub struct IdleReport {
    /// Connections opened and confirmed.
    pub joined: usize,
    /// Time from the first connect to the last confirmation.
    pub join_time: Duration,
    /// Connections that failed to open, or were lost while held.
    pub failed: usize,
    /// Distinct errors, with how many connections hit each.
    pub errors: Vec<(String, usize)>,
}

/// State shared by the tasks of one run.
struct Shared {
    origin: Instant,
    deadline: Instant,
    subscribers: u64,
    ready: AtomicUsize,
    failed: AtomicUsize,
    published: AtomicU64,
    delivered: AtomicU64,
    /// Unicast: deliveries of each publisher's messages.
    delivered_from: Vec<AtomicU64>,
    /// One per publisher: woken when deliveries advance.
    wake: Vec<Notify>,
    first_publish_ns: AtomicU64,
    /// Messages sent before this instant (ns since the origin) are not recorded in the histogram.
    record_from_ns: AtomicU64,
    last_delivery_ns: AtomicU64,
    /// Subscriber tasks that ended (complete or failed).
    subscribers_ended: AtomicUsize,
    /// Publishers that failed after opening.
    publisher_errors: AtomicUsize,
    stop: watch::Sender<bool>,
    go: AtomicBool,
}

impl Shared {
    fn new(subscribers: usize, publishers: usize, deadline: Duration) -> Arc<Shared> {
        let origin = Instant::now();
        Arc::new(Shared {
            origin,
            deadline: origin + deadline,
            subscribers: subscribers.max(1) as u64,
            ready: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            delivered_from: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            wake: (0..publishers).map(|_| Notify::new()).collect(),
            first_publish_ns: AtomicU64::new(u64::MAX),
            record_from_ns: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            subscribers_ended: AtomicUsize::new(0),
            publisher_errors: AtomicUsize::new(0),
            stop: watch::channel(false).0,
            go: AtomicBool::new(false),
        })
    }

    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn expired(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "run deadline")
    }
}

/// What one subscriber saw.
struct SubOutcome {
    got: u64,
    expected: u64,
    latency_us: Histogram<u64>,
    error: Option<String>,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Connects to `addr` and opens the connection as `party`, within [`OPEN_TIMEOUT`].
async fn open<W: Wire>(wire: &mut W, addr: SocketAddr, party: Party) -> io::Result<(TcpStream, BytesMut)> {
    let opening = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let buf = wire.open(&mut stream, party).await?;
        Ok::<_, io::Error>((stream, buf))
    };
    timeout(OPEN_TIMEOUT, opening).await.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "open timed out"))?
}

/// Reads more bytes into `buf`, growing it in steps of at most 64 KiB; fails at `deadline` or on EOF.
///
/// Cancel-safe: bytes read stay in `buf`.
pub async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut, deadline: Instant) -> io::Result<()> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(buf.capacity().clamp(4096, READ_CHUNK));
    }
    match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
        Ok(Ok(0)) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
    }
}

/// One subscriber: open, then count every message until it has `expected` (or, with `hold`, until
/// the run stops), answering pings and sending keep-alives.
async fn subscriber<W: Wire>(
    mut wire: W,
    addr: SocketAddr,
    index: usize,
    expected: u64,
    hold: bool,
    sh: Arc<Shared>,
) -> SubOutcome {
    let mut latency_us = new_histogram();
    let mut got = 0u64;
    let mut stop = sh.stop.subscribe();
    let result: io::Result<()> = async {
        let (mut stream, mut buf) = match open(&mut wire, addr, Party::Subscriber(index)).await {
            Ok(x) => x,
            Err(e) => {
                sh.failed.fetch_add(1, Ordering::AcqRel);
                return Err(e);
            }
        };
        sh.ready.fetch_add(1, Ordering::AcqRel);
        let mut out = BytesMut::new();
        let keepalive = wire.keepalive(&mut BytesMut::new());
        let mut next_keepalive = keepalive.map(|every| Instant::now() + every);
        let mut finished = false;
        loop {
            let now = sh.now_ns();
            let record_from = sh.record_from_ns.load(Ordering::Relaxed);
            let mut batch = 0u64;
            while let Some(incoming) = wire.decode(&mut buf, &mut out)? {
                if let Incoming::Message(stamp) = incoming {
                    if stamp.sent_ns >= record_from {
                        let us = (now.saturating_sub(stamp.sent_ns) / 1000).clamp(1, MAX_LATENCY_US);
                        latency_us.saturating_record(us);
                    }
                    batch += 1;
                    if let Some(from) = stamp.sender.and_then(|s| sh.delivered_from.get(s)) {
                        from.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
            if batch > 0 {
                got += batch;
                sh.delivered.fetch_add(batch, Ordering::AcqRel);
                sh.last_delivery_ns.fetch_max(now, Ordering::AcqRel);
                for wake in &sh.wake {
                    wake.notify_one();
                }
            }
            if got >= expected && !finished {
                finished = true;
                if !hold {
                    return Ok(());
                }
            }
            if let (Some(every), Some(at)) = (keepalive, next_keepalive)
                && Instant::now() >= at
            {
                wire.keepalive(&mut out);
                next_keepalive = Some(Instant::now() + every);
            }
            if !out.is_empty() {
                stream.write_all(&out).await?;
                out.clear();
            }
            let wake_at = next_keepalive.map_or(sh.deadline, |at| at.min(sh.deadline));
            tokio::select! {
                biased;
                _ = stop.changed() => return if finished { Ok(()) } else { Err(io::Error::other("stopped early")) },
                read = read_more(&mut stream, &mut buf, wake_at) => match read {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut && Instant::now() < sh.deadline => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(sh.expired()),
                    Err(e) => return Err(e),
                },
            }
        }
    }
    .await;
    sh.subscribers_ended.fetch_add(1, Ordering::AcqRel);
    SubOutcome { got, expected, latency_us, error: result.err().map(|e| e.to_string()) }
}

/// splitmix64: the unicast recipients.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The recipients of each unicast publisher's messages: `targets[p][k]` for message `k` of `p`.
fn unicast_targets(publishers: usize, messages: u64, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = seed;
    let n = publishers as u64;
    (0..n)
        .map(|p| (0..messages).map(|_| ((p + 1 + splitmix(&mut rng) % (n - 1).max(1)) % n) as u32).collect())
        .collect()
}

/// What one publisher did.
struct PubOutcome {
    published: u64,
    acked: u64,
    error: Option<String>,
}

/// One publisher: open, then publish its messages as the pace allows while a reader task consumes
/// acknowledgements, echoes and notices.
async fn publisher<W: Wire>(
    mut wire: W,
    config: LoadConfig,
    index: usize,
    targets: Option<Vec<u32>>,
    sh: Arc<Shared>,
) -> PubOutcome {
    let (stream, mut buf) = match open(&mut wire, config.addr, Party::Publisher(index)).await {
        Ok(x) => x,
        Err(e) => {
            sh.failed.fetch_add(1, Ordering::AcqRel);
            return PubOutcome { published: 0, acked: 0, error: Some(e.to_string()) };
        }
    };
    sh.ready.fetch_add(1, Ordering::AcqRel);
    let (mut read, mut write) = stream.into_split();
    let acked = Arc::new(AtomicU64::new(0));
    let mut reader_wire = wire.clone();
    let reader_acked = acked.clone();
    let reader_sh = sh.clone();
    let want_acks = wire.acks_publishes().then_some(config.messages);
    let reader = tokio::spawn(async move {
        let mut stop = reader_sh.stop.subscribe();
        let mut ignored = BytesMut::new();
        loop {
            let mut acks = 0;
            while let Some(incoming) = reader_wire.decode(&mut buf, &mut ignored)? {
                acks += u64::from(incoming == Incoming::Ack);
            }
            ignored.clear();
            let total = reader_acked.fetch_add(acks, Ordering::AcqRel) + acks;
            if want_acks.is_some_and(|want| total >= want) {
                return Ok(());
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                _ = stop.changed() => return Ok(()),
                n = tokio::time::timeout_at(reader_sh.deadline, read.read_buf(&mut buf)) => match n {
                    Ok(Ok(0)) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(reader_sh.expired()),
                },
            }
        }
    });
    let mut out = BytesMut::with_capacity(MAX_WRITE + 1024);
    let mut body = Vec::with_capacity(config.size);
    let mut sent = 0u64;
    let keepalive = wire.keepalive(&mut BytesMut::new());
    let mut last_write = Instant::now();
    let start = Instant::now();
    let result: io::Result<()> = async {
        while !sh.go.load(Ordering::Acquire) {
            if Instant::now() >= sh.deadline {
                return Err(sh.expired());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sh.first_publish_ns.fetch_min(sh.now_ns(), Ordering::AcqRel);
        while sent < config.messages {
            if Instant::now() >= sh.deadline {
                return Err(sh.expired());
            }
            let mut allowed = config.messages - sent;
            match config.pace {
                Pace::Rate(rate) => {
                    let due = (start.elapsed().as_secs_f64() * rate as f64) as u64 + 1;
                    if due <= sent {
                        let next = start + Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
                        tokio::time::sleep_until(next.min(sh.deadline)).await;
                        continue;
                    }
                    allowed = allowed.min(due - sent);
                }
                Pace::Window(window) => {
                    let in_flight = match config.pattern {
                        Pattern::Fanout => sh
                            .published
                            .load(Ordering::Acquire)
                            .saturating_sub(sh.delivered.load(Ordering::Acquire) / sh.subscribers),
                        Pattern::Unicast { .. } => {
                            sent.saturating_sub(sh.delivered_from[index].load(Ordering::Acquire))
                        }
                    };
                    if in_flight >= window {
                        let _ = timeout(WINDOW_NAP, sh.wake[index].notified()).await;
                        if let Some(every) = keepalive
                            && last_write.elapsed() >= every
                        {
                            wire.keepalive(&mut out);
                            write.write_all(&out).await?;
                            out.clear();
                            last_write = Instant::now();
                        }
                        continue;
                    }
                    allowed = allowed.min(window - in_flight);
                }
            }
            while allowed > 0 && out.len() < MAX_WRITE {
                body.clear();
                write_body(&mut body, config.size, sh.now_ns(), index);
                let dest = match &targets {
                    Some(t) => Dest::Subscriber(t[sent as usize] as usize),
                    None => Dest::Everyone,
                };
                wire.encode_publish(dest, &body, &mut out)?;
                sh.published.fetch_add(1, Ordering::AcqRel);
                sent += 1;
                allowed -= 1;
            }
            write.write_all(&out).await?;
            out.clear();
            last_write = Instant::now();
        }
        Ok(())
    }
    .await;
    // Publishers whose protocol acknowledges wait for every acknowledgement; the others' readers
    // are stopped with the run.
    let read_result = if want_acks.is_some() && result.is_ok() {
        match tokio::time::timeout_at(sh.deadline, reader).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(io::Error::other(join.to_string())),
            Err(_) => Err(sh.expired()),
        }
    } else {
        let mut stop = sh.stop.subscribe();
        let _ = tokio::time::timeout_at(sh.deadline, stop.wait_for(|stopped| *stopped)).await;
        reader.abort();
        Ok(())
    };
    let error = result.err().or(read_result.err()).map(|e| e.to_string());
    if error.is_some() {
        sh.publisher_errors.fetch_add(1, Ordering::AcqRel);
    }
    PubOutcome { published: sent, acked: acked.load(Ordering::Acquire), error }
}

/// Spawns `count` subscribers in batches of [`CONNECT_BATCH`], each batch waiting for the last.
async fn spawn_subscribers<W: Wire>(
    template: &W,
    addr: SocketAddr,
    expected: &[u64],
    hold: bool,
    sh: &Arc<Shared>,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Vec<tokio::task::JoinHandle<SubOutcome>> {
    let mut tasks = Vec::with_capacity(expected.len());
    for (i, &want) in expected.iter().enumerate() {
        tasks.push(tokio::spawn(subscriber(template.clone(), addr, i, want, hold, sh.clone())));
        if (i + 1) % CONNECT_BATCH == 0 || i + 1 == expected.len() {
            let until = (Instant::now() + OPEN_TIMEOUT).min(sh.deadline);
            while sh.ready.load(Ordering::Acquire) + sh.failed.load(Ordering::Acquire) < i + 1 && Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            progress(&snapshot(sh, Phase::Connecting, 0));
        }
    }
    tasks
}

fn snapshot(sh: &Shared, phase: Phase, expected: u64) -> Progress {
    Progress {
        phase,
        connected: sh.ready.load(Ordering::Acquire),
        failed: sh.failed.load(Ordering::Acquire),
        published: sh.published.load(Ordering::Acquire),
        delivered: sh.delivered.load(Ordering::Acquire),
        expected,
        elapsed: sh.origin.elapsed(),
    }
}

fn count_error(errors: &mut Vec<(String, usize)>, error: String) {
    match errors.iter_mut().find(|(e, _)| *e == error) {
        Some((_, n)) => *n += 1,
        None => errors.push((error, 1)),
    }
}

/// Runs one load: connects the subscribers, then the publishers, publishes, waits until every
/// subscriber has everything (or the deadline), and reports. `progress` is called every 100 ms and
/// once at [`Phase::Publishing`] and [`Phase::Done`] (sample server counters there).
pub async fn run<W: Wire>(
    wire: W,
    config: &LoadConfig,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> io::Result<LoadReport> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    if config.size < STAMP_LEN {
        return Err(bad("size must be at least 16 bytes"));
    }
    if config.subscribers == 0 || config.publishers == 0 {
        return Err(bad("need at least one subscriber and one publisher"));
    }
    let targets = match config.pattern {
        Pattern::Fanout => None,
        Pattern::Unicast { seed } => {
            if config.size < STAMP_LEN + SENDER_LEN || config.publishers != config.subscribers || config.publishers < 2
            {
                return Err(bad("unicast needs size >= 24 and as many publishers as subscribers (at least 2)"));
            }
            Some(unicast_targets(config.publishers, config.messages, seed))
        }
    };
    let expected_each: Vec<u64> = match &targets {
        None => vec![config.messages * config.publishers as u64; config.subscribers],
        Some(t) => {
            let mut each = vec![0u64; config.subscribers];
            for &j in t.iter().flatten() {
                each[j as usize] += 1;
            }
            each
        }
    };
    let expected: u64 = expected_each.iter().sum();
    let sh = Shared::new(config.subscribers, config.publishers, config.timeout);
    let subs = spawn_subscribers(&wire, config.addr, &expected_each, false, &sh, progress).await;
    let mut pubs = Vec::with_capacity(config.publishers);
    for p in 0..config.publishers {
        let t = targets.as_ref().map(|t| t[p].clone());
        pubs.push(tokio::spawn(publisher(wire.clone(), config.clone(), p, t, sh.clone())));
    }
    let all = config.subscribers + config.publishers;
    while sh.ready.load(Ordering::Acquire) + sh.failed.load(Ordering::Acquire) < all && Instant::now() < sh.deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let setup = sh.origin.elapsed();
    // Let the server finish the logins' side effects (join notices) before the clock starts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    progress(&snapshot(&sh, Phase::Publishing, expected));
    sh.record_from_ns.store(sh.now_ns() + config.warmup.as_nanos() as u64, Ordering::Release);
    sh.go.store(true, Ordering::Release);
    let mut next_report = Instant::now() + PROGRESS_EVERY;
    while sh.subscribers_ended.load(Ordering::Acquire) < config.subscribers
        && sh.publisher_errors.load(Ordering::Acquire) == 0
        && sh.failed.load(Ordering::Acquire) == 0
        && Instant::now() < sh.deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if Instant::now() >= next_report {
            progress(&snapshot(&sh, Phase::Publishing, expected));
            next_report += PROGRESS_EVERY;
        }
    }
    progress(&snapshot(&sh, Phase::Done, expected));
    let mut latency_us = new_histogram();
    let (mut deliveries, mut incomplete, mut errors) = (0u64, 0usize, Vec::new());
    for task in subs {
        let outcome = match tokio::time::timeout_at(sh.deadline + Duration::from_secs(1), task).await {
            Ok(Ok(o)) => o,
            Ok(Err(join)) => {
                SubOutcome { got: 0, expected: 1, latency_us: new_histogram(), error: Some(join.to_string()) }
            }
            Err(_) => SubOutcome { got: 0, expected: 1, latency_us: new_histogram(), error: Some("hung".into()) },
        };
        deliveries += outcome.got;
        latency_us.add(&outcome.latency_us).map_err(|e| io::Error::other(e.to_string()))?;
        if outcome.got < outcome.expected {
            incomplete += 1;
        }
        if let Some(e) = outcome.error {
            count_error(&mut errors, format!("subscriber: {e}"));
        }
    }
    let _ = sh.stop.send(true);
    let (mut published, mut acked) = (0u64, 0u64);
    for task in pubs {
        match tokio::time::timeout_at(sh.deadline + Duration::from_secs(2), task).await {
            Ok(Ok(o)) => {
                published += o.published;
                acked += o.acked;
                if let Some(e) = o.error {
                    count_error(&mut errors, format!("publisher: {e}"));
                }
            }
            Ok(Err(join)) => count_error(&mut errors, format!("publisher: {join}")),
            Err(_) => count_error(&mut errors, "publisher: hung".into()),
        }
    }
    let first = sh.first_publish_ns.load(Ordering::Acquire);
    let last = sh.last_delivery_ns.load(Ordering::Acquire);
    Ok(LoadReport {
        published,
        acked,
        deliveries,
        expected,
        elapsed: Duration::from_nanos(last.saturating_sub(first.min(last))),
        setup,
        latency_us,
        incomplete_subscribers: incomplete,
        errors,
    })
}

/// Opens `clients` subscriber connections that publish nothing (in batches of [`CONNECT_BATCH`]),
/// then calls `held` with the join report while keeping every connection alive (reading, answering
/// pings, sending keep-alives); closes them all when `held`'s future completes. Returns the final
/// report (`failed` includes connections lost while held) and `held`'s result.
pub async fn hold_idle<W, F, Fut, T>(wire: W, config: &IdleConfig, held: F) -> io::Result<(IdleReport, T)>
where
    W: Wire,
    F: FnOnce(IdleReport) -> Fut,
    Fut: Future<Output = T>,
{
    let sh = Shared::new(config.clients, 0, config.timeout);
    let expected = vec![0u64; config.clients];
    let tasks = spawn_subscribers(&wire, config.addr, &expected, true, &sh, &mut |_| {}).await;
    let joined_at = sh.origin.elapsed();
    let joined = IdleReport {
        joined: sh.ready.load(Ordering::Acquire),
        join_time: joined_at,
        failed: sh.failed.load(Ordering::Acquire),
        errors: Vec::new(),
    };
    let value = tokio::time::timeout_at(sh.deadline, held(joined.clone()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the idle run exceeded its deadline"))?;
    let _ = sh.stop.send(true);
    let mut report = joined;
    report.failed = 0;
    for task in tasks {
        let error = match tokio::time::timeout_at(sh.deadline + Duration::from_secs(2), task).await {
            Ok(Ok(o)) => o.error,
            Ok(Err(join)) => Some(join.to_string()),
            Err(_) => Some("hung".into()),
        };
        if let Some(e) = error {
            report.failed += 1;
            count_error(&mut report.errors, e);
        }
    }
    Ok((report, value))
}

/// The chat protocol, through chat-transport's codec: subscriber `i` logs in as `{prefix}s{i}`,
/// publisher `i` as `{prefix}p{i}`; publishes are `Send` frames (broadcast, or unicast to a
/// subscriber's name), acknowledged by `Sent`; keep-alives are `Ping` at the server's heartbeat.
#[derive(Debug, Clone)]
pub struct ChatWire {
    prefix: String,
    decoder: FrameDecoder,
    next_req: u64,
    heartbeat: Duration,
    names: Arc<Vec<UserName>>,
}

/// A decoder of server frames: each connection (and each clone) has its own length state.
#[derive(Debug)]
struct FrameDecoder(FrameCodec<ServerFrame, ()>);

impl Clone for FrameDecoder {
    /// A fresh decoder: clones are made between frames, where the length state is empty.
    fn clone(&self) -> Self {
        FrameDecoder(FrameCodec::new())
    }
}

impl ChatWire {
    /// A wire whose user names start with `prefix` (keep names of concurrent runs apart), for runs
    /// with up to `subscribers` subscribers.
    pub fn new(prefix: &str, subscribers: usize) -> io::Result<Self> {
        let names = (0..subscribers).map(|i| user(prefix, 's', i)).collect::<io::Result<Vec<_>>>()?;
        Ok(ChatWire {
            prefix: prefix.to_string(),
            decoder: FrameDecoder(FrameCodec::new()),
            next_req: 1,
            heartbeat: chat_server::server::DEFAULT_HEARTBEAT,
            names: Arc::new(names),
        })
    }

    fn decoder(&mut self) -> &mut FrameCodec<ServerFrame, ()> {
        &mut self.decoder.0
    }
}

fn user(prefix: &str, kind: char, i: usize) -> io::Result<UserName> {
    let mut s = String::with_capacity(prefix.len() + 8);
    let _ = write!(s, "{prefix}{kind}{i}");
    UserName::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

fn chat_error(e: chat_transport::TransportError) -> io::Error {
    match e {
        chat_transport::TransportError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

impl Wire for ChatWire {
    async fn open(&mut self, stream: &mut TcpStream, party: Party) -> io::Result<BytesMut> {
        let name = match party {
            Party::Subscriber(i) => user(&self.prefix, 's', i)?,
            Party::Publisher(i) => user(&self.prefix, 'p', i)?,
        };
        handshake(stream, Role::Client).await.map_err(chat_error)?;
        let login = encode_frame(&ClientFrame::Login { name }).map_err(chat_error)?;
        stream.write_all(&login).await?;
        let mut buf = BytesMut::with_capacity(4096);
        let deadline = Instant::now() + OPEN_TIMEOUT;
        loop {
            while let Some(frame) = self.decoder().decode(&mut buf).map_err(chat_error)? {
                match frame {
                    ServerFrame::Welcome { heartbeat_ms, .. } => {
                        self.heartbeat = Duration::from_millis(heartbeat_ms.max(10));
                        return Ok(buf);
                    }
                    ServerFrame::Refused { code, message } => {
                        return Err(io::Error::other(format!("login refused: {code} {message}")));
                    }
                    _ => {}
                }
            }
            read_more(stream, &mut buf, deadline).await?;
        }
    }

    fn decode(&mut self, buf: &mut BytesMut, replies: &mut BytesMut) -> io::Result<Option<Incoming>> {
        // The frame layout of `chat_transport::codec` (4-byte big-endian length, then the payload),
        // split here without `FrameCodec`'s per-frame copy of the prefix; the payload goes through
        // the codec's own `decode_payload` (same bincode configuration and limits).
        let Some(head) = buf.first_chunk::<LEN_PREFIX>() else { return Ok(None) };
        let len = u32::from_be_bytes(*head) as usize;
        if len > MAX_FRAME_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
        }
        if buf.len() < LEN_PREFIX + len {
            buf.reserve(LEN_PREFIX + len - buf.len());
            return Ok(None);
        }
        // A borrowed view: no allocation per name or body (the Redis and NATS wires do not allocate either).
        let incoming = match decode_payload_borrowed::<ServerFrameView<'_>>(&buf[LEN_PREFIX..LEN_PREFIX + len])
            .map_err(chat_error)?
        {
            ServerFrameView::Message(m) => match Stamp::parse(m.body.as_bytes()) {
                Some(stamp) => Incoming::Message(stamp),
                None => return Err(io::Error::new(io::ErrorKind::InvalidData, "a message without a stamp")),
            },
            ServerFrameView::Sent { .. } => Incoming::Ack,
            ServerFrameView::Ping => {
                chat_transport::codec::encode_frame_into(&ClientFrame::Pong, replies).map_err(chat_error)?;
                Incoming::Other
            }
            ServerFrameView::Rejected { code, message, .. } => {
                return Err(io::Error::other(format!("send rejected: {code} {message}")));
            }
            ServerFrameView::Closing { code, reason } => {
                return Err(io::Error::other(format!("closed: {code} {reason}")));
            }
            _ => Incoming::Other,
        };
        buf.advance(LEN_PREFIX + len);
        Ok(Some(incoming))
    }

    fn encode_publish(&mut self, dest: Dest, body: &[u8], out: &mut BytesMut) -> io::Result<()> {
        let recipients = match dest {
            Dest::Everyone => Recipients::Broadcast,
            Dest::Subscriber(j) => Recipients::Unicast(
                self.names.get(j).cloned().ok_or_else(|| io::Error::other(format!("no subscriber {j}")))?,
            ),
        };
        let body = String::from_utf8(body.to_vec()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let req = self.next_req;
        self.next_req += 1;
        let frame = ClientFrame::Send { req, recipients, body, sent_at: Timestamp::new(req, NodeId(req)) };
        chat_transport::codec::encode_frame_into(&frame, out).map_err(chat_error)
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn keepalive(&mut self, out: &mut BytesMut) -> Option<Duration> {
        let _ = chat_transport::codec::encode_frame_into(&ClientFrame::Ping, out);
        Some(self.heartbeat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_their_stamp_and_sender() {
        let mut body = Vec::new();
        write_body(&mut body, 32, 0x0123_4567_89ab_cdef, 42);
        assert_eq!(body.len(), 32);
        assert_eq!(&body[..24], b"0123456789abcdef0000002a");
        assert!(body[24..].iter().all(|&c| c == b'x'));
        assert_eq!(Stamp::parse(&body), Some(Stamp { sent_ns: 0x0123_4567_89ab_cdef, sender: Some(42) }));
        body.clear();
        write_body(&mut body, 16, 7, 3);
        assert_eq!(Stamp::parse(&body), Some(Stamp { sent_ns: 7, sender: None }));
        assert_eq!(Stamp::parse(b"not a stamp at all"), None);
    }

    #[test]
    fn unicast_targets_are_never_the_sender() {
        let t = unicast_targets(5, 200, 9);
        for (p, row) in t.iter().enumerate() {
            assert_eq!(row.len(), 200);
            assert!(row.iter().all(|&j| j as usize != p && (j as usize) < 5));
        }
    }
}

//! The state the tasks of one run share (counters, the clock origin, the deadline, the stop
//! signal), and opening one connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, timeout};

use super::protocol::{Party, PubSub};
use super::tls::{Conn, LoadTls, connect};
use super::{OPEN_TIMEOUT, Phase, RunProgress};

/// State shared by the tasks of one run.
pub(super) struct Shared {
    /// The clock origin: stamps and `*_ns` counters are nanoseconds since it.
    pub(super) origin: Instant,
    /// When the whole run must be over.
    pub(super) deadline: Instant,
    /// Number of subscribers (at least 1: a divisor).
    pub(super) subscribers: u64,
    /// Connections opened and confirmed.
    pub(super) ready: AtomicUsize,
    /// Connections that failed to open.
    pub(super) failed: AtomicUsize,
    /// Messages published, by all publishers.
    pub(super) published: AtomicU64,
    /// Deliveries counted by all subscribers.
    pub(super) delivered: AtomicU64,
    /// Unicast: deliveries of each publisher's messages.
    pub(super) delivered_from: Vec<AtomicU64>,
    /// One per publisher: woken when deliveries advance.
    pub(super) wake: Vec<Notify>,
    /// When the first publisher started publishing (ns since the origin).
    pub(super) first_publish_ns: AtomicU64,
    /// Messages sent before this instant (ns since the origin) are not recorded in the histogram.
    pub(super) record_from_ns: AtomicU64,
    /// The latest delivery (ns since the origin).
    pub(super) last_delivery_ns: AtomicU64,
    /// Subscriber tasks that ended (complete or failed).
    pub(super) subscribers_ended: AtomicUsize,
    /// Publishers that failed after opening.
    pub(super) publisher_errors: AtomicUsize,
    /// Set to `true` when the run ends: every task still running stops.
    pub(super) stop: watch::Sender<bool>,
    /// Set when publishing may start (every connection is open).
    pub(super) go: AtomicBool,
    /// TLS for every connection of the run (`None`: plaintext).
    pub(super) tls: Option<LoadTls>,
}

impl Shared {
    /// The state of a run with these many subscribers and publishers, ending `deadline` from now,
    /// its connections with `tls` or not.
    pub(super) fn new(subscribers: usize, publishers: usize, deadline: Duration, tls: Option<LoadTls>) -> Arc<Shared> {
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
            tls,
        })
    }

    /// Nanoseconds since the origin.
    pub(super) fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// The error of a task that reached the deadline.
    pub(super) fn expired(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "run deadline")
    }
}

/// Connects to `addr` (with TLS if `tls`) and opens the connection as `party`, within [`OPEN_TIMEOUT`].
pub(super) async fn open<W: PubSub>(
    pubsub: &mut W,
    addr: SocketAddr,
    tls: Option<&LoadTls>,
    party: Party,
) -> io::Result<(Conn, BytesMut)> {
    let opening = async {
        let mut stream = connect(addr, tls).await?;
        let buf = pubsub.open(&mut stream, party).await?;
        Ok::<_, io::Error>((stream, buf))
    };
    timeout(OPEN_TIMEOUT, opening).await.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "open timed out"))?
}

/// The progress report of this instant.
pub(super) fn snapshot(sh: &Shared, phase: Phase, expected: u64) -> RunProgress {
    RunProgress {
        phase,
        connected: sh.ready.load(Ordering::Acquire),
        failed: sh.failed.load(Ordering::Acquire),
        published: sh.published.load(Ordering::Acquire),
        delivered: sh.delivered.load(Ordering::Acquire),
        expected,
        elapsed: sh.origin.elapsed(),
    }
}

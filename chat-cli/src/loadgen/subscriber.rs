//! One subscriber task: opens its connection, then checks ([`Audit`]), counts and times every
//! message until it has all it expects (or, when held idle, until the run stops), answering pings and sending
//! keep-alives; and the batched start of many of them.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use chat_server::tls::MaybeTls;
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::audit::{Audit, Violations};
use super::protocol::{Incoming, Party, PubSub, read_more};
use super::report::new_histogram;
use super::shared::{Shared, open, snapshot};
use super::{CONNECT_BATCH, MAX_LATENCY_US, OPEN_TIMEOUT, Phase, RunProgress};

/// What one subscriber saw.
pub(super) struct SubOutcome {
    /// Messages received (duplicates and messages not meant for it excluded).
    pub(super) got: u64,
    /// Messages it should have received.
    pub(super) expected: u64,
    /// Send-to-delivery latencies after the warm-up, in microseconds.
    pub(super) latency_us: Histogram<u64>,
    /// What its [`Audit`] found wrong.
    pub(super) violations: Violations,
    /// The fingerprint of the server order it saw ([`Audit::fingerprint`]).
    pub(super) fingerprint: Option<u64>,
    /// Why it ended early, if it did.
    pub(super) error: Option<String>,
}

impl SubOutcome {
    /// The outcome of a subscriber task that failed or hung with `error`.
    pub(super) fn failed(error: String) -> SubOutcome {
        SubOutcome {
            got: 0,
            expected: 1,
            latency_us: new_histogram(),
            violations: Violations::default(),
            fingerprint: None,
            error: Some(error),
        }
    }
}

/// What a subscriber counts as messages arrive.
struct Tally {
    /// Messages received (duplicates and messages not meant for it excluded).
    got: u64,
    /// Messages it must receive.
    expected: u64,
    /// Its checks.
    audit: Audit,
    /// Send-to-delivery latencies after the warm-up, in microseconds.
    latency_us: Histogram<u64>,
}

/// One subscriber: open, then check and count every message until it has all it expects
/// (`expected_from[p]` from publisher `p`; or, with `hold`, until the run stops), answering pings
/// and sending keep-alives.
pub(super) async fn subscriber<W: PubSub>(
    mut pubsub: W,
    addr: SocketAddr,
    index: usize,
    expected_from: Vec<u64>,
    hold: bool,
    sh: Arc<Shared>,
) -> SubOutcome {
    let expected: u64 = expected_from.iter().sum();
    let mut tally = Tally { got: 0, expected, audit: Audit::new(expected_from), latency_us: new_histogram() };
    let stop = sh.stop.subscribe();
    let result = match open(&mut pubsub, addr, sh.tls.as_ref(), Party::Subscriber(index)).await {
        Ok((stream, buf)) => {
            sh.ready.fetch_add(1, Ordering::AcqRel);
            // Dispatched once: the read loop is compiled for each kind of stream.
            match stream {
                MaybeTls::Plain(tcp) => receive(tcp, buf, &mut pubsub, &mut tally, hold, &sh, stop).await,
                MaybeTls::Tls(tls) => receive(tls, buf, &mut pubsub, &mut tally, hold, &sh, stop).await,
            }
        }
        Err(e) => {
            sh.failed.fetch_add(1, Ordering::AcqRel);
            Err(e)
        }
    };
    sh.subscribers_ended.fetch_add(1, Ordering::AcqRel);
    SubOutcome {
        got: tally.got,
        expected,
        latency_us: tally.latency_us,
        violations: tally.audit.violations(),
        fingerprint: tally.audit.fingerprint(),
        error: result.err().map(|e| e.to_string()),
    }
}

/// A subscriber's read loop on its open connection `stream` (`buf`: what was read past the login).
async fn receive<W: PubSub, S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut buf: BytesMut,
    pubsub: &mut W,
    tally: &mut Tally,
    hold: bool,
    sh: &Shared,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut out = BytesMut::new();
    let keepalive = pubsub.keepalive(&mut BytesMut::new());
    let mut next_keepalive = keepalive.map(|every| Instant::now() + every);
    let mut finished = false;
    loop {
        let now = sh.now_ns();
        let record_from = sh.record_from_ns.load(Ordering::Relaxed);
        let mut batch = 0u64;
        while let Some(incoming) = pubsub.decode(&mut buf, &mut out)? {
            if let Incoming::Message { stamp, order } = incoming {
                if !tally.audit.message(stamp, order) {
                    continue;
                }
                if stamp.sent_ns >= record_from {
                    let us = (now.saturating_sub(stamp.sent_ns) / 1000).clamp(1, MAX_LATENCY_US);
                    tally.latency_us.saturating_record(us);
                }
                batch += 1;
                if let Some(from) = stamp.sender.and_then(|s| sh.delivered_from.get(s)) {
                    from.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        if batch > 0 {
            tally.got += batch;
            sh.delivered.fetch_add(batch, Ordering::AcqRel);
            sh.last_delivery_ns.fetch_max(now, Ordering::AcqRel);
            for wake in &sh.wake {
                wake.notify_one();
            }
        }
        if tally.got >= tally.expected && !finished {
            finished = true;
            if !hold {
                return Ok(());
            }
        }
        if let (Some(every), Some(at)) = (keepalive, next_keepalive)
            && Instant::now() >= at
        {
            pubsub.keepalive(&mut out);
            next_keepalive = Some(Instant::now() + every);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?; // TLS may hold back what the socket did not take at once
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

/// Spawns one subscriber per entry of `expected_from` (what subscriber `i` must receive from each
/// publisher), in batches of [`CONNECT_BATCH`], each batch waiting for the last.
pub(super) async fn spawn_subscribers<W: PubSub>(
    template: &W,
    addr: SocketAddr,
    expected_from: Vec<Vec<u64>>,
    hold: bool,
    sh: &Arc<Shared>,
    progress: &mut (dyn FnMut(&RunProgress) + Send),
) -> Vec<tokio::task::JoinHandle<SubOutcome>> {
    let count = expected_from.len();
    let mut tasks = Vec::with_capacity(count);
    for (i, want) in expected_from.into_iter().enumerate() {
        tasks.push(tokio::spawn(subscriber(template.clone(), addr, i, want, hold, sh.clone())));
        if (i + 1) % CONNECT_BATCH == 0 || i + 1 == count {
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

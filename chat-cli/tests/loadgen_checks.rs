//! The load generator's checks, end to end: a toy broker on `127.0.0.1:0` speaks a line protocol
//! (a [`PubSub`] written here, as `fanbench` writes Redis and NATS) and misbehaves on purpose, once
//! per test; [`loadgen::run`] must report exactly that violation and call the run incomplete.
//!
//! ```text
//! subscriber ── "S <i>\n" ──► broker ── "OK\n" ──► subscriber
//! publisher  ── "P\n", then "<body>\n" per publish ──► broker ── "M <seq> <body>\n" ──► every subscriber
//! ```
//!
//! One publisher, three subscribers, five messages; the fault touches subscriber 0 (or 1 for a
//! diverging order) only. Every run is bounded by the generator's timeout; the broker task is
//! aborted at the end.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use chat_cli::loadgen::{
    self, Dest, Incoming, LoadConfig, LoadReport, OPEN_TIMEOUT, Pace, Party, Pattern, PubSub, Stamp, Violations,
    read_more, write_body,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

const SUBSCRIBERS: usize = 3;
const MESSAGES: u64 = 5;

/// The toy line protocol; see the module documentation.
#[derive(Debug, Clone)]
struct Lines;

/// Splits the first line off `buf`, without its `\n`.
fn line(buf: &mut BytesMut) -> Option<BytesMut> {
    let end = buf.iter().position(|&c| c == b'\n')?;
    let l = buf.split_to(end);
    buf.advance(1);
    Some(l)
}

impl PubSub for Lines {
    async fn open<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        stream: &mut S,
        party: Party,
    ) -> io::Result<BytesMut> {
        let mut buf = BytesMut::new();
        let Party::Subscriber(i) = party else {
            stream.write_all(b"P\n").await?;
            return Ok(buf);
        };
        stream.write_all(format!("S {i}\n").as_bytes()).await?;
        let deadline = Instant::now() + OPEN_TIMEOUT;
        loop {
            if let Some(l) = line(&mut buf) {
                return if &l[..] == b"OK" { Ok(buf) } else { Err(io::Error::other("no OK")) };
            }
            read_more(stream, &mut buf, deadline).await?;
        }
    }

    fn decode(&mut self, buf: &mut BytesMut, _replies: &mut BytesMut) -> io::Result<Option<Incoming>> {
        let Some(l) = line(buf) else { return Ok(None) };
        let text = std::str::from_utf8(&l).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut fields = text.split(' ');
        let (Some("M"), Some(seq), Some(body)) = (fields.next(), fields.next(), fields.next()) else {
            return Ok(Some(Incoming::Other));
        };
        let order = seq.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad seq"))?;
        let stamp = Stamp::parse(body.as_bytes()).ok_or_else(|| io::Error::other("a message without a stamp"))?;
        Ok(Some(Incoming::Message { stamp, order: Some(order) }))
    }

    fn encode_publish(&mut self, _dest: Dest, body: &[u8], out: &mut BytesMut) -> io::Result<()> {
        out.put_slice(body);
        out.put_u8(b'\n');
        Ok(())
    }

    fn acks_publishes(&self) -> bool {
        false
    }

    fn keepalive(&mut self, _out: &mut BytesMut) -> Option<Duration> {
        None
    }
}

/// How the broker misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// It does not.
    None,
    /// Subscriber 0 gets message 2 twice in a row.
    Duplicate,
    /// Subscriber 0 gets message 3 before message 2.
    Swap,
    /// Subscriber 0 first gets a message from publisher 9, which does not exist.
    Stranger,
    /// Subscriber 1 sees other sequence numbers (still increasing) than everybody else.
    Renumber,
}

/// The lines subscriber `j` gets for message number `n` (from 1) with sequence number `seq`;
/// `held` keeps a message back for [`Fault::Swap`].
fn lines_for(fault: Fault, j: usize, n: u64, seq: u64, body: &str, held: &mut Option<String>) -> Vec<String> {
    let m = |seq: u64| format!("M {seq} {body}\n");
    match (fault, j, n) {
        (Fault::Duplicate, 0, 2) => vec![m(seq), m(seq)],
        (Fault::Swap, 0, 2) => {
            *held = Some(m(seq));
            Vec::new()
        }
        (Fault::Swap, 0, 3) => vec![m(seq), held.take().unwrap_or_default()],
        (Fault::Stranger, 0, 1) => {
            let mut stranger = Vec::new();
            write_body(&mut stranger, 32, 1, 9);
            vec![format!("M 1 {}\n", String::from_utf8_lossy(&stranger)), m(seq)]
        }
        (Fault::Renumber, 1, _) => vec![m(seq + 1000)],
        _ => vec![m(seq)],
    }
}

/// Serves one run: subscribers register, the publisher's lines are numbered and sent to every
/// subscriber (through a bounded queue and a writer task each), with `fault` applied.
async fn broker(listener: TcpListener, fault: Fault) -> io::Result<()> {
    let mut subscribers: Vec<Option<mpsc::Sender<String>>> = vec![None; SUBSCRIBERS];
    loop {
        let (stream, _) = listener.accept().await?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut first = String::new();
        read.read_line(&mut first).await?;
        if let Some(i) = first.trim().strip_prefix("S ") {
            let i: usize = i.parse().map_err(|_| io::Error::other("bad index"))?;
            let (tx, mut rx) = mpsc::channel::<String>(64);
            write.write_all(b"OK\n").await?;
            tokio::spawn(async move {
                while let Some(l) = rx.recv().await {
                    if write.write_all(l.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
            subscribers[i] = Some(tx);
            continue;
        }
        // The publisher: every subscriber registered before it (the generator connects them first).
        let mut held = vec![None; SUBSCRIBERS];
        let (mut n, mut body) = (0u64, String::new());
        while {
            body.clear();
            read.read_line(&mut body).await? > 0
        } {
            n += 1;
            for (j, tx) in subscribers.iter().enumerate() {
                let tx = tx.as_ref().ok_or_else(|| io::Error::other("a subscriber is missing"))?;
                for l in lines_for(fault, j, n, n, body.trim(), &mut held[j]) {
                    let _ = tx.send(l).await;
                }
            }
        }
        return Ok(());
    }
}

/// One run against a broker with `fault`.
async fn run_with(fault: Fault) -> LoadReport {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    let task = tokio::spawn(broker(listener, fault));
    let config = LoadConfig {
        addr,
        subscribers: SUBSCRIBERS,
        publishers: 1,
        messages: MESSAGES,
        size: 32,
        pace: Pace::Window(100),
        pattern: Pattern::Fanout,
        timeout: Duration::from_secs(20),
        warmup: Duration::ZERO,
        tls: None,
    };
    let report = loadgen::run(Lines, &config, &mut |_| {}).await.expect("the run");
    task.abort();
    report
}

#[tokio::test]
async fn a_faithful_broker_gives_a_complete_run() {
    let report = run_with(Fault::None).await;
    assert_eq!(report.violations, Violations::default());
    assert_eq!((report.deliveries, report.expected), (SUBSCRIBERS as u64 * MESSAGES, SUBSCRIBERS as u64 * MESSAGES));
    assert!(report.complete(), "{report:?}");
}

#[tokio::test]
async fn a_duplicate_is_reported_and_not_counted() {
    let report = run_with(Fault::Duplicate).await;
    assert_eq!(report.violations, Violations { duplicates: 1, ..Violations::default() });
    assert_eq!(report.deliveries, report.expected);
    assert!(!report.complete());
}

#[tokio::test]
async fn a_swap_is_out_of_order_and_another_order_than_the_others() {
    let report = run_with(Fault::Swap).await;
    assert_eq!(report.violations, Violations { out_of_order: 1, diverged: 1, ..Violations::default() });
    assert!(!report.complete());
}

#[tokio::test]
async fn a_message_from_no_publisher_of_the_run_is_unexpected() {
    let report = run_with(Fault::Stranger).await;
    assert_eq!(report.violations, Violations { unexpected: 1, ..Violations::default() });
    assert_eq!(report.deliveries, report.expected);
    assert!(!report.complete());
}

#[tokio::test]
async fn a_subscriber_in_another_order_diverges() {
    let report = run_with(Fault::Renumber).await;
    assert_eq!(report.violations, Violations { diverged: 1, ..Violations::default() });
    assert!(!report.complete());
}

//! The publishing task: group commit into batches, one batch in flight, retried with the same
//! message ID until JetStream acknowledges it.
//!
//! The owner task hands entries over a bounded queue ([`QUEUE`]; when it is full the owner waits:
//! back-pressure). The task takes everything queued as one batch (up to [`super::MAX_BATCH_BYTES`]),
//! publishes it with `Nats-Msg-Id: <instance>.<number>`, and waits for the acknowledgement before
//! the next batch, so one instance's entries are stored in the order it queued them and a batch
//! retried after a failover (a stream leader lost, the acknowledgement lost) is stored once. Batches
//! grow with the load, as the journal's group commit does: at one batch in flight a JetStream
//! acknowledgement takes a few hundred microseconds, and every entry queued meanwhile rides along.
//!
//! A publish not acknowledged within [`super::ACK_TIMEOUT`] (or refused: no stream leader) is tried
//! again every [`RETRY_EVERY`]. A **stall** (no acknowledgement for [`STALL_REPORT`]) is reported as a
//! `warn` when it begins and again, with its length, when the log acknowledges again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::entry::{BATCH_VERSION, BatchHeader, BatchWriter, Entry, msg_id};
use crate::ServerError;

/// Entries queued for publishing before the owner task waits.
pub const QUEUE: usize = 64 * 1024;
/// Pause between two attempts to publish a batch that was not acknowledged.
pub const RETRY_EVERY: Duration = Duration::from_millis(50);
/// How long without an acknowledgement counts as a stall worth reporting.
pub const STALL_REPORT: Duration = Duration::from_secs(1);

/// What the publisher has done so far (shared with the owner and `chat-cli`'s logs).
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Batches acknowledged.
    pub batches: AtomicU64,
    /// Entries acknowledged.
    pub entries: AtomicU64,
    /// Stalls reported.
    pub stalls: AtomicU64,
    /// The longest stall, in milliseconds.
    pub longest_stall_ms: AtomicU64,
}

/// The handle on the publishing task.
#[derive(Debug)]
pub struct Publisher {
    tx: mpsc::Sender<Entry>,
    task: JoinHandle<()>,
    /// What it has done.
    pub stats: Arc<PublishStats>,
}

impl Publisher {
    /// Starts publishing as `instance` on `subject`.
    pub fn start(js: jetstream::Context, subject: String, instance: u32) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(PublishStats::default());
        let task = tokio::spawn(run(js, subject, instance, rx, stats.clone()));
        Publisher { tx, task, stats }
    }

    /// A sender for other tasks (the lease sweeper's `Down` entries).
    pub fn sender(&self) -> mpsc::Sender<Entry> {
        self.tx.clone()
    }

    /// Queues `entry`, waiting while the queue is full. Cancel-safe: if dropped before it completes,
    /// the entry was not queued.
    pub async fn send(&self, entry: Entry) -> Result<(), ServerError> {
        self.tx.send(entry).await.map_err(|_| ServerError::Cluster("the publishing task stopped".into()))
    }

    /// Publishes what is queued (waiting up to `within`), then stops; false if it did not finish.
    pub async fn close(self, within: Duration) -> bool {
        let Publisher { tx, mut task, .. } = self;
        drop(tx);
        match tokio::time::timeout(within, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                task.abort();
                false
            }
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn run(
    js: jetstream::Context,
    subject: String,
    instance: u32,
    mut rx: mpsc::Receiver<Entry>,
    stats: Arc<PublishStats>,
) {
    let mut number = 0;
    let mut carry: Option<Entry> = None;
    loop {
        let first = match carry.take() {
            Some(entry) => entry,
            None => match rx.recv().await {
                Some(entry) => entry,
                None => return, // closed, and everything queued was published
            },
        };
        number += 1;
        let header = BatchHeader { version: BATCH_VERSION, instance, number, time_ms: unix_ms() };
        let mut batch = BatchWriter::new(&header);
        batch.push(&first);
        while let Ok(entry) = rx.try_recv() {
            if !batch.push(&entry) {
                carry = Some(entry);
                break;
            }
        }
        let entries = batch.len() as u64;
        let id = msg_id(instance, number);
        publish_until_acked(&js, &subject, &id, batch.finish(), &stats).await;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.entries.fetch_add(entries, Ordering::Relaxed);
    }
}

/// Publishes one batch until it is acknowledged (the same message ID every time).
async fn publish_until_acked(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: bytes::Bytes,
    stats: &PublishStats,
) {
    let started = Instant::now();
    let mut reported = false;
    loop {
        let message = PublishMessage::build().payload(payload.clone()).message_id(id);
        let outcome = match js.send_publish(subject.to_string(), message).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let stalled = started.elapsed();
        match outcome {
            Ok(()) => {
                if reported {
                    let stalled_ms = stalled.as_millis() as u64;
                    stats.longest_stall_ms.fetch_max(stalled_ms, Ordering::Relaxed);
                    warn!(stalled_ms, batch = id, "the shared log acknowledges again after a stall");
                }
                return;
            }
            Err(error) => {
                debug!(batch = id, %error, "publish not acknowledged; retrying");
                if !reported && stalled >= STALL_REPORT {
                    reported = true;
                    stats.stalls.fetch_add(1, Ordering::Relaxed);
                    warn!(batch = id, %error, "the shared log does not acknowledge: sends wait (retrying)");
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

//! The reading task: an ordered consumer over the whole stream, handing every batch, in stream
//! order, to the owner task over a bounded queue ([`QUEUE`]: when the owner falls behind, the
//! consumer waits and NATS's flow control holds the rest).
//!
//! The ordered consumer recreates itself when it misses a message or a heartbeat; if it fails for
//! good (a NATS node lost, the stream leader moving) this task makes a new one starting just after
//! the last batch handed over, so nothing is skipped or handed over twice.

use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::stream;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

/// Batches handed over and not yet applied before the consumer waits.
pub const QUEUE: usize = 1024;
/// Pause before a new consumer after one failed.
const RESTART_AFTER: Duration = Duration::from_millis(200);

/// One batch as stored.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Its stream sequence.
    pub seq: u64,
    /// The stream's timestamp, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The batch.
    pub payload: Bytes,
}

/// Reads `subject` of `stream` from sequence `from` on into `tx`, until `tx` closes.
pub fn start(stream: stream::Stream, subject: String, from: u64, tx: mpsc::Sender<Delivered>) -> JoinHandle<()> {
    tokio::spawn(run(stream, subject, from.max(1), tx))
}

async fn run(stream: stream::Stream, subject: String, mut next: u64, tx: mpsc::Sender<Delivered>) {
    loop {
        let deliver_policy =
            if next <= 1 { DeliverPolicy::All } else { DeliverPolicy::ByStartSequence { start_sequence: next } };
        let config = OrderedConfig { filter_subject: subject.clone(), deliver_policy, ..Default::default() };
        let messages = match stream.create_consumer(config).await {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                warn!(%error, next, "cannot read the shared log; trying again");
                tokio::time::sleep(RESTART_AFTER).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    warn!(%error, next, "reading the shared log failed; a new consumer takes over");
                    break;
                }
            };
            let (seq, time_ms) = match message.info() {
                Ok(info) => (info.stream_sequence, (info.published.unix_timestamp_nanos() / 1_000_000) as u64),
                Err(_) => continue,
            };
            if seq < next {
                continue;
            }
            if seq > next && next > 1 {
                // The stream holds one subject and is never trimmed by this program: a gap means
                // batches were removed behind its back (a purge, a limit set by hand), and what they
                // held is missing from every replica that reads past it.
                warn!(
                    expected = next,
                    got = seq,
                    missing = seq - next,
                    "a gap in the shared log: batches were removed from the stream"
                );
            }
            next = seq + 1;
            let delivered = Delivered { seq, time_ms, payload: message.message.payload.clone() };
            if tx.send(delivered).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(RESTART_AFTER).await;
    }
}

//! A connection's private queue: unicasts, multicasts and replies, in server order, each tagged with
//! the stream offset it must follow.
//!
//! Unlike a channel it allocates nothing until used and gives its memory back once drained, so
//! 10 000 idle connections cost little. It is bounded: when it is full the owner is told
//! ([`PrivateSender::try_send`] fails) and the slow-consumer policy decides.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// What the owner puts in a connection's private queue.
#[derive(Debug)]
pub(crate) enum Private {
    /// A frame for this connection only, to be written after the stream up to `bpos`.
    Frame {
        /// The encoded frame.
        bytes: Bytes,
        /// Its server sequence number if it is a message, else 0.
        seq: u64,
        /// The stream offset when it was queued.
        bpos: u64,
    },
    /// From now on, also write the stream, starting at offset `from`.
    Subscribe {
        /// First stream offset for this connection.
        from: u64,
    },
}

/// A connection's bounded private queue. Unlike a channel it allocates nothing until used, and gives
/// its memory back once drained, so 10 000 idle connections cost little.
pub(crate) struct PrivateQueue {
    items: Mutex<VecDeque<Private>>,
    /// Notified when an item is queued or the queue is closed.
    pub(super) ready: Notify,
    closed: AtomicBool,
    capacity: usize,
}

impl PrivateQueue {
    /// A queue holding at most `capacity` items, with its sending handle.
    pub(crate) fn new(capacity: usize) -> (PrivateSender, Arc<PrivateQueue>) {
        let queue = Arc::new(PrivateQueue {
            items: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            capacity: capacity.max(1),
        });
        (PrivateSender(queue.clone()), queue)
    }

    fn items(&self) -> std::sync::MutexGuard<'_, VecDeque<Private>> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next item, if any.
    pub(super) fn pop(&self) -> Option<Private> {
        let mut items = self.items();
        let item = items.pop_front();
        if items.is_empty() && items.capacity() > 64 {
            *items = VecDeque::new();
        }
        item
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items().is_empty()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The owner's handle on a [`PrivateQueue`]; dropping it closes the queue (the writer then drains it
/// and closes the connection).
pub(crate) struct PrivateSender(Arc<PrivateQueue>);

impl PrivateSender {
    /// Queues `item`, or gives it back if the queue is full.
    pub(crate) fn try_send(&self, item: Private) -> Result<(), Private> {
        let mut items = self.0.items();
        if items.len() >= self.0.capacity {
            return Err(item);
        }
        items.push_back(item);
        drop(items);
        self.0.ready.notify_one();
        Ok(())
    }
}

impl Drop for PrivateSender {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.ready.notify_one();
    }
}

/// Shared between the owner and a writer: how far the writer got.
#[derive(Debug)]
pub(crate) struct WriterProgress {
    /// Stream offset written so far (`u64::MAX` while not subscribed, so it never holds back trimming).
    pub(crate) cursor: AtomicU64,
    /// Highest message sequence number written to the socket (for delivery watermarks).
    pub(crate) mark: Arc<AtomicU64>,
}

impl WriterProgress {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(WriterProgress { cursor: AtomicU64::new(u64::MAX), mark: Arc::new(AtomicU64::new(0)) })
    }
}

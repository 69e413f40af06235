//! The sync thread: `fdatasync` runs here, off the owner's path, and so do the writes it covers
//! under `--fsync batch`.
//!
//! The owner hands over what to write and asks for a sync up to a file length, through a mailbox
//! that holds the bytes not yet written and only the latest request: whatever the owner hands over
//! while a write and sync run is taken in one piece by the next cycle (group commit with no fixed
//! wait). The owner wakes the thread only when it is waiting. The thread publishes what it synced
//! as a [`Synced`] on a watch, which wakes the owner:
//!
//! | policy        | who writes | the thread syncs                                                   |
//! |---------------|------------|--------------------------------------------------------------------|
//! | `batch`       | the thread ([`Syncer::submit`]) | as soon as a request is pending (or after a short gathering, below): one `write` of everything handed over, then one `fdatasync` |
//! | `interval:MS` | the owner  | a pending request once `MS` have passed since the previous sync     |
//! | `never`       | the owner  | never (until close)                                                 |
//!
//! With `batch` the owner does no system call on the journal's behalf (unless it wakes the thread),
//! and the next sync starts as soon as the previous one ends, without waiting for the owner's turn.
//!
//! **Gathering** (`batch` only, [`gather_wait`]): when fewer messages are pending than the previous
//! sync carried, the thread waits a little for the rest (until as many are pending, or half the
//! previous sync's duration, at most [`MAX_GATHER`]). Clients that each wait for their last message
//! to be durable before sending the next one answer a sync's release together; without the wait,
//! the first answer would start the next sync alone and the others would wait for a second sync.
//! A steady stream (the previous sync's messages are pending again when it ends) and a lone user
//! (a previous sync of one message) never wait.
//!
//! On close it syncs everything (`sync_all`) and ends. If a sync fails, it records why in `stopped`
//! and ends at once: the watch's sender is dropped, so the owner learns that nothing more becomes
//! durable.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::FsyncPolicy;
use super::prealloc::Prealloc;

/// What the sync thread made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Synced {
    /// File length synced.
    pub end: u64,
    /// Highest stored sequence number in those bytes.
    pub upto: u64,
}

/// A sync slower than this is logged as a warning: nothing is acknowledged or delivered while it runs,
/// so a stalled disk stalls the chat, and the operator should know why.
pub(crate) const SLOW_SYNC: Duration = Duration::from_secs(1);

/// The longest the thread waits for more messages before a sync (see the module docs).
pub(crate) const MAX_GATHER: Duration = Duration::from_millis(2);

/// How long to wait for more messages before syncing (`None`: sync now): `pending` messages are
/// waiting, the previous sync carried `last_batch` and took `last_sync`; the wait is over once
/// `last_batch` are pending.
pub(crate) fn gather_wait(pending: u64, last_batch: u64, last_sync: Duration) -> Option<Duration> {
    (pending > 0 && pending < last_batch).then(|| (last_sync / 2).min(MAX_GATHER)).filter(|d| !d.is_zero())
}

/// The mailbox between the owner and the thread.
#[derive(Default)]
struct Mailbox {
    /// Bytes to append before the next sync (`batch`), in order.
    bytes: Vec<u8>,
    /// The thread waits on the condition variable: wake it.
    waiting: bool,
    /// The latest sync asked for and not yet taken.
    want: Option<Synced>,
    /// The thread gathers (see the module docs) until a request reaches this sequence number: wake it then.
    gather_until: Option<u64>,
    /// Close: sync everything, answer, end.
    close: Option<oneshot::Sender<Result<(), String>>>,
    /// The thread has ended (closed, or stopped by a failure): nobody will answer a close.
    ended: bool,
}

struct Shared {
    mailbox: Mutex<Mailbox>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Mailbox> {
        // The mailbox holds plain values: a panic elsewhere cannot leave it half-updated.
        self.mailbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle to the sync thread.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("running", &self.thread.is_some()).finish()
    }
}

impl Syncer {
    /// Starts the thread for `file`, durable as it is: its records end at `tail.0` and it is
    /// `tail.1` bytes long (preallocated zeros after the records). It publishes on `synced`.
    pub(crate) fn start(
        file: Arc<File>,
        tail: (u64, u64),
        path: PathBuf,
        policy: FsyncPolicy,
        synced: watch::Sender<Synced>,
        stopped: Arc<OnceLock<String>>,
    ) -> std::io::Result<Syncer> {
        let shared = Arc::new(Shared { mailbox: Mutex::new(Mailbox::default()), wake: Condvar::new() });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("chat-journal-sync".into()).spawn(move || {
            run(&file, tail, &path, policy, &theirs, &synced, &stopped);
            let mut mailbox = theirs.lock();
            mailbox.ended = true;
            if let Some(reply) = mailbox.close.take() {
                let reason = stopped.get().cloned().unwrap_or_else(|| "the journal's sync thread ended".into());
                let _ = reply.send(Err(reason));
            }
        })?;
        Ok(Syncer { shared, thread: Some(thread) })
    }

    /// Hands over `bytes` for the thread to append to the file before its next sync (`batch`).
    pub(crate) fn submit(&self, bytes: &[u8]) {
        self.shared.lock().bytes.extend_from_slice(bytes);
    }

    /// Asks for a sync up to `want.end` (replacing an older request not yet taken); wakes the thread
    /// if it waits for a request (with `interval`, a thread holding one waits for its time and is not
    /// woken again).
    pub(crate) fn request(&self, want: Synced) {
        let mut mailbox = self.shared.lock();
        let gathered = mailbox.gather_until.is_some_and(|until| want.upto >= until);
        let wake = mailbox.waiting && (mailbox.want.is_none() || gathered);
        mailbox.want = Some(want);
        if wake {
            mailbox.waiting = false;
        }
        drop(mailbox);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Syncs everything, stops the thread and waits for it; the error says why the file is not
    /// durable (a sync failed now or earlier).
    pub(crate) async fn close(mut self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let ended = {
            let mut mailbox = self.shared.lock();
            if !mailbox.ended {
                mailbox.close = Some(tx);
            }
            mailbox.ended
        };
        // Always notify: the thread may be about to wait (it checks `close` first, under the lock).
        self.shared.wake.notify_one();
        let outcome = if ended {
            Err("the journal's sync thread had stopped".to_owned())
        } else {
            rx.await.unwrap_or_else(|_| Err("the journal's sync thread exited".to_owned()))
        };
        if let Some(thread) = self.thread.take() {
            // The thread has answered (or ended) and is returning: joining takes microseconds.
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                return Err("the journal's sync thread panicked".to_owned());
            }
        }
        outcome
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Not closed: let the thread sync what was written and end on its own.
        if self.thread.is_some() {
            let (tx, _) = oneshot::channel();
            self.shared.lock().close.get_or_insert(tx);
            self.shared.wake.notify_one();
        }
    }
}

/// The thread's loop (see the module docs).
fn run(
    file: &File,
    (mut written, allocated): (u64, u64),
    path: &std::path::Path,
    policy: FsyncPolicy,
    shared: &Shared,
    synced: &watch::Sender<Synced>,
    stopped: &OnceLock<String>,
) {
    let mut last_sync = Instant::now();
    // What the previous sync carried (messages) and how long its `fdatasync` took: the gathering.
    let (mut done_upto, mut last_batch, mut last_took) = (synced.borrow().upto, 0u64, Duration::ZERO);
    let mut gathering: Option<Instant> = None;
    // The bytes being written: swapped with the mailbox's, so neither side allocates in steady state.
    let mut bytes = Vec::new();
    // Under `batch` this thread appends the records, so it keeps the space ahead of them.
    let mut prealloc = Prealloc::new(allocated);
    let mut write = |bytes: &[u8]| -> Result<(), String> {
        if bytes.is_empty() {
            return Ok(());
        }
        prealloc.reserve(file, written + bytes.len() as u64);
        let mut file = file;
        file.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        written += bytes.len() as u64;
        Ok(())
    };
    loop {
        let mut mailbox = shared.lock();
        let want = loop {
            if let Some(reply) = mailbox.close.take() {
                std::mem::swap(&mut bytes, &mut mailbox.bytes);
                drop(mailbox);
                let outcome =
                    write(&bytes).and_then(|()| file.sync_all().map_err(|e| format!("{}: {e}", path.display())));
                if let Err(reason) = &outcome {
                    tracing::error!(path = %path.display(), error = %reason, "journal: final sync failed");
                    let _ = stopped.set(reason.clone());
                }
                let _ = reply.send(outcome);
                return;
            }
            match (policy, mailbox.want) {
                (FsyncPolicy::EveryBatch, Some(want)) => {
                    let pending = want.upto.saturating_sub(done_upto);
                    let now = Instant::now();
                    let until = *gathering.get_or_insert_with(|| {
                        now + gather_wait(pending, last_batch, last_took).unwrap_or(Duration::ZERO)
                    });
                    if now >= until || pending >= last_batch {
                        gathering = None;
                        mailbox.gather_until = None;
                        break want;
                    }
                    mailbox.gather_until = Some(done_upto + last_batch);
                    mailbox.waiting = true;
                    mailbox = shared.wake.wait_timeout(mailbox, until - now).unwrap_or_else(PoisonError::into_inner).0;
                }
                (FsyncPolicy::Interval(d), Some(want)) => {
                    let due = last_sync + d;
                    let now = Instant::now();
                    if now >= due {
                        break want;
                    }
                    mailbox.waiting = true;
                    mailbox = shared.wake.wait_timeout(mailbox, due - now).unwrap_or_else(PoisonError::into_inner).0;
                }
                _ => {
                    mailbox.waiting = true;
                    mailbox = shared.wake.wait(mailbox).unwrap_or_else(PoisonError::into_inner);
                }
            }
            mailbox.waiting = false;
        };
        mailbox.want = None;
        std::mem::swap(&mut bytes, &mut mailbox.bytes);
        drop(mailbox);
        if let Err(reason) = write(&bytes) {
            tracing::error!(path = %path.display(), error = %reason, "journal write failed: the journal stopped");
            let _ = stopped.set(reason);
            return;
        }
        bytes.clear();
        let started = Instant::now();
        if let Err(e) = file.sync_data() {
            let reason = format!("{}: {e}", path.display());
            tracing::error!(path = %path.display(), error = %e, "journal sync failed: the journal stopped");
            let _ = stopped.set(reason);
            return;
        }
        last_sync = Instant::now();
        last_took = last_sync - started;
        if last_took >= SLOW_SYNC {
            tracing::warn!(
                path = %path.display(),
                took_ms = last_took.as_millis() as u64,
                "journal: one fdatasync took over a second; nothing is acknowledged or delivered until it returns (a slow or overloaded disk)"
            );
        }
        if want.upto > done_upto {
            last_batch = want.upto - done_upto;
            done_upto = want.upto;
        }
        synced.send_if_modified(|s| {
            let advanced = want.end > s.end;
            if advanced {
                *s = want;
            }
            advanced
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC: Duration = Duration::from_millis(3);

    #[test]
    fn a_lone_user_and_a_steady_stream_never_wait() {
        // One message after a sync of one: nothing to gather.
        assert_eq!(gather_wait(1, 1, SYNC), None);
        // As many pending as the previous sync carried (or more): sync now.
        assert_eq!(gather_wait(30, 30, SYNC), None);
        assert_eq!(gather_wait(50, 30, SYNC), None);
        // Nothing pending (a record that is not a message): no reason to wait for messages.
        assert_eq!(gather_wait(0, 30, SYNC), None);
    }

    #[test]
    fn fewer_pending_than_last_time_wait_half_a_sync_at_most_max_gather() {
        assert_eq!(gather_wait(1, 100, SYNC), Some(Duration::from_micros(1500)));
        assert_eq!(gather_wait(99, 100, Duration::from_millis(40)), Some(MAX_GATHER));
        // The first sync (no duration known yet) does not wait.
        assert_eq!(gather_wait(1, 100, Duration::ZERO), None);
    }
}

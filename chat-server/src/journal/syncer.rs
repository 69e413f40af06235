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
//! | `batch`       | the thread ([`Syncer::submit`]) | as soon as a request is pending: one `write` of everything handed over, then one `fdatasync` |
//! | `interval:MS` | the owner  | a pending request once `MS` have passed since the previous sync     |
//! | `never`       | the owner  | never (until close)                                                 |
//!
//! With `batch` the owner does no system call on the journal's behalf (unless it wakes the thread),
//! and the next sync starts as soon as the previous one ends, without waiting for the owner's turn.
//!
//! On close it syncs everything (`sync_all`) and ends. If a sync fails, it records why in `stopped`
//! and ends at once: the watch's sender is dropped, so the owner learns that nothing more becomes
//! durable.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

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

/// The mailbox between the owner and the thread.
#[derive(Default)]
struct Mailbox {
    /// Bytes to append before the next sync (`batch`), in order.
    bytes: Vec<u8>,
    /// The thread waits on the condition variable: wake it.
    waiting: bool,
    /// The latest sync asked for and not yet taken.
    want: Option<Synced>,
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
        let wake = mailbox.waiting && mailbox.want.is_none();
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
                (FsyncPolicy::EveryBatch, Some(want)) => break want,
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
        if let Err(e) = file.sync_data() {
            let reason = format!("{}: {e}", path.display());
            tracing::error!(path = %path.display(), error = %e, "journal sync failed: the journal stopped");
            let _ = stopped.set(reason);
            return;
        }
        last_sync = Instant::now();
        synced.send_if_modified(|s| {
            let advanced = want.end > s.end;
            if advanced {
                *s = want;
            }
            advanced
        });
    }
}

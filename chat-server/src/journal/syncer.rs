//! The sync thread: the only blocking call left off the owner's path is `fdatasync`, and it runs here.
//!
//! The owner writes (see [`super::appender`]) and then asks for a sync of the file up to a length
//! ([`Syncer::request`]: a mailbox holding only the latest request, so requests that arrive while a
//! sync runs are coalesced into the next one). The thread syncs and publishes what it synced as a
//! [`Synced`] on a watch, which wakes the owner:
//!
//! | policy        | the thread syncs                                                  |
//! |---------------|-------------------------------------------------------------------|
//! | `batch`       | as soon as a request is pending (one sync covers every write before it) |
//! | `interval:MS` | a pending request once `MS` have passed since its previous sync   |
//! | `never`       | never (until close)                                               |
//!
//! On close it syncs everything (`sync_all`) and ends. If a sync fails, it records why in `stopped`
//! and ends at once: the watch's sender is dropped, so the owner learns that nothing more becomes
//! durable.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use super::FsyncPolicy;

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
    /// The latest sync asked for and not yet taken.
    want: Option<Synced>,
    /// Close: sync everything, answer, end.
    close: Option<oneshot::Sender<Result<(), String>>>,
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
    /// Starts the thread for `file` (already `start` durable); it publishes on `synced`.
    pub(crate) fn start(
        file: Arc<File>,
        path: PathBuf,
        policy: FsyncPolicy,
        synced: watch::Sender<Synced>,
        stopped: Arc<OnceLock<String>>,
    ) -> std::io::Result<Syncer> {
        let shared = Arc::new(Shared { mailbox: Mutex::new(Mailbox::default()), wake: Condvar::new() });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("chat-journal-sync".into())
            .spawn(move || run(&file, &path, policy, &theirs, &synced, &stopped))?;
        Ok(Syncer { shared, thread: Some(thread) })
    }

    /// Asks for a sync up to `want.end` (replacing an older request not yet taken).
    pub(crate) fn request(&self, want: Synced) {
        let mut mailbox = self.shared.lock();
        let first = mailbox.want.is_none();
        mailbox.want = Some(want);
        drop(mailbox);
        if first {
            self.shared.wake.notify_one();
        }
    }

    /// Syncs everything, stops the thread and waits for it; the error says why the file is not
    /// durable (a sync failed now or earlier).
    pub(crate) async fn close(mut self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.shared.lock().close = Some(tx);
        self.shared.wake.notify_one();
        let outcome = rx.await.unwrap_or_else(|_| Err("the journal's sync thread exited".to_owned()));
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
    path: &std::path::Path,
    policy: FsyncPolicy,
    shared: &Shared,
    synced: &watch::Sender<Synced>,
    stopped: &OnceLock<String>,
) {
    let mut last_sync = Instant::now();
    loop {
        let mut mailbox = shared.lock();
        let want = loop {
            if let Some(reply) = mailbox.close.take() {
                drop(mailbox);
                let outcome = file.sync_all().map_err(|e| format!("{}: {e}", path.display()));
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
                    mailbox = shared.wake.wait_timeout(mailbox, due - now).unwrap_or_else(PoisonError::into_inner).0;
                }
                _ => mailbox = shared.wake.wait(mailbox).unwrap_or_else(PoisonError::into_inner),
            }
        };
        mailbox.want = None;
        drop(mailbox);
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

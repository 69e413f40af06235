//! The writer thread: owns the file, group-commits batches, writes watermarks, syncs per policy.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chat_core::UserName;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::format::encode_record;
use super::{FsyncPolicy, IDLE_TICK, JournalInput, MARKS_PER_RECORD, MAX_BATCH};
use crate::journal::Record;

/// What travels on the writer's channel.
pub(crate) enum Msg {
    /// A record to write.
    Input(JournalInput),
    /// Flush, sync and stop; the reply says whether everything reached the file.
    Close(oneshot::Sender<Result<(), String>>),
}

/// A logged-in user whose deliveries are being watermarked.
struct Tracked {
    /// Highest sequence number written to the user's socket (updated by its connection's writer task).
    mark: Arc<AtomicU64>,
    /// Highest watermark already in the file.
    written: u64,
}

/// The state owned by the writer thread.
pub(crate) struct Writer {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) policy: FsyncPolicy,
    /// Highest `Store` sequence number in the file (or in the buffer about to be written).
    pub(crate) last_store: u64,
    tracked: BTreeMap<UserName, Tracked>,
    buf: Vec<u8>,
    /// Bytes written since the last sync.
    dirty: bool,
    last_sync: Instant,
    /// The highest stored sequence number that is durable under the policy (see [`super::Journal::durable`]).
    durable: watch::Sender<u64>,
}

impl Writer {
    pub(crate) fn new(
        file: File,
        path: PathBuf,
        policy: FsyncPolicy,
        last_store: u64,
        durable: watch::Sender<u64>,
    ) -> Self {
        Writer {
            durable,
            file,
            path,
            policy,
            last_store,
            tracked: BTreeMap::new(),
            buf: Vec::new(),
            dirty: false,
            last_sync: Instant::now(),
        }
    }

    /// Runs until `Close`, until every sender is gone, or until a write fails (the reason is then
    /// stored in `stopped`). Meant for a dedicated thread: it blocks on its own current-thread runtime.
    pub(crate) fn run(
        mut self,
        rt: tokio::runtime::Runtime,
        mut rx: mpsc::Receiver<Msg>,
        stopped: Arc<OnceLock<String>>,
    ) {
        rt.block_on(async move {
            let mut batch = Vec::new();
            loop {
                let mut reply = None;
                let mut finished = false;
                match tokio::time::timeout_at(self.next_wake(), rx.recv()).await {
                    Ok(Some(Msg::Input(input))) => batch.push(input),
                    Ok(Some(Msg::Close(tx))) => reply = Some(tx),
                    Ok(None) => finished = true,
                    Err(_idle) => {}
                }
                // Group commit: take everything queued, up to MAX_BATCH inputs. What arrives while this
                // batch is written and synced is the next batch: no fixed wait, and under load the
                // batches grow by themselves (a sync takes longer than encoding what came during it).
                while reply.is_none() && !finished && !batch.is_empty() && batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(Msg::Input(input)) => batch.push(input),
                        Ok(Msg::Close(tx)) => reply = Some(tx),
                        Err(_) => break,
                    }
                }
                let last = reply.is_some() || finished;
                let result = self.commit(&mut batch, last);
                if let Err(e) = &result {
                    let reason = format!("{}: {e}", self.path.display());
                    tracing::error!(path = %self.path.display(), error = %e, "journal writer stopped");
                    let _ = stopped.set(reason);
                }
                if let Some(tx) = reply {
                    // The closer may have given up waiting; nothing to do then.
                    let _ = tx.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                }
                if last || result.is_err() {
                    tracing::debug!(path = %self.path.display(), "journal writer finished");
                    return;
                }
            }
        });
    }

    /// When to wake up with no input: after [`IDLE_TICK`] to write advanced watermarks, or earlier
    /// when an interval sync falls due.
    fn next_wake(&self) -> Instant {
        let tick = Instant::now() + IDLE_TICK;
        match self.policy {
            FsyncPolicy::Interval(d) if self.dirty => tick.min(self.last_sync + d),
            _ => tick,
        }
    }

    /// Encodes `batch` (emptying it) and the advanced watermarks, writes them with one `write_all`,
    /// then syncs per policy (always if `last`).
    pub(crate) fn commit(&mut self, batch: &mut Vec<JournalInput>, last: bool) -> Result<(), std::io::Error> {
        let inputs = batch.len();
        self.buf.clear();
        for input in batch.drain(..) {
            self.encode_input(input)?;
        }
        let marks = self.advanced_marks();
        for chunk in marks.chunks(MARKS_PER_RECORD) {
            self.encode(&Record::Consumed { marks: chunk.to_vec() })?;
        }
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.dirty = true;
            tracing::trace!(inputs, marks = marks.len(), bytes = self.buf.len(), "journal batch written");
        }
        let due = match self.policy {
            FsyncPolicy::EveryBatch => true,
            FsyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        if last {
            self.file.sync_all()?;
            self.dirty = false;
        } else if self.dirty && due {
            self.file.sync_data()?;
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        // Durable under the policy: synced for `batch`, written for `interval` and `never`.
        if self.policy != FsyncPolicy::EveryBatch || !self.dirty {
            self.durable.send_if_modified(|d| {
                let advanced = self.last_store > *d;
                *d = (*d).max(self.last_store);
                advanced
            });
        }
        Ok(())
    }

    fn encode(&mut self, record: &Record) -> Result<(), std::io::Error> {
        encode_record(record, &mut self.buf).map_err(std::io::Error::other)
    }

    fn encode_input(&mut self, input: JournalInput) -> Result<(), std::io::Error> {
        match input {
            JournalInput::Store(stored) => {
                let seq = stored.message.id.seq;
                if seq != self.last_store + 1 {
                    tracing::warn!(seq, last = self.last_store, "journal: stored sequence numbers are not contiguous");
                }
                self.last_store = self.last_store.max(seq);
                self.encode(&Record::Stored(stored))
            }
            JournalInput::Record(record) => self.encode(&record),
            JournalInput::Rebind { name, mark, after } => {
                let written = self.tracked.get(&name).map_or(after, |t| t.written);
                self.tracked.insert(name, Tracked { mark, written });
                Ok(())
            }
            JournalInput::Join { name, after, mark } => {
                self.encode(&Record::Join { name: name.clone(), after })?;
                if self.tracked.insert(name.clone(), Tracked { mark, written: after }).is_some() {
                    tracing::warn!(user = %name, "journal: join of a user already tracked");
                }
                Ok(())
            }
            JournalInput::Leave { name, after, reason } => {
                match self.tracked.remove(&name) {
                    Some(t) => {
                        let upto = t.mark.load(Ordering::Acquire).min(self.last_store).min(after);
                        if upto > t.written {
                            self.encode(&Record::Consumed { marks: vec![(name.clone(), upto)] })?;
                        }
                    }
                    None => tracing::warn!(user = %name, "journal: leave of a user not tracked"),
                }
                self.encode(&Record::Leave { name, after, reason })
            }
        }
    }

    /// Watermarks that moved since they were last written, clamped to the highest stored sequence
    /// number (a connection may write a message before the journal has it). Never backwards.
    fn advanced_marks(&mut self) -> Vec<(UserName, u64)> {
        let mut marks = Vec::new();
        for (name, t) in &mut self.tracked {
            let upto = t.mark.load(Ordering::Acquire).min(self.last_store);
            if upto > t.written {
                t.written = upto;
                marks.push((name.clone(), upto));
            }
        }
        marks
    }
}

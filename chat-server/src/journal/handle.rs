//! [`Journal`]: the shell around the [`Appender`] core, owned by the server's owner task. Under
//! `--fsync never` and `interval` it writes on the caller's thread (one `write` per turn: durable
//! once written, so no thread hop); under `batch` it hands each turn's bytes to the [`Syncer`]
//! thread, which writes and syncs them.

use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::watch;

use super::appender::{Appender, Input, Output};
use super::prealloc::Prealloc;
use super::syncer::{Synced, Syncer};
use super::{FsyncPolicy, JournalConfig, JournalInput, Record, Recovered};
use super::{encode_record, lock_dir, recover, sync_dir};
use crate::ServerError;

/// The open journal: records go in with [`Journal::record`], are written by [`Journal::end_turn`],
/// and become durable per the fsync policy (see the module docs for the call order). Dropping it
/// without [`Journal::close`] still lets the sync thread sync what was written, but nobody waits.
#[derive(Debug)]
pub struct Journal {
    file: Arc<File>,
    /// Zero-filled space ahead of the records, when this side writes them (`never`, `interval`).
    prealloc: Prealloc,
    policy: FsyncPolicy,
    core: Appender,
    /// `None` once closed.
    syncer: Option<Syncer>,
    synced: watch::Receiver<Synced>,
    /// Why the journal stopped (a write or sync failed), once it has.
    stopped: Arc<OnceLock<String>>,
    path: PathBuf,
    /// The data directory's lock, held for the journal's life.
    _lock: File,
}

impl Journal {
    /// Creates `config.dir` if needed, recovers the log (truncating a torn tail), appends and syncs
    /// a `Start { after: last_seq }` record, and starts the sync thread.
    ///
    /// Fails with [`ServerError::CorruptJournal`] on corruption before the tail, [`ServerError::Locked`]
    /// if another process holds the directory, or [`ServerError::Io`].
    /// Blocking (file I/O): call it before serving, or from `spawn_blocking`.
    pub fn open(config: JournalConfig) -> Result<(Journal, Recovered), ServerError> {
        std::fs::create_dir_all(&config.dir)?;
        let lock = lock_dir(&config.dir)?;
        let path = config.path();
        let (mut file, recovered) = recover::recover(&path, config.history, config.offline_per_user)?;
        let last_seq = recovered.state.last_seq;
        let mut buf = Vec::new();
        encode_record(&Record::Start { after: last_seq }, &mut buf)?;
        file.write_all(&buf)?;
        file.sync_data()?;
        sync_dir(&config.dir)?;
        let end = file.stream_position()?;
        let allocated = file.metadata()?.len().max(end);
        let file = Arc::new(file);
        let stopped = Arc::new(OnceLock::new());
        let (synced_tx, synced) = watch::channel(Synced { end, upto: last_seq });
        let tail = (end, allocated);
        let syncer =
            Syncer::start(Arc::clone(&file), tail, path.clone(), config.fsync, synced_tx, Arc::clone(&stopped))?;
        let core = Appender::new(Instant::now(), config.fsync, end, last_seq);
        tracing::info!(path = %path.display(), fsync = %config.fsync, last_seq, "journal open");
        let prealloc = Prealloc::new(allocated);
        let journal = Journal {
            file,
            prealloc,
            policy: config.fsync,
            core,
            syncer: Some(syncer),
            synced,
            stopped,
            path,
            _lock: lock,
        };
        Ok((journal, recovered))
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the journal stopped, if it did (then nothing more becomes durable).
    pub fn stopped_reason(&self) -> Option<String> {
        self.stopped.get().cloned()
    }

    /// The durable watermark: the highest stored sequence number that is durable under the fsync
    /// policy. Starts at what recovery found.
    pub fn durable(&self) -> u64 {
        self.core.durable()
    }

    /// What the sync thread made durable: wait on it (`changed`) and hand each value to
    /// [`Journal::handle_synced`]. `changed()` fails once the thread has stopped (then
    /// [`Journal::stopped_reason`] says why). With `--fsync never` it changes only at close.
    pub fn synced(&self) -> watch::Receiver<Synced> {
        self.synced.clone()
    }

    /// Whether more input may be taken: `false` while more than [`super::MAX_UNSYNCED_BYTES`] wait for a
    /// sync (only with `--fsync batch`; wait for [`Journal::synced`] to change).
    pub fn has_room(&self) -> bool {
        self.core.has_room()
    }

    /// Encodes `input`; it is written at the next [`Journal::end_turn`] (no system call here).
    ///
    /// Fails with [`ServerError::JournalStopped`] once the journal has stopped.
    pub fn record(&mut self, input: JournalInput) -> Result<(), ServerError> {
        self.check()?;
        let handled = self.core.handle(Input::Record(input));
        self.fail_on(handled.map_err(std::io::Error::other))
    }

    /// Writes what was recorded since the last call and asks for a sync per the policy. Returns the
    /// new durable watermark if it advanced at once (`never`, `interval`: durable once written); with
    /// `batch` it advances in [`Journal::handle_synced`].
    ///
    /// `never`, `interval`: one blocking `write` to the page cache (what the kernel's dirty-page
    /// limits allow). `batch`: no system call, unless the sync thread must be woken (a futex).
    pub fn end_turn(&mut self) -> Result<Option<u64>, ServerError> {
        self.input(Input::EndOfTurn)
    }

    /// The sync thread reported `synced` (from [`Journal::synced`]): returns the new durable
    /// watermark if it advanced.
    pub fn handle_synced(&mut self, synced: Synced) -> Result<Option<u64>, ServerError> {
        self.input(Input::Synced { end: synced.end, upto: synced.upto })
    }

    /// When [`Journal::handle_timeout`] wants to run (writing advanced delivery watermarks).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Writes advanced delivery watermarks once [`super::MARKS_TICK`] has passed; returns the new
    /// durable watermark if it advanced.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Option<u64>, ServerError> {
        self.check()?;
        let handled = self.core.handle_timeout(now);
        self.fail_on(handled.map_err(std::io::Error::other))?;
        self.drive()
    }

    /// Writes the final watermarks of every tracked user and everything recorded, syncs
    /// (`sync_all`), stops the sync thread and waits for it.
    ///
    /// **Cancel-safety**: if dropped while waiting, the sync thread still finishes on its own.
    pub async fn close(mut self) -> Result<(), ServerError> {
        let written = self.input(Input::Close);
        let closed = match self.syncer.take() {
            Some(syncer) => syncer.close().await,
            None => Ok(()),
        };
        written?;
        closed.map_err(|reason| ServerError::JournalStopped(self.stopped_reason().unwrap_or(reason)))?;
        tracing::info!(path = %self.path.display(), "journal closed");
        Ok(())
    }

    fn input(&mut self, input: Input) -> Result<Option<u64>, ServerError> {
        self.check()?;
        let handled = self.core.handle(input);
        self.fail_on(handled.map_err(std::io::Error::other))?;
        self.drive()
    }

    /// Carries out the core's outputs; returns the last durable watermark among them.
    fn drive(&mut self) -> Result<Option<u64>, ServerError> {
        let mut durable = None;
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Write { end, upto } => {
                    match (&self.syncer, self.policy) {
                        // The sync thread writes it, just before the sync that covers it.
                        (Some(syncer), FsyncPolicy::EveryBatch) => syncer.submit(self.core.buffer()),
                        _ => {
                            self.prealloc.reserve(&self.file, end);
                            let written = (&*self.file).write_all(self.core.buffer());
                            self.fail_on(written)?;
                        }
                    }
                    tracing::trace!(end, upto, "journal: written");
                    let handled = self.core.handle(Input::Written);
                    self.fail_on(handled.map_err(std::io::Error::other))?;
                }
                Output::Sync { end, upto } => {
                    if let Some(syncer) = &self.syncer {
                        syncer.request(Synced { end, upto });
                    }
                }
                Output::Durable { upto } => {
                    // A failed sync (interval) means nothing more is durable, even if written.
                    self.check()?;
                    durable = Some(upto);
                }
            }
        }
        Ok(durable)
    }

    fn check(&self) -> Result<(), ServerError> {
        match self.stopped.get() {
            Some(reason) => Err(ServerError::JournalStopped(reason.clone())),
            None => Ok(()),
        }
    }

    /// Stops the journal if `result` failed: nothing more is written or becomes durable.
    fn fail_on<T>(&self, result: Result<T, std::io::Error>) -> Result<T, ServerError> {
        result.map_err(|e| {
            let reason = format!("{}: {e}", self.path.display());
            tracing::error!(path = %self.path.display(), error = %e, "journal write failed: the journal stopped");
            let reason = self.stopped.get_or_init(|| reason).clone();
            ServerError::JournalStopped(reason)
        })
    }
}

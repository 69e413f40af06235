//! The owner's side of the journal: handing it each turn's records, writing them at the end of the
//! turn, and turning its reports (synced, ticked, stopped, failed) into the router's `Durable` and
//! `StorageFailed` inputs. A journal that has stopped records why once; nothing after that can
//! become durable, so nothing after it is acknowledged.

use std::time::Instant;

use super::Owner;
use crate::ServerError;
use crate::journal::{Journal, JournalInput, Synced};
use crate::router::Input;

impl Owner {
    /// Hands `input` to the journal (encoded now, written at the end of the turn); if the journal
    /// has stopped, records why (the run loop then reports the failure to the router) and drops the
    /// input: it can never become durable.
    pub(super) fn journal(&mut self, input: JournalInput) {
        if self.failure.is_some() {
            return;
        }
        if let Some(journal) = &mut self.journal
            && let Err(e) = journal.record(input)
        {
            self.failure = Some(journal.stopped_reason().unwrap_or_else(|| e.to_string()));
        }
    }

    /// Writes what the journal was given this turn (one `write`); under `--fsync never` or
    /// `interval` that makes it durable at once, and the router is told so. Returns whether the
    /// durable watermark advanced (the turn then goes round again to release what waited).
    pub(super) fn write_journal(&mut self, now: Instant) -> bool {
        if self.failure.is_some() {
            return false;
        }
        let Some(journal) = &mut self.journal else { return false };
        match journal.end_turn() {
            Ok(Some(upto)) => {
                self.router.handle(now, Input::Durable { upto });
                true
            }
            Ok(None) => false,
            Err(e) => {
                self.failure = Some(journal.stopped_reason().unwrap_or_else(|| e.to_string()));
                false
            }
        }
    }

    /// Whether the owner may take more input: not while the journal has too much waiting for a sync.
    pub(in crate::server) fn journal_has_room(&self) -> bool {
        self.journal.as_ref().is_none_or(Journal::has_room)
    }

    /// When the journal wants [`Owner::journal_tick`] (writing delivery watermarks).
    pub(in crate::server) fn journal_timeout(&self) -> Option<Instant> {
        self.journal.as_ref().and_then(Journal::poll_timeout)
    }

    /// The journal's deadline passed: it writes advanced delivery watermarks.
    pub(in crate::server) async fn journal_tick(&mut self, now: Instant) -> Result<(), ServerError> {
        if self.failure.is_some() {
            return Ok(());
        }
        let Some(journal) = &mut self.journal else { return Ok(()) };
        let advanced = journal.handle_timeout(now);
        self.advanced(now, advanced).await
    }

    /// Why the journal stopped, if it did and the router was not told yet.
    pub(in crate::server) fn failure(&self) -> Option<String> {
        self.failure.clone()
    }

    /// The journal's watermark ended: its writer stopped.
    pub(in crate::server) fn journal_stopped(&mut self) {
        if self.failure.is_none() {
            let reason = self.journal.as_ref().and_then(Journal::stopped_reason);
            self.failure = Some(reason.unwrap_or_else(|| "the journal writer exited".into()));
        }
    }

    /// The journal's sync thread made `synced` durable: release what waited for it.
    pub(in crate::server) async fn synced(&mut self, now: Instant, synced: Synced) -> Result<(), ServerError> {
        if self.failure.is_some() {
            return Ok(());
        }
        let Some(journal) = &mut self.journal else { return Ok(()) };
        let advanced = journal.handle_synced(synced);
        self.advanced(now, advanced).await
    }

    /// What the journal said after a tick or a sync: a new durable watermark (the router releases
    /// what waited for it), nothing, or a failure (kept for the router); then the turn ends.
    async fn advanced(&mut self, now: Instant, advanced: Result<Option<u64>, ServerError>) -> Result<(), ServerError> {
        match advanced {
            Ok(Some(upto)) => self.router.handle(now, Input::Durable { upto }),
            Ok(None) => return Ok(()),
            Err(e) => {
                let stopped = self.journal.as_ref().and_then(Journal::stopped_reason);
                self.failure = Some(stopped.unwrap_or_else(|| e.to_string()));
            }
        }
        self.perform().await?;
        self.end_turn(now).await
    }

    /// Storage failed: the router refuses what was not durable.
    pub(in crate::server) async fn storage_failed(&mut self, now: Instant, reason: String) -> Result<(), ServerError> {
        self.router.handle(now, Input::StorageFailed { reason });
        self.perform().await?;
        self.end_turn(now).await
    }
}

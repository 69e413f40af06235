//! The owner task's state: it feeds the [`Router`] and carries out its outputs, moving bytes only.
//!
//! Every decision (who receives what, when the stream is published, who is too slow, how shutdown
//! goes) is the router's; the owner encodes frames, appends to the shared stream, queues private
//! frames, journals, and reports back the facts the router needs (a full queue, readers' positions).
//!
//! A turn: the inputs of one batch are applied (`apply`), then `end_turn` asks the router to publish
//! what is due (the stream is sealed), hands the turn's private frames to the writers (a frame tagged
//! `early` may be written before notices that wait unpublished; any other follows everything
//! appended), and only then announces the sealed stream to the writers, closes what must be
//! closed, samples the readers' lag every [`LAG_CHECK_EVERY`] bytes of stream, and reports full
//! queues, until nothing more happens.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chat_core::ErrorCode;
use chat_transport::TransportError;
use chat_transport::codec::encode_frame_into;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tracing::{info, warn};

use super::accounts_file::AccountsFile;
use super::connection::{ConnEntry, Inbound};
use crate::ServerError;
use crate::fanout::private_queue::Private;
use crate::fanout::stream::Stream;
use crate::journal::{Journal, JournalInput, Synced};
use crate::protocol::{ServerFrame, v1};
use crate::router::{ConnId, Input, Output, Router};

mod storage;

/// Stream growth between two reports of every reader's position to the router.
const LAG_CHECK_EVERY: u64 = 256 * 1024;
/// Bytes reserved at a time for encoding private frames.
const SCRATCH_BYTES: usize = 64 * 1024;
/// How long shutdown waits for the journal to make what was accepted durable.
const DURABLE_GRACE: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch, now (0 if the system clock is before 1970).
fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The owner task's state: the router, the journal, the shared stream and the connection table.
pub(super) struct Owner {
    pub(super) router: Router,
    journal: Option<Journal>,
    conns: HashMap<ConnId, ConnEntry>,
    pub(super) stream: Stream,
    /// Private frames produced during this turn, in order; handed to the writers at its end.
    pending: Vec<(ConnId, Private)>,
    closing: Vec<ConnId>,
    /// Connections whose private queue refused a frame this turn.
    full: Vec<ConnId>,
    /// Whether a connection was kicked since the last check.
    kicked: bool,
    checked_at: u64,
    scratch: BytesMut,
    /// Why the journal stopped, once it has (reported to the router by the run loop).
    failure: Option<String>,
    /// Connection tasks still in their handshake (not yet `Open`), to abort if the router closes them.
    handshaking: HashMap<ConnId, AbortHandle>,
    /// Refusals the router decided for connections just accepted.
    refused: Vec<(ConnId, ErrorCode, String)>,
    /// The accounts file, and the checking of credentials.
    pub(super) accounts: AccountsFile,
    /// Where checked credentials come back.
    inbound: mpsc::Sender<Inbound>,
    /// Cluster mode (see `server::cluster`): the connections this owner ended itself (kicked, with
    /// the code; closed), for the cluster shell to announce through the shared log.
    ended: Option<Vec<(ConnId, Option<ErrorCode>)>>,
    /// Cluster mode: the session tokens of each connection that logged in here, put into its
    /// `Welcome` (the shared log carries only the tokens' hashes, so the router's `Welcome` has none):
    /// the one drawn for a new session, and the one the client presented to resume.
    tokens: HashMap<ConnId, (String, Option<String>)>,
}

impl Owner {
    pub(super) fn new(
        router: Router,
        journal: Option<Journal>,
        accounts: AccountsFile,
        inbound: mpsc::Sender<Inbound>,
    ) -> Self {
        Owner {
            accounts,
            inbound,
            router,
            journal,
            conns: HashMap::new(),
            stream: Stream::new(),
            pending: Vec::new(),
            closing: Vec::new(),
            full: Vec::new(),
            kicked: false,
            checked_at: 0,
            scratch: BytesMut::new(),
            failure: None,
            handshaking: HashMap::new(),
            refused: Vec::new(),
            ended: None,
            tokens: HashMap::new(),
        }
    }

    /// Cluster mode: from now on, remember the connections this owner ends (see [`Owner::take_ended`]).
    pub(super) fn track_ended(&mut self) {
        self.ended.get_or_insert_with(Vec::new);
    }

    /// Cluster mode: the connections ended since the last call (`Some(code)`: kicked; `None`: closed).
    pub(super) fn take_ended(&mut self) -> Vec<(ConnId, Option<ErrorCode>)> {
        self.ended.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Cluster mode: the tokens to put into `conn`'s `Welcome`: `minted` if it starts a new session,
    /// `presented` if it resumes one.
    pub(super) fn set_tokens(&mut self, conn: ConnId, minted: String, presented: Option<String>) {
        self.tokens.insert(conn, (minted, presented));
    }

    /// Cluster mode: `conn` finished its handshake (the single-server path is [`Owner::apply`]).
    pub(super) fn opened(&mut self, conn: ConnId, entry: ConnEntry) {
        self.handshaking.remove(&conn);
        self.conns.insert(conn, entry);
    }

    /// Cluster mode: `conn`'s task ended.
    pub(super) fn closed(&mut self, conn: ConnId) {
        self.handshaking.remove(&conn);
        self.conns.remove(&conn);
        self.tokens.remove(&conn);
    }

    /// A connection was accepted from `addr`: `Err` with the refusal to send it, or `Ok` to serve it.
    pub(super) async fn accept(
        &mut self,
        now: Instant,
        conn: ConnId,
        addr: IpAddr,
    ) -> Result<Result<(), (ErrorCode, String)>, ServerError> {
        self.router.handle(now, Input::Accepted { conn, addr });
        self.perform().await?;
        Ok(match self.refused.iter().position(|(c, _, _)| *c == conn) {
            Some(i) => {
                let (_, code, message) = self.refused.swap_remove(i);
                Err((code, message))
            }
            None => Ok(()),
        })
    }

    /// A frame `conn`'s reader handed over was applied: it may read one more ahead.
    pub(super) fn applied(&self, conn: ConnId) {
        if let Some(gate) = self.conns.get(&conn).and_then(|e| e.gate.as_ref()) {
            gate.applied();
        }
    }

    /// The task serving `conn` (still in its handshake), so that the router can close it early.
    pub(super) fn serving(&mut self, conn: ConnId, task: AbortHandle) {
        self.handshaking.insert(conn, task);
    }

    /// Applies one report of a connection task.
    pub(super) async fn apply(&mut self, now: Instant, inbound: Inbound) -> Result<(), ServerError> {
        self.router.handle(now, Input::Clock { unix_ms: unix_ms() });
        match inbound {
            Inbound::Open { conn, entry } => {
                self.handshaking.remove(&conn);
                let (legacy, resumable) = (entry.legacy, entry.resumable);
                self.conns.insert(conn, entry);
                self.router.handle(now, Input::Opened { conn });
                if legacy {
                    self.router.handle(now, Input::Legacy { conn });
                } else if !resumable {
                    self.router.handle(now, Input::NoResume { conn });
                }
            }
            Inbound::Frame { conn, frame } => {
                if let Some(input) = Input::from_frame(conn, frame) {
                    self.router.handle(now, input);
                }
                self.applied(conn);
            }
            Inbound::Closed { conn, reason } => {
                self.handshaking.remove(&conn);
                self.conns.remove(&conn);
                self.router.handle(now, Input::Disconnected { conn, reason });
            }
            Inbound::Authenticated { conn, name } => {
                // A changed accounts file (a new password, a new account) is taken into account at once.
                if let Some(names) = self.accounts.refresh(now, true) {
                    self.router.handle(now, Input::Registered { names });
                }
                self.router.handle(now, Input::Authenticated { conn, name });
            }
        }
        self.perform().await
    }

    /// The router's deadline passed.
    pub(super) async fn timeout(&mut self, now: Instant) -> Result<(), ServerError> {
        self.router.handle_timeout(now);
        self.perform().await?;
        self.end_turn(now).await
    }

    /// Ends a turn (see the module documentation).
    pub(super) async fn end_turn(&mut self, now: Instant) -> Result<(), ServerError> {
        if let Some(names) = self.accounts.refresh(now, false) {
            self.router.handle(now, Input::Registered { names });
        }
        loop {
            // Written first, so that the sync starts while the rest of the turn runs.
            self.write_journal(now);
            self.router.handle(now, Input::EndOfTurn);
            self.perform().await?;
            self.hand_over();
            for conn in std::mem::take(&mut self.closing) {
                if let Some(ended) = &mut self.ended {
                    ended.push((conn, None));
                }
                self.tokens.remove(&conn);
                if let Some(entry) = self.conns.remove(&conn) {
                    entry.reader.abort();
                }
                if let Some(task) = self.handshaking.remove(&conn) {
                    task.abort();
                }
            }
            let head = self.stream.head();
            if head >= self.checked_at + LAG_CHECK_EVERY {
                self.checked_at = head;
                let cursors = self.conns.iter().map(|(c, e)| (*c, e.progress.cursor.load(Ordering::Acquire))).collect();
                self.router.handle(now, Input::Lag { head, cursors });
                self.perform().await?;
            }
            // Kicks announce departures: go round again so the router decides when they are published.
            // So does a durable watermark advanced by the journal records this round produced.
            if self.full.is_empty() && !std::mem::take(&mut self.kicked) {
                if self.write_journal(now) {
                    continue;
                }
                return Ok(());
            }
            for conn in std::mem::take(&mut self.full) {
                self.router.handle(now, Input::QueueFull { conn });
            }
            self.perform().await?;
        }
    }

    /// Hands this turn's private frames to the writers (a refused frame marks its queue full), *then*
    /// announces the stream sealed so far. In that order: a writer that saw the new head before the
    /// private frames that precede part of it were queued would write those frames after stream
    /// frames that follow them, and the client, which drops a message whose sequence number is not
    /// above the last it saw, would lose them.
    fn hand_over(&mut self) {
        for (conn, item) in std::mem::take(&mut self.pending) {
            if let Some(entry) = self.conns.get(&conn)
                && entry.private.try_send(item).is_err()
                && !self.full.contains(&conn)
            {
                self.full.push(conn);
            }
        }
        self.stream.announce();
    }

    /// Carries out everything the router asked for.
    pub(super) async fn perform(&mut self) -> Result<(), ServerError> {
        while let Some(output) = self.router.poll_output() {
            match output {
                Output::Reply { conn, mut frame, early } => {
                    if let ServerFrame::Welcome { session, .. } = &mut frame
                        && session.token.is_empty()
                        && let Some((minted, presented)) = self.tokens.get(&conn)
                    {
                        let token = if session.resumed.is_some() { presented.as_ref() } else { Some(minted) };
                        session.token = token.cloned().unwrap_or_default();
                    }
                    let legacy = self.conns.get(&conn).is_some_and(|e| e.legacy);
                    match self.encode_for(legacy, &frame) {
                        Ok(Some(bytes)) => self.queue(conn, bytes, 0, early),
                        Ok(None) => {}
                        Err(e) => warn!(conn, error = %e, "frame could not be encoded"),
                    }
                }
                Output::Deliver { conns, frame, seq, early } => {
                    let (mut current, mut legacy) = (None, None);
                    for conn in conns {
                        let is_legacy = self.conns.get(&conn).is_some_and(|e| e.legacy);
                        let slot = if is_legacy { &mut legacy } else { &mut current };
                        if slot.is_none() {
                            *slot = Some(self.encode_for(is_legacy, &frame)?);
                        }
                        if let Some(Some(bytes)) = slot {
                            let bytes = bytes.clone();
                            self.queue(conn, bytes, seq, early);
                        }
                    }
                }
                Output::Stream { frame, seq } => self.stream.append(&frame, seq)?,
                Output::Subscribe { conn } => {
                    let from = self.stream.offset();
                    if let Some(entry) = self.conns.get(&conn) {
                        entry.progress.cursor.store(from, Ordering::Release);
                        self.pending.push((conn, Private::Subscribe { from }));
                    }
                }
                Output::Publish => self.stream.seal(),
                Output::Trim { upto } => self.stream.trim(upto),
                Output::Store(stored) => self.journal(JournalInput::Store(stored)),
                Output::Record(record) => self.journal(JournalInput::Record(record)),
                Output::Resumed { conn, name } => {
                    let Some(entry) = self.conns.get(&conn) else { continue };
                    let after = self.router.last_seq();
                    entry.progress.mark.store(after, Ordering::Release);
                    let mark = entry.progress.mark.clone();
                    info!(conn, user = %name, "resumed");
                    self.journal(JournalInput::Rebind { name, mark, after });
                }
                Output::SessionStarted { conn, name, after } => {
                    let Some(entry) = self.conns.get(&conn) else { continue };
                    entry.progress.mark.store(after, Ordering::Release);
                    let mark = entry.progress.mark.clone();
                    info!(conn, user = %name, "joined");
                    self.journal(JournalInput::Join { name, after, mark });
                }
                Output::SessionEnded { conn, name, after, reason } => {
                    info!(conn, user = %name, %reason, "left");
                    self.journal(JournalInput::Leave { name, after, reason });
                }
                // Closed at the end of the turn, once the frames queued for it (a refusal) are handed over.
                Output::Close { conn } => self.closing.push(conn),
                Output::Refuse { conn, code, message } => self.refused.push((conn, code, message)),
                Output::Authenticate { conn, name, credential } => {
                    self.accounts.verify(conn, name, credential, self.inbound.clone())
                }
                Output::Kick { conn, code, reason } => self.kick(conn, code, reason),
                Output::Pause { conn, .. } => {
                    if let Some(gate) = self.conns.get(&conn).and_then(|e| e.gate.as_ref()) {
                        gate.pause();
                    }
                }
                Output::Resume { conn } => {
                    if let Some(gate) = self.conns.get(&conn).and_then(|e| e.gate.as_ref()) {
                        gate.resume();
                    }
                }
            }
        }
        Ok(())
    }

    /// Disconnects `conn` now: drops what is queued, attempts a last `Closing { code, reason }`.
    pub(super) fn kick(&mut self, conn: ConnId, code: ErrorCode, reason: String) {
        self.kicked = true;
        if let Some(ended) = &mut self.ended
            && self.conns.contains_key(&conn)
        {
            ended.push((conn, Some(code)));
        }
        if let Some(task) = self.handshaking.remove(&conn) {
            task.abort();
        }
        if let Some(mut entry) = self.conns.remove(&conn) {
            warn!(conn, %code, "connection kicked");
            entry.reader.abort();
            if let Some(kill) = entry.kill.take() {
                let _ = kill.send((code, reason));
            }
        }
    }

    /// Cluster mode: queues `frame` for `conn` at once (an answer the instance gives by itself).
    pub(super) fn reply_local(&mut self, conn: ConnId, frame: &ServerFrame) {
        let legacy = self.conns.get(&conn).is_some_and(|e| e.legacy);
        match self.encode_for(legacy, frame) {
            Ok(Some(bytes)) => self.queue(conn, bytes, 0, true),
            Ok(None) => {}
            Err(e) => warn!(conn, error = %e, "frame could not be encoded"),
        }
    }

    /// Queues an encoded frame for `conn` for the end of the turn, after the stream position it must
    /// follow: everything appended so far, or only what is published if it may go `early`.
    fn queue(&mut self, conn: ConnId, bytes: Bytes, seq: u64, early: bool) {
        let bpos = if early { self.stream.head() } else { self.stream.offset() };
        self.pending.push((conn, Private::Frame { bytes, seq, bpos }));
    }

    /// Encodes a frame for a connection of protocol version 2, or of version 1 (`legacy`: converted,
    /// or `None` if version 1 has no such frame).
    fn encode_for(&mut self, legacy: bool, frame: &ServerFrame) -> Result<Option<Bytes>, TransportError> {
        if !legacy {
            return self.encode(frame).map(Some);
        }
        let Some(old) = v1::ServerFrame::from_current(frame.clone()) else { return Ok(None) };
        if self.scratch.capacity() - self.scratch.len() < SCRATCH_BYTES / 16 {
            self.scratch.reserve(SCRATCH_BYTES);
        }
        encode_frame_into(&old, &mut self.scratch)?;
        Ok(Some(self.scratch.split().freeze()))
    }

    /// Encodes a frame into the scratch buffer and splits it off: one allocation per
    /// [`SCRATCH_BYTES`] of frames instead of one (or several) per frame.
    fn encode(&mut self, frame: &ServerFrame) -> Result<Bytes, TransportError> {
        if self.scratch.capacity() - self.scratch.len() < SCRATCH_BYTES / 16 {
            self.scratch.reserve(SCRATCH_BYTES);
        }
        encode_frame_into(frame, &mut self.scratch)?;
        Ok(self.scratch.split().freeze())
    }

    /// Lets the journal make everything accepted durable (up to [`DURABLE_GRACE`]), ends every
    /// session (the router decides how), hands the last frames over, and closes the journal.
    pub(super) async fn shutdown(
        &mut self,
        now: Instant,
        synced: Option<&mut watch::Receiver<Synced>>,
    ) -> Result<(), ServerError> {
        if let Some(synced) = synced {
            let caught_up = tokio::time::timeout(DURABLE_GRACE, async {
                self.end_turn(now).await?;
                while self.router.held() > 0 && self.failure.is_none() {
                    let upto = *synced.borrow_and_update();
                    self.synced(now, upto).await?;
                    if self.router.held() > 0 && synced.changed().await.is_err() {
                        self.journal_stopped();
                    }
                }
                Ok::<(), ServerError>(())
            });
            if caught_up.await.is_err() {
                warn!(held = self.router.held(), "the journal did not catch up before shutdown");
            }
        }
        if let Some(reason) = self.failure.take() {
            self.router.handle(now, Input::StorageFailed { reason: reason.clone() });
            self.failure = Some(reason);
        }
        self.router.handle(now, Input::Shutdown);
        self.perform().await?;
        for (conn, item) in std::mem::take(&mut self.pending) {
            if let Some(entry) = self.conns.get(&conn) {
                let _ = entry.private.try_send(item);
            }
        }
        self.stream.announce();
        // A reader with a gate lingers: its client reads the last frames instead of a reset.
        for (_, entry) in self.conns.drain() {
            match &entry.gate {
                Some(gate) => gate.linger(),
                None => entry.reader.abort(),
            }
        }
        for (_, task) in self.handshaking.drain() {
            task.abort();
        }
        if let Some(journal) = self.journal.take() {
            let closed = journal.close().await;
            if self.failure.is_none() {
                closed?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

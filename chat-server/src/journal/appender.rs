//! The journal's sans-IO core: encodes records, decides when bytes are written, when a sync is
//! asked for, and how far the durable watermark goes. It never touches the file, a thread or the
//! clock; [`super::Journal`] carries out its outputs.
//!
//! | input                 | effect                                                                        | outputs |
//! |-----------------------|-------------------------------------------------------------------------------|---------|
//! | `Record(input)`       | encoded into the buffer (a `Leave` first gets its user's final `Consumed`)    | none |
//! | `EndOfTurn`           | the buffer is due                                                              | `Write { end, upto }` if it holds bytes |
//! | `Written`             | the buffer is in the file                                                      | `never`: `Durable`; `interval`: `Durable`, `Sync`; `batch`: `Sync` |
//! | `Synced { end, upto }`| the syncer made bytes `< end` durable                                          | `batch`: `Durable { upto }` if it advanced |
//! | `Close`               | every advanced watermark is encoded                                            | `Write` if there is anything |
//! | `handle_timeout(now)` | every [`MARKS_TICK`]: advanced `Consumed` watermarks are encoded               | `Write` if there is anything |
//!
//! `Durable { upto }` never goes backwards and is emitted only when it advances. `upto` of a
//! `Write` or `Sync` is the highest stored sequence number in the file once those bytes are in.
//! After `Write` the shell must write [`Appender::buffer`] and answer `Written` before anything else.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_core::UserName;
use chat_transport::TransportError;

use super::format::encode_record;
use super::{FsyncPolicy, JournalInput, MARKS_PER_RECORD, MAX_UNSYNCED_BYTES, Record};

/// How often advanced delivery watermarks (`Consumed`) are written (50 ms), besides before each
/// `Leave` and at close.
pub const MARKS_TICK: Duration = Duration::from_millis(50);

/// What the shell tells the appender.
#[derive(Debug)]
pub(crate) enum Input {
    /// A record to append: encoded now, written at the end of the turn.
    Record(JournalInput),
    /// The owner's turn ends: what is encoded is due.
    EndOfTurn,
    /// The bytes of the last `Write` are in the file.
    Written,
    /// The syncer made every byte before `end` durable; it covers stored sequence numbers `<= upto`.
    Synced {
        /// File length synced.
        end: u64,
        /// Highest stored sequence number in those bytes.
        upto: u64,
    },
    /// Shutting down: every advanced watermark is encoded and due.
    Close,
}

/// What the appender asks of the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// Append [`Appender::buffer`] to the file (the file is then `end` bytes long), then `Written`.
    Write {
        /// File length once written.
        end: u64,
        /// Highest stored sequence number in the file once written.
        upto: u64,
    },
    /// Ask the syncer to make the file durable up to byte `end` (covering sequence numbers `<= upto`).
    Sync {
        /// File length to sync.
        end: u64,
        /// Highest stored sequence number in those bytes.
        upto: u64,
    },
    /// Stored sequence numbers `<= upto` are durable under the policy.
    Durable {
        /// The new durable watermark.
        upto: u64,
    },
}

/// A logged-in user whose deliveries are being watermarked.
#[derive(Debug)]
struct Tracked {
    /// Highest sequence number written to the user's socket (updated by its connection's writer task).
    mark: Arc<AtomicU64>,
    /// Highest watermark already encoded.
    written: u64,
}

/// The sans-IO state of the journal's write path (see the module docs).
#[derive(Debug)]
pub(crate) struct Appender {
    policy: FsyncPolicy,
    /// Encoded records not yet written.
    buf: Vec<u8>,
    /// Highest `Store` sequence number encoded.
    last_store: u64,
    /// File length once everything handed to `Write` so far is in.
    written_end: u64,
    /// `Write` emitted, `Written` not yet received: the buffer must not change.
    writing: bool,
    /// File length the syncer last reported durable.
    synced_end: u64,
    /// The durable watermark last emitted (or recovered).
    durable: u64,
    tracked: BTreeMap<UserName, Tracked>,
    /// When advanced watermarks are next encoded.
    next_marks: Instant,
    outputs: VecDeque<Output>,
}

impl Appender {
    /// A core for a file of `end` bytes, all durable, whose highest stored sequence number is `last_store`.
    pub(crate) fn new(now: Instant, policy: FsyncPolicy, end: u64, last_store: u64) -> Self {
        Appender {
            policy,
            buf: Vec::with_capacity(64 * 1024),
            last_store,
            written_end: end,
            writing: false,
            synced_end: end,
            durable: last_store,
            tracked: BTreeMap::new(),
            next_marks: now + MARKS_TICK,
            outputs: VecDeque::new(),
        }
    }

    /// The bytes a `Write` asks for.
    pub(crate) fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes written but not yet reported synced.
    pub(crate) fn unsynced(&self) -> u64 {
        self.written_end.saturating_sub(self.synced_end)
    }

    /// Whether more may be recorded: with `batch`, at most [`MAX_UNSYNCED_BYTES`] written and not
    /// yet synced (the other policies do not wait for syncs: the kernel's dirty-page limits bound them).
    pub(crate) fn has_room(&self) -> bool {
        self.policy != FsyncPolicy::EveryBatch || self.unsynced() <= MAX_UNSYNCED_BYTES
    }

    /// The durable watermark.
    pub(crate) fn durable(&self) -> u64 {
        self.durable
    }

    /// Applies one input. Fails only if a record cannot be encoded (over the frame size limit).
    pub(crate) fn handle(&mut self, input: Input) -> Result<(), TransportError> {
        match input {
            Input::Record(input) => self.record(input)?,
            Input::EndOfTurn => self.due(),
            Input::Written => {
                debug_assert!(self.writing, "Written without Write");
                self.writing = false;
                self.buf.clear();
                let (end, upto) = (self.written_end, self.last_store);
                if self.policy != FsyncPolicy::EveryBatch {
                    self.advance(upto);
                }
                if self.policy != FsyncPolicy::Never {
                    self.outputs.push_back(Output::Sync { end, upto });
                }
            }
            Input::Synced { end, upto } => {
                self.synced_end = self.synced_end.max(end);
                if self.policy == FsyncPolicy::EveryBatch {
                    self.advance(upto);
                }
            }
            Input::Close => {
                self.encode_marks()?;
                self.due();
            }
        }
        Ok(())
    }

    /// When [`Appender::handle_timeout`] wants to run: only while someone's deliveries are tracked.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (!self.tracked.is_empty()).then_some(self.next_marks)
    }

    /// Encodes advanced watermarks once [`MARKS_TICK`] has passed, and makes them due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), TransportError> {
        if now < self.next_marks {
            return Ok(());
        }
        self.next_marks = now + MARKS_TICK;
        self.encode_marks()?;
        self.due();
        Ok(())
    }

    /// The next thing to do.
    #[must_use]
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Emits `Write` for the buffer, if it holds anything and no write is in progress.
    fn due(&mut self) {
        if self.buf.is_empty() || self.writing {
            return;
        }
        self.writing = true;
        self.written_end += self.buf.len() as u64;
        self.outputs.push_back(Output::Write { end: self.written_end, upto: self.last_store });
    }

    fn advance(&mut self, upto: u64) {
        if upto > self.durable {
            self.durable = upto;
            self.outputs.push_back(Output::Durable { upto });
        }
    }

    fn encode(&mut self, record: &Record) -> Result<(), TransportError> {
        debug_assert!(!self.writing, "a record encoded while its buffer is being written");
        encode_record(record, &mut self.buf)
    }

    fn record(&mut self, input: JournalInput) -> Result<(), TransportError> {
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

    /// Encodes the watermarks that moved since they were last encoded, clamped to the highest stored
    /// sequence number (a connection may write a message before the journal has it). Never backwards.
    fn encode_marks(&mut self) -> Result<(), TransportError> {
        let mut marks = Vec::new();
        for (name, t) in &mut self.tracked {
            let upto = t.mark.load(Ordering::Acquire).min(self.last_store);
            if upto > t.written {
                t.written = upto;
                marks.push((name.clone(), upto));
            }
        }
        for chunk in marks.chunks(MARKS_PER_RECORD) {
            self.encode(&Record::Consumed { marks: chunk.to_vec() })?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "appender_tests.rs"]
mod tests;

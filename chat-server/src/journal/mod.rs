//! The server's persistent log: every message stored (once) and every delivery, appended,
//! checksummed, replayed on start.
//!
//! # File format
//!
//! One file, `DIR/journal.log` (`DIR` = `--data-dir`, default `./chat-data`):
//!
//! ```text
//! offset 0        8
//!        +--------+----------------------------------------------------+-----+
//!        |DCHTLOG1| record 0                                           | ... |
//!        +--------+----------------------------------------------------+-----+
//!
//! record:  +-----------------+-----------------+----------------------------------+
//!          | len: u32 LE     | crc: u32 LE     | payload: len bytes               |
//!          +-----------------+-----------------+----------------------------------+
//!          len <= MAX_FRAME_LEN (256 KiB); crc = CRC-32 (IEEE, crc32fast) of the payload;
//!          payload = chat_transport::codec::encode_payload(&Record)   (see record.rs)
//! ```
//!
//! Records are [`Record`]s: `Start` (once per server start, after recovery), `Join`, `Store`, `Leave`,
//! and `Consumed` watermarks (`(user, upto)`: every message intended for `user` with server sequence
//! `<= upto` was written to its connection). `Consumed` is written once per batch for the users whose
//! watermark advanced, and just before each `Leave`; watermarks never go backwards.
//!
//! # Recovery
//!
//! [`Journal::open`] reads the file sequentially (buffered, never all at once). A bad record (short,
//! length over the limit, CRC mismatch, undecodable) is then classified by scanning forward byte by
//! byte for any position where a whole valid record starts:
//!
//! - none found: a **torn tail** (a crash during a write). The file is truncated at the bad record,
//!   a `warn` is traced and [`Recovered::truncated_bytes`] says how much was dropped;
//! - one found: **corruption in the middle**. [`Journal::open`] fails with
//!   [`ServerError::CorruptJournal`] (`path`, byte `offset`, `reason`) and the server refuses to start;
//!   `chat-cli log verify DIR` gives the full report.
//!
//! (A torn record whose message body happens to contain the bytes of a whole valid frame would be
//! taken for corruption in the middle: the safe side.)
//!
//! # Writing and durability
//!
//! A dedicated OS thread owns the file. [`Journal::send`] hands inputs to it over a bounded channel of
//! [`CHANNEL_CAPACITY`] (65 536) inputs (when it is full, `send` waits: back-pressure on the router).
//! Group commit: the thread waits for one input, takes everything queued (at most [`MAX_BATCH`] =
//! 65 536 inputs), encodes it all plus one `Consumed` record into one buffer, writes it with a single
//! `write_all` and syncs per the policy. Whatever arrives meanwhile is the next batch, so there is no
//! fixed wait and batches grow with the load. With no input it wakes every [`IDLE_TICK`] (50 ms) to
//! write advanced watermarks.
//!
//! After each batch the thread publishes the **durable watermark** ([`Journal::durable`]): the highest
//! stored sequence number that is durable under the policy. The server acknowledges a message
//! (`Sent`) and delivers it to anyone only once the watermark covers it, so nobody ever sees a message
//! that a restart forgets.
//!
//! | [`FsyncPolicy`]      | `--fsync`     | when `sync_data` runs                          | a message is durable once | lost on power failure |
//! |----------------------|---------------|------------------------------------------------|---------------------------|-----------------------|
//! | `EveryBatch` (default) | `batch`     | after every batch write                        | its batch is synced       | nothing acknowledged  |
//! | `Interval(d)`        | `interval:MS` | after a batch once `d` has passed since the last sync, and by a timer so an idle log is synced within `d` | its batch is written | up to `d` |
//! | `Never`              | `never`       | only at [`Journal::close`]                     | its batch is written      | whatever the OS had not flushed |
//!
//! A process crash (not a power failure) loses nothing that reached `write_all` under any policy.
//! `open` always syncs the header and the `Start` record; `close` always ends with `sync_all`.
//! If a write or sync fails (disk full, read-only file system, I/O error) the thread stops at once:
//! nothing more becomes durable, the watermark's sender is dropped (watchers see it end), and every
//! later call returns [`ServerError::JournalStopped`] with the reason. The server then stops
//! acknowledging and exits (see `chat_server::server`).
//!
//! # One server per data directory
//!
//! [`Journal::open`] takes an exclusive lock on `DIR/lock` (`File::try_lock`) and writes its process ID
//! there; a second server on the same directory fails with [`ServerError::Locked`] naming the holder.
//! The lock is released when the journal is closed or the process ends. Readers (`log show`,
//! `log verify`) take no lock: they read a consistent prefix of a live log.

mod appender;
mod format;
mod handle;
pub mod record;
mod recover;
pub(crate) mod replay;
mod syncer;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chat_core::{ChatMessage, UserName};

pub use appender::MARKS_TICK;
pub use format::{FRAME_HEADER_LEN, HEADER_LEN, MAGIC, TornTail};
pub(crate) use format::{Item, Opened, RecordReader, encode_record};
pub use handle::Journal;
pub use record::Record;
pub use syncer::Synced;

use crate::ServerError;

/// Name of the journal file inside the data directory.
pub const JOURNAL_FILE: &str = "journal.log";

/// Default data directory (`--data-dir`).
pub const DEFAULT_DATA_DIR: &str = "chat-data";

/// Default number of messages recovered as history.
pub const DEFAULT_HISTORY: usize = chat_core::buffer::DEFAULT_HISTORY;

/// Most bytes written but not yet synced under `--fsync batch` (8 MiB): past it the server stops
/// taking input until a sync completes (back-pressure when the disk is slower than the clients).
pub const MAX_UNSYNCED_BYTES: u64 = 8 * 1024 * 1024;

/// Most watermarks in one `Consumed` record (keeps each record far below `MAX_FRAME_LEN`).
pub const MARKS_PER_RECORD: usize = 1024;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "lock";

/// When the journal is forced to stable storage (see the module docs). Parsed from and displayed as
/// `batch`, `never` or `interval:MS` (milliseconds, e.g. `interval:100`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// `sync_data` after every batch: nothing acknowledged is lost on power failure.
    #[default]
    EveryBatch,
    /// `sync_data` at most this long after a write (group commit across batches).
    Interval(Duration),
    /// Only at close: fastest; a power failure may lose what the OS had not written back.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = ServerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ServerError::InvalidConfig {
            setting: "fsync",
            value: s.to_owned(),
            expected: "batch, never or interval:MS (milliseconds, e.g. interval:100)",
        };
        match s {
            "batch" => Ok(FsyncPolicy::EveryBatch),
            "never" => Ok(FsyncPolicy::Never),
            _ => {
                let ms = s.strip_prefix("interval:").ok_or_else(bad)?;
                let ms: u64 = ms.parse().map_err(|_| bad())?;
                Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::EveryBatch => f.write_str("batch"),
            FsyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

/// Where and how the journal is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// The data directory (created if missing); the log is `dir/journal.log`.
    pub dir: PathBuf,
    /// When to sync (default [`FsyncPolicy::EveryBatch`]).
    pub fsync: FsyncPolicy,
    /// How many of the last stored messages recovery returns as history (default 1000).
    pub history: usize,
}

impl JournalConfig {
    /// The defaults, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig { dir: dir.into(), fsync: FsyncPolicy::default(), history: DEFAULT_HISTORY }
    }

    /// The journal file: `dir/journal.log`.
    pub fn path(&self) -> PathBuf {
        journal_path(&self.dir)
    }
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig::new(DEFAULT_DATA_DIR)
    }
}

/// The journal file of a data directory.
pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join(JOURNAL_FILE)
}

/// What recovery rebuilt from the log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Highest server sequence number in the log (0 if none): the next message gets `last_seq + 1`.
    pub last_seq: u64,
    /// Highest Lamport counter in the log: the server clock resumes from it.
    pub lamport: u64,
    /// The last `history` stored messages, oldest first.
    pub history: Vec<ChatMessage>,
    /// Bytes of torn tail (or torn header) truncated (0 if the file ended cleanly).
    pub truncated_bytes: u64,
    /// Valid records replayed (not counting the `Start` appended by this open).
    pub records: u64,
}

/// What the router tells the journal.
#[derive(Debug)]
pub enum JournalInput {
    /// A message was accepted; `message.id.seq` is its server sequence number (contiguous from
    /// [`Recovered::last_seq`]` + 1`).
    Store(ChatMessage),
    /// A user logged in.
    Join {
        /// Who.
        name: UserName,
        /// Highest sequence number stored before the login.
        after: u64,
        /// Highest sequence number written to this user's socket so far: the connection's writer
        /// task stores it (`Release`) as it writes; starts at `after`.
        mark: Arc<AtomicU64>,
    },
    /// A user left: its final watermark is written, then the `Leave` record.
    Leave {
        /// Who.
        name: UserName,
        /// Highest sequence number stored before the departure.
        after: u64,
        /// Why (`quit`, `disconnected`, `slow_consumer`, `shutdown`, ...).
        reason: String,
    },
}

/// Takes the data directory's exclusive lock and records this process's ID in it; fails with
/// [`ServerError::Locked`] if another process holds it.
fn lock_dir(dir: &Path) -> Result<std::fs::File, ServerError> {
    use std::io::{Read, Seek, SeekFrom};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = holder.trim().parse().ok();
            return Err(ServerError::Locked { dir: dir.to_path_buf(), pid });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

/// Syncs the directory entry so a newly created journal survives a power failure (Unix only; other
/// platforms do not support opening a directory).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests;

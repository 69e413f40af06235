//! The server's persistent log: every message stored (once) and every delivery, appended,
//! checksummed, replayed on start.
//!
//! # File format
//!
//! One file, `DIR/journal.log` (`DIR` = `--data-dir`, default `./chat-data`):
//!
//! ```text
//! offset 0        8
//!        +--------+----------------------------------------------------+-----+------------------+
//!        |DCHTLOG1| record 0                                           | ... | 00 00 ... 00     |
//!        +--------+----------------------------------------------------+-----+------------------+
//!                                                                       preallocated space (optional)
//!
//! record:  +-----------------+-----------------+----------------------------------+
//!          | len: u32 LE     | crc: u32 LE     | payload: len bytes               |
//!          +-----------------+-----------------+----------------------------------+
//!          len <= MAX_FRAME_LEN (256 KiB); crc = CRC-32 (IEEE, crc32fast) of the payload;
//!          payload = chat_transport::codec::encode_payload(&Record)   (see record.rs)
//! ```
//!
//! **Preallocated space.** Zero bytes from the end of a record to the end of the file are free space,
//! not damage: the writer keeps up to [`PREALLOC_CHUNK`] (1 MiB) of zeros ahead of the records so that
//! appending overwrites existing blocks and `fdatasync` has no file-size change to commit (see
//! `prealloc.rs`). A frame never starts with a zero length, so the zeros cannot hide a record.
//! Readers stop there; a log without them (older servers) reads the same.
//!
//! Records are [`Record`]s: `Start` (once per server start, after recovery), `Join`, `Store`, `Leave`,
//! and `Consumed` watermarks (`(user, upto)`: every message intended for `user` with server sequence
//! `<= upto` was written to its connection). `Consumed` is written every [`MARKS_TICK`] (50 ms) for the
//! users whose watermark advanced, just before each `Leave` and at close; watermarks never go backwards.
//!
//! # Recovery
//!
//! [`Journal::open`] reads the file sequentially (buffered, never all at once). Zeros from a record
//! boundary to the end are preallocated space: the records end there, new ones are appended right
//! after the last one, the zeros are kept. Any other bad record (short, length over the limit, CRC
//! mismatch, undecodable) is then classified by scanning forward byte by byte for any position where
//! a whole valid record starts:
//!
//! - none found: a **torn tail** (a crash during a write). The file is truncated at the bad record,
//!   a `warn` is traced and [`Recovered::truncated_bytes`] says how much was dropped;
//! - one found: **corruption in the middle**. [`Journal::open`] fails with
//!   [`ServerError::CorruptJournal`] (`path`, byte `offset`, `reason`) and the server refuses to start;
//!   `chat-cli log verify DIR` gives the full report.
//!
//! (A torn record whose message body happens to contain the bytes of a whole valid frame would be
//! taken for corruption in the middle: the safe side. So is a run of zeros followed by a whole record:
//! after a power failure, pages written after the last sync may have reached the disk out of order;
//! those records were never acknowledged, since an acknowledgement waits for a sync of every byte
//! before them, but recovery cannot tell them from damage and refuses to start; `log verify` gives
//! the offset. A process crash cannot cause this: the page cache keeps every write.)
//!
//! # Writing and durability
//!
//! The server's owner task owns the journal ([`Journal`]) and encodes records as the router emits
//! them; a sync thread runs `fdatasync`. At the end of each owner turn:
//!
//! ```text
//!  owner task (one turn)                                        sync thread ("chat-journal-sync")
//!  router outputs Store/Join/Leave ─► Journal::record            (encode into a buffer, no syscall)
//!  Journal::end_turn
//!   batch:          hand the turn's bytes + request(end, upto) ─► mailbox ─► write(2) of all handed
//!                   (no syscall; wake the thread only if it waits)            over, fdatasync, publish
//!   never/interval: write(2) the turn's bytes: durable now ─► router Durable{upto}        │
//!  Journal::synced() changes ◄───────────────────────────────── Synced{end, upto} ◄────────┘
//!  Journal::handle_synced ─► batch: router Durable{upto}
//! ```
//!
//! The sans-IO core (`appender.rs`, with exact-output tests) decides what is written, when a sync is
//! asked for and how far the **durable watermark** ([`Journal::durable`]) goes; [`Journal`] carries
//! that out. Group commit comes from the mailbox: it holds the bytes not yet written and only the
//! latest request, so everything handed over while one write and sync run goes out in one piece in
//! the next, with no fixed wait; batches grow with the load, and the next sync starts as soon as the
//! previous one ends. The server acknowledges a message (`Sent`) and delivers it to anyone only once
//! the watermark covers it, so nobody ever sees a message that a restart forgets.
//!
//! | [`FsyncPolicy`]      | `--fsync`     | when `sync_data` runs                          | a message is durable once | lost on power failure |
//! |----------------------|---------------|------------------------------------------------|---------------------------|-----------------------|
//! | `EveryBatch` (default) | `batch`     | as soon as something is handed over (one write and sync at a time, covering everything handed over before it) | a sync covers it | nothing acknowledged |
//! | `Interval(d)`        | `interval:MS` | once `d` has passed since the last sync, if something was written | it is written (same turn) | up to `d` |
//! | `Never`              | `never`       | only at [`Journal::close`]                     | it is written (same turn) | whatever the OS had not flushed |
//!
//! `Consumed` watermarks are written every [`MARKS_TICK`] (50 ms) for the users whose watermark
//! advanced, just before each `Leave`, and at close: a crash may forget up to 50 ms of *deliveries*
//! in `log show`, never a stored message.
//!
//! **Bounds.** The owner's buffer holds at most one turn of records. With `batch`, the owner stops
//! taking input while more than [`MAX_UNSYNCED_BYTES`] (8 MiB) are handed over but not yet synced
//! ([`Journal::has_room`]): back-pressure when the disk is slower than the clients, and the bound
//! of the mailbox. With `never` and `interval` a message does not wait for a sync, and the kernel's
//! dirty-page limits bound the writes; their `write` runs on the owner's thread (usually a copy into
//! the page cache, a few µs per turn; but when the machine has too many dirty pages, its own or other
//! processes', the kernel throttles the writer until writeback catches up, and the whole owner waits:
//! `batch` keeps that wait on the sync thread).
//!
//! A process crash (not a power failure) loses nothing that was written under any policy.
//! `open` always syncs the header and the `Start` record; `close` always ends with `sync_all`.
//! If a write or sync fails (disk full, read-only file system, I/O error) the journal stops at once:
//! nothing more becomes durable, the sync thread ends (the [`Journal::synced`] watch ends), and every
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
mod prealloc;
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

use chat_core::UserName;

pub use appender::MARKS_TICK;
pub use format::{FRAME_HEADER_LEN, HEADER_LEN, MAGIC, TornTail};
pub(crate) use format::{Item, Opened, RecordReader, encode_record};
pub use handle::Journal;
pub use record::{Record, Stored};
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

/// Zero-filled space kept ahead of the log's records, allocated this much at a time (1 MiB; see
/// "Preallocated space" in the module docs).
pub const PREALLOC_CHUNK: u64 = 1024 * 1024;

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
    /// How many offline messages per user recovery keeps (default
    /// [`crate::router::DEFAULT_OFFLINE_MESSAGES`]).
    pub offline_per_user: usize,
}

impl JournalConfig {
    /// The defaults, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::default(),
            history: DEFAULT_HISTORY,
            offline_per_user: crate::router::DEFAULT_OFFLINE_MESSAGES,
        }
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
    /// The router's state: the highest sequence number (the next message gets `last_seq + 1`), the
    /// Lamport counter the server clock resumes from, the last `history` messages, rooms, offline
    /// queues and open sessions.
    pub state: crate::router::RouterState,
    /// Bytes of torn tail (or torn header) truncated (0 if the file ended cleanly).
    pub truncated_bytes: u64,
    /// Valid records replayed (not counting the `Start` appended by this open).
    pub records: u64,
}

/// What the router tells the journal.
#[derive(Debug)]
pub enum JournalInput {
    /// A message was accepted; `message.id.seq` is its server sequence number (contiguous from
    /// the recovered `last_seq + 1`).
    Store(Stored),
    /// Any other record to append as is (sessions, rooms).
    Record(Record),
    /// A resumed session's deliveries are watermarked from its new connection's writer.
    Rebind {
        /// Who.
        name: UserName,
        /// As in `Join`.
        mark: Arc<AtomicU64>,
        /// Highest sequence number stored when the session began (its watermark's floor).
        after: u64,
    },
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
        /// Why (`quit`, `timeout`, `slow_consumer`, ...).
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

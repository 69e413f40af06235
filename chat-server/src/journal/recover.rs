//! Recovery: replays `journal.log` on start, truncates a torn tail, refuses corruption in the middle.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::Recovered;
use super::format::{HEADER_LEN, Item, MAGIC, Opened, RecordReader};
use crate::ServerError;
use crate::router::restore::Restore;

/// Opens (creating if needed) the journal at `path`, replays it and leaves the returned file
/// positioned at the end of its records, ready for appending (before any preallocated zeros, which
/// are kept). The records rebuild the router's state (see `crate::router::restore`), with `history`
/// recent messages and up to `offline_per_user` offline messages per user.
pub(crate) fn recover(path: &Path, history: usize, offline_per_user: usize) -> Result<(File, Recovered), ServerError> {
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    let mut restore = Restore::new(history, offline_per_user);
    let mut records = 0;
    let mut truncated_bytes = 0;
    let mut preallocated = 0;
    let records_end = match RecordReader::open(file.try_clone()?)? {
        Opened::TornHeader { len } => {
            if len > 0 {
                tracing::warn!(path = %path.display(), dropped_bytes = len, "journal: torn header rewritten");
            }
            truncated_bytes = len;
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&MAGIC)?;
            file.sync_all()?;
            HEADER_LEN
        }
        Opened::BadHeader { found } => {
            return Err(ServerError::CorruptJournal {
                path: path.to_path_buf(),
                offset: 0,
                reason: format!("bad header {found:02x?}, expected {MAGIC:02x?} (\"DCHTLOG1\")"),
            });
        }
        Opened::Reader(mut reader) => {
            while let Some(item) = reader.next_item()? {
                match item {
                    Item::Record { record, .. } => {
                        records += 1;
                        restore.apply(&record);
                    }
                    Item::Bad { offset, reason, resume: Some(next), .. } => {
                        return Err(ServerError::CorruptJournal {
                            path: path.to_path_buf(),
                            offset,
                            reason: format!("{reason}; a valid record follows at byte {next}"),
                        });
                    }
                    Item::Bad { offset, reason, resume: None, end } => {
                        truncated_bytes = end - offset;
                        tracing::warn!(
                            path = %path.display(),
                            offset,
                            dropped_bytes = truncated_bytes,
                            reason = %reason,
                            "journal: torn tail truncated"
                        );
                        debug_assert!(offset >= HEADER_LEN);
                        file.set_len(offset)?;
                        file.sync_all()?;
                    }
                }
            }
            preallocated = reader.preallocated();
            reader.records_end()
        }
    };
    file.seek(SeekFrom::Start(records_end))?;
    let recovered = Recovered { state: restore.finish(), truncated_bytes, records };
    tracing::info!(
        path = %path.display(),
        records = recovered.records,
        last_seq = recovered.state.last_seq,
        lamport = recovered.state.lamport,
        history = recovered.state.history.len(),
        sessions = recovered.state.sessions.len(),
        truncated_bytes,
        preallocated,
        "journal recovered"
    );
    Ok((file, recovered))
}

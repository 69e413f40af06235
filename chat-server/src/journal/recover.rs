//! Recovery: replays `journal.log` on start, truncates a torn tail, refuses corruption in the middle.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use chat_core::ChatMessage;

use super::Recovered;
use super::format::{HEADER_LEN, Item, MAGIC, Opened, RecordReader};
use crate::ServerError;
use crate::journal::Record;

/// Opens (creating if needed) the journal at `path`, replays it and leaves the returned file
/// positioned at the end of its records, ready for appending (before any preallocated zeros, which
/// are kept). `history` messages are kept for [`Recovered::history`].
pub(crate) fn recover(path: &Path, history: usize) -> Result<(File, Recovered), ServerError> {
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    let mut state = State { history: VecDeque::new(), keep: history, ..State::default() };
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
                    Item::Record { record, .. } => state.apply(record),
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
    let recovered = Recovered {
        last_seq: state.last_seq,
        lamport: state.lamport,
        history: state.history.into(),
        truncated_bytes,
        records: state.records,
    };
    tracing::info!(
        path = %path.display(),
        records = recovered.records,
        last_seq = recovered.last_seq,
        lamport = recovered.lamport,
        history = recovered.history.len(),
        truncated_bytes,
        preallocated,
        "journal recovered"
    );
    Ok((file, recovered))
}

/// What replay rebuilds.
#[derive(Default)]
struct State {
    last_seq: u64,
    lamport: u64,
    history: VecDeque<ChatMessage>,
    keep: usize,
    records: u64,
}

impl State {
    fn apply(&mut self, record: Record) {
        self.records += 1;
        match record {
            Record::Store { message } => {
                self.last_seq = self.last_seq.max(message.id.seq);
                self.lamport = self.lamport.max(message.lamport.counter);
                if self.keep > 0 {
                    if self.history.len() == self.keep {
                        self.history.pop_front();
                    }
                    self.history.push_back(message);
                }
            }
            // `after` is a stored sequence number too: taking the max guarantees no number is reused.
            Record::Start { after } | Record::Join { after, .. } | Record::Leave { after, .. } => {
                self.last_seq = self.last_seq.max(after);
            }
            Record::Consumed { .. } => {}
        }
    }
}

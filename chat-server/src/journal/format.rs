//! The bytes of `journal.log`: header, record frames, and a streaming reader that tells a torn tail
//! from corruption in the middle (see the diagram in the parent module).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use chat_transport::{MAX_FRAME_LEN, TransportError, decode_payload, encode_payload};

use crate::journal::Record;

/// The 8 bytes every journal starts with.
pub const MAGIC: [u8; 8] = *b"DCHTLOG1";

/// Length of the file header ([`MAGIC`]).
pub const HEADER_LEN: u64 = MAGIC.len() as u64;

/// Bytes before each payload: `u32` LE length, then `u32` LE CRC-32 of the payload.
pub const FRAME_HEADER_LEN: usize = 8;

/// Bytes read at a time while scanning forward for the next valid record.
const SCAN_CHUNK: usize = 64 * 1024;

/// A damaged end of the journal: bytes after the last whole record that no valid record follows
/// (what a crash in the middle of a write leaves behind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Byte offset where the damaged tail starts (= the end of the last whole record).
    pub offset: u64,
    /// Number of bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// Why the bytes at `offset` are not a record.
    pub reason: String,
}

/// Appends one frame (`len`, `crc`, payload) for `record` to `buf`.
pub(crate) fn encode_record(record: &Record, buf: &mut Vec<u8>) -> Result<(), TransportError> {
    let payload = encode_payload(record)?;
    // encode_payload refuses payloads over MAX_FRAME_LEN (256 KiB), so the length fits a u32.
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(())
}

/// Checks a frame header and payload; the error says why they are not a record.
fn check_frame(header: &[u8], payload: &[u8]) -> Result<Record, String> {
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let actual = crc32fast::hash(payload);
    if crc != actual {
        return Err(format!("checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"));
    }
    decode_payload::<Record>(payload).map_err(|e| format!("undecodable record: {e}"))
}

fn frame_len(header: &[u8]) -> u64 {
    u64::from(u32::from_le_bytes([header[0], header[1], header[2], header[3]]))
}

/// One step of [`RecordReader`].
#[derive(Debug)]
pub(crate) enum Item {
    /// A whole, valid record starting at `offset`.
    Record {
        /// Byte offset of the frame.
        offset: u64,
        /// The record.
        record: Record,
    },
    /// Bytes at `offset` are not a valid record.
    Bad {
        /// Byte offset of the bad frame.
        offset: u64,
        /// Why.
        reason: String,
        /// Offset of the next valid record (corruption in the middle; reading resumes there), or
        /// `None` if no valid record follows (a torn tail up to `end`).
        resume: Option<u64>,
        /// End of the file as seen when it was opened.
        end: u64,
    },
}

/// What opening a journal file found in its header.
pub(crate) enum Opened {
    /// A good header: records follow.
    Reader(RecordReader),
    /// Fewer than 8 bytes, all a prefix of [`MAGIC`] (possibly none): a crash while creating the file.
    TornHeader {
        /// File length.
        len: u64,
    },
    /// The file does not start with [`MAGIC`]: not a journal, or damaged at byte 0.
    BadHeader {
        /// The first bytes found.
        found: Vec<u8>,
    },
}

/// Reads records one by one through a `BufReader` (never the whole file at once), up to the file
/// length seen at open (so a log still being appended to reads as a consistent prefix). Zero bytes
/// from a record boundary to that length are preallocated space: the records end there.
pub(crate) struct RecordReader {
    inner: BufReader<File>,
    pos: u64,
    end: u64,
    done: bool,
    payload: Vec<u8>,
    /// Zero bytes found after the last record (preallocated space), once the reader got there.
    zeros: u64,
}

impl RecordReader {
    /// Checks the header of `file` (read from its start).
    pub(crate) fn open(mut file: File) -> io::Result<Opened> {
        let end = file.metadata()?.len();
        file.seek(SeekFrom::Start(0))?;
        let mut inner = BufReader::new(file);
        let mut head = Vec::with_capacity(MAGIC.len());
        inner.by_ref().take(HEADER_LEN).read_to_end(&mut head)?;
        if head.len() < MAGIC.len() && MAGIC.starts_with(&head) {
            return Ok(Opened::TornHeader { len: head.len() as u64 });
        }
        if head != MAGIC {
            return Ok(Opened::BadHeader { found: head });
        }
        Ok(Opened::Reader(RecordReader { inner, pos: HEADER_LEN, end, done: false, payload: Vec::new(), zeros: 0 }))
    }

    /// Where the records end: after the last whole record read (once `next_item` returned `None`
    /// with no damage, the length of the log's contents, before any preallocated zeros).
    pub(crate) fn records_end(&self) -> u64 {
        self.pos
    }

    /// Zero bytes after the last record (preallocated space), found when the reader reached them.
    pub(crate) fn preallocated(&self) -> u64 {
        self.zeros
    }

    /// The next record or damaged region; `None` at the end of the file.
    pub(crate) fn next_item(&mut self) -> io::Result<Option<Item>> {
        if self.done || self.pos >= self.end {
            return Ok(None);
        }
        let offset = self.pos;
        match self.read_frame()? {
            Ok((record, size)) => {
                self.pos += size;
                Ok(Some(Item::Record { offset, record }))
            }
            Err(reason) => {
                if all_zero(&mut self.inner, offset, self.end)? {
                    // Preallocated space (see the parent module): the end of the records, not damage.
                    self.zeros = self.end - offset;
                    self.done = true;
                    return Ok(None);
                }
                let resume = find_next_valid(&mut self.inner, offset + 1, self.end)?;
                match resume {
                    Some(next) => {
                        self.inner.seek(SeekFrom::Start(next))?;
                        self.pos = next;
                    }
                    None => self.done = true,
                }
                Ok(Some(Item::Bad { offset, reason, resume, end: self.end }))
            }
        }
    }

    /// Reads the frame at the cursor: `Ok(Err(reason))` if it is not a valid record.
    fn read_frame(&mut self) -> io::Result<Result<(Record, u64), String>> {
        let remaining = self.end - self.pos;
        if remaining < FRAME_HEADER_LEN as u64 {
            return Ok(Err(format!("short record header ({remaining} of {FRAME_HEADER_LEN} bytes)")));
        }
        let mut header = [0u8; FRAME_HEADER_LEN];
        self.inner.read_exact(&mut header)?;
        let len = frame_len(&header);
        if len > MAX_FRAME_LEN as u64 {
            return Ok(Err(format!("record length {len} exceeds the limit of {MAX_FRAME_LEN} bytes")));
        }
        let present = remaining - FRAME_HEADER_LEN as u64;
        if present < len {
            return Ok(Err(format!("short record ({present} of {len} payload bytes)")));
        }
        self.payload.clear();
        self.inner.by_ref().take(len).read_to_end(&mut self.payload)?;
        if (self.payload.len() as u64) < len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "journal shrank while being read"));
        }
        Ok(check_frame(&header, &self.payload).map(|record| (record, FRAME_HEADER_LEN as u64 + len)))
    }
}

/// Scans `[from, end)` byte by byte for a position where a whole valid record starts (length within
/// the limit and inside the file, CRC matches, payload decodes). Memory stays below
/// `MAX_FRAME_LEN + 2 * SCAN_CHUNK`.
fn find_next_valid<R: Read + Seek>(r: &mut R, from: u64, end: u64) -> io::Result<Option<u64>> {
    r.seek(SeekFrom::Start(from))?;
    // `window` holds the file bytes [base, base + window.len()); the reader sits at its end.
    let mut window: Vec<u8> = Vec::new();
    let mut base = from;
    let mut pos = from;
    let header = FRAME_HEADER_LEN as u64;
    // An empty payload never decodes, so a candidate needs at least header + 1 bytes.
    while pos + header < end {
        let rel = (pos - base) as usize;
        fill(r, &mut window, rel + FRAME_HEADER_LEN)?;
        let len = frame_len(&window[rel..rel + FRAME_HEADER_LEN]);
        if len <= MAX_FRAME_LEN as u64 && pos + header + len <= end {
            let stop = rel + FRAME_HEADER_LEN + len as usize;
            fill(r, &mut window, stop)?;
            if check_frame(&window[rel..rel + FRAME_HEADER_LEN], &window[rel + FRAME_HEADER_LEN..stop]).is_ok() {
                return Ok(Some(pos));
            }
        }
        pos += 1;
        if pos - base >= SCAN_CHUNK as u64 {
            window.drain(..(pos - base) as usize);
            base = pos;
        }
    }
    Ok(None)
}

/// Whether every byte of `[from, end)` is zero (read a chunk at a time; stops at the first other byte).
fn all_zero<R: Read + Seek>(r: &mut R, from: u64, end: u64) -> io::Result<bool> {
    r.seek(SeekFrom::Start(from))?;
    let mut chunk = vec![0u8; SCAN_CHUNK];
    let mut left = end - from;
    while left > 0 {
        let want = left.min(SCAN_CHUNK as u64) as usize;
        r.read_exact(&mut chunk[..want])?;
        if chunk[..want].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        left -= want as u64;
    }
    Ok(true)
}

/// Reads until `window` holds at least `want` bytes (at least a chunk at a time).
fn fill<R: Read>(r: &mut R, window: &mut Vec<u8>, want: usize) -> io::Result<()> {
    if window.len() >= want {
        return Ok(());
    }
    let need = want - window.len();
    let got = r.by_ref().take(need.max(SCAN_CHUNK) as u64).read_to_end(window)?;
    if got < need {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "journal shrank while being scanned"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn scan_finds_a_record_after_garbage_and_not_in_garbage_alone() {
        let mut bytes = vec![0xAB; 100_000];
        let at = bytes.len() as u64;
        encode_record(&Record::Start { after: 7 }, &mut bytes).unwrap_or_else(|e| panic!("{e}"));
        let end = bytes.len() as u64;
        let mut r = Cursor::new(bytes.clone());
        assert_eq!(find_next_valid(&mut r, 1, end).unwrap_or_else(|e| panic!("{e}")), Some(at));
        let mut r = Cursor::new(bytes);
        assert_eq!(find_next_valid(&mut r, at + 1, end).unwrap_or_else(|e| panic!("{e}")), None);
    }

    #[test]
    fn zero_bytes_after_the_last_record_end_the_records() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("log");
        let mut bytes = MAGIC.to_vec();
        encode_record(&Record::Start { after: 7 }, &mut bytes).unwrap_or_else(|e| panic!("{e}"));
        let end = bytes.len() as u64;
        // Fewer zeros than a frame header, then a whole chunk and more: both are free space.
        for zeros in [3, SCAN_CHUNK + 5] {
            let mut file = bytes.clone();
            file.resize(bytes.len() + zeros, 0);
            std::fs::write(&path, &file).unwrap_or_else(|e| panic!("{e}"));
            let Ok(Opened::Reader(mut reader)) =
                RecordReader::open(File::open(&path).unwrap_or_else(|e| panic!("{e}")))
            else {
                panic!("a good header");
            };
            assert!(matches!(reader.next_item(), Ok(Some(Item::Record { offset: 8, .. }))));
            assert!(matches!(reader.next_item(), Ok(None)));
            assert_eq!((reader.records_end(), reader.preallocated()), (end, zeros as u64));
        }
    }

    #[test]
    fn zeroed_frames_are_not_records() {
        // crc32("") == 0, so an all-zero header has a "matching" checksum; the empty payload must still fail.
        assert!(check_frame(&[0; 8], &[]).is_err());
    }
}

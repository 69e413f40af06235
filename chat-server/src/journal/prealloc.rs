//! Preallocation: the log's writer keeps zero-filled space ahead of the end of the records.
//!
//! Appending to a file changes its size, and `fdatasync` must then commit that metadata through the
//! file system's journal (on ext4, a jbd2 commit that also carries every other process's pending
//! metadata, so a busy disk makes each sync wait for others). Overwriting blocks that already exist
//! and hold data changes no metadata that `fdatasync` must write: the sync only writes the log's own
//! pages. So before a write would go past the space already allocated, the writer extends the file
//! by writing zeros up to the next [`PREALLOC_CHUNK`] boundary (1 MiB; the next sync writes them, once
//! per chunk); the records then overwrite those zeros. Zeros are written rather than `fallocate`d:
//! unwritten extents would turn every first write of a block into a metadata change again.
//!
//! Readers stop at the zeros (see `format.rs`): a frame never starts with a zero length. If the
//! zeros cannot be written (disk full), nothing is preallocated and the record write that follows
//! fails or succeeds on its own, so a full disk stops the journal exactly as without preallocation.

use std::fs::File;

use super::PREALLOC_CHUNK;

/// Zeros written at a time.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// How far the file has space ahead of the records (owned by whoever writes the records).
#[derive(Debug)]
pub(crate) struct Prealloc {
    /// The file's length: records, then zeros.
    allocated: u64,
}

impl Prealloc {
    /// For a file `allocated` bytes long.
    pub(crate) fn new(allocated: u64) -> Self {
        Prealloc { allocated }
    }

    /// Before writing records that end at byte `end`: if that goes past the allocated space, writes
    /// zeros from there up to the chunk boundary at or after `end` (positioned writes: the file's
    /// cursor, where records are appended, does not move). A failure is traced and otherwise
    /// ignored (the record write reports a full disk itself).
    pub(crate) fn reserve(&mut self, file: &File, end: u64) {
        if end <= self.allocated {
            return;
        }
        let target = end.next_multiple_of(PREALLOC_CHUNK);
        match zero_fill(file, self.allocated, target) {
            Ok(()) => self.allocated = target,
            Err(e) => {
                tracing::debug!(error = %e, from = self.allocated, to = target, "journal: cannot preallocate");
                self.allocated = file.metadata().map_or(self.allocated, |m| m.len().max(self.allocated));
            }
        }
    }
}

/// Writes zeros over `[from, to)`.
#[cfg(unix)]
fn zero_fill(file: &File, mut from: u64, to: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    while from < to {
        let n = (to - from).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], from)?;
        from += n as u64;
    }
    Ok(())
}

/// No positioned writes here: no preallocation (records are appended as they come).
#[cfg(not(unix))]
fn zero_fill(_file: &File, _from: u64, _to: u64) -> std::io::Result<()> {
    Err(std::io::Error::other("preallocation needs positioned writes (Unix)"))
}

//! The input history kept across runs: `$XDG_STATE_HOME/chat-cli/history` (by default
//! `~/.local/state/chat-cli/history`), readable by its owner only (mode 0600, its folder 0700).
//!
//! One entry per line, oldest first, with `\` written `\\` and a line break `\n`, so a multi-line
//! message stays one entry. Each entry sent is appended at once (nothing is lost if the process is
//! killed); loading keeps the newest [`MAX_HISTORY`] entries of at most [`MAX_ENTRY`] bytes and
//! rewrites the file when it holds more, and leaving rewrites it too, so it stays under
//! [`MAX_HISTORY`] × [`MAX_ENTRY`] bytes. A longer entry (a big paste) is remembered for the
//! session but not written. A file that cannot be read or written costs the history, never the chat.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::editor::MAX_HISTORY;

/// The longest entry written to the file, in bytes.
pub const MAX_ENTRY: usize = 8 * 1024;

/// The most of the file read when loading: its newest bytes.
const MAX_READ: u64 = (MAX_HISTORY * MAX_ENTRY) as u64;

/// The file's name in `$XDG_STATE_HOME/chat-cli`.
pub const HISTORY_FILE: &str = "history";

/// Where the history lives: `$XDG_STATE_HOME/chat-cli/history` (an absolute `XDG_STATE_HOME` only,
/// as the XDG spec says), else `$HOME/.local/state/chat-cli/history`; `None` without either.
pub fn default_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))?;
    Some(state.join("chat-cli").join(HISTORY_FILE))
}

/// `entry` as one line (without the line break).
pub fn encode(entry: &str) -> String {
    entry.replace('\\', "\\\\").replace('\n', "\\n")
}

/// One line back to its entry (an unknown escape is kept as written).
pub fn decode(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('\\')) => {
                chars.next();
                out.push('\\');
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push('\n');
            }
            (c, _) => out.push(c),
        }
    }
    out
}

/// The history file.
#[derive(Debug, Clone)]
pub struct HistoryFile {
    path: PathBuf,
}

fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn create_folder(path: &Path) -> std::io::Result<()> {
    let Some(dir) = path.parent() else { return Ok(()) };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes an existing file private too (it may predate us).
fn make_private(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

impl HistoryFile {
    /// The history at `path`.
    pub fn new(path: PathBuf) -> Self {
        HistoryFile { path }
    }

    /// The newest entries, oldest first (none if there is no file); rewrites the file if it holds
    /// more than it should.
    pub fn load(&self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.path) else { return Vec::new() };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let skip = len.saturating_sub(MAX_READ);
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(skip)).is_err() || file.take(MAX_READ).read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        if skip > 0 && !lines.is_empty() {
            lines.remove(0); // cut in the middle
        }
        let total = lines.len();
        let mut entries: Vec<String> =
            lines.into_iter().filter(|l| !l.is_empty() && l.len() <= MAX_ENTRY).map(decode).collect();
        let dropped = total != entries.len();
        let excess = entries.len().saturating_sub(MAX_HISTORY);
        entries.drain(..excess);
        if skip > 0 || dropped || excess > 0 {
            let _ = self.save(&entries);
        }
        entries
    }

    /// Appends one entry (not written if blank or longer than [`MAX_ENTRY`]).
    pub fn append(&self, entry: &str) -> std::io::Result<()> {
        let line = encode(entry);
        if entry.trim().is_empty() || line.len() > MAX_ENTRY {
            return Ok(());
        }
        create_folder(&self.path)?;
        let mut file = private_options().create(true).append(true).open(&self.path)?;
        make_private(&file)?;
        file.write_all(format!("{line}\n").as_bytes())
    }

    /// Rewrites the file with `entries` (the newest [`MAX_HISTORY`] that fit), atomically.
    pub fn save(&self, entries: &[String]) -> std::io::Result<()> {
        create_folder(&self.path)?;
        let mut text = String::new();
        let kept: Vec<String> = entries.iter().map(|e| encode(e)).filter(|l| l.len() <= MAX_ENTRY).collect();
        for line in &kept[kept.len().saturating_sub(MAX_HISTORY)..] {
            text.push_str(line);
            text.push('\n');
        }
        let tmp = self.path.with_extension("tmp");
        let mut file = private_options().create(true).write(true).truncate(true).open(&tmp)?;
        make_private(&file)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_round_trip_line_breaks_and_backslashes_included() {
        for entry in ["plain", "two\nlines", "a \\n that is not a break", "\\", "end\\"] {
            assert_eq!(decode(&encode(entry)), entry);
            assert!(!encode(entry).contains('\n'));
        }
    }

    #[test]
    fn the_file_is_private_bounded_and_kept_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = HistoryFile::new(dir.path().join("state").join("chat-cli").join(HISTORY_FILE));
        assert!(file.load().is_empty(), "no file yet");
        file.append("hello").unwrap();
        file.append("two\nlines").unwrap();
        file.append("   ").unwrap();
        file.append(&"x".repeat(MAX_ENTRY + 1)).unwrap();
        assert_eq!(file.load(), ["hello", "two\nlines"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&file.path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = fs::metadata(file.path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
        for i in 0..MAX_HISTORY + 5 {
            file.append(&format!("line {i}")).unwrap();
        }
        let loaded = file.load();
        assert_eq!(loaded.len(), MAX_HISTORY);
        assert_eq!(loaded.last().unwrap(), &format!("line {}", MAX_HISTORY + 4));
        let lines = fs::read_to_string(&file.path).unwrap().lines().count();
        assert_eq!(lines, MAX_HISTORY, "loading rewrote the file to its bound");
    }

    #[test]
    fn a_hostile_file_is_read_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let mut junk = vec![b'y'; MAX_READ as usize + 100];
        junk.extend_from_slice(b"\nlast\n\xff\xfe\n");
        fs::write(&path, junk).unwrap();
        let loaded = HistoryFile::new(path).load();
        assert_eq!(loaded, ["last", "\u{fffd}\u{fffd}"], "an oversized line is skipped, bad UTF-8 replaced");
    }
}

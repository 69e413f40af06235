//! The line mode on a terminal (`--plain`): a `> ` prompt with the shared [`Editor`], and output
//! printed above it.
//!
//! The terminal stays in raw mode for the whole session, so every key reaches the editor at once
//! and Enter sends the line whatever its length (up to the editor's bound): nothing sits in the
//! kernel's 4 KiB line buffer. A paste arrives as typed keys, so each line break in it sends a line
//! (as if typed, and as with a pipe). The prompt shows the part of a long line around the cursor;
//! once sent, the line is printed whole above the new prompt. Ctrl-C, Ctrl-D on an empty line,
//! and the end of the key stream close the line stream: the session leaves.
//!
//! The prompt task and the [`Sink`] share the prompt behind a mutex held only while a line is
//! written, never across an `.await`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crossterm::event::{Event, EventStream};
use tokio::sync::mpsc;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::complete::Vocabulary;
use super::editor::{Edit, Editor};
use super::history::HistoryFile;
use crate::input::Line;
use crate::render::Sink;

/// The prompt.
pub const PROMPT: &str = "> ";

/// The prompt line's state.
struct Prompt {
    editor: Editor,
    width: u16,
    /// A one-off message shown in place of the prompt until the next key (an input over its bound).
    alert: Option<&'static str>,
}

/// The part of `text` to show in `room` columns so that the cursor (a byte index) is visible, and
/// the cursor's column in it.
pub fn window(text: &str, cursor: usize, room: usize) -> (String, usize) {
    let room = room.max(2);
    // Back from the cursor while the text before it leaves one column for the cursor: only what is
    // shown is looked at, so a long line costs no more than a short one.
    let (mut start, mut col) = (cursor, 0);
    for (i, g) in text[..cursor].grapheme_indices(true).rev() {
        if col + g.width() >= room {
            break;
        }
        col += g.width();
        start = i;
    }
    let mut shown = text[start..cursor].to_string();
    let mut used = col;
    for g in text[cursor..].graphemes(true) {
        if used + g.width() >= room {
            break;
        }
        used += g.width();
        shown.push_str(g);
    }
    (shown, col)
}

impl Prompt {
    /// Writes the prompt line over the current line.
    fn draw(&self, out: &mut impl Write) {
        let room = usize::from(self.width).saturating_sub(PROMPT.len());
        let _ = write!(out, "\r\x1b[2K");
        if let Some(alert) = self.alert {
            let _ = write!(out, "{alert}");
        } else {
            let (shown, col) = window(self.editor.text(), self.editor.cursor(), room);
            let _ = write!(out, "{PROMPT}{shown}\r");
            let col = PROMPT.len() + col;
            if col > 0 {
                let _ = write!(out, "\x1b[{col}C");
            }
        }
        let _ = out.flush();
    }
}

/// Prints lines above the prompt.
struct PromptSink(Arc<Mutex<Prompt>>);

impl Sink for PromptSink {
    fn line(&mut self, line: String) {
        let prompt = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        // Raw mode: a line feed does not return the carriage by itself.
        let _ = write!(out, "\r\x1b[2K{}\r\n", line.replace('\n', "\r\n"));
        prompt.draw(&mut out);
    }
}

/// Whether another terminal event can be read at once. (A zero timeout would not look at all with
/// crossterm's poll(2) source; one microsecond is a poll(2) that does not wait.)
pub fn more_waiting() -> bool {
    crossterm::event::poll(std::time::Duration::from_micros(1)).unwrap_or(false)
}

/// Starts the prompt task (the terminal must be in raw mode already); returns the sink to print
/// through and the task's handle. Lines go to `tx`; sent lines are appended to `history`.
pub fn start(tx: mpsc::Sender<Line>, history: Option<HistoryFile>) -> (Box<dyn Sink>, tokio::task::AbortHandle) {
    let entries = history.as_ref().map(HistoryFile::load).unwrap_or_default();
    let width = crossterm::terminal::size().map(|(w, _)| w).ok().filter(|&w| w > 0).unwrap_or(80);
    let prompt = Arc::new(Mutex::new(Prompt { editor: Editor::new(false).with_history(entries), width, alert: None }));
    prompt.lock().unwrap_or_else(|e| e.into_inner()).draw(&mut std::io::stdout().lock());
    let task = tokio::spawn(read_keys(prompt.clone(), tx, history));
    (Box::new(PromptSink(prompt)), task.abort_handle())
}

async fn read_keys(prompt: Arc<Mutex<Prompt>>, tx: mpsc::Sender<Line>, history: Option<HistoryFile>) {
    let mut events = EventStream::new();
    let words = Vocabulary::commands();
    loop {
        let next = std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut events), cx));
        let event = match next.await {
            Some(Ok(event)) => event,
            None | Some(Err(_)) => return,
        };
        let edit = {
            let mut p = prompt.lock().unwrap_or_else(|e| e.into_inner());
            p.alert = None;
            let edit = match event {
                Event::Key(key) => p.editor.handle_key(key, &words),
                Event::Paste(text) => p.editor.paste(&text),
                Event::Resize(width, _) => {
                    p.width = if width > 0 { width } else { 80 };
                    Edit::Changed
                }
                _ => Edit::Nothing,
            };
            let mut out = std::io::stdout().lock();
            match &edit {
                Edit::Submit(line) => {
                    let _ = write!(out, "\r\x1b[2K{PROMPT}{line}\r\n");
                    p.draw(&mut out);
                }
                Edit::Eof | Edit::Interrupt => {
                    let _ = write!(out, "\r\x1b[2K");
                    let _ = out.flush();
                }
                Edit::TooLong => {
                    p.alert = Some("! the line is at its limit (64 KiB): press a key");
                    p.draw(&mut out);
                }
                // Keys already waiting (a paste) are taken first, then the line drawn once.
                Edit::Changed if !more_waiting() => p.draw(&mut out),
                Edit::Changed | Edit::Nothing => {}
            }
            edit
        };
        match edit {
            Edit::Submit(line) => {
                if let Some(history) = &history {
                    let _ = history.append(&line);
                }
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
            Edit::Eof | Edit::Interrupt => return,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_shows_the_part_around_the_cursor() {
        assert_eq!(window("hello", 5, 10), ("hello".to_string(), 5));
        assert_eq!(window("hello", 2, 10), ("hello".to_string(), 2));
        let long = "abcdefghijklmnopqrstuvwxyz";
        assert_eq!(window(long, long.len(), 10), ("rstuvwxyz".to_string(), 9), "the end, with the cursor after it");
        assert_eq!(window(long, 0, 10), ("abcdefghi".to_string(), 0));
        assert_eq!(window("李李李李李李", 18, 7), ("李李李".to_string(), 6), "wide characters count twice");
    }
}

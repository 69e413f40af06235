//! The input line editor of both terminal front ends (the full-screen client and `--plain`): a
//! bounded text with a cursor, readline keys, history and Tab completion. Sans-IO: keys in,
//! [`Edit`] out; the front ends draw [`Editor::text`] and [`Editor::cursor`] themselves.
//!
//! | key                                   | does                                                      |
//! |---------------------------------------|-----------------------------------------------------------|
//! | a character, a paste                  | inserts it (refused past [`MAX_INPUT`] bytes: [`Edit::TooLong`]) |
//! | Enter, Ctrl-J (a line feed)           | [`Edit::Submit`] the text (kept in the history if not blank) |
//! | Alt-Enter (multi-line editors only)   | inserts a line break                                      |
//! | Left / Right, Ctrl-B / Ctrl-F         | moves by one character (grapheme)                          |
//! | Ctrl-A / Ctrl-E                       | start / end of the line                                   |
//! | Backspace / Delete, Ctrl-H            | deletes before / under the cursor                         |
//! | Ctrl-W, Ctrl-U, Ctrl-K                | deletes the word before, to the line's start, to its end   |
//! | Up / Down                             | older / newer history entry (the draft is kept)           |
//! | Tab                                   | completes the word before the cursor; again: the next candidate |
//! | Ctrl-D on an empty line, Ctrl-C       | [`Edit::Eof`], [`Edit::Interrupt`]                        |
//!
//! Pasted text has `\r\n` and `\r` made `\n`, tabs made spaces, and every other character that
//! `safe_text` would escape (controls, bidi and invisible characters) is dropped, typed or pasted:
//! the input line never holds anything that could drive the terminal. A single-line editor turns
//! line breaks into spaces.

use chat_core::MAX_BODY_LEN;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use unicode_segmentation::UnicodeSegmentation;

use super::complete::{Completion, Vocabulary};
use crate::safe_text::is_unsafe;

/// Most bytes the input may hold: a body at its limit plus room for a command (`/msg NAME `).
pub const MAX_INPUT: usize = MAX_BODY_LEN + 4096;

/// Most history entries kept in memory (the file keeps as many, see `history`).
pub const MAX_HISTORY: usize = 1000;

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The text or the cursor changed (redraw).
    Changed,
    /// Nothing to do (an unbound key, Tab with no candidate).
    Nothing,
    /// Enter: this text is to be sent or run.
    Submit(String),
    /// The insertion would make the input longer than [`MAX_INPUT`]; nothing was inserted.
    TooLong,
    /// Ctrl-D on an empty line: the end of input.
    Eof,
    /// Ctrl-C.
    Interrupt,
}

/// An input line.
#[derive(Debug, Clone, Default)]
pub struct Editor {
    text: String,
    /// Byte index into `text`, always at a grapheme boundary.
    cursor: usize,
    multi_line: bool,
    history: Vec<String>,
    /// Which history entry is shown (`None`: the draft).
    browsing: Option<usize>,
    draft: String,
    completion: Option<Completion>,
}

fn is_word_break(c: char) -> bool {
    c.is_whitespace() || c == ','
}

impl Editor {
    /// An empty editor; `multi_line` allows line breaks (Alt-Enter, pastes).
    pub fn new(multi_line: bool) -> Self {
        Editor { multi_line, ..Editor::default() }
    }

    /// Starts with these history entries (oldest first; only the newest [`MAX_HISTORY`] are kept).
    pub fn with_history(mut self, entries: Vec<String>) -> Self {
        let skip = entries.len().saturating_sub(MAX_HISTORY);
        self.history = entries.into_iter().skip(skip).collect();
        self
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, a byte index into [`Editor::text`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The history, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Handles one key; `words` are the completion candidates.
    pub fn handle_key(&mut self, key: KeyEvent, words: &Vocabulary) -> Edit {
        if key.kind == KeyEventKind::Release {
            return Edit::Nothing;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if key.code != KeyCode::Tab {
            self.completion = None;
        }
        match key.code {
            KeyCode::Char('c') if ctrl => Edit::Interrupt,
            // A line feed: what raw mode reads for `\n` (a paste of text, a program typing).
            KeyCode::Char('j') if ctrl => self.submit(),
            KeyCode::Char('d') if ctrl && self.text.is_empty() => Edit::Eof,
            KeyCode::Char('d') if ctrl => self.delete_forward(),
            KeyCode::Char('a') if ctrl => self.move_to(self.line_start()),
            KeyCode::Char('e') if ctrl => self.move_to(self.line_end()),
            KeyCode::Char('b') if ctrl => self.move_to(self.prev_boundary()),
            KeyCode::Char('f') if ctrl => self.move_to(self.next_boundary()),
            KeyCode::Char('h') if ctrl => self.delete_back(),
            KeyCode::Char('w') if ctrl => self.delete_range(self.word_start(), self.cursor),
            KeyCode::Char('u') if ctrl => self.delete_range(self.line_start(), self.cursor),
            KeyCode::Char('k') if ctrl => self.delete_range(self.cursor, self.line_end()),
            KeyCode::Char(_) if ctrl => Edit::Nothing,
            KeyCode::Char(c) if is_unsafe(c) => Edit::Nothing,
            KeyCode::Char(c) => self.insert(c.encode_utf8(&mut [0; 4])),
            KeyCode::Enter if alt && self.multi_line => self.insert("\n"),
            KeyCode::Enter => self.submit(),
            KeyCode::Backspace => self.delete_back(),
            KeyCode::Delete => self.delete_forward(),
            KeyCode::Left => self.move_to(self.prev_boundary()),
            KeyCode::Right => self.move_to(self.next_boundary()),
            KeyCode::Up => self.browse_older(),
            KeyCode::Down => self.browse_newer(),
            KeyCode::Tab => self.complete(words),
            _ => Edit::Nothing,
        }
    }

    /// Inserts pasted text (cleaned, see the module doc).
    pub fn paste(&mut self, text: &str) -> Edit {
        self.completion = None;
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let clean: String = text
            .chars()
            .filter_map(|c| match c {
                '\n' if self.multi_line => Some('\n'),
                '\n' | '\t' => Some(' '),
                c if is_unsafe(c) => None,
                c => Some(c),
            })
            .collect();
        self.insert(&clean)
    }

    fn insert(&mut self, s: &str) -> Edit {
        if s.is_empty() {
            return Edit::Nothing;
        }
        if self.text.len() + s.len() > MAX_INPUT {
            return Edit::TooLong;
        }
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
        Edit::Changed
    }

    fn submit(&mut self) -> Edit {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            if self.history.len() == MAX_HISTORY {
                self.history.remove(0);
            }
            self.history.push(text.clone());
        }
        Edit::Submit(text)
    }

    fn move_to(&mut self, at: usize) -> Edit {
        if at == self.cursor {
            return Edit::Nothing;
        }
        self.cursor = at;
        Edit::Changed
    }

    fn prev_boundary(&self) -> usize {
        self.text[..self.cursor].grapheme_indices(true).next_back().map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..].graphemes(true).next().map_or(self.cursor, |g| self.cursor + g.len())
    }

    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self) -> usize {
        self.text[self.cursor..].find('\n').map_or(self.text.len(), |i| self.cursor + i)
    }

    /// The start of the word before the cursor (after trailing blanks).
    fn word_start(&self) -> usize {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(|c: char| c.is_whitespace());
        trimmed.rfind(is_word_break).map_or(0, |i| i + trimmed[i..].chars().next().map_or(1, char::len_utf8))
    }

    fn delete_range(&mut self, from: usize, to: usize) -> Edit {
        if from >= to {
            return Edit::Nothing;
        }
        self.text.replace_range(from..to, "");
        self.cursor = from;
        Edit::Changed
    }

    fn delete_back(&mut self) -> Edit {
        self.delete_range(self.prev_boundary(), self.cursor)
    }

    fn delete_forward(&mut self) -> Edit {
        self.delete_range(self.cursor, self.next_boundary())
    }

    fn show(&mut self, text: String) -> Edit {
        self.text = text;
        self.cursor = self.text.len();
        Edit::Changed
    }

    fn browse_older(&mut self) -> Edit {
        let next = match self.browsing {
            None if self.history.is_empty() => return Edit::Nothing,
            None => {
                self.draft = std::mem::take(&mut self.text);
                self.history.len() - 1
            }
            Some(0) => return Edit::Nothing,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        self.show(self.history[next].clone())
    }

    fn browse_newer(&mut self) -> Edit {
        match self.browsing {
            None => Edit::Nothing,
            Some(i) if i + 1 < self.history.len() => {
                self.browsing = Some(i + 1);
                self.show(self.history[i + 1].clone())
            }
            Some(_) => {
                self.browsing = None;
                let draft = std::mem::take(&mut self.draft);
                self.show(draft)
            }
        }
    }

    fn complete(&mut self, words: &Vocabulary) -> Edit {
        let completion = match self.completion.take() {
            // Tab again: replace the last candidate with the next one.
            Some(previous) if previous.end == self.cursor => previous.next(),
            _ => {
                let start = self.word_start();
                let first_word = self.text[..start].trim().is_empty();
                match Completion::start(words, &self.text[start..self.cursor], start, first_word) {
                    Some(c) => c,
                    None => return Edit::Nothing,
                }
            }
        };
        let replacement = completion.replacement();
        if self.text.len() - (completion.end - completion.start) + replacement.len() > MAX_INPUT {
            return Edit::TooLong;
        }
        self.text.replace_range(completion.start..completion.end, &replacement);
        self.cursor = completion.start + replacement.len();
        self.completion = Some(Completion { end: self.cursor, ..completion });
        Edit::Changed
    }
}

#[cfg(test)]
#[path = "editor_tests.rs"]
mod tests;

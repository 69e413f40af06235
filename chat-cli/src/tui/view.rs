//! One message pane ("view": everyone, or a room): its lines, bounded, and where the reader is.
//!
//! The position is an anchor: the entry and the row of it shown on the pane's bottom row, or
//! nothing while the pane follows the newest line. New lines never move an anchored pane ("you are
//! not yanked down while you read back"); the entries that arrived below what was seen are counted
//! for the "new below" marker. Rows depend on the width, so every scroll takes the row counter of
//! the current width and walks only as far as it must.
//!
//! | input                          | position after                                            |
//! |--------------------------------|-----------------------------------------------------------|
//! | [`View::scroll_up`] by n rows  | n rows higher, never above a full first page              |
//! | [`View::scroll_down`] by n rows| n rows lower; at the newest row: following again          |
//! | [`View::top`]                  | the first page (following if everything fits)            |
//! | [`View::follow`]               | following                                                 |
//! | [`View::push`]                 | unchanged (an evicted anchor moves to the oldest entry)   |

use std::collections::{BTreeMap, VecDeque};

use chat_core::RoomName;

/// Most entries a view keeps; older ones are dropped.
pub const MAX_ENTRIES: usize = 2000;

/// Most people a view lists.
pub const MAX_PEOPLE: usize = 4096;

/// One line of a view (before wrapping). Texts are raw: they are made safe when drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A message.
    Message {
        /// When it was ordered (ms since the epoch; 0 unknown).
        time: u64,
        /// Its sender.
        sender: String,
        /// Where it went, when that is not the view itself (`you`, `bob`, `{bob, carol}`).
        to: Option<String>,
        /// The body.
        body: String,
        /// It mentions this user or is addressed to them (highlighted).
        mention: bool,
    },
    /// Something for the user (`* bob joined`).
    Info(String),
    /// An error (`! not_member: …`).
    Error(String),
}

/// A view.
#[derive(Debug, Clone)]
pub struct View {
    /// The room, or `None` for everyone.
    pub room: Option<RoomName>,
    entries: VecDeque<(u64, Entry)>,
    next_seq: u64,
    /// `(seq, row)` on the bottom row, or `None`: following.
    anchor: Option<(u64, usize)>,
    /// Entries below this sequence number were on screen.
    seen: u64,
    /// Messages that arrived while another view was shown.
    pub unread: usize,
    /// Of those, how many were mentions.
    pub mentions: usize,
    /// The people here, by lower-case name.
    people: BTreeMap<String, String>,
}

impl View {
    /// An empty view of `room` (or of everyone).
    pub fn new(room: Option<RoomName>) -> Self {
        View {
            room,
            entries: VecDeque::new(),
            next_seq: 0,
            anchor: None,
            seen: 0,
            unread: 0,
            mentions: 0,
            people: BTreeMap::new(),
        }
    }

    /// The view's title: `everyone` or the room.
    pub fn title(&self) -> &str {
        self.room.as_ref().map_or("everyone", RoomName::as_str)
    }

    /// Whether this is the view of `room`.
    pub fn is(&self, room: &RoomName) -> bool {
        self.room.as_ref().is_some_and(|r| r.same_as(room))
    }

    /// Adds an entry at the bottom.
    pub fn push(&mut self, entry: Entry) {
        if self.entries.len() == MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back((self.next_seq, entry));
        self.next_seq += 1;
        if self.anchor.is_none() {
            self.seen = self.next_seq;
        }
        let oldest = self.entries.front().map_or(0, |(s, _)| *s);
        if let Some((seq, _)) = self.anchor
            && seq < oldest
        {
            self.anchor = Some((oldest, 0));
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.entries.iter().map(|(_, e)| e)
    }

    /// Whether the view follows the newest line.
    pub fn following(&self) -> bool {
        self.anchor.is_none()
    }

    /// Messages below the bottom row that were never on screen.
    pub fn new_below(&self) -> usize {
        if self.anchor.is_none() {
            return 0;
        }
        self.entries
            .iter()
            .rev()
            .take_while(|(s, _)| *s >= self.seen)
            .filter(|(_, e)| matches!(e, Entry::Message { .. }))
            .count()
    }

    /// The entry index and row on the bottom row (`rows` counts an entry's rows), or `None` if empty.
    pub fn bottom(&self, rows: &dyn Fn(&Entry) -> usize) -> Option<(usize, usize)> {
        let last = self.entries.len().checked_sub(1)?;
        let Some((seq, row)) = self.anchor else {
            return Some((last, rows(&self.entries[last].1).saturating_sub(1)));
        };
        let index = (seq.saturating_sub(self.entries[0].0) as usize).min(last);
        Some((index, row.min(rows(&self.entries[index].1).saturating_sub(1))))
    }

    fn set_anchor(&mut self, at: (usize, usize), last: (usize, usize)) {
        if at >= last {
            self.follow();
        } else {
            let seq = self.entries[at.0].0;
            self.anchor = Some((seq, at.1));
            self.seen = self.seen.max(seq + 1);
        }
    }

    /// Follows the newest line again (End).
    pub fn follow(&mut self) {
        self.anchor = None;
        self.seen = self.next_seq;
    }

    /// Moves up `n` rows, but keeps a full page (`height` rows) above the bottom row when there is one.
    pub fn scroll_up(&mut self, n: usize, height: usize, rows: &dyn Fn(&Entry) -> usize) {
        let (Some(at), Some(last)) = (self.bottom(rows), self.last(rows)) else { return };
        let (mut index, mut row) = at;
        let mut left = n;
        // Rows from the first row of the view to the bottom row, counted while walking up.
        while left > 0 {
            if row >= left {
                row -= left;
                left = 0;
            } else if index == 0 {
                row = 0;
                left = 0;
            } else {
                left -= row + 1;
                index -= 1;
                row = rows(&self.entries[index].1).saturating_sub(1);
            }
        }
        // Not above the first page: the bottom row is at least `height - 1` rows below the top.
        let first_page = self.nth_row(height.saturating_sub(1), rows).unwrap_or(last);
        self.set_anchor((index, row).max(first_page), last);
    }

    /// Moves down `n` rows; reaching the newest row follows again.
    pub fn scroll_down(&mut self, n: usize, rows: &dyn Fn(&Entry) -> usize) {
        let (Some((mut index, mut row)), Some(last)) = (self.bottom(rows), self.last(rows)) else { return };
        let mut left = n;
        while left > 0 && (index, row) < last {
            let in_entry = rows(&self.entries[index].1);
            if row + left < in_entry {
                row += left;
                left = 0;
            } else {
                left -= in_entry - row;
                index += 1;
                row = 0;
                if index > last.0 {
                    break;
                }
            }
        }
        self.set_anchor((index, row).min(last), last);
    }

    /// Shows the first page (Home).
    pub fn top(&mut self, height: usize, rows: &dyn Fn(&Entry) -> usize) {
        let Some(last) = self.last(rows) else { return };
        let at = self.nth_row(height.saturating_sub(1), rows).unwrap_or(last);
        self.set_anchor(at, last);
    }

    fn last(&self, rows: &dyn Fn(&Entry) -> usize) -> Option<(usize, usize)> {
        let last = self.entries.len().checked_sub(1)?;
        Some((last, rows(&self.entries[last].1).saturating_sub(1)))
    }

    /// The position of the `n`th row (from 0) of the view, if it has that many.
    fn nth_row(&self, n: usize, rows: &dyn Fn(&Entry) -> usize) -> Option<(usize, usize)> {
        let mut left = n;
        for (index, (_, entry)) in self.entries.iter().enumerate() {
            let count = rows(entry);
            if left < count {
                return Some((index, left));
            }
            left -= count;
        }
        None
    }

    /// The people here, sorted.
    pub fn people(&self) -> impl Iterator<Item = &str> {
        self.people.values().map(String::as_str)
    }

    /// Someone is here.
    pub fn arrive(&mut self, name: &str) {
        if self.people.len() < MAX_PEOPLE || self.people.contains_key(&name.to_lowercase()) {
            self.people.insert(name.to_lowercase(), name.to_string());
        }
    }

    /// Someone left.
    pub fn depart(&mut self, name: &str) {
        self.people.remove(&name.to_lowercase());
    }

    /// Replaces the list of people.
    pub fn set_people<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.people.clear();
        for name in names {
            self.arrive(name);
        }
    }
}

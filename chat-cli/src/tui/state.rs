//! The full-screen client's state, sans-IO: terminal inputs and chat events in, requests for the
//! chat, bells and the ending out. The shell (`tui/mod.rs`) feeds it, performs what it asks for
//! and draws it (`draw.rs`); tests drive it with keys and events and compare what it draws.
//!
//! | input                                   | effect                                                   |
//! |-----------------------------------------|----------------------------------------------------------|
//! | PageUp / PageDown                       | the current view scrolls by a page (minus one row)       |
//! | Home / End                              | its first page / back to following the newest line       |
//! | Ctrl-N / Ctrl-P, Alt-1 … Alt-9          | the next / previous view, view N (its unread count clears) |
//! | Ctrl-L                                  | the whole screen is drawn again                          |
//! | other keys, a paste                     | the input line (`term::editor`); Enter runs the line      |
//! | a resize                                | the layout follows; each view keeps its position         |
//! | a submitted line                        | `commands::parse`: a request ([`Ui::poll_request`]), a local action, or an error line |
//! | `/quit`, Ctrl-C, Ctrl-D on an empty line | [`Ui::ending`] is `Left`                                 |
//! | chat events, request replies            | see `events.rs`                                          |
//!
//! Call order: feed an input, then drain [`Ui::poll_request`], [`Ui::poll_history`] and
//! [`Ui::take_bell`], check [`Ui::ending`], and draw.

use std::collections::{BTreeSet, VecDeque};

use chat_core::{ChatMessage, ErrorCode, Recipients, RoomName};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::lines::{Look, row_count};
use super::view::{Entry, View};
use crate::commands::{self, Command, HELP, HINT};
use crate::session::Ending;
use crate::term::complete::Vocabulary;
use crate::term::editor::{Edit, Editor};

/// Most requests waiting for the chat; a line typed beyond is refused.
pub const MAX_WAITING_REQUESTS: usize = 64;

/// Most views (everyone and the rooms).
pub const MAX_VIEWS: usize = 128;

/// The keys of the full-screen client (after the commands in `/help`).
pub const KEYS_HELP: &str = "\
keys:
  PageUp/PageDown, Home/End      scroll back, forward, to the top, to the newest line
  Ctrl-N/Ctrl-P, Alt-1..9        next, previous, N-th view (everyone, then your rooms)
  Tab                            complete a command, #room or name (again: the next one)
  Up/Down                        input history; Alt-Enter: a line break in the message
  Ctrl-A/Ctrl-E, Ctrl-W/U/K      start/end of line; delete a word, to the start, to the end
  Ctrl-L                         redraw; Ctrl-C, Ctrl-D or /quit: leave";

/// Something the chat is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Send a message.
    Send {
        /// To whom.
        to: Recipients,
        /// The text.
        text: String,
    },
    /// Join a room.
    Join(RoomName),
    /// Leave a room.
    Part(RoomName),
    /// List the rooms.
    Rooms,
    /// Who is in a room (or online), shown.
    Who(Option<RoomName>),
    /// Who is online, shown.
    Peers,
    /// The last messages (of a room).
    History(usize, Option<RoomName>),
    /// Who is in a room (or online), for the side panel only.
    Refresh(Option<RoomName>),
}

/// The connection as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Connected.
    Connected,
    /// Lost; this attempt to reconnect is next.
    Reconnecting(u32),
    /// Back, after missing this many messages.
    Resumed(u64),
}

/// The full-screen client's state.
#[derive(Debug)]
pub struct Ui {
    pub(super) look: Look,
    /// Everyone first, then the rooms in the order joined.
    pub(super) views: Vec<View>,
    pub(super) current: usize,
    pub(super) editor: Editor,
    /// `server 127.0.0.1:7878` or `p2p node 3`.
    pub(super) place: String,
    pub(super) coordinator: Option<String>,
    pub(super) link: Link,
    pub(super) size: (u16, u16),
    /// Rooms seen in `/rooms` (for Tab).
    pub(super) rooms_seen: BTreeSet<String>,
    requests: VecDeque<Request>,
    history_out: VecDeque<String>,
    pub(super) bell_on: bool,
    bell: bool,
    pub(super) clear: bool,
    /// A request has been waiting for the server for a while (shown in the status bar).
    pub(super) waiting: bool,
    pub(super) ending: Option<Ending>,
}

impl Ui {
    /// The state after logging in as `look.me` at `place`, in `rooms`, with the input `history`.
    pub fn new(look: Look, place: String, rooms: Vec<RoomName>, history: Vec<String>, size: (u16, u16)) -> Self {
        let mut ui = Ui {
            look,
            views: vec![View::new(None)],
            current: 0,
            editor: Editor::new(true).with_history(history),
            place,
            coordinator: None,
            link: Link::Connected,
            size,
            rooms_seen: BTreeSet::new(),
            requests: VecDeque::new(),
            history_out: VecDeque::new(),
            bell_on: true,
            bell: false,
            clear: false,
            waiting: false,
            ending: None,
        };
        let me = ui.look.me.clone();
        ui.views[0].push(Entry::Info(format!("joined as {me}; type /help for commands, Ctrl-C to leave")));
        ui.requests.push_back(Request::Refresh(None));
        for room in rooms {
            ui.view_of(&room);
            ui.requests.push_back(Request::Refresh(Some(room)));
        }
        ui
    }

    /// Turns the bell on mentions and private messages off (`--no-bell`).
    pub fn without_bell(mut self) -> Self {
        self.bell_on = false;
        self
    }

    /// The next request for the chat.
    pub fn poll_request(&mut self) -> Option<Request> {
        self.requests.pop_front()
    }

    /// The next line to append to the history file.
    pub fn poll_history(&mut self) -> Option<String> {
        self.history_out.pop_front()
    }

    /// Whether to ring the bell (once per call).
    pub fn take_bell(&mut self) -> bool {
        std::mem::take(&mut self.bell)
    }

    /// Whether the whole screen must be drawn again (once per call).
    pub fn take_clear(&mut self) -> bool {
        std::mem::take(&mut self.clear)
    }

    /// How the session ended, once it has.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// The input history, oldest first (saved when leaving).
    pub fn input_history(&self) -> &[String] {
        self.editor.history()
    }

    /// Whether a request has been waiting for the server for a while: chat events wait behind it
    /// (the chat is busy with it), so the status bar says so.
    pub fn set_waiting(&mut self, waiting: bool) {
        self.waiting = waiting;
    }

    /// See [`Ui::set_waiting`].
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// Ends the session (a signal, the terminal gone).
    pub fn end(&mut self, ending: Ending) {
        self.ending.get_or_insert(ending);
    }

    pub(super) fn request(&mut self, request: Request) {
        if self.requests.len() >= MAX_WAITING_REQUESTS {
            self.error(ErrorCode::TooMany, "too many commands are waiting for the server; try again shortly");
        } else {
            self.requests.push_back(request);
        }
    }

    pub(super) fn ring(&mut self) {
        self.bell |= self.bell_on;
    }

    /// An error line in the current view.
    pub(super) fn error(&mut self, code: ErrorCode, message: &str) {
        self.views[self.current].push(Entry::Error(format!("{code}: {message}")));
    }

    /// An information line in the current view.
    pub(super) fn info(&mut self, text: String) {
        self.views[self.current].push(Entry::Info(text));
    }

    /// The index of `room`'s view, made if new (`None` if there are too many views).
    pub(super) fn view_of(&mut self, room: &RoomName) -> Option<usize> {
        if let Some(i) = self.views.iter().position(|v| v.is(room)) {
            return Some(i);
        }
        if self.views.len() >= MAX_VIEWS {
            return None;
        }
        self.views.push(View::new(Some(room.clone())));
        Some(self.views.len() - 1)
    }

    pub(super) fn switch_to(&mut self, index: usize) {
        if index < self.views.len() {
            self.current = index;
            self.views[index].unread = 0;
            self.views[index].mentions = 0;
        }
    }

    /// The terminal's size as last reported: (width, height).
    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    /// The message pane's size: (width, height).
    pub fn pane(&self) -> (u16, u16) {
        super::draw::areas(self.size, self.input_rows()).messages
    }

    /// Rows the input box needs (1 to `draw::MAX_INPUT_ROWS`).
    pub fn input_rows(&self) -> u16 {
        super::draw::input_rows(self, self.size.0)
    }

    /// Handles one terminal event.
    pub fn handle_terminal(&mut self, event: TermEvent) {
        match event {
            TermEvent::Key(key) if key.kind != KeyEventKind::Release => self.handle_key(key),
            TermEvent::Paste(text) => {
                let edit = self.editor.paste(&text);
                self.edited(edit);
            }
            // Paint everything again: the terminal may have cut or reflowed what it showed, even when
            // the size is back to the one drawn last (two quick resizes are one signal).
            TermEvent::Resize(w, h) => {
                self.size = (w, h);
                self.clear = true;
            }
            _ => {}
        }
    }

    fn handle_key(&mut self, key: KeyEvent) {
        // Scrolled back, the pane shows one row less (the marker takes the last).
        let (width, height) = self.pane();
        let height = height.saturating_sub(1).max(1);
        let page = usize::from(height);
        let look = self.look.clone();
        let rows = move |e: &Entry| row_count(e, &look, width);
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let view = &mut self.views[self.current];
        match key.code {
            KeyCode::PageUp => view.scroll_up(page, usize::from(height), &rows),
            KeyCode::PageDown => view.scroll_down(page, &rows),
            KeyCode::Home => view.top(usize::from(height), &rows),
            KeyCode::End => view.follow(),
            KeyCode::Char('n') if ctrl => self.switch_to((self.current + 1) % self.views.len()),
            KeyCode::Char('p') if ctrl => self.switch_to((self.current + self.views.len() - 1) % self.views.len()),
            KeyCode::Char('l') if ctrl => self.clear = true,
            KeyCode::Char(c @ '1'..='9') if alt => self.switch_to(c as usize - '1' as usize),
            _ => {
                let words = self.vocabulary();
                let edit = self.editor.handle_key(key, &words);
                self.edited(edit);
            }
        }
    }

    fn edited(&mut self, edit: Edit) {
        match edit {
            Edit::Submit(line) => {
                if !line.trim().is_empty() {
                    self.history_out.push_back(line.clone());
                }
                self.run(&line);
            }
            Edit::TooLong => self.error(ErrorCode::TooLong, "the input is at its limit (64 KiB)"),
            Edit::Eof | Edit::Interrupt => self.end(Ending::Left),
            Edit::Changed | Edit::Nothing => {}
        }
    }

    /// What Tab completes: the commands, the rooms known, the people in every view.
    fn vocabulary(&self) -> Vocabulary {
        let mut words = Vocabulary::commands();
        words.rooms = self.views.iter().filter_map(|v| v.room.as_ref().map(|r| r.to_string())).collect();
        words.rooms.extend(self.rooms_seen.iter().cloned());
        let people: BTreeSet<&str> = self.views.iter().flat_map(View::people).collect();
        words.names = people.into_iter().map(str::to_string).collect();
        words
    }

    /// Where plain text goes: the current room, or everyone.
    fn target(&self) -> Recipients {
        match &self.views[self.current].room {
            Some(room) => Recipients::Room(room.clone()),
            None => Recipients::Broadcast,
        }
    }

    /// Runs one submitted line.
    fn run(&mut self, line: &str) {
        let command = match commands::parse(line) {
            Ok(command) => command,
            Err(bad) => return self.error(ErrorCode::BadCommand, &format!("{} ({HINT})", bad.0)),
        };
        match command {
            Command::Say(text) => self.request(Request::Send { to: self.target(), text }),
            Command::Send { to, text } => self.request(Request::Send { to, text }),
            Command::Join(room) => self.request(Request::Join(room)),
            Command::Part(Some(room)) => self.request(Request::Part(room)),
            Command::Part(None) => match self.views[self.current].room.clone() {
                Some(room) => self.request(Request::Part(room)),
                None => self.error(ErrorCode::BadCommand, &format!("you are not in a room: /part #room ({HINT})")),
            },
            Command::Switch(None) => self.switch_to(0),
            Command::Switch(Some(room)) => match self.views.iter().position(|v| v.is(&room)) {
                Some(index) => self.switch_to(index),
                None => self.error(ErrorCode::NotMember, &format!("you are not in {room}: /join {room} first")),
            },
            Command::Rooms => self.request(Request::Rooms),
            Command::Who(room) => {
                let room = room.or_else(|| self.views[self.current].room.clone());
                self.request(Request::Who(room));
            }
            Command::Peers => self.request(Request::Peers),
            Command::History(n, room) => self.request(Request::History(n, room)),
            Command::Help => {
                for line in HELP.lines().chain(KEYS_HELP.lines()) {
                    self.info(line.to_string());
                }
            }
            Command::Quit => self.end(Ending::Left),
            Command::Nothing => {}
        }
    }

    /// Adds messages from history (a room's on joining, or `/history`) to `view`.
    pub(super) fn add_history(&mut self, view: usize, messages: &[ChatMessage]) {
        for m in messages {
            let entry = self.message_entry(m);
            self.views[view].push(entry);
        }
    }
}

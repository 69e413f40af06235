//! Helpers of the full-screen client's tests: a state, messages, keys, and the screen it draws.

use chat_core::{ChatMessage, Event, MessageId, NodeId, PeerInfo, Recipients, RoomName, Timestamp, UserName};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use super::lines::Look;
use super::state::Ui;
use crate::clock_text::TimeStyle;

pub fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

pub fn r(s: &str) -> RoomName {
    RoomName::new(s).unwrap()
}

/// alice's state on a `w`×`h` screen, without times (so screens are the same in every time zone).
pub fn ui(w: u16, h: u16) -> Ui {
    Ui::new(
        Look { me: "alice".into(), times: TimeStyle::none() },
        "server 127.0.0.1:7878".into(),
        vec![],
        vec![],
        (w, h),
    )
}

/// A message event.
pub fn msg(from: &str, to: Recipients, body: &str) -> Event {
    Event::Message(ChatMessage {
        id: MessageId::new(NodeId(0), 1),
        sender: n(from),
        recipients: to,
        body: body.into(),
        lamport: Timestamp::new(1, NodeId(0)),
        time: 1_795_984_867_123,
    })
}

pub fn said(from: &str, body: &str) -> Event {
    msg(from, Recipients::Broadcast, body)
}

pub fn joined(name: &str) -> Event {
    Event::PeerJoined(PeerInfo::named(n(name)))
}

pub fn key(code: KeyCode) -> TermEvent {
    TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> TermEvent {
    TermEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Types `text` and presses Enter.
pub fn enter(ui: &mut Ui, text: &str) {
    for c in text.chars() {
        ui.handle_terminal(key(KeyCode::Char(c)));
    }
    ui.handle_terminal(key(KeyCode::Enter));
}

/// Draws `ui` on a test terminal of its size; the buffer.
pub fn draw(ui: &Ui) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(ui.size.0, ui.size.1)).unwrap();
    terminal.draw(|f| super::draw::draw(f, ui)).unwrap();
    terminal.backend().buffer().clone()
}

/// The screen's rows as text, trailing blanks cut.
pub fn screen(ui: &Ui) -> Vec<String> {
    rows(&draw(ui))
}

pub fn rows(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            let row: String = (0..area.width).map(|x| buffer[(x, y)].symbol()).collect();
            row.trim_end().to_string()
        })
        .collect()
}

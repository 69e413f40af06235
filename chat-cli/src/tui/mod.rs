//! The full-screen terminal client: what `chat-cli` opens when standard input and output are a
//! terminal (without `--json` or `--plain`).
//!
//! | module   | owns                                                                             |
//! |----------|----------------------------------------------------------------------------------|
//! | `state`  | the sans-IO state: views, the input line, status; keys and lines in, requests out |
//! | `events` | chat events and request replies into that state                                  |
//! | `view`   | one message pane: bounded lines, scroll position, unread marker, people          |
//! | `lines`  | an entry as styled rows for a width (wrapping, name colours, highlights, escaping) |
//! | `draw`   | the layout and drawing with ratatui                                              |
//! | this file| the thin async shell: terminal events, chat events and signals in one `select!` |
//!
//! The shell owns the [`Chat`]. A request moves the chat into its future and gets it back with the
//! reply, so while a request is under way (a send waits for its acknowledgement, and while the
//! client reconnects, for the resume) keys, signals and redraws are still handled; chat events
//! wait in the chat meanwhile (`Chat` takes one call at a time), and after [`WAITING_AFTER`] the
//! status bar says "waiting for the server". Lines typed meanwhile queue in the state (bounded). The screen is
//! drawn only when nothing else is ready, so a burst of events or keys costs one draw.

mod draw;
mod events;
mod lines;
mod state;
mod view;

#[cfg(test)]
mod draw_tests;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod test_util;

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::time::Duration;

use chat_core::{Chat, CoreError, RoomName};
use crossterm::event::EventStream;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use crate::clock_text::TimeStyle;
use crate::session::Ending;
use crate::signals::Signals;
use crate::term::guard::Screen;
use crate::term::history::{self, HistoryFile};
use crate::term::prompt::more_waiting;
use events::Reply;
use lines::Look;
use state::{Request, Ui};

/// How often the terminal's size is checked besides the resize signal (SIGWINCH), which can go
/// missing: a screen laid out for another size would otherwise stay wrong until the next event.
pub const SIZE_CHECK: Duration = Duration::from_millis(500);

/// How long a request may wait for its answer before the status bar says so.
pub const WAITING_AFTER: Duration = Duration::from_millis(500);

/// Most terminal events handled between two draws.
pub const MAX_BATCH: usize = 4096;

/// How long leaving waits for a request under way, then for the server's goodbye.
pub const LEAVE_WAIT: Duration = Duration::from_secs(2);

/// The client's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// How message times are shown (`--time-format`, `--no-time`).
    pub times: TimeStyle,
    /// Ring the bell on a mention or a private message (not with `--no-bell`).
    pub bell: bool,
    /// The server's address (server mode), for the status bar.
    pub server: Option<String>,
}

type Pending = Pin<Box<dyn Future<Output = (Chat, Reply)> + Send>>;

/// Runs the client until the user leaves or the session is lost; the terminal is given back on
/// every path (see `term::guard`).
pub async fn run(chat: Chat, rooms: Vec<RoomName>, options: Options) -> Ending {
    let screen = match Screen::enter(true) {
        Ok(screen) => screen,
        Err(e) => return Ending::Lost(format!("cannot use the terminal: {e}")),
    };
    let mut terminal = match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
        Ok(terminal) => terminal,
        Err(e) => return Ending::Lost(format!("cannot use the terminal: {e}")),
    };
    let size = terminal.size().map(|s| (s.width, s.height)).unwrap_or((80, 24));
    let history = history::default_path().map(HistoryFile::new);
    let entries = history.as_ref().map(HistoryFile::load).unwrap_or_default();
    let place = match (chat.node_id(), &options.server) {
        (Some(id), _) => format!("p2p node {id}"),
        (None, Some(server)) => format!("server {}", crate::safe_text::inline(server)),
        (None, None) => "server".to_string(),
    };
    let look = Look { me: chat.name().to_string(), times: options.times };
    let mut ui = Ui::new(look, place, rooms, entries, size);
    if !options.bell {
        ui = ui.without_bell();
    }
    let (chat, pending) = drive(chat, &mut ui, &mut terminal, history.as_ref()).await;
    // The terminal first, so the screen is back at once; then the history and the goodbye.
    drop(terminal);
    drop(screen);
    if let Some(history) = &history {
        let _ = history.save(ui.input_history());
    }
    let ending = ui.ending().cloned().unwrap_or(Ending::Left);
    if ending == Ending::Left {
        let chat = match (chat, pending) {
            (Some(chat), _) => Some(chat),
            (None, Some(pending)) => tokio::time::timeout(LEAVE_WAIT, pending).await.ok().map(|(chat, _)| chat),
            (None, None) => None,
        };
        if let Some(mut chat) = chat {
            let _ = tokio::time::timeout(LEAVE_WAIT, chat.leave()).await;
        }
    }
    ending
}

/// The loop; returns the chat (or the request that holds it) when the session ends.
async fn drive<W: Write>(
    chat: Chat,
    ui: &mut Ui,
    terminal: &mut Terminal<CrosstermBackend<W>>,
    history: Option<&HistoryFile>,
) -> (Option<Chat>, Option<Pending>) {
    let mut chat = Some(chat);
    let mut pending: Option<Pending> = None;
    let mut keys = EventStream::new();
    let mut signals = Signals::new();
    let mut dirty = true;
    let mut started = tokio::time::Instant::now();
    let mut size_check = tokio::time::interval(SIZE_CHECK);
    size_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while let Some(line) = ui.poll_history() {
            if let Some(history) = history {
                let _ = history.append(&line);
            }
        }
        if ui.take_bell() {
            let _ = terminal.backend_mut().write_all(b"\x07");
            let _ = terminal.backend_mut().flush();
        }
        if ui.take_clear() {
            let _ = terminal.clear();
        }
        if ui.ending().is_some() {
            return (chat, pending);
        }
        if pending.is_none()
            && let Some(request) = ui.poll_request()
            && let Some(idle) = chat.take()
        {
            pending = Some(Box::pin(perform(idle, request)));
            started = tokio::time::Instant::now();
        }
        tokio::select! {
            biased;
            () = signals.recv() => ui.end(Ending::Left),
            (back, reply) = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                pending = None;
                chat = Some(back);
                ui.set_waiting(false);
                ui.handle_reply(reply);
            }
            () = tokio::time::sleep_until(started + WAITING_AFTER), if pending.is_some() && !ui.waiting() => {
                ui.set_waiting(true);
            }
            key = std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut keys), cx)) => match key {
                Some(Ok(event)) => {
                    ui.handle_terminal(event);
                    // Take what is already waiting (keys of a paste) before drawing once.
                    for _ in 0..MAX_BATCH {
                        if !more_waiting() {
                            break;
                        }
                        match crossterm::event::read() {
                            Ok(event) => ui.handle_terminal(event),
                            Err(_) => break,
                        }
                    }
                }
                // The terminal is gone.
                None | Some(Err(_)) => ui.end(Ending::Left),
            },
            event = async { chat.as_mut().expect("guarded").next_event().await }, if chat.is_some() => match event {
                Some(event) => ui.handle_event(event),
                None => ui.end(Ending::Lost("the connection closed".into())),
            },
            _ = size_check.tick() => match crossterm::terminal::size() {
                Ok((w, h)) if (w, h) != ui.size() => ui.handle_terminal(crossterm::event::Event::Resize(w, h)),
                _ => continue,
            },
            () = std::future::ready(()), if dirty => {
                let _ = terminal.draw(|frame| draw::draw(frame, ui));
                dirty = false;
                continue;
            }
        }
        dirty = true;
    }
}

/// Performs one request; gives the chat back with the reply.
async fn perform(mut chat: Chat, request: Request) -> (Chat, Reply) {
    let reply = match request {
        Request::Send { to, text } => chat.send(to, text).await.map(Reply::Sent),
        Request::Join(room) => chat.join_room(room.clone()).await.map(|messages| Reply::Joined(room, messages)),
        Request::Part(room) => chat.part_room(room.clone()).await.map(|()| Reply::Parted(room)),
        Request::Rooms => chat.rooms().await.map(Reply::Rooms),
        Request::Who(room) => chat.who(room.clone()).await.map(|peers| Reply::Who(room, peers)),
        Request::Peers => chat.peers().await.map(Reply::Peers),
        Request::History(n, room) => chat.history_of(room.clone(), n).await.map(|m| Reply::History(room, m)),
        Request::Refresh(room) => chat.who(room.clone()).await.map(|peers| Reply::People(room, peers)),
    };
    let reply = reply.unwrap_or_else(|e: CoreError| Reply::Failed {
        code: e.code(),
        message: e.message(),
        closed: matches!(e, CoreError::Closed(_)),
    });
    (chat, reply)
}

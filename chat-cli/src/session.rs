//! The chat loop, the same for both topologies: events out, commands in.
//!
//! The loop keeps one piece of state of its own: where plain text goes (everyone at first; a room
//! after `/join` or `/switch`). Everything else (rooms, who is online, history) is asked of the
//! [`Chat`].

use chat_core::{Chat, CoreError, ErrorCode, Event, Recipients, RoomName};
use tokio::sync::mpsc;

use crate::commands::{self, Command, HELP, HINT};
use crate::input::Line;
use crate::render::Renderer;
use crate::signals::Signals;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The user left (command, end of input, Ctrl-C, SIGINT/SIGTERM/SIGHUP).
    Left,
    /// The connection was lost or the session was ended by the other side, for this reason.
    Lost(String),
}

/// Where plain text goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Target(Option<RoomName>);

impl Target {
    fn recipients(&self) -> Recipients {
        match &self.0 {
            Some(room) => Recipients::Room(room.clone()),
            None => Recipients::Broadcast,
        }
    }
}

/// Runs the session until the user leaves (a command, the end of input, one of the `signals`) or
/// the connection is lost.
pub async fn run(mut chat: Chat, out: &mut Renderer, mut input: mpsc::Receiver<Line>, mut signals: Signals) -> Ending {
    let mut target = Target::default();
    let ending = loop {
        tokio::select! {
            biased;
            () = signals.recv() => break Ending::Left,
            event = chat.next_event() => match event {
                Some(event) => {
                    if let Some(ending) = show(out, event) {
                        return ending;
                    }
                }
                None => break Ending::Lost("the connection closed".into()),
            },
            line = input.recv() => match line {
                None => break Ending::Left,
                Some(Err(too_long)) => out.error(ErrorCode::TooLong, &too_long),
                Some(Ok(line)) => match commands::parse(&line) {
                    Ok(Command::Quit) => break Ending::Left,
                    Ok(command) => {
                        if let Err(e) = execute(&mut chat, out, &mut target, command).await {
                            // The code is shown once: the message is the server's text without it.
                            out.error(e.code(), &e.message());
                            if matches!(e, CoreError::Closed(_)) {
                                break Ending::Lost(e.message());
                            }
                        }
                    }
                    Err(bad) => out.error(ErrorCode::BadCommand, &format!("{} ({HINT})", bad.0)),
                },
            },
        }
    };
    if ending == Ending::Left {
        let _ = chat.leave().await;
    }
    ending
}

/// Renders one event; returns an ending if it ends the session.
fn show(out: &mut Renderer, event: Event) -> Option<Ending> {
    match event {
        Event::Message(m) => out.message(&m),
        Event::PeerJoined(p) => out.joined(&p, None),
        Event::PeerLeft(p) => out.left(&p, None),
        Event::RoomJoined { room, peer } => out.joined(&peer, Some(&room)),
        Event::RoomLeft { room, peer } => out.left(&peer, Some(&room)),
        Event::CoordinatorChanged { name, node_id, epoch } => out.coordinator(&name, node_id, epoch),
        Event::Reconnecting { attempt, in_ms } => out.reconnecting(attempt, in_ms),
        Event::Resumed { missed } => out.resumed(missed),
        Event::Notice { text } => out.notice(&text),
        Event::Error { code, message } => out.error(code, &message),
        Event::Disconnected { code, reason } => {
            out.error(code, &reason);
            return Some(Ending::Lost(reason));
        }
    }
    None
}

async fn execute(chat: &mut Chat, out: &mut Renderer, target: &mut Target, command: Command) -> Result<(), CoreError> {
    match command {
        Command::Send { to, text } => {
            let receipt = chat.send(to, text).await?;
            out.sent(&receipt);
        }
        Command::Say(text) => {
            let receipt = chat.send(target.recipients(), text).await?;
            out.sent(&receipt);
        }
        Command::Join(room) => {
            let messages = chat.join_room(room.clone()).await?;
            out.history(Some(&room), &messages);
            out.info(&format!("plain text now goes to {room} (/switch * for everyone)"));
            target.0 = Some(room);
        }
        Command::Part(room) => {
            let Some(room) = room.or_else(|| target.0.clone()) else {
                let message = format!("you are not in a room: /part #room ({HINT})");
                out.error(ErrorCode::BadCommand, &message);
                return Ok(());
            };
            chat.part_room(room.clone()).await?;
            if target.0.as_ref().is_some_and(|t| t.same_as(&room)) {
                target.0 = None;
                out.info("plain text now goes to everyone");
            }
        }
        Command::Switch(room) => {
            let place = room.as_ref().map_or("everyone".to_string(), RoomName::to_string);
            target.0 = room;
            out.info(&format!("plain text now goes to {place}"));
        }
        Command::Rooms => {
            let rooms = chat.rooms().await?;
            out.rooms(&rooms);
        }
        Command::Who(room) => {
            let room = room.or_else(|| target.0.clone());
            let peers = chat.who(room.clone()).await?;
            let names: Vec<_> = peers.into_iter().map(|p| p.name).collect();
            out.who(room.as_ref(), &names);
        }
        Command::Peers => {
            let peers = chat.peers().await?;
            out.peers(&peers);
        }
        Command::History(n, room) => {
            let messages = chat.history_of(room.clone(), n).await?;
            out.history(room.as_ref(), &messages);
        }
        Command::Help => out.help(HELP),
        Command::Nothing | Command::Quit => {}
    }
    Ok(())
}

//! The chat loop, the same for both topologies: events out, commands in.

use chat_core::{Chat, CoreError, ErrorCode, Event};
use tokio::sync::mpsc;

use crate::commands::{self, Command, HELP};
use crate::input::Line;
use crate::render::Renderer;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The user left (command, end of input, Ctrl-C).
    Left,
    /// The connection was lost or the session was ended by the other side.
    Lost,
}

/// Runs the session until the user leaves or the connection is lost.
pub async fn run(mut chat: Chat, out: &mut Renderer, mut input: mpsc::Receiver<Line>) -> Ending {
    let ending = loop {
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => break Ending::Left,
            event = chat.next_event() => match event {
                Some(event) => {
                    if let Some(ending) = show(out, event) {
                        return ending;
                    }
                }
                None => break Ending::Lost,
            },
            line = input.recv() => match line {
                None => break Ending::Left,
                Some(Err(too_long)) => out.error(ErrorCode::TooLong, &too_long),
                Some(Ok(line)) => match commands::parse(&line) {
                    Ok(Command::Quit) => break Ending::Left,
                    Ok(command) => {
                        if let Err(e) = execute(&mut chat, out, command).await {
                            out.error(e.code(), &e.to_string());
                            if matches!(e, CoreError::Closed(_)) {
                                break Ending::Lost;
                            }
                        }
                    }
                    Err(bad) => {
                        out.error(ErrorCode::BadCommand, &bad.0);
                        out.help(HELP);
                    }
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
        Event::PeerJoined(p) => out.joined(&p),
        Event::PeerLeft(p) => out.left(&p),
        Event::CoordinatorChanged { name, node_id, epoch } => out.coordinator(&name, node_id, epoch),
        Event::Error { code, message } => out.error(code, &message),
        Event::Disconnected { code, reason } => {
            out.error(code, &reason);
            return Some(Ending::Lost);
        }
    }
    None
}

async fn execute(chat: &mut Chat, out: &mut Renderer, command: Command) -> Result<(), CoreError> {
    match command {
        Command::Send { to, text } => {
            let receipt = chat.send(to, text).await?;
            if !receipt.unknown.is_empty() {
                let names: Vec<&str> = receipt.unknown.iter().map(|n| n.as_str()).collect();
                let message = format!("not online, so not delivered to: {}", names.join(", "));
                out.error(ErrorCode::UnknownUser, &message);
            }
        }
        Command::Peers => {
            let peers = chat.peers().await?;
            out.peers(&peers);
        }
        Command::History(n) => {
            let messages = chat.history(n).await?;
            out.history(&messages);
        }
        Command::Help => out.help(HELP),
        Command::Nothing | Command::Quit => {}
    }
    Ok(())
}

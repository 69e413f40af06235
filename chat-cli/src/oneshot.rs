//! One-shot commands for scripts, like `redis-cli PUBLISH` and `nats pub` / `nats sub`:
//!
//! | command                                        | does                                                        | exit |
//! |------------------------------------------------|-------------------------------------------------------------|------|
//! | `chat-cli send [--to U[,U2] \| --room #R \| --all] TEXT` | logs in (quietly), sends, waits for the acknowledgement (durable), leaves | 0 acknowledged; 1 refused or unreachable; 2 usage |
//! | `chat-cli tail [--room #R] [--history N]`       | logs in (quietly), prints the last N messages, then messages as they arrive, until Ctrl-C or SIGTERM | 0 on interruption; 1 lost |
//!
//! Both sessions are *quiet*: nobody sees them join or leave, and they are not listed by `/peers`
//! (the name is still theirs while they run). Output is human lines, or `--json` events (`sent`,
//! `message`, `history`, ...). Server mode only.

use std::process::ExitCode;

use anyhow::Result;
use chat_core::{Chat, CoreError, Event, Recipients, RoomName, UserName};
use chat_server::client::ClientConfig;

use crate::args::{Cli, SendArgs, TailArgs};
use crate::render::{Renderer, Stdout};

/// What `send` is for, from its flags; `Err` is a usage message.
fn recipients(args: &SendArgs) -> Result<Recipients, String> {
    if let Some(list) = &args.to {
        let names: Vec<UserName> = list
            .split(',')
            .map(|n| UserName::new(n.trim()).map_err(|e| format!("--to: {e}")))
            .collect::<Result<_, _>>()?;
        return match names.len() {
            1 => Ok(Recipients::Unicast(names.into_iter().next().expect("one name"))),
            _ => Recipients::multicast(names).map_err(|e| format!("--to: {e}")),
        };
    }
    if let Some(room) = &args.room {
        return RoomName::new(room.as_str()).map(Recipients::Room).map_err(|e| format!("--room: {e}"));
    }
    Ok(Recipients::Broadcast)
}

/// A quiet session's client settings (`Err`: a usage message).
fn quiet(cli: &Cli, name: UserName) -> Result<ClientConfig, String> {
    let config = crate::config::client_config(cli, name)?;
    Ok(ClientConfig { quiet: true, ..config })
}

/// `chat-cli send`.
pub async fn send(cli: &Cli, args: &SendArgs, name: UserName) -> Result<ExitCode> {
    let (to, config) = match recipients(args).and_then(|to| Ok((to, quiet(cli, name)?))) {
        Ok(ready) => ready,
        Err(message) => return crate::usage(&message),
    };
    let text = args.text.join(" ");
    let mut out = Renderer::new(cli.json, false, Box::new(Stdout));
    let mut chat = match chat_server::client::connect(config).await {
        Ok(transport) => Chat::new(transport),
        Err(e) => return failed(&mut out, cli.json, e.code(), &e.to_string()),
    };
    let result = chat.send(to, text).await;
    let _ = chat.leave().await;
    match result {
        Ok(receipt) => {
            out.sent(&receipt);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => failed(&mut out, cli.json, e.code(), &e.message()),
    }
}

/// `chat-cli tail`.
pub async fn tail(cli: &Cli, args: &TailArgs, name: UserName) -> Result<ExitCode> {
    let room = match args.room.as_deref().map(RoomName::new).transpose() {
        Ok(room) => room,
        Err(e) => return crate::usage(&format!("--room: {e}")),
    };
    let config = match quiet(cli, name) {
        Ok(config) => config,
        Err(message) => return crate::usage(&message),
    };
    let mut out = Renderer::new(cli.json, cli.show_clock, Box::new(Stdout));
    let mut chat = match chat_server::client::connect(config).await {
        Ok(transport) => Chat::new(transport),
        Err(e) => return failed(&mut out, cli.json, e.code(), &e.to_string()),
    };
    if args.history > 0 {
        match chat.history_of(room.clone(), args.history).await {
            Ok(messages) => out.history(room.as_ref(), &messages),
            Err(e) => {
                let _ = chat.leave().await;
                return failed(&mut out, cli.json, e.code(), &e.message());
            }
        }
    }
    let ending = follow(&mut chat, &mut out, room.as_ref()).await;
    let _ = chat.leave().await;
    match ending {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => failed(&mut out, cli.json, e.code(), &e.message()),
    }
}

/// Prints messages (of `room` only, if given) until interrupted; `Err` if the session is lost.
async fn follow(chat: &mut Chat, out: &mut Renderer, room: Option<&RoomName>) -> Result<(), CoreError> {
    let stop = crate::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return Ok(()),
            event = chat.next_event() => match event {
                Some(Event::Message(m)) => {
                    if room.is_none_or(|r| m.recipients.room().is_some_and(|mr| mr.same_as(r))) {
                        out.message(&m);
                    }
                }
                Some(Event::Reconnecting { attempt, in_ms }) => out.reconnecting(attempt, in_ms),
                Some(Event::Resumed { missed }) => out.resumed(missed),
                Some(Event::Notice { text }) => out.notice(&text),
                Some(Event::Disconnected { code, reason }) => return Err(CoreError::Rejected { code, message: reason }),
                Some(_) => {}
                None => return Err(CoreError::Closed("the connection closed".into())),
            },
        }
    }
}

/// Reports a failure (an `error` event with `--json`; always one line on standard error); exit 1.
fn failed(out: &mut Renderer, json: bool, code: chat_core::ErrorCode, message: &str) -> Result<ExitCode> {
    if json {
        out.error(code, message);
    }
    eprintln!("chat-cli: {message}");
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(to: Option<&str>, room: Option<&str>) -> SendArgs {
        SendArgs {
            to: to.map(String::from),
            room: room.map(String::from),
            all: false,
            tls: false,
            text: vec!["hi".into()],
        }
    }

    #[test]
    fn recipients_from_flags() {
        let n = |s: &str| UserName::new(s).unwrap();
        assert_eq!(recipients(&args(None, None)), Ok(Recipients::Broadcast));
        assert_eq!(recipients(&args(Some("bob"), None)), Ok(Recipients::Unicast(n("bob"))));
        assert_eq!(recipients(&args(Some("bob, carol"), None)), Ok(Recipients::Multicast(vec![n("bob"), n("carol")])));
        assert_eq!(recipients(&args(None, Some("#ops"))), Ok(Recipients::Room(RoomName::new("#ops").unwrap())));
        assert!(recipients(&args(Some("bad:name"), None)).is_err());
        assert!(recipients(&args(None, Some("ops"))).is_err());
    }
}

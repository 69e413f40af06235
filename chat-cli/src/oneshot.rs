//! One-shot commands for scripts, like `redis-cli PUBLISH` and `nats pub` / `nats sub`:
//!
//! | command                                        | does                                                        | exit |
//! |------------------------------------------------|-------------------------------------------------------------|------|
//! | `chat-cli send [--to U[,U2] \| --room #R \| --all] TEXT` | logs in (quietly), sends, waits for the acknowledgement (durable), leaves | 0 acknowledged; 1 refused or unreachable; 2 usage |
//! | `chat-cli tail [--room #R] [--history N]`       | logs in (quietly), prints the last N messages, then messages as they arrive, until Ctrl-C or SIGTERM | 0 on interruption; 1 lost |
//!
//! Both sessions are *quiet*: nobody sees them join or leave, and they are not listed by `/peers`
//! (the name is still theirs while they run). Output is human lines, or `--json` events (`sent`,
//! `message`, `history`, ...).
//!
//! In P2P mode (`--mode p2p`) a one-shot is a transient member of the group ([`chat_p2p::P2pConfig::quiet`]):
//! it joins as any node does (same flags: `--group`, `--peer`, `--secret-file`, ...) but flagged quiet, so no
//! member reports its join or leave, `/peers` and `/who` do not list it and it collects no offline messages;
//! it never founds a group (no group answering is exit 1). With a group secret it joins with its user's
//! node key (`--key-file`, or the default per name: see `p2p_key.rs`), so a one-shot named as a user is
//! that user, and a key file that cannot be used is exit 1. `send` exits 0 once its message is ordered and
//! every member holds it (the P2P acknowledgement), then leaves.

use std::process::ExitCode;

use anyhow::Result;
use chat_core::{Chat, CoreError, ErrorCode, Event, Recipients, RoomName, UserName};
use chat_server::client::ClientConfig;

use crate::args::{Cli, Mode, SendArgs, TailArgs};
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

/// A quiet session's settings, for the topology chosen.
enum Quiet {
    /// A quiet server session.
    Server(ClientConfig),
    /// A transient P2P member.
    P2p(chat_p2p::P2pConfig),
}

/// A quiet session's settings (`Err`: a usage message).
fn quiet(cli: &Cli, name: UserName, tls: bool) -> Result<Quiet, String> {
    match cli.mode {
        Mode::Server => {
            let p2p_only = [
                ("--listen", cli.listen.is_some()),
                ("--group", cli.group.is_some()),
                ("--interface", cli.interface.is_some()),
                ("--peer", !cli.peers.is_empty()),
                ("--timeout-ms", cli.timeout_ms.is_some()),
                ("--key-file", cli.key_file.is_some()),
            ];
            if let Some((flag, _)) = p2p_only.iter().find(|(_, given)| *given) {
                return Err(format!("{flag} is for --mode p2p (a one-shot in server mode connects to --server)"));
            }
            let config = crate::config::client_config(cli, name)?;
            Ok(Quiet::Server(ClientConfig { quiet: true, ..config }))
        }
        Mode::P2p if tls || cli.tls => {
            Err("--tls is for --mode server (a P2P group is secured with --secret-file)".into())
        }
        Mode::P2p => {
            let config = crate::config::p2p_config(cli, name)?;
            Ok(Quiet::P2p(chat_p2p::P2pConfig { quiet: true, ..config }))
        }
    }
}

/// Starts the quiet session; `Err` is the failure's code and message. A P2P one-shot joins with its
/// user's node key (`crate::p2p_key`), as the user's chat does: the name stays bound to one key.
async fn connect(cli: &Cli, settings: Quiet) -> Result<Chat, (ErrorCode, String)> {
    match settings {
        Quiet::Server(config) => {
            chat_server::client::connect(config).await.map(Chat::new).map_err(|e| (e.code(), e.to_string()))
        }
        Quiet::P2p(mut config) => {
            config.key = crate::p2p_key::node_key(cli, &config.name).map_err(|e| (ErrorCode::AuthFailed, e))?;
            chat_p2p::join(config).await.map(Chat::new).map_err(|e| (e.code(), e.to_string()))
        }
    }
}

/// `chat-cli send`.
pub async fn send(cli: &Cli, args: &SendArgs, name: UserName) -> Result<ExitCode> {
    let (to, config) = match recipients(args).and_then(|to| Ok((to, quiet(cli, name, args.tls)?))) {
        Ok(ready) => ready,
        Err(message) => return crate::usage(&message),
    };
    let text = args.text.join(" ");
    let mut out = Renderer::new(cli.json, false, Box::new(Stdout));
    let mut chat = match connect(cli, config).await {
        Ok(chat) => chat,
        Err((code, message)) => return failed(&mut out, cli.json, code, &message),
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
    let config = match quiet(cli, name, args.tls) {
        Ok(config) => config,
        Err(message) => return crate::usage(&message),
    };
    let mut out = Renderer::new(cli.json, cli.show_clock, Box::new(Stdout));
    let mut chat = match connect(cli, config).await {
        Ok(chat) => chat,
        Err((code, message)) => return failed(&mut out, cli.json, code, &message),
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
fn failed(out: &mut Renderer, json: bool, code: ErrorCode, message: &str) -> Result<ExitCode> {
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

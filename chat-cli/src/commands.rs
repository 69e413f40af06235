//! The line language, the same in both modes.
//!
//! | line                                              | command            |
//! |---------------------------------------------------|--------------------|
//! | `TEXT`                                            | to where you are: everyone at first, the room after `/join` or `/switch` |
//! | `/all TEXT`, `chat TEXT`, `BROADCAST:ALL:TEXT`    | broadcast (always everyone online) |
//! | `/msg USER TEXT`, `MSG:USER:TEXT`                 | unicast            |
//! | `/mc U1,U2 TEXT`, `MULTICAST:U1,U2:TEXT`          | multicast          |
//! | `/join #room`                                     | join (or create) a room and switch to it |
//! | `/part [#room]`                                   | leave a room (default: the current one) |
//! | `/switch #room`, `/switch *`                      | where plain text goes (`*`: everyone) |
//! | `/rooms`                                          | rooms and their members online |
//! | `/who [#room]`                                    | who is in a room (default: the current one, else everyone online) |
//! | `/peers`, `peers`                                 | list who is online |
//! | `/history [N] [#room]`, `history [N]`             | last N messages (default 20) |
//! | `/quit`, `exit`, end of input                     | leave cleanly      |
//! | `/help`, `help`                                   | this help          |
//!
//! The seed's bare words (`peers`, `history`, `history N`, `exit`, `quit`, `help`, `chat TEXT`) are
//! commands only in exactly these forms: `history is fun` is a message.

use chat_core::{CoreError, Recipients, RoomName, UserName};

/// Messages shown by `/history` when no count is given.
pub const DEFAULT_HISTORY_LINES: usize = 20;

/// The help text (human output).
pub const HELP: &str = "\
commands:
  TEXT                                                send where you are (everyone, or your room)
  /all TEXT | chat TEXT | BROADCAST:ALL:TEXT          send to everybody online
  /msg USER TEXT | MSG:USER:TEXT                      send to one user (kept for them if offline)
  /mc U1,U2 TEXT | MULTICAST:U1,U2:TEXT               send to a list of users
  /join #room                                         join or create a room; plain text goes there
  /part [#room]                                       leave a room (default: the current one)
  /switch #room | /switch *                           send plain text to a room, or to everyone
  /rooms                                              the rooms and how many are in them
  /who [#room]                                        who is in a room, or online
  /peers | peers                                      who is online
  /history [N] [#room] | history [N]                  the last N messages you may see (default 20)
  /quit | exit                                        leave (end of input leaves too)
  /help                                               this help";

/// The one-line hint after a command that could not be understood.
pub const HINT: &str = "type /help for the commands";

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send `text` to `to`.
    Send {
        /// Addressing.
        to: Recipients,
        /// The text.
        text: String,
    },
    /// Send `text` to where the user is (everyone, or the current room).
    Say(String),
    /// Join a room and switch to it.
    Join(RoomName),
    /// Leave a room (`None`: the current one).
    Part(Option<RoomName>),
    /// Send plain text to this room (`None`: everyone).
    Switch(Option<RoomName>),
    /// List the rooms.
    Rooms,
    /// Who is in a room (`None`: the current one, else everyone).
    Who(Option<RoomName>),
    /// List who is online.
    Peers,
    /// Show the last N messages (of a room, if given).
    History(usize, Option<RoomName>),
    /// Leave.
    Quit,
    /// Show help.
    Help,
    /// Nothing to do (blank line).
    Nothing,
}

/// Why a line could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCommand(pub String);

fn names(list: &str) -> Result<Vec<UserName>, BadCommand> {
    list.split(',')
        .map(|n| UserName::new(n.trim()).map_err(|e| BadCommand(e.to_string())))
        .collect::<Result<Vec<_>, _>>()
}

fn non_empty(text: &str, usage: &str) -> Result<String, BadCommand> {
    if text.trim().is_empty() {
        Err(BadCommand(format!("no text to send; usage: {usage}")))
    } else {
        Ok(text.to_string())
    }
}

fn unicast(user: &str, text: &str, usage: &str) -> Result<Command, BadCommand> {
    let user = UserName::new(user.trim()).map_err(|e| BadCommand(e.to_string()))?;
    Ok(Command::Send { to: Recipients::Unicast(user), text: non_empty(text, usage)? })
}

fn multicast(list: &str, text: &str, usage: &str) -> Result<Command, BadCommand> {
    let to = Recipients::multicast(names(list)?).map_err(|e: CoreError| BadCommand(e.to_string()))?;
    Ok(Command::Send { to, text: non_empty(text, usage)? })
}

fn broadcast(text: &str, usage: &str) -> Result<Command, BadCommand> {
    Ok(Command::Send { to: Recipients::Broadcast, text: non_empty(text, usage)? })
}

fn room(arg: &str, usage: &str) -> Result<RoomName, BadCommand> {
    RoomName::new(arg.trim()).map_err(|e| BadCommand(format!("{e}; usage: {usage}")))
}

/// `/history [N] [#room]` (in either order).
fn history(args: &str) -> Result<Command, BadCommand> {
    let usage = "/history [N] [#room]";
    let (mut count, mut which) = (None, None);
    for arg in args.split_whitespace() {
        if arg.starts_with('#') && which.is_none() {
            which = Some(room(arg, usage)?);
        } else if let (Ok(n), None) = (arg.parse::<usize>(), count) {
            count = Some(n);
        } else {
            return Err(BadCommand(format!("not a count or a room: {arg:?}; usage: {usage}")));
        }
    }
    Ok(Command::History(count.unwrap_or(DEFAULT_HISTORY_LINES), which))
}

/// The seed's bare `history [N]`: a command only with nothing or a count after it.
fn bare_history(rest: &str) -> Option<Command> {
    if rest.is_empty() {
        return Some(Command::History(DEFAULT_HISTORY_LINES, None));
    }
    rest.parse().ok().map(|n| Command::History(n, None))
}

/// Splits `rest` at the first run of whitespace.
fn word(rest: &str) -> (&str, &str) {
    let rest = rest.trim_start();
    match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim_start()),
        None => (rest, ""),
    }
}

/// Parses one input line.
pub fn parse(line: &str) -> Result<Command, BadCommand> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Command::Nothing);
    }
    // The seed's colon syntax.
    if let Some(rest) = line.strip_prefix("MSG:") {
        let (user, text) = rest.split_once(':').ok_or_else(|| BadCommand("usage: MSG:USER:TEXT".into()))?;
        return unicast(user, text, "MSG:USER:TEXT");
    }
    if let Some(rest) = line.strip_prefix("MULTICAST:") {
        let (list, text) = rest.split_once(':').ok_or_else(|| BadCommand("usage: MULTICAST:U1,U2:TEXT".into()))?;
        return multicast(list, text, "MULTICAST:U1,U2:TEXT");
    }
    if let Some(rest) = line.strip_prefix("BROADCAST:") {
        let (_all, text) = rest.split_once(':').ok_or_else(|| BadCommand("usage: BROADCAST:ALL:TEXT".into()))?;
        return broadcast(text, "BROADCAST:ALL:TEXT");
    }
    let (head, rest) = word(line);
    match head {
        "/msg" => {
            let (user, text) = word(rest);
            if user.is_empty() {
                return Err(BadCommand("usage: /msg USER TEXT".into()));
            }
            unicast(user, text, "/msg USER TEXT")
        }
        "/mc" => {
            let (list, text) = word(rest);
            if list.is_empty() {
                return Err(BadCommand("usage: /mc U1,U2 TEXT".into()));
            }
            multicast(list, text, "/mc U1,U2 TEXT")
        }
        "/all" | "chat" => broadcast(rest, &format!("{head} TEXT")),
        "/join" => Ok(Command::Join(room(rest, "/join #room")?)),
        "/part" if rest.is_empty() => Ok(Command::Part(None)),
        "/part" => Ok(Command::Part(Some(room(rest, "/part [#room]")?))),
        "/switch" if rest == "*" => Ok(Command::Switch(None)),
        "/switch" => Ok(Command::Switch(Some(room(rest, "/switch #room | /switch *")?))),
        "/rooms" if rest.is_empty() => Ok(Command::Rooms),
        "/who" if rest.is_empty() => Ok(Command::Who(None)),
        "/who" => Ok(Command::Who(Some(room(rest, "/who [#room]")?))),
        "/peers" if rest.is_empty() => Ok(Command::Peers),
        "/history" => history(rest),
        "/quit" | "/exit" if rest.is_empty() => Ok(Command::Quit),
        "/help" if rest.is_empty() => Ok(Command::Help),
        "history" => Ok(bare_history(rest).unwrap_or_else(|| Command::Say(line.to_string()))),
        "peers" if rest.is_empty() => Ok(Command::Peers),
        "exit" | "quit" if rest.is_empty() => Ok(Command::Quit),
        "help" if rest.is_empty() => Ok(Command::Help),
        h if h.starts_with('/') && h.len() > 1 => Err(BadCommand(format!("unknown command {h}"))),
        _ => Ok(Command::Say(line.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    fn r(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }

    fn send(to: Recipients, text: &str) -> Result<Command, BadCommand> {
        Ok(Command::Send { to, text: text.into() })
    }

    #[test]
    fn every_form_of_every_command() {
        let uni = || Recipients::Unicast(n("bob"));
        let multi = || Recipients::Multicast(vec![n("bob"), n("carol")]);
        let cases: Vec<(&str, Result<Command, BadCommand>)> = vec![
            ("/msg bob hi there", send(uni(), "hi there")),
            ("MSG:bob:hi there", send(uni(), "hi there")),
            ("MSG:bob:a:b", send(uni(), "a:b")),
            ("/mc bob,carol hi", send(multi(), "hi")),
            ("MULTICAST:bob,carol:hi", send(multi(), "hi")),
            ("MULTICAST:bob, carol:hi", send(multi(), "hi")),
            ("hello world", Ok(Command::Say("hello world".into()))),
            ("/all hello", send(Recipients::Broadcast, "hello")),
            ("chat hello", send(Recipients::Broadcast, "hello")),
            ("BROADCAST:ALL:hello", send(Recipients::Broadcast, "hello")),
            ("/peers", Ok(Command::Peers)),
            ("peers", Ok(Command::Peers)),
            ("/history", Ok(Command::History(20, None))),
            ("/history 5", Ok(Command::History(5, None))),
            ("/history 5 #ops", Ok(Command::History(5, Some(r("#ops"))))),
            ("/history #ops", Ok(Command::History(20, Some(r("#ops"))))),
            ("history", Ok(Command::History(20, None))),
            ("history 20", Ok(Command::History(20, None))),
            ("history is fun", Ok(Command::Say("history is fun".into()))),
            ("help me", Ok(Command::Say("help me".into()))),
            ("quit now", Ok(Command::Say("quit now".into()))),
            ("/join #ops", Ok(Command::Join(r("#ops")))),
            ("/part", Ok(Command::Part(None))),
            ("/part #ops", Ok(Command::Part(Some(r("#ops"))))),
            ("/switch #ops", Ok(Command::Switch(Some(r("#ops"))))),
            ("/switch *", Ok(Command::Switch(None))),
            ("/rooms", Ok(Command::Rooms)),
            ("/who", Ok(Command::Who(None))),
            ("/who #ops", Ok(Command::Who(Some(r("#ops"))))),
            ("/", Ok(Command::Say("/".into()))),
            ("/quit", Ok(Command::Quit)),
            ("exit", Ok(Command::Quit)),
            ("/help", Ok(Command::Help)),
            ("   ", Ok(Command::Nothing)),
            ("peers are nice", Ok(Command::Say("peers are nice".into()))),
            ("exit strategy", Ok(Command::Say("exit strategy".into()))),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line), expected, "{line:?}");
        }
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for line in [
            "/frobnicate",
            "/msg",
            "/msg bob",
            "/msg bad:name hi",
            "MSG:bob",
            "MSG::hi",
            "/mc ,, hi",
            "MULTICAST::hi",
            "/history lots",
            "/history 5 6",
            "/join ops",
            "/join",
            "/switch",
            "/switch #a b",
            "/who ops",
            "/part #",
            "/all",
            "BROADCAST:ALL:",
        ] {
            assert!(parse(line).is_err(), "{line:?} should be refused, got {:?}", parse(line));
        }
    }
}

//! The line language, the same in both modes.
//!
//! | line                                              | command            |
//! |---------------------------------------------------|--------------------|
//! | `/msg USER TEXT`, `MSG:USER:TEXT`                 | unicast            |
//! | `/mc U1,U2 TEXT`, `MULTICAST:U1,U2:TEXT`          | multicast          |
//! | `TEXT`, `/all TEXT`, `chat TEXT`, `BROADCAST:ALL:TEXT` | broadcast     |
//! | `/peers`, `peers`                                 | list who is online |
//! | `/history [N]`, `history [N]`                     | last N messages (default 20) |
//! | `/quit`, `exit`, end of input                     | leave cleanly      |
//! | `/help`, `help`                                   | this help          |

use chat_core::{CoreError, Recipients, UserName};

/// Messages shown by `/history` when no count is given.
pub const DEFAULT_HISTORY_LINES: usize = 20;

/// The help text (human output).
pub const HELP: &str = "\
commands:
  TEXT | /all TEXT | chat TEXT | BROADCAST:ALL:TEXT   send to everybody
  /msg USER TEXT | MSG:USER:TEXT                      send to one user
  /mc U1,U2 TEXT | MULTICAST:U1,U2:TEXT               send to a list of users
  /peers | peers                                      who is online
  /history [N] | history [N]                          the last N messages you may see (default 20)
  /quit | exit                                        leave (end of input leaves too)
  /help                                               this help";

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
    /// List who is online.
    Peers,
    /// Show the last N messages.
    History(usize),
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

fn history(arg: &str) -> Result<Command, BadCommand> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Ok(Command::History(DEFAULT_HISTORY_LINES));
    }
    arg.parse().map(Command::History).map_err(|_| BadCommand(format!("not a count: {arg:?}; usage: /history [N]")))
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
        "/peers" | "peers" if rest.is_empty() => Ok(Command::Peers),
        "/history" | "history" => history(rest),
        "/quit" | "/exit" | "exit" | "quit" if rest.is_empty() => Ok(Command::Quit),
        "/help" | "help" if rest.is_empty() => Ok(Command::Help),
        h if h.starts_with('/') => Err(BadCommand(format!("unknown command {h}"))),
        _ => broadcast(line, "TEXT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> UserName {
        UserName::new(s).unwrap()
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
            ("hello world", send(Recipients::Broadcast, "hello world")),
            ("/all hello", send(Recipients::Broadcast, "hello")),
            ("chat hello", send(Recipients::Broadcast, "hello")),
            ("BROADCAST:ALL:hello", send(Recipients::Broadcast, "hello")),
            ("/peers", Ok(Command::Peers)),
            ("peers", Ok(Command::Peers)),
            ("/history", Ok(Command::History(20))),
            ("/history 5", Ok(Command::History(5))),
            ("history", Ok(Command::History(20))),
            ("/quit", Ok(Command::Quit)),
            ("exit", Ok(Command::Quit)),
            ("/help", Ok(Command::Help)),
            ("   ", Ok(Command::Nothing)),
            ("peers are nice", send(Recipients::Broadcast, "peers are nice")),
            ("exit strategy", send(Recipients::Broadcast, "exit strategy")),
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
            "/all",
            "BROADCAST:ALL:",
        ] {
            assert!(parse(line).is_err(), "{line:?} should be refused, got {:?}", parse(line));
        }
    }
}

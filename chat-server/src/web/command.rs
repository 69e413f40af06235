//! The browser's commands: one JSON object per WebSocket text frame, checked into typed commands.
//!
//! | `type`    | fields                                                   | becomes                              |
//! |-----------|----------------------------------------------------------|--------------------------------------|
//! | `login`   | `name`, `password`?, `token`?, `resume`? (`{token, cursor}`) | `Enter` (first command only)     |
//! | `send`    | `text`, `to`? (names), `room`?, `key`?                   | `Send`: no `to` nor `room`: everyone; one name: a unicast (DM); several: a multicast; `room`: that room |
//! | `join`    | `room`                                                   | `JoinRoom`                           |
//! | `part`    | `room`                                                   | `PartRoom`                           |
//! | `history` | `room`?, `limit`? (default [`DEFAULT_HISTORY`])          | `History`                            |
//! | `peers`   | —                                                        | `Peers`                              |
//! | `rooms`   | —                                                        | `Rooms`                              |
//! | `who`     | `room`?                                                  | `Who`                                |
//! | `leave`   | —                                                        | the session ends (`quit`: no resume) |
//!
//! Fields not listed are ignored (a newer page may send more). Everything is hostile until checked:
//! names and rooms follow the naming rules, `to` and `room` exclude each other, a `key` is a positive
//! integer (JavaScript-safe, at most [`MAX_KEY`]), `password` and `token` exclude each other.

use chat_core::{ErrorCode, MAX_MULTICAST_RECIPIENTS, Recipients, RoomName, UserName};
use serde::Deserialize;

use crate::protocol::{Credential, Resume};

/// Messages a `history` command without `limit` asks for (as `chat-cli`'s `/history`).
pub const DEFAULT_HISTORY: u32 = 20;
/// The largest idempotency key: the largest integer a JavaScript number holds exactly (2^53 - 1).
pub const MAX_KEY: u64 = (1 << 53) - 1;

/// A checked command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Log in (or resume).
    Login {
        /// The requested name.
        name: UserName,
        /// Its password or token.
        credential: Option<Credential>,
        /// The session to resume.
        resume: Option<Resume>,
    },
    /// Send a message.
    Send {
        /// Who it is for.
        recipients: Recipients,
        /// The text.
        text: String,
        /// The page's idempotency key (0: none).
        key: u64,
    },
    /// Join a room.
    Join(RoomName),
    /// Leave a room.
    Part(RoomName),
    /// The last messages (of a room).
    History {
        /// The room, or everything this user may see.
        room: Option<RoomName>,
        /// How many at most.
        limit: u32,
    },
    /// Who is online.
    Peers,
    /// The rooms.
    Rooms,
    /// Who is online (in a room).
    Who(Option<RoomName>),
    /// End the session.
    Leave,
}

/// Why a command was refused: the `error` event to send (with the send's `key`, if it had one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The error code.
    pub(crate) code: ErrorCode,
    /// What is wrong.
    pub(crate) message: String,
    /// The key of the refused send, so the page stops waiting for it.
    pub(crate) key: Option<u64>,
    /// Whether the command was a `login` (a refused login ends the connection).
    pub(crate) login: bool,
}

/// The wire form, before checking.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Raw {
    Login { name: String, password: Option<String>, token: Option<String>, resume: Option<RawResume> },
    Send { text: String, to: Option<Vec<String>>, room: Option<String>, key: Option<u64> },
    Join { room: String },
    Part { room: String },
    History { room: Option<String>, limit: Option<u32> },
    Peers {},
    Rooms {},
    Who { room: Option<String> },
    Leave {},
}

#[derive(Deserialize)]
struct RawResume {
    token: String,
    cursor: u64,
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal { code: ErrorCode::BadCommand, message: message.into(), key: None, login: false }
}

/// Parses and checks one command.
pub(crate) fn parse(text: &str) -> Result<Command, Refusal> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| bad(describe(text, &e)))?;
    match raw {
        Raw::Login { name, password, token, resume } => login(name, password, token, resume),
        Raw::Send { text, to, room, key } => send(text, to, room, key),
        Raw::Join { room } => Ok(Command::Join(room_name(&room)?)),
        Raw::Part { room } => Ok(Command::Part(room_name(&room)?)),
        Raw::History { room, limit } => Ok(Command::History {
            room: room.as_deref().map(room_name).transpose()?,
            limit: limit.unwrap_or(DEFAULT_HISTORY),
        }),
        Raw::Peers {} => Ok(Command::Peers),
        Raw::Rooms {} => Ok(Command::Rooms),
        Raw::Who { room } => Ok(Command::Who(room.as_deref().map(room_name).transpose()?)),
        Raw::Leave {} => Ok(Command::Leave),
    }
}

/// What is wrong with a command that does not parse (without quoting it: it may be huge).
fn describe(text: &str, e: &serde_json::Error) -> String {
    let kind = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(|t| t.chars().take(32).collect::<String>())));
    match kind {
        Some(kind) if !KNOWN.contains(&kind.as_str()) => {
            format!("unknown command type {kind:?} (expected one of {})", KNOWN.join(", "))
        }
        _ => format!("not a command: {e}"),
    }
}

const KNOWN: [&str; 9] = ["login", "send", "join", "part", "history", "peers", "rooms", "who", "leave"];

fn login(
    name: String,
    password: Option<String>,
    token: Option<String>,
    resume: Option<RawResume>,
) -> Result<Command, Refusal> {
    let refuse = |code, message: String| Refusal { code, message, key: None, login: true };
    let name = UserName::new(name).map_err(|e| refuse(ErrorCode::InvalidName, e.to_string()))?;
    let credential = match (password, token) {
        (Some(_), Some(_)) => return Err(refuse(ErrorCode::BadCommand, "give a password or a token, not both".into())),
        (Some(p), None) => Some(Credential::Password(p)),
        (None, Some(t)) => Some(Credential::Token(t)),
        (None, None) => None,
    };
    let resume = resume.map(|r| Resume { token: r.token, cursor: r.cursor });
    Ok(Command::Login { name, credential, resume })
}

fn send(text: String, to: Option<Vec<String>>, room: Option<String>, key: Option<u64>) -> Result<Command, Refusal> {
    let key = key.unwrap_or(0);
    let refuse = |code, message: String| Refusal { code, message, key: Some(key).filter(|k| *k > 0), login: false };
    if key > MAX_KEY {
        return Err(refuse(ErrorCode::BadCommand, format!("a key is a whole number from 1 to {MAX_KEY}")));
    }
    let recipients = match (to, room) {
        (Some(_), Some(_)) => {
            return Err(refuse(ErrorCode::BadCommand, "a message goes to people or to a room, not both".into()));
        }
        (None, None) => Recipients::Broadcast,
        (None, Some(room)) => Recipients::Room(room_name(&room).map_err(|r| refuse(r.code, r.message))?),
        (Some(to), None) => {
            if to.is_empty() {
                return Err(refuse(
                    ErrorCode::BadCommand,
                    "`to` names nobody (leave it out to send to everyone)".into(),
                ));
            }
            if to.len() > MAX_MULTICAST_RECIPIENTS {
                return Err(refuse(ErrorCode::TooLong, format!("at most {MAX_MULTICAST_RECIPIENTS} recipients")));
            }
            let mut names = Vec::with_capacity(to.len());
            for name in to {
                names.push(UserName::new(name).map_err(|e| refuse(ErrorCode::InvalidName, e.to_string()))?);
            }
            if names.len() == 1 {
                Recipients::Unicast(names.remove(0))
            } else {
                Recipients::multicast(names).map_err(|e| refuse(e.code(), e.to_string()))?
            }
        }
    };
    Ok(Command::Send { recipients, text, key })
}

fn room_name(room: &str) -> Result<RoomName, Refusal> {
    RoomName::new(room).map_err(|e| Refusal {
        code: ErrorCode::BadCommand,
        message: e.to_string(),
        key: None,
        login: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    #[test]
    fn commands_parse_into_their_frames_inputs() {
        let ops = RoomName::new("#ops").unwrap();
        let cases = [
            (r#"{"type":"login","name":"alice"}"#, Command::Login { name: n("alice"), credential: None, resume: None }),
            (
                r#"{"type":"login","name":"alice","token":"t","resume":{"token":"s","cursor":9},"extra":1}"#,
                Command::Login {
                    name: n("alice"),
                    credential: Some(Credential::Token("t".into())),
                    resume: Some(Resume { token: "s".into(), cursor: 9 }),
                },
            ),
            (
                r#"{"type":"send","text":"hi"}"#,
                Command::Send { recipients: Recipients::Broadcast, text: "hi".into(), key: 0 },
            ),
            (
                r#"{"type":"send","text":"hi","to":["bob"],"key":7}"#,
                Command::Send { recipients: Recipients::Unicast(n("bob")), text: "hi".into(), key: 7 },
            ),
            (
                r#"{"type":"send","text":"hi","to":["bob","carol"]}"#,
                Command::Send {
                    recipients: Recipients::Multicast(vec![n("bob"), n("carol")]),
                    text: "hi".into(),
                    key: 0,
                },
            ),
            (
                r##"{"type":"send","text":"hi","room":"#ops"}"##,
                Command::Send { recipients: Recipients::Room(ops.clone()), text: "hi".into(), key: 0 },
            ),
            (r##"{"type":"join","room":"#ops"}"##, Command::Join(ops.clone())),
            (r##"{"type":"part","room":"#ops"}"##, Command::Part(ops.clone())),
            (r#"{"type":"history"}"#, Command::History { room: None, limit: DEFAULT_HISTORY }),
            (r##"{"type":"history","room":"#ops","limit":5}"##, Command::History { room: Some(ops.clone()), limit: 5 }),
            (r#"{"type":"peers"}"#, Command::Peers),
            (r#"{"type":"rooms"}"#, Command::Rooms),
            (r#"{"type":"who"}"#, Command::Who(None)),
            (r##"{"type":"who","room":"#ops"}"##, Command::Who(Some(ops))),
            (r#"{"type":"leave"}"#, Command::Leave),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn hostile_commands_are_refused_with_a_reason() {
        let code = |text: &str| parse(text).unwrap_err().code;
        assert_eq!(code("not json"), ErrorCode::BadCommand);
        assert_eq!(code("[1,2]"), ErrorCode::BadCommand);
        assert_eq!(code(r#"{"type":"send"}"#), ErrorCode::BadCommand, "no text");
        assert_eq!(code(r#"{"type":"send","text":1}"#), ErrorCode::BadCommand);
        assert_eq!(code(r#"{"type":"send","text":"x","to":[]}"#), ErrorCode::BadCommand);
        assert_eq!(code(r##"{"type":"send","text":"x","to":["a"],"room":"#r"}"##), ErrorCode::BadCommand);
        assert_eq!(code(r#"{"type":"send","text":"x","room":"ops"}"#), ErrorCode::BadCommand, "a room starts with #");
        assert_eq!(code(r#"{"type":"send","text":"x","key":-1}"#), ErrorCode::BadCommand);
        assert_eq!(code(r#"{"type":"send","text":"x","key":9007199254740992}"#), ErrorCode::BadCommand);
        assert_eq!(code(r#"{"type":"send","text":"x","to":["a\nb"]}"#), ErrorCode::InvalidName);
        assert_eq!(code(r#"{"type":"login","name":""}"#), ErrorCode::InvalidName);
        assert_eq!(code(r#"{"type":"login","name":"a","password":"p","token":"t"}"#), ErrorCode::BadCommand);
        let unknown = parse(r#"{"type":"shutdown"}"#).unwrap_err();
        assert!(unknown.message.starts_with("unknown command type \"shutdown\""), "{}", unknown.message);
        let many: Vec<String> = (0..=MAX_MULTICAST_RECIPIENTS).map(|i| format!("u{i}")).collect();
        let text = serde_json::json!({"type": "send", "text": "x", "to": many, "key": 3}).to_string();
        assert_eq!(
            parse(&text).unwrap_err(),
            Refusal {
                code: ErrorCode::TooLong,
                message: format!("at most {MAX_MULTICAST_RECIPIENTS} recipients"),
                key: Some(3),
                login: false
            }
        );
        assert!(parse(r#"{"type":"login","name":"Sistema\u0000"}"#).unwrap_err().login);
    }
}

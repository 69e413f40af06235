//! Server frames as text lines, in the original server's forms and words. `<L>` is the message's
//! Lamport counter, `<c>` the newest counter this connection was sent; every line ends with `\n` and
//! is cut to [`MAX_LINE`] bytes.
//!
//! | frame                                   | line                                                           |
//! |-----------------------------------------|----------------------------------------------------------------|
//! | `Welcome { online }`                    | `<c>:Sistema:Usuários conectados: a, b`                         |
//! | `Refused { message }`                   | `<c>:Sistema:<message>`                                         |
//! | `Message`, a broadcast                  | `<L>:<sender> (broadcast):<text>`                               |
//! | `Message`, a multicast naming this user | `<L>:<sender> (multicast):<text>`                               |
//! | `Message`, a unicast to this user       | `<L>:<sender>:<text>` (a note to oneself included, as the original) |
//! | `Message`, this user's own otherwise    | — (remembered for its acknowledgement: no echo)                |
//! | `Message` of any other kind (rooms...)  | — (text users are not in rooms)                                |
//! | `Sent` of a unicast                     | — (the original acknowledges none)                              |
//! | `Sent` of a multicast                   | `<L>:Sistema:Mensagem enviada para N usuário(s)`: N recipients online, once each |
//! | `Sent` of a broadcast                   | `<L>:Sistema:Mensagem enviada para todos (N usuário(s))`: N other users online |
//! | `Rejected { unknown_user }`             | `<c>:Sistema:Usuário não encontrado.` (unicast), `<c>:Sistema:Nenhum destinatário válido encontrado.` (multicast) |
//! | `Rejected` otherwise                    | `<c>:Sistema:Mensagem não enviada: <message>`                   |
//! | `RateLimited { retry_after_ms }`        | `<c>:Sistema:Mensagem não enviada: limite de envio excedido, tente de novo em <ms> ms` |
//! | `Closing { reason }`                    | `<c>:Sistema:Conexão encerrada: <reason>`                       |
//! | `Joined`, `Left`                        | — (counted: the broadcast acknowledgement says how many)        |
//! | anything else                           | —                                                              |
//!
//! Names and texts are escaped as `chat-cli` prints them: control characters (line breaks
//! included), bidi and zero-width characters become visible escapes (`\n`, `\x1b`, `\u{202e}`) and a
//! backslash is doubled, so nobody can start a line of their own or drive a terminal.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::Bytes;
use chat_core::{ChatMessage, ErrorCode, MessageId, Recipients, UserName};

use super::{MAX_LINE, SYSTEM_NAME};
use crate::protocol::ServerFrame;

/// Own messages remembered until their acknowledgement (sends in flight per connection, at most).
const OWN_REMEMBERED: usize = 256;

/// The addressing of a send, carried in the low bits of its request ID so the answer can be worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `MSG`.
    Unicast = 0,
    /// `MULTICAST`.
    Multicast = 1,
    /// `BROADCAST`.
    Broadcast = 2,
}

/// The request ID of the `n`th send, of `kind`.
pub(super) fn req(n: u64, kind: Kind) -> u64 {
    (n << 2) | kind as u64
}

fn kind_of(req: u64) -> Option<Kind> {
    match req & 3 {
        0 => Some(Kind::Unicast),
        1 => Some(Kind::Multicast),
        2 => Some(Kind::Broadcast),
        _ => None,
    }
}

/// An own message waiting for its acknowledgement.
#[derive(Debug)]
struct Own {
    id: MessageId,
    lamport: u64,
    /// The multicast's recipients, or the other users online at a broadcast.
    count: usize,
}

/// What the renderer knows of its connection: who it is, how many are online, the newest counter.
#[derive(Debug, Default)]
pub(super) struct View {
    me: Option<UserName>,
    online: usize,
    clock: u64,
    own: VecDeque<Own>,
}

impl View {
    /// The newest Lamport counter this connection was sent (0 before any).
    pub(super) fn clock(&self) -> u64 {
        self.clock
    }

    /// The line for `frame`, if text users see one (see the module table).
    pub(super) fn frame(&mut self, frame: &ServerFrame) -> Option<Bytes> {
        let c = self.clock;
        match frame {
            ServerFrame::Welcome { name, online, .. } => {
                self.me = Some(name.clone());
                self.online = online.len();
                let names: Vec<&str> = online.iter().map(UserName::as_str).collect();
                Some(system(c, &format!("Usuários conectados: {}", names.join(", "))))
            }
            ServerFrame::Refused { message, .. } => Some(system(c, message)),
            ServerFrame::Message(m) => self.message(m),
            ServerFrame::Sent { req, id, .. } => {
                let i = self.own.iter().position(|o| o.id == *id)?;
                let own = self.own.remove(i)?;
                match kind_of(*req)? {
                    Kind::Unicast => None,
                    Kind::Multicast => {
                        Some(system(own.lamport, &format!("Mensagem enviada para {} usuário(s)", own.count)))
                    }
                    Kind::Broadcast => {
                        Some(system(own.lamport, &format!("Mensagem enviada para todos ({} usuário(s))", own.count)))
                    }
                }
            }
            ServerFrame::Rejected { req, code, message } => Some(system(
                c,
                &match (code, kind_of(*req)) {
                    (ErrorCode::UnknownUser, Some(Kind::Unicast)) => NOT_FOUND.to_string(),
                    (ErrorCode::UnknownUser, Some(Kind::Multicast)) => NONE_VALID.to_string(),
                    _ => format!("Mensagem não enviada: {message}"),
                },
            )),
            ServerFrame::RateLimited { retry_after_ms, .. } => Some(system(
                c,
                &format!("Mensagem não enviada: limite de envio excedido, tente de novo em {retry_after_ms} ms"),
            )),
            ServerFrame::Closing { reason, .. } => Some(closing(c, reason)),
            ServerFrame::Joined { .. } => {
                self.online += 1;
                None
            }
            ServerFrame::Left { .. } => {
                self.online = self.online.saturating_sub(1);
                None
            }
            _ => None,
        }
    }

    fn message(&mut self, m: &ChatMessage) -> Option<Bytes> {
        let l = m.lamport.counter;
        self.clock = self.clock.max(l);
        let me = self.me.as_ref();
        let own = me == Some(&m.sender);
        let (mark, count, for_me) = match &m.recipients {
            Recipients::Unicast(to) => ("", 1, me == Some(to)),
            Recipients::Multicast(to) => (" (multicast)", to.len(), !own && me.is_some_and(|me| to.contains(me))),
            Recipients::Broadcast => (" (broadcast)", self.online.saturating_sub(1), !own),
            #[allow(unreachable_patterns)] // kinds added later (rooms) are not for text users
            _ => return None,
        };
        if for_me {
            return Some(line(l, &format!("{}{mark}", escape(m.sender.as_str())), &escape(&m.body)));
        }
        if own {
            if self.own.len() == OWN_REMEMBERED {
                self.own.pop_front();
            }
            self.own.push_back(Own { id: m.id, lamport: l, count });
        }
        None
    }
}

/// The original's answer to a unicast to nobody online.
pub(super) const NOT_FOUND: &str = "Usuário não encontrado.";
/// The original's answer to a multicast to nobody online.
pub(super) const NONE_VALID: &str = "Nenhum destinatário válido encontrado.";

/// `<clock>:<from>:<text>\n`, cut to [`MAX_LINE`] bytes at a character boundary.
pub(super) fn line(clock: u64, from: &str, text: &str) -> Bytes {
    let mut s = format!("{clock}:{from}:{text}");
    let mut end = s.len().min(MAX_LINE - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('\n');
    Bytes::from(s)
}

/// A notice: `<clock>:Sistema:<text>\n` (the text escaped: a refusal may quote what the user typed).
pub(super) fn system(clock: u64, text: &str) -> Bytes {
    line(clock, SYSTEM_NAME, &escape(text))
}

/// The last line of a connection the server ends.
pub(super) fn closing(clock: u64, reason: &str) -> Bytes {
    system(clock, &format!("Conexão encerrada: {reason}"))
}

/// The answer to `CONNECT`.
pub(super) fn accept(clock: u64) -> Bytes {
    Bytes::from(format!("ACCEPT:{clock}:Bem-vindo ao servidor\n"))
}

/// The name prompt.
pub(super) fn prompt(clock: u64) -> Bytes {
    Bytes::from(format!("{clock}:Digite seu nome: \n"))
}

/// The refusal of a handshake.
pub(super) fn reject(reason: &str) -> Bytes {
    Bytes::from(format!("REJECT:{}\n", escape(reason)))
}

/// Whether `c` must not reach a terminal as is (as `chat-cli`'s `safe_text`).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// `text` on one line with every unsafe character made a visible escape.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_to_the_limit_at_a_character_boundary() {
        let l = line(7, "bob", &"é".repeat(600));
        assert_eq!(l.len(), MAX_LINE - 1, "1024 would split an é: one byte less");
        assert!(std::str::from_utf8(&l).is_ok());
        assert!(l.ends_with(b"\n"));
        assert_eq!(line(7, "bob", "hi"), Bytes::from_static(b"7:bob:hi\n"));
        assert_eq!(line(7, "bob", &"x".repeat(2000)).len(), MAX_LINE);
    }

    #[test]
    fn escapes_make_breaks_and_controls_visible() {
        assert_eq!(escape("hi\n999:Sistema:fake"), "hi\\n999:Sistema:fake");
        assert_eq!(escape("\u{1b}[2K\r\u{202e}x\\"), "\\x1b[2K\\r\\u{202e}x\\\\");
        assert_eq!(escape("ção 李 ok"), "ção 李 ok");
        assert_eq!(reject("a\nb"), Bytes::from_static(b"REJECT:a\\nb\n"));
    }

    #[test]
    fn request_ids_carry_the_kind() {
        for (n, kind) in [(1, Kind::Unicast), (2, Kind::Multicast), (u64::MAX >> 2, Kind::Broadcast)] {
            assert_eq!(kind_of(req(n, kind)), Some(kind));
        }
        assert_eq!(kind_of(3), None);
    }
}

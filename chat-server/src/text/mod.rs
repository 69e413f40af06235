//! Seed 000's text protocol: the original Python project's wire format, served next to ours
//! (`serve --text-listen ADDR`), so its unmodified client and a person with `nc` chat with the users
//! of every other front end. Text users are ordinary users of the same router: same order, same
//! names, same limits, same durability.
//!
//! ```text
//! client                                        server
//!   │── CONNECT ─────────────────────────────────►│  anything else: REJECT:Protocolo inválido, close
//!   │◄─────────── ACCEPT:<clock>:Bem-vindo ao servidor
//!   │◄─────────── <clock>:Digite seu nome:        its own write, PROMPT_DELAY later
//!   │── <clock>:<name> ──────────────────────────►│  Login (a bare <name> is accepted too)
//!   │◄─────────── <clock>:Sistema:Usuários conectados: a, b    or <clock>:Sistema:<reason>, close
//!   │── <clock>:MSG:<user>:<text> ───────────────►│  Send unicast
//!   │── <clock>:MULTICAST:<u1,u2>:<text> ────────►│  Send multicast
//!   │── <clock>:BROADCAST:ALL:<text> ────────────►│  Send broadcast
//!   │◄─────────── <clock>:<sender>:<text>              a unicast to this user
//!   │◄─────────── <clock>:<sender> (multicast):<text>  a multicast naming this user
//!   │◄─────────── <clock>:<sender> (broadcast):<text>  a broadcast
//!   │◄─────────── <clock>:Sistema:<notice>             acknowledgements, refusals, the end
//! ```
//!
//! Framing, as the original behaves: no delimiter and no length prefix. One read (at most
//! [`MAX_READ`] bytes) is one message, trimmed; as an extension a line break also ends a message, so
//! lines piped into `nc` work. The original client reads each server message with one `recv(1024)`,
//! so every line is written on its own, [`WRITE_GAP`] after the previous one (the prompt
//! [`PROMPT_DELAY`] after `ACCEPT`), and cut to [`MAX_LINE`] bytes at a UTF-8 boundary. Every line
//! ends with `\n` (the original sent none; its client prints it as an empty line, `nc` needs it).
//!
//! Clocks: a chat line carries the message's Lamport counter (the number every front end shows),
//! strictly increasing along a connection; an acknowledgement carries the counter of the message it
//! acknowledges; any other line repeats the newest counter this connection was sent (0 before any).
//! Each clock the client sends is merged into the server's clock with the message (more than
//! [`chat_core::MAX_CLOCK_JUMP`] ahead: refused, as for every client).
//!
//! | module    | owns                                                                      |
//! |-----------|---------------------------------------------------------------------------|
//! | `parse`   | the bytes of one read → lines → commands; what is ignored                 |
//! | `render`  | server frames → text lines: the forms, the notices, escaping, the cut     |
//! | `session` | [`TextSession`]: one connection's sans-IO state machine, pacing, the bounded line queue |
//!
//! The async shell is `crate::server::text`; the frames come from the same byte paths as every
//! connection's (`crate::fanout::feed`).

mod parse;
mod render;
mod session;
#[cfg(test)]
mod session_tests;

use std::time::Duration;

pub use session::{TextEvent, TextSession};

/// Largest message read from a text client: one read of at most this many bytes is one message.
pub const MAX_READ: usize = 64 * 1024;
/// Largest line written to a text client, its `\n` included (the original client reads with
/// `recv(1024)`; a longer line is cut at a UTF-8 boundary).
pub const MAX_LINE: usize = 1024;
/// Least time between the end of one write to a text client and the start of the next, so that each
/// line arrives in a read of its own.
pub const WRITE_GAP: Duration = Duration::from_millis(30);
/// Least time between `ACCEPT` and the name prompt (the original client reads them with two reads
/// and waits forever for the second if they arrive together).
pub const PROMPT_DELAY: Duration = Duration::from_millis(200);
/// Lines a text connection may have waiting for their turn; one more and it is disconnected as a
/// slow consumer (at one line per [`WRITE_GAP`] that is about 30 seconds behind).
pub const MAX_QUEUED_LINES: usize = 1024;
/// Time a text connection has to send `CONNECT`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The name the server's notices come from; no user may take it (see `crate::router`).
pub const SYSTEM_NAME: &str = "Sistema";

/// The refusal of a connection that does not start with `CONNECT` (the original's words).
pub(crate) const BAD_HANDSHAKE: &str = "Protocolo inválido";

/// A `REJECT:<reason>` line, for connections refused before their handshake (`busy`).
pub fn reject_line(reason: &str) -> bytes::Bytes {
    render::reject(reason)
}

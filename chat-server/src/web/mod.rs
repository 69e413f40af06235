//! The web client (`serve --web ADDR`): a single page and a WebSocket (`/ws`) served by the server
//! process itself. Browser users are ordinary users of the same router: same order, same names,
//! same limits, same durability (`sent` once the message is durable).
//!
//! ```text
//! browser                                        server
//!   │── GET / , /app.js , /style.css ───────────►│  the page, embedded in the binary (see `assets`)
//!   │── GET /ws (Upgrade: websocket, Origin) ───►│  403 unless the Origin is allowed (see `origin`)
//!   │── {"type":"login","name":..} ─────────────►│  Enter (password / token / resume)
//!   │◄── {"type":"ready","name","rooms","token","grace_ms"}    or {"type":"error",..}, close
//!   │◄── {"type":"resumed","missed"} ─────────────│  after a resume: the missed messages follow
//!   │── {"type":"send","text","to"?,"room"?,"key"?} ►│
//!   │◄── {"type":"sent","id","unknown","queued","key"?}         once durable, or {"type":"error",..,"key"?}
//!   │◄── {"type":"message",..} {"type":"joined",..} ...        the events of `chat-cli --json`
//!   │── join / part / history / peers / rooms / who / leave ►│ answered by the event of the same name
//! ```
//!
//! One JSON object per WebSocket text message, both ways. The commands are listed in `command`; the
//! events are exactly those of `chat-cli --json` ([`crate::json`]), with the fields the page needs
//! to resume added: `token` and `grace_ms` in `ready`, the send's `key` in `sent` and `error`,
//! `retry_after_ms` in a `rate_limited` error.
//!
//! **Resume**: the page keeps the session token and its cursor (the sequence number, the part of a
//! message `id` after `:`, of the newest message it received) in `sessionStorage`; after a lost
//! connection it logs in again with `resume: {token, cursor}` and receives what it missed, once
//! (a message at or below its cursor is a duplicate: the page drops it). Sends not yet acknowledged
//! are sent again with the same `key`: the server stores each key once.
//!
//! **Limits**: a command is at most [`MAX_COMMAND_BYTES`] (the native frame limit; bodies are
//! limited as for every client); the router's rate limits, admission limits and login timeout
//! apply; frames are taken from the router only as fast as the browser reads (see `session`), so the
//! native slow-consumer policy applies; the HTTP side is bounded too (see `crate::server`).
//!
//! | module    | owns                                                                     |
//! |-----------|--------------------------------------------------------------------------|
//! | `command` | the browser's JSON commands, checked                                      |
//! | `session` | [`WebSession`]: one WebSocket's sans-IO state machine                     |
//! | `origin`  | [`OriginPolicy`]: which pages may open the WebSocket                      |
//! | `assets`  | the page (HTML, CSS, JavaScript modules), embedded, with its headers      |
//!
//! The async shells are `crate::server::http` (HTTP, TLS, the upgrade) and `crate::server::web`
//! (one WebSocket connection).

pub mod assets;
mod command;
mod origin;
mod session;
#[cfg(test)]
mod session_tests;

pub use command::{DEFAULT_HISTORY, MAX_KEY};
pub use origin::OriginPolicy;
pub use session::{
    FRAMES_BELOW, MAX_HISTORY_EVENT, MAX_IN_FLIGHT, MAX_QUEUED_EVENTS, ReadEnd, SESSION_GONE, WebEvent, WebSession,
};

/// Largest command (one WebSocket message from the browser), in bytes: the native protocol's frame
/// limit. A larger one ends the connection.
pub const MAX_COMMAND_BYTES: usize = chat_transport::codec::MAX_FRAME_LEN;

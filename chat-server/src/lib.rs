//! # chat-server
//!
//! The centralized topology: one TCP server orders every message and fans it out; clients reach it
//! through [`client::ServerTransport`], a [`chat_core::Transport`].
//!
//! | module     | owns                                                                       |
//! |------------|----------------------------------------------------------------------------|
//! | `protocol` | the frames exchanged by client and server                                  |
//! | `router`   | the sans-IO routing core: sessions, recipients, global order, history      |
//! | `server`   | the async shell: accept loop, reader/writer tasks, owner task, shutdown    |
//! | `outbox`   | fan-out: the shared broadcast stream, private queues, the writer task      |
//! | `client`   | [`client::connect`] and [`client::ServerTransport`]                        |
//! | `record`   | journal records                                                            |
//! | `journal`  | the persistent log: group commit, fsync policy, crash recovery             |
//! | `logview`  | `log show` and `log verify`                                                |
//! | `error`    | [`ServerError`]                                                            |
pub mod client;
mod error;
pub mod journal;
pub mod logview;
mod outbox;
pub mod protocol;
pub mod record;
pub mod router;
pub mod server;
pub use error::ServerError;

//! # chat-server
//!
//! The centralized topology: one server orders every message and fans it out; clients reach it
//! through [`client::ServerTransport`], a [`chat_core::Transport`].
//!
//! | module     | owns                                                                               |
//! |------------|------------------------------------------------------------------------------------|
//! | `protocol` | the frames exchanged by client and server (version 2; `protocol::v1`, the first version's, frozen) |
//! | `accounts` | registered names: argon2id password hashes and hashed tokens, `DATA_DIR/accounts`  |
//! | `router`   | the sans-IO core: sessions (detached, resumed), rooms, offline queues, recipients, global order, history, and every delivery policy (publishing, slow consumers, shutdown); `router::restore` rebuilds its state from the journal |
//! | `server`   | the async shell: accept loop, connection tasks, the owner task that performs the router's outputs |
//! | `fanout`   | the byte paths: the shared stream, private queues, the writer task                 |
//! | `client`   | sans-IO `session` core (reconnects and resumes, `client::reconnect`), thin `task`, [`client::ServerTransport`], [`client::connect_with`] |
//! | `journal`  | the persistent log: records, group commit, fsync policy, crash recovery            |
//! | `cluster`  | cluster mode (`serve --cluster`): N instances replicate one router through a NATS JetStream log |
//! | `tls`      | TLS: the server's certificate (files or self-signed), how clients trust it, fingerprints |
//! | `text`     | seed 000's text protocol (`serve --text-listen`): the sans-IO [`text::TextSession`] |
//! | `web`      | the web client (`serve --web`): its page, its WebSocket's sans-IO [`web::WebSession`], the Origin policy |
//! | `json`     | the JSON events: the one implementation of `chat-cli --json`'s and the WebSocket's contract |
//! | `logview`  | `log show` and `log verify`                                                        |
//! | `error`    | [`ServerError`]                                                                    |
pub mod accounts;
pub mod client;
pub mod cluster;
mod error;
mod fanout;
pub mod journal;
pub mod json;
pub mod logview;
pub mod protocol;
pub mod router;
pub mod server;
pub mod text;
pub mod tls;
pub mod web;
pub use error::ServerError;

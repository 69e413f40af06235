//! # chat-core
//!
//! The topology-independent heart of the distributed chat: what a message is, who may see it, how
//! logical time flows, and the [`Transport`] trait every topology implements. No sockets, no tasks
//! and no clock reads live here, so everything can be tested with exact expected values and embedded
//! in any Rust program.
//!
//! | module      | owns                                                                    |
//! |-------------|-------------------------------------------------------------------------|
//! | `name`      | [`UserName`] (normalized, validated), [`NameKey`], [`NameMap`] (uniqueness) |
//! | `room`      | [`RoomName`] (`#name`, case-insensitive)                                |
//! | `id`        | [`NodeId`], [`MessageId`]                                               |
//! | `clock`     | [`LamportClock`] and totally ordered [`Timestamp`]s                      |
//! | `message`   | [`ChatMessage`], [`Recipients`], [`MessageKind`], [`MAX_BODY_LEN`]       |
//! | `rate`      | [`rate::TokenBucket`]: flood-control arithmetic                         |
//! | `buffer`    | [`MessageBuffer`] (bounded history, lookup by ID) and [`DedupWindow`]    |
//! | `event`     | [`Event`], [`PeerInfo`], [`ErrorCode`], [`SendReceipt`]                  |
//! | `transport` | the [`Transport`] trait and [`OutgoingMessage`]                          |
//! | `chat`      | [`Chat`]: one API for programs over any transport                        |
//! | `error`     | [`CoreError`]                                                           |

pub mod buffer;
mod chat;
mod clock;
mod error;
mod event;
mod id;
mod message;
mod name;
pub mod rate;
mod room;
mod transport;

pub use buffer::{DedupWindow, MessageBuffer};
pub use chat::Chat;
pub use clock::{LamportClock, MAX_CLOCK_JUMP, Timestamp};
pub use error::CoreError;
pub use event::{ErrorCode, Event, PeerInfo, RoomInfo, SendReceipt};
pub use id::{MessageId, NodeId};
pub use message::{ChatMessage, MAX_BODY_LEN, MAX_MULTICAST_RECIPIENTS, MessageKind, Recipients, check_body};
pub use name::{MAX_NAME_LEN, NAME_PUNCTUATION, NameKey, NameMap, UserName};
pub use room::{MAX_ROOM_LEN, RoomKey, RoomName};
pub use transport::{OutgoingMessage, Transport};

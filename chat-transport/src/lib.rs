//! # chat-transport
//!
//! The wire of the distributed chat: how bytes move, never what they mean.
//!
//! | module       | owns                                                                        |
//! |--------------|-----------------------------------------------------------------------------|
//! | `codec`      | frames = 4-byte length + `bincode` payload; the only place `bincode` is called |
//! | `handshake`  | the `Hello` frame that opens every connection (magic, protocol version)      |
//! | `connection` | [`FrameReader`], [`FrameWriter`], [`Connection`]: framed I/O over any stream  |
//! | `net`        | [`Listener`] and [`Dialer`]: where streams come from (TCP, or in memory)     |
//! | `memory`     | an in-memory network of streams and datagram groups, with cuts, for tests    |
//! | `discovery`  | UDP multicast sockets (join a group on an interface, send, receive)          |
//! | `time`       | [`sleep_until`]: the one "sleep until an optional deadline" of the shells    |
//! | `error`      | [`TransportError`]                                                           |

pub mod codec;
mod connection;
pub mod discovery;
mod error;
pub mod handshake;
pub mod memory;
pub mod net;
mod time;

pub use codec::{FrameCodec, MAX_FRAME_LEN, decode_payload, decode_payload_borrowed, encode_frame, encode_payload};
pub use connection::{Connection, FrameReader, FrameWriter, INITIAL_READ_BUFFER};
pub use error::TransportError;
pub use handshake::{PROTOCOL_VERSION, Role, handshake, handshake_accepting};
pub use net::{ByteStream, Dialer, Listener, TcpDialer};
pub use time::sleep_until;

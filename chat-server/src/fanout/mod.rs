//! Fan-out plumbing between the owner task and the per-connection writers.
//!
//! Two paths lead to a connection's socket, merged by its writer in server order:
//!
//! ```text
//!  owner ── append(frame) ──► Stream (shared, append-only chunks of encoded frames) ──┐ every subscribed
//!        │                    sealed when the router says `Publish`, head announced   │ writer reads the
//!        │                                                                            ▼ same Bytes
//!        └── Private { frame, bpos } ──► per-connection bounded queue ──────────► writer ──► socket
//! ```
//!
//! **The order of a turn's end** (the owner's half, then the writer's), which keeps every private
//! frame before the stream frames that follow it:
//!
//! ```text
//!  owner:  Stream::seal (readable, not announced) ─► private frames queued ─► Stream::announce (head)
//!  writer: read the announced head ─► pop private frames (each after the stream up to its bpos)
//!          ─► the stream up to that head, only once the private queue was empty
//! ```
//!
//! | module          | owns                                                                  |
//! |-----------------|-----------------------------------------------------------------------|
//! | `stream`        | [`stream::Stream`]: the shared append-only stream and its readers      |
//! | `private_queue` | a connection's bounded private queue and the writer's progress counters |
//! | `writer`        | the writer task: merge, vectored writes, pings, the kill switch       |
//! | `feed`          | the same merge one decoded frame at a time, for text connections      |
//!
//! What goes where, and when a reader is too slow, is decided by the router (`crate::router`); this
//! module only moves bytes.

pub(crate) mod feed;
pub(crate) mod private_queue;
pub(crate) mod stream;
pub(crate) mod writer;

#[cfg(test)]
mod turns_tests;

pub use writer::{KILL_GRACE, MAX_WRITE_BATCH};

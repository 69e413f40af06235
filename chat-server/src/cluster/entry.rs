//! The shared log's format: what one JetStream message of the cluster's stream carries.
//!
//! Each instance publishes everything its connections asked for in one turn as **one batch**: one
//! JetStream message whose payload is a sequence of frames (the same framing as the wire: a `u32`
//! big-endian length, then a bincode payload of at most [`chat_transport::codec::MAX_FRAME_LEN`]),
//! the first a [`BatchHeader`], each following one an [`Entry`].
//!
//! ```text
//! +--------------------+--------------------+-----+--------------------+
//! | len | BatchHeader  | len | Entry        | ... | len | Entry        |      at most MAX_BATCH_BYTES
//! +--------------------+--------------------+-----+--------------------+
//! Nats-Msg-Id: "<instance as 8 hex digits>.<batch number>"   (unique stream-wide: retries are stored once)
//! ```
//!
//! | entry      | published when                                    | every replica applies it as              |
//! |------------|---------------------------------------------------|------------------------------------------|
//! | `Up`       | the instance starts serving                       | the instance is live                     |
//! | `Admit`    | a connection logs in (name and flags; token hashes only) | `Input::Admit`                    |
//! | `Send`     | a connection sends a message                      | `Input::Send`                            |
//! | `JoinRoom` / `PartRoom` | a connection joins / leaves a room       | `Input::JoinRoom` / `Input::PartRoom`    |
//! | `Gone`     | a connection ended (closed, timed out, `Leave`)    | `Input::Disconnected` (`quit` ends the session; anything else detaches it) |
//! | `Kicked`   | the instance kicked a connection (slow consumer)  | `Input::Kicked`: the session ends        |
//! | `Tick`     | the instance published nothing for a while        | nothing but the time: grace periods and login deadlines run on log time |
//! | `Down`     | an instance's lease is gone (see `lease`)         | that instance's sessions are detached; its later batches are ignored |
//! | `Account`  | `chat-cli account … --cluster` changes an account (hashes only: see `accounts`) | the replica's account table changes (the first registration of a name wins); a change of the names is `Input::Registered` |
//! | `Authenticated` | a connection logged in with a password or token its instance verified against its replica's accounts | `Input::AdmitAccount`: logged in under the registered name, or `auth_failed` if the account is gone meanwhile |
//!
//! Entries are an enum encoded by variant index: variants are only ever appended.

use bytes::{Bytes, BytesMut};
use chat_core::{Recipients, RoomName, Timestamp};
use chat_transport::codec::{LEN_PREFIX, MAX_FRAME_LEN, decode_payload, encode_frame_into};
use serde::{Deserialize, Serialize};

use super::accounts::AccountChange;
use crate::router::{ClusterLogin, ConnId};

/// The version of the batch format this build writes (and the newest it reads).
pub const BATCH_VERSION: u16 = 1;

/// Largest payload of one batch (one JetStream message), in bytes: below NATS's default
/// `max_payload` of 1 MiB.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// The instance a connection belongs to: its ID's high 32 bits.
pub fn instance_of(conn: ConnId) -> u32 {
    (conn >> 32) as u32
}

/// The first connection ID of an instance (its connection IDs are `base + 1`, `base + 2`, ...).
pub fn conn_base(instance: u32) -> ConnId {
    (instance as u64) << 32
}

/// The first frame of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHeader {
    /// The batch format's version ([`BATCH_VERSION`]).
    pub version: u16,
    /// The publishing instance.
    pub instance: u32,
    /// The instance's batch number: 1, 2, 3, ... (a replica ignores a number it has seen).
    pub number: u64,
    /// The publisher's wall clock when it built the batch, in milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// One input of the replicated state machine (see the module table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// The instance starts serving.
    Up,
    /// A connection logs in.
    Admit(ClusterLogin),
    /// A connection sends a message.
    Send {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
        /// Addressing.
        recipients: Recipients,
        /// Text.
        body: String,
        /// The sender's Lamport stamp.
        sent_at: Timestamp,
        /// Idempotency key (0: none).
        key: u64,
    },
    /// A connection joins a room.
    JoinRoom {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
        /// The room.
        room: RoomName,
    },
    /// A connection leaves a room.
    PartRoom {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
        /// The room.
        room: RoomName,
    },
    /// A connection ended.
    Gone {
        /// Which connection.
        conn: ConnId,
        /// Why (`quit` ends the session; anything else detaches it for the grace period).
        reason: String,
    },
    /// The instance kicked a connection: its session ends.
    Kicked {
        /// Which connection.
        conn: ConnId,
        /// Why, as announced.
        reason: String,
    },
    /// Time passes.
    Tick,
    /// An instance is gone (its lease expired).
    Down {
        /// Which.
        instance: u32,
    },
    /// An account changes (published by `chat-cli account … --cluster`, which hashed first).
    Account(AccountChange),
    /// A connection logs in with a credential its instance verified: `name` is the account's.
    Authenticated(ClusterLogin),
}

impl Entry {
    /// The connection an entry speaks for, if any (it must belong to the publishing instance).
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            Entry::Admit(login) | Entry::Authenticated(login) => Some(login.conn),
            Entry::Send { conn, .. }
            | Entry::JoinRoom { conn, .. }
            | Entry::PartRoom { conn, .. }
            | Entry::Gone { conn, .. }
            | Entry::Kicked { conn, .. } => Some(*conn),
            Entry::Up | Entry::Tick | Entry::Down { .. } | Entry::Account(_) => None,
        }
    }
}

/// Why a batch could not be read (a replica skips it, the same way everywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A length prefix runs past the end, or over the frame limit.
    #[error("frame at byte {offset} is cut or over the limit")]
    Framing {
        /// Where.
        offset: usize,
    },
    /// A frame does not decode.
    #[error("frame at byte {offset} does not decode: {reason}")]
    Decode {
        /// Where.
        offset: usize,
        /// The decoder's words.
        reason: String,
    },
    /// Written by a newer build.
    #[error("batch format version {0} is newer than this build's")]
    Version(u16),
    /// No header.
    #[error("empty batch")]
    Empty,
}

/// Builds one batch: the header, then entries while they fit in [`MAX_BATCH_BYTES`].
#[derive(Debug)]
pub struct BatchWriter {
    buf: BytesMut,
    entries: usize,
}

impl BatchWriter {
    /// A batch with this header.
    pub fn new(header: &BatchHeader) -> Self {
        let mut buf = BytesMut::with_capacity(1024);
        encode_frame_into(header, &mut buf).expect("a header always encodes");
        BatchWriter { buf, entries: 0 }
    }

    /// Appends `entry` if the batch has room for it (`false`: it has not; start the next batch).
    /// An entry that cannot be encoded (over the frame limit) is dropped and counts as appended.
    pub fn push(&mut self, entry: &Entry) -> bool {
        let start = self.buf.len();
        if encode_frame_into(entry, &mut self.buf).is_err() {
            tracing::warn!("an entry too large for the log was dropped");
            return true;
        }
        if self.buf.len() > MAX_BATCH_BYTES && self.entries > 0 {
            self.buf.truncate(start);
            return false;
        }
        self.entries += 1;
        true
    }

    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no entry was appended.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The payload.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// The message ID of a batch: unique stream-wide, so a retried publish is stored once.
pub fn msg_id(instance: u32, number: u64) -> String {
    format!("{instance:08x}.{number}")
}

/// Reads a batch: its header and entries. Any bad frame rejects the whole batch.
pub fn decode_batch(payload: &[u8]) -> Result<(BatchHeader, Vec<Entry>), BatchError> {
    let mut frames = Frames { payload, offset: 0 };
    let header: BatchHeader = match frames.next() {
        None => return Err(BatchError::Empty),
        Some(frame) => frame?,
    };
    if header.version > BATCH_VERSION {
        return Err(BatchError::Version(header.version));
    }
    let mut entries = Vec::new();
    while let Some(entry) = frames.next() {
        entries.push(entry?);
    }
    Ok((header, entries))
}

struct Frames<'a> {
    payload: &'a [u8],
    offset: usize,
}

impl Frames<'_> {
    fn next<T: serde::de::DeserializeOwned>(&mut self) -> Option<Result<T, BatchError>> {
        let rest = &self.payload[self.offset..];
        if rest.is_empty() {
            return None;
        }
        let offset = self.offset;
        if rest.len() < LEN_PREFIX {
            self.offset = self.payload.len();
            return Some(Err(BatchError::Framing { offset }));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_FRAME_LEN || rest.len() - LEN_PREFIX < len {
            self.offset = self.payload.len();
            return Some(Err(BatchError::Framing { offset }));
        }
        self.offset += LEN_PREFIX + len;
        Some(
            decode_payload(&rest[LEN_PREFIX..LEN_PREFIX + len])
                .map_err(|e| BatchError::Decode { offset, reason: e.to_string() }),
        )
    }
}

/// Appends a raw frame (tests of hostile batches).
#[cfg(test)]
pub(crate) fn raw_frame(buf: &mut BytesMut, payload: &[u8]) {
    use bytes::BufMut;
    buf.put_u32(payload.len() as u32);
    buf.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use chat_core::{NodeId, UserName};

    fn header(number: u64) -> BatchHeader {
        BatchHeader { version: BATCH_VERSION, instance: 7, number, time_ms: 1_000 }
    }

    fn send(body: &str) -> Entry {
        Entry::Send {
            conn: conn_base(7) + 1,
            req: 1,
            recipients: Recipients::Broadcast,
            body: body.into(),
            sent_at: Timestamp::new(1, NodeId(1)),
            key: 1,
        }
    }

    #[test]
    fn a_batch_round_trips() {
        let login = ClusterLogin {
            conn: conn_base(7) + 2,
            name: UserName::new("bob").unwrap(),
            quiet: false,
            token: [3; 32],
            resume: Some(([4; 32], 9)),
            legacy: false,
            resumable: true,
        };
        let account = AccountChange::Token { name: UserName::new("bob").unwrap(), token: "ab".repeat(32) };
        let entries = vec![
            Entry::Up,
            Entry::Admit(login.clone()),
            send("hi"),
            Entry::Tick,
            Entry::Down { instance: 3 },
            Entry::Account(account),
            Entry::Authenticated(login),
        ];
        let mut w = BatchWriter::new(&header(5));
        for e in &entries {
            assert!(w.push(e));
        }
        assert_eq!(w.len(), 7);
        let (h, decoded) = decode_batch(&w.finish()).unwrap();
        assert_eq!(h, header(5));
        assert_eq!(decoded, entries);
        assert_eq!(msg_id(7, 5), "00000007.5");
        assert_eq!(instance_of(conn_base(7) + 2), 7);
    }

    #[test]
    fn variants_keep_their_indices_so_old_logs_still_read() {
        let frame = |e: &Entry| {
            let mut buf = BytesMut::new();
            encode_frame_into(e, &mut buf).unwrap();
            buf[LEN_PREFIX..].to_vec()
        };
        assert_eq!(frame(&Entry::Up), [0]);
        assert_eq!(frame(&Entry::Tick), [7]);
        assert_eq!(frame(&Entry::Down { instance: 3 }), [8, 3]);
        let change = AccountChange::Remove { name: UserName::new("bob").unwrap() };
        assert_eq!(frame(&Entry::Account(change))[..2], [9, 2], "appended: Account is 9, Remove its 3rd change");
        let login = ClusterLogin {
            conn: 1,
            name: UserName::new("bob").unwrap(),
            quiet: false,
            token: [0; 32],
            resume: None,
            legacy: false,
            resumable: true,
        };
        assert_eq!(frame(&Entry::Authenticated(login))[0], 10);
    }

    #[test]
    fn a_batch_is_bounded() {
        let big = "x".repeat(60 * 1024);
        let mut w = BatchWriter::new(&header(1));
        let mut n = 0;
        while w.push(&send(&big)) {
            n += 1;
            assert!(n < 100, "a batch must fill up");
        }
        let payload = w.finish();
        assert!(payload.len() <= MAX_BATCH_BYTES);
        assert_eq!(decode_batch(&payload).unwrap().1.len(), n);
    }

    #[test]
    fn hostile_batches_are_refused_whole() {
        assert_eq!(decode_batch(&[]), Err(BatchError::Empty));
        let mut w = BatchWriter::new(&header(1));
        w.push(&send("hi"));
        let good = w.finish();
        let header_len = BatchWriter::new(&header(1)).finish().len();
        // Cut anywhere inside a frame: refused. (JetStream stores a message whole; a cut between
        // frames would be a valid, shorter batch.)
        for cut in (1..good.len()).filter(|c| *c != header_len) {
            assert!(decode_batch(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A length prefix claiming more than the limit.
        let mut buf = BytesMut::from(&good[..]);
        buf.put_u32(u32::MAX);
        assert!(matches!(decode_batch(&buf), Err(BatchError::Framing { .. })));
        // Garbage that is framed properly.
        let mut buf = BytesMut::from(&good[..]);
        raw_frame(&mut buf, &[0xff; 16]);
        assert!(matches!(decode_batch(&buf), Err(BatchError::Decode { .. })));
        // A newer format.
        let w = BatchWriter::new(&BatchHeader { version: BATCH_VERSION + 1, ..header(1) });
        assert_eq!(decode_batch(&w.finish()), Err(BatchError::Version(BATCH_VERSION + 1)));
    }
}

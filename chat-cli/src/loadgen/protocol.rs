//! What every protocol the generator speaks provides: the [`PubSub`] trait, the parties and
//! destinations it is asked about, what it reports per frame ([`Incoming`]), and the stamp every
//! body starts with.
//!
//! ```text
//!  generator                          PubSub (one value per connection)
//!   open(stream, Party)          ──►  handshake, login / subscribe, wait for the confirmation
//!   encode_publish(Dest, body)   ──►  one publish appended to the write buffer
//!   decode(buf)                  ◄──  Incoming::{Message { stamp, order }, Ack, Other}; replies (pongs) appended
//!   keepalive()                  ──►  what to say, and how often, to stay connected
//! ```

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;

use super::{READ_CHUNK, SENDER_LEN, STAMP_LEN};

/// What a connection is for, with its index (names, channels and subjects derive from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// Receives messages (subscriber `i`: the chat user `{prefix}s{i}`, Redis channel / NATS subject).
    Subscriber(usize),
    /// Publishes messages (publisher `i`).
    Publisher(usize),
}

/// Where one published message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// Every subscriber (a chat broadcast, the shared Redis channel / NATS subject).
    Everyone,
    /// Subscriber `j` only.
    Subscriber(usize),
}

/// One complete frame read from a connection, as the generator needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// A published message.
    Message {
        /// The stamp parsed from its body.
        stamp: Stamp,
        /// Its position in the server's global order, if the protocol has one (chat: the server
        /// sequence number `id.seq`): it must strictly increase at every subscriber, and in a
        /// fan-out every subscriber must see the same sequence. `None` (Redis, NATS): only each
        /// publisher's order is checked, by its stamps.
        order: Option<u64>,
    },
    /// The server acknowledged one publish (chat: `Sent`; Redis: the receiver count).
    Ack,
    /// Anything that needs no bookkeeping (notices, pongs, confirmations).
    Other,
}

/// The send time and publisher carried at the start of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Nanoseconds since the run's origin when the message was encoded; strictly increasing per
    /// publisher (a publisher never stamps two messages alike), and at least 1.
    pub sent_ns: u64,
    /// The publisher's index, if the body was long enough to carry it.
    pub sender: Option<usize>,
}

impl Stamp {
    /// Parses the stamp at the start of `body`; `None` if it does not start with 16 hex digits.
    pub fn parse(body: &[u8]) -> Option<Stamp> {
        let sent_ns = parse_hex(body.get(..STAMP_LEN)?)?;
        let sender = body.get(STAMP_LEN..STAMP_LEN + SENDER_LEN).and_then(parse_hex).map(|s| s as usize);
        Some(Stamp { sent_ns, sender })
    }
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    // Byte arithmetic rather than `char::to_digit`: this runs for every delivery of every target.
    digits.iter().try_fold(0u64, |acc, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(digit))
    })
}

/// Appends a body of `size` bytes (at least [`STAMP_LEN`]) carrying `sent_ns` and `sender`.
pub fn write_body(out: &mut Vec<u8>, size: usize, sent_ns: u64, sender: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let start = out.len();
    for shift in (0..STAMP_LEN).rev() {
        out.push(HEX[(sent_ns >> (shift * 4)) as usize & 0xf]);
    }
    if size >= STAMP_LEN + SENDER_LEN {
        for shift in (0..SENDER_LEN).rev() {
            out.push(HEX[(sender >> (shift * 4)) & 0xf]);
        }
    }
    out.resize(start + size.max(STAMP_LEN), b'x');
}

/// A pub/sub protocol the generator speaks. One value per connection, cloned from a template before
/// the connection opens (and once more after, for a publisher's reader), so it may keep state.
pub trait PubSub: Clone + Send + Sync + 'static {
    /// Opens the connection as `party`: handshake, login or subscribe, then waits until the server
    /// confirmed. Returns the bytes read past the confirmation. `stream` is connected already (a TCP
    /// stream, or TLS over one).
    fn open<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        stream: &mut S,
        party: Party,
    ) -> impl Future<Output = io::Result<BytesMut>> + Send;

    /// Decodes the frame at the start of `buf`, removing it; `Ok(None)` if more bytes are needed.
    /// Anything the protocol requires as an answer (a pong) is appended to `replies`. A frame that
    /// ends the run for this connection (an error, a refusal, a close) is an `Err`.
    fn decode(&mut self, buf: &mut BytesMut, replies: &mut BytesMut) -> io::Result<Option<Incoming>>;

    /// Appends one publish of `body` (ASCII) to `dest`.
    fn encode_publish(&mut self, dest: Dest, body: &[u8], out: &mut BytesMut) -> io::Result<()>;

    /// Whether every publish is answered by one [`Incoming::Ack`].
    fn acks_publishes(&self) -> bool;

    /// How often a client must speak to stay connected, and what it says then; `None` if never.
    fn keepalive(&mut self, out: &mut BytesMut) -> Option<Duration>;
}

/// Reads more bytes into `buf`, growing it in steps of at most 64 KiB; fails at `deadline` or on EOF.
///
/// Cancel-safe: bytes read stay in `buf`.
pub async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut, deadline: Instant) -> io::Result<()> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(buf.capacity().clamp(4096, READ_CHUNK));
    }
    match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
        Ok(Ok(0)) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_their_stamp_and_sender() {
        let mut body = Vec::new();
        write_body(&mut body, 32, 0x0123_4567_89ab_cdef, 42);
        assert_eq!(body.len(), 32);
        assert_eq!(&body[..24], b"0123456789abcdef0000002a");
        assert!(body[24..].iter().all(|&c| c == b'x'));
        assert_eq!(Stamp::parse(&body), Some(Stamp { sent_ns: 0x0123_4567_89ab_cdef, sender: Some(42) }));
        body.clear();
        write_body(&mut body, 16, 7, 3);
        assert_eq!(Stamp::parse(&body), Some(Stamp { sent_ns: 7, sender: None }));
        assert_eq!(Stamp::parse(b"not a stamp at all"), None);
        assert_eq!(Stamp::parse(b"0123456789ABCDEF"), Some(Stamp { sent_ns: 0x0123_4567_89ab_cdef, sender: None }));
        assert_eq!(Stamp::parse(b"0123456789abcdeg"), None);
        assert_eq!(Stamp::parse(b"0123456789abcde/"), None);
    }
}

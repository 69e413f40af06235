//! NATS over its text protocol: every connection sends `CONNECT` (no echo, not verbose) and waits
//! for the `PONG` to its `PING`; subscribers `SUB` to `{prefix}room` (fan-out) or `{prefix}s{i}`
//! (unicast); publishers `PUB`, which NATS does not acknowledge. The server's `PING`s get a `PONG`.
//!
//! ```text
//! sub ── CONNECT {..} / SUB subj 1 / PING ──►   ◄── INFO {..} / PONG
//! pub ── PUB subj len \r\n body ──►       sub ◄── MSG subj 1 len \r\n body
//! ```

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use chat_cli::loadgen::{Dest, Incoming, OPEN_TIMEOUT, Party, PubSub, Stamp, read_more};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::{Topics, find_crlf, parse_int};

const CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,\"name\":\"fanbench\"}\r\n";

/// The NATS adapter; see the module documentation.
#[derive(Debug, Clone)]
pub struct NatsPubSub {
    /// How subjects are named.
    topics: Topics,
}

impl NatsPubSub {
    /// An adapter whose subjects start with `prefix`.
    pub fn new(prefix: &str, unicast: bool) -> Self {
        NatsPubSub { topics: Topics::new(prefix, unicast) }
    }
}

/// One parsed server operation and the bytes it took.
enum Op {
    /// `MSG`: the payload's range.
    Msg(usize, usize),
    Ping,
    Pong,
    Error(String),
    Other,
}

/// Parses one operation at the start of `b`; `None` if incomplete.
fn parse(b: &[u8]) -> Option<(usize, Op)> {
    let e = find_crlf(b, 0)?;
    let line = &b[..e];
    if line.starts_with(b"MSG ") {
        let last = line.iter().rposition(|&c| c == b' ')?;
        let len = parse_int(&line[last + 1..])?.max(0) as usize;
        let start = e + 2;
        if b.len() < start + len + 2 {
            return None;
        }
        Some((start + len + 2, Op::Msg(start, start + len)))
    } else if line == b"PING" {
        Some((e + 2, Op::Ping))
    } else if line == b"PONG" {
        Some((e + 2, Op::Pong))
    } else if line.starts_with(b"-ERR") {
        Some((e + 2, Op::Error(String::from_utf8_lossy(line).into_owned())))
    } else {
        Some((e + 2, Op::Other))
    }
}

impl PubSub for NatsPubSub {
    async fn open<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        stream: &mut S,
        party: Party,
    ) -> io::Result<BytesMut> {
        let mut cmd = BytesMut::from(CONNECT);
        if let Party::Subscriber(i) = party {
            let subject = self.topics.subscription(i);
            cmd.put_slice(format!("SUB {subject} 1\r\n").as_bytes());
        }
        cmd.put_slice(b"PING\r\n");
        stream.write_all(&cmd).await?;
        let mut buf = BytesMut::with_capacity(4096);
        let deadline = Instant::now() + OPEN_TIMEOUT;
        loop {
            while let Some((n, op)) = parse(&buf) {
                buf.advance(n);
                match op {
                    Op::Pong => return Ok(buf),
                    Op::Error(e) => return Err(io::Error::other(e)),
                    _ => {}
                }
            }
            read_more(stream, &mut buf, deadline).await?;
        }
    }

    fn decode(&mut self, buf: &mut BytesMut, replies: &mut BytesMut) -> io::Result<Option<Incoming>> {
        let Some((n, op)) = parse(buf) else { return Ok(None) };
        let incoming = match op {
            Op::Msg(start, end) => Incoming::Message {
                stamp: Stamp::parse(&buf[start..end])
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a message without a stamp"))?,
                // No global order: the generator checks each publisher's stamps.
                order: None,
            },
            Op::Ping => {
                replies.put_slice(b"PONG\r\n");
                Incoming::Other
            }
            Op::Error(e) => return Err(io::Error::other(e)),
            Op::Pong | Op::Other => Incoming::Other,
        };
        buf.advance(n);
        Ok(Some(incoming))
    }

    fn encode_publish(&mut self, dest: Dest, body: &[u8], out: &mut BytesMut) -> io::Result<()> {
        out.put_slice(format!("PUB {} {}\r\n", self.topics.name(dest), body.len()).as_bytes());
        out.put_slice(body);
        out.put_slice(b"\r\n");
        Ok(())
    }

    fn acks_publishes(&self) -> bool {
        false
    }

    fn keepalive(&mut self, _out: &mut BytesMut) -> Option<std::time::Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_messages_in_pieces() {
        let msg = b"MSG room 1 16\r\n00000000000000ff\r\n";
        for cut in 0..msg.len() {
            assert!(parse(&msg[..cut]).is_none(), "cut at {cut}");
        }
        let Some((n, Op::Msg(s, e))) = parse(msg) else { panic!("not a message") };
        assert_eq!((n, &msg[s..e]), (msg.len(), &b"00000000000000ff"[..]));
        assert!(matches!(parse(b"PING\r\n"), Some((6, Op::Ping))));
    }
}

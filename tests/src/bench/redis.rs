//! Redis over RESP: subscribers `SUBSCRIBE` to `{prefix}room` (fan-out) or `{prefix}s{i}` (unicast);
//! publishers `PUBLISH` on the same connection type, each answered by the receiver count (an ack).
//!
//! ```text
//! sub ── *2 $9 SUBSCRIBE $n chan ──►          ◄── *3 $9 subscribe $n chan :1
//! pub ── *3 $7 PUBLISH $n chan $len body ──►  ◄── :receivers
//!                                   sub ◄── *3 $7 message $n chan $len body
//! ```

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use chat_cli::loadgen::{Dest, Incoming, OPEN_TIMEOUT, Party, PubSub, Stamp, read_more};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::{Topics, find_crlf, parse_int};

/// The Redis adapter; see the module documentation.
#[derive(Debug, Clone)]
pub struct RedisPubSub {
    /// How channels are named.
    topics: Topics,
}

impl RedisPubSub {
    /// An adapter whose channels start with `prefix`.
    pub fn new(prefix: &str, unicast: bool) -> Self {
        RedisPubSub { topics: Topics::new(prefix, unicast) }
    }
}

/// One parsed RESP reply: what it means and how many bytes it took.
enum Reply {
    /// `message` push: the body's range.
    Message(usize, usize),
    /// `subscribe` confirmation.
    Subscribed,
    /// An integer (a `PUBLISH` answer).
    Int,
    /// An error reply.
    Error(String),
    /// Anything else.
    Other,
}

/// Parses one reply at the start of `b`; `None` if incomplete.
fn parse(b: &[u8]) -> Option<(usize, Reply)> {
    let e = find_crlf(b, 0)?;
    match b.first()? {
        b':' => Some((e + 2, Reply::Int)),
        b'-' => Some((e + 2, Reply::Error(String::from_utf8_lossy(&b[..e]).into_owned()))),
        b'*' => {
            let n = parse_int(&b[1..e]).unwrap_or(0).max(0);
            let mut pos = e + 2;
            let mut elems = [(0usize, 0usize); 3];
            for k in 0..n as usize {
                let le = find_crlf(b, pos)?;
                let (start, end, next) = if b[pos] == b'$' {
                    let len = parse_int(&b[pos + 1..le]).unwrap_or(0).max(0) as usize;
                    let start = le + 2;
                    if b.len() < start + len + 2 {
                        return None;
                    }
                    (start, start + len, start + len + 2)
                } else {
                    (pos + 1, le, le + 2)
                };
                if let Some(slot) = elems.get_mut(k) {
                    *slot = (start, end);
                }
                pos = next;
            }
            let kind = &b[elems[0].0..elems[0].1];
            let reply = match (n, kind) {
                (3, b"message") => Reply::Message(elems[2].0, elems[2].1),
                (3, b"subscribe") => Reply::Subscribed,
                _ => Reply::Other,
            };
            Some((pos, reply))
        }
        _ => Some((e + 2, Reply::Other)),
    }
}

fn bulk(out: &mut BytesMut, s: &[u8]) {
    out.put_slice(format!("${}\r\n", s.len()).as_bytes());
    out.put_slice(s);
    out.put_slice(b"\r\n");
}

impl PubSub for RedisPubSub {
    async fn open<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        stream: &mut S,
        party: Party,
    ) -> io::Result<BytesMut> {
        let mut buf = BytesMut::with_capacity(4096);
        let Party::Subscriber(i) = party else { return Ok(buf) };
        let channel = self.topics.subscription(i);
        let mut cmd = BytesMut::new();
        cmd.put_slice(b"*2\r\n");
        bulk(&mut cmd, b"SUBSCRIBE");
        bulk(&mut cmd, channel.as_bytes());
        stream.write_all(&cmd).await?;
        let deadline = Instant::now() + OPEN_TIMEOUT;
        loop {
            while let Some((n, reply)) = parse(&buf) {
                buf.advance(n);
                match reply {
                    Reply::Subscribed => return Ok(buf),
                    Reply::Error(e) => return Err(io::Error::other(e)),
                    _ => {}
                }
            }
            read_more(stream, &mut buf, deadline).await?;
        }
    }

    fn decode(&mut self, buf: &mut BytesMut, _replies: &mut BytesMut) -> io::Result<Option<Incoming>> {
        let Some((n, reply)) = parse(buf) else { return Ok(None) };
        let incoming = match reply {
            Reply::Message(start, end) => Incoming::Message {
                stamp: Stamp::parse(&buf[start..end])
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a message without a stamp"))?,
                // No global order: the generator checks each publisher's stamps.
                order: None,
            },
            Reply::Int => Incoming::Ack,
            Reply::Error(e) => return Err(io::Error::other(e)),
            Reply::Subscribed | Reply::Other => Incoming::Other,
        };
        buf.advance(n);
        Ok(Some(incoming))
    }

    fn encode_publish(&mut self, dest: Dest, body: &[u8], out: &mut BytesMut) -> io::Result<()> {
        out.put_slice(b"*3\r\n");
        bulk(out, b"PUBLISH");
        bulk(out, self.topics.name(dest).as_bytes());
        bulk(out, body);
        Ok(())
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn keepalive(&mut self, _out: &mut BytesMut) -> Option<std::time::Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pushes_and_replies_in_pieces() {
        let msg = b"*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$16\r\n00000000000000ff\r\n";
        for cut in 0..msg.len() {
            assert!(parse(&msg[..cut]).is_none(), "cut at {cut}");
        }
        let Some((n, Reply::Message(s, e))) = parse(msg) else { panic!("not a message") };
        assert_eq!((n, &msg[s..e]), (msg.len(), &b"00000000000000ff"[..]));
        assert!(matches!(parse(b":100\r\n"), Some((6, Reply::Int))));
        assert!(matches!(parse(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n"), Some((_, Reply::Subscribed))));
    }
}

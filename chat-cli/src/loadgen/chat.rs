//! The chat protocol as a [`PubSub`]: the real handshake and codec of chat-transport, `Login`,
//! `Send`, and the borrowed [`ServerFrameView`] on the read path.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use chat_core::{NodeId, Recipients, RoomName, Timestamp, UserName};
use chat_server::protocol::{ClientFrame, Enter};
use chat_transport::codec::LEN_PREFIX;
use chat_transport::{MAX_FRAME_LEN, Role, decode_payload_borrowed, encode_frame, handshake};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::OPEN_TIMEOUT;
use super::protocol::{Dest, Incoming, Party, PubSub, Stamp, read_more};
use super::views::{ServerFrameView, is_presence, message_seq_and_body};

/// The keep-alive interval a [`ChatPubSub`] assumes until the server's `Welcome` announces the
/// real heartbeat (5 s, the server's default). Every connection that opened has received its
/// `Welcome`, so only a value that never opened a connection keeps this one. A constant of the
/// generator, not read from chat-server's internals: the server's actual heartbeat (set with
/// `--heartbeat-ms`) is the one in `Welcome`.
pub const PRE_WELCOME_HEARTBEAT: Duration = Duration::from_secs(5);

/// The chat protocol, through chat-transport's codec: subscriber `i` logs in as `{prefix}s{i}`,
/// publisher `i` as `{prefix}p{i}`; publishes are `Send` frames (broadcast, or unicast to a
/// subscriber's name), acknowledged by `Sent`; keep-alives are `Ping` at the server's heartbeat.
#[derive(Debug, Clone)]
pub struct ChatPubSub {
    /// Start of every user name of this run.
    prefix: String,
    /// The request ID of the next `Send`.
    next_req: u64,
    /// How often to ping: [`PRE_WELCOME_HEARTBEAT`] until `Welcome` says otherwise.
    heartbeat: Duration,
    /// The subscribers' user names (unicast destinations), shared by every clone.
    names: Arc<Vec<UserName>>,
    /// Run in this room, quietly (`chat-cli bench`): every party joins it, "everyone" is its members,
    /// and the sessions are not announced. `None`: broadcasts, announced logins.
    room: Option<RoomName>,
}

impl ChatPubSub {
    /// An adapter whose user names start with `prefix` (keep names of concurrent runs apart), for runs
    /// with up to `subscribers` subscribers.
    pub fn new(prefix: &str, subscribers: usize) -> io::Result<Self> {
        let names = (0..subscribers).map(|i| user(prefix, 's', i)).collect::<io::Result<Vec<_>>>()?;
        Ok(ChatPubSub {
            prefix: prefix.to_string(),
            next_req: 1,
            heartbeat: PRE_WELCOME_HEARTBEAT,
            names: Arc::new(names),
            room: None,
        })
    }

    /// The same, run in `room`, with quiet sessions: nobody outside the room sees the run.
    pub fn in_room(self, room: RoomName) -> Self {
        ChatPubSub { room: Some(room), ..self }
    }
}

fn user(prefix: &str, kind: char, i: usize) -> io::Result<UserName> {
    let mut s = String::with_capacity(prefix.len() + 8);
    let _ = write!(s, "{prefix}{kind}{i}");
    UserName::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// The payload length of the whole frame at the start of `buf`, if it has arrived: the frame layout
/// of `chat_transport::codec` (a 4-byte big-endian length, then the payload, at most
/// [`MAX_FRAME_LEN`]), split without `FrameCodec`'s per-frame copy.
fn frame_len(buf: &[u8]) -> io::Result<Option<usize>> {
    let Some(head) = buf.first_chunk::<LEN_PREFIX>() else { return Ok(None) };
    let len = u32::from_be_bytes(*head) as usize;
    if len > MAX_FRAME_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    Ok((buf.len() >= LEN_PREFIX + len).then_some(len))
}

fn chat_error(e: chat_transport::TransportError) -> io::Error {
    match e {
        chat_transport::TransportError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

impl PubSub for ChatPubSub {
    async fn open<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        stream: &mut S,
        party: Party,
    ) -> io::Result<BytesMut> {
        let name = match party {
            Party::Subscriber(i) => user(&self.prefix, 's', i)?,
            Party::Publisher(i) => user(&self.prefix, 'p', i)?,
        };
        handshake(stream, Role::Client).await.map_err(chat_error)?;
        let login = match &self.room {
            None => ClientFrame::Login { name },
            Some(_) => ClientFrame::Enter(Enter { name, credential: None, resume: None, quiet: true }),
        };
        stream.write_all(&encode_frame(&login).map_err(chat_error)?).await?;
        stream.flush().await?; // TLS may hold back what the socket did not take at once
        let mut buf = BytesMut::with_capacity(4096);
        let deadline = Instant::now() + OPEN_TIMEOUT;
        loop {
            // Read through the borrowed view: a `Welcome` lists up to 1000 names, and decoding them
            // as `UserName`s (allocated, validated) was most of the generator's work in a join storm.
            while let Some(len) = frame_len(&buf)? {
                let payload = &buf[LEN_PREFIX..LEN_PREFIX + len];
                match decode_payload_borrowed::<ServerFrameView<'_>>(payload).map_err(chat_error)? {
                    ServerFrameView::Welcome { heartbeat_ms, .. } => {
                        buf.advance(LEN_PREFIX + len);
                        self.heartbeat = Duration::from_millis(heartbeat_ms.max(10));
                        let Some(room) = self.room.clone() else { return Ok(buf) };
                        let join = encode_frame(&ClientFrame::JoinRoom { req: 0, room }).map_err(chat_error)?;
                        stream.write_all(&join).await?;
                        stream.flush().await?;
                        continue;
                    }
                    // The room's history answers the join: in the room from now on.
                    ServerFrameView::History { req: 0, done: true, .. } if self.room.is_some() => {
                        buf.advance(LEN_PREFIX + len);
                        return Ok(buf);
                    }
                    ServerFrameView::Rejected { req: 0, code, message } => {
                        return Err(io::Error::other(format!("cannot join the room: {code} {message}")));
                    }
                    ServerFrameView::Refused { code, message } => {
                        return Err(io::Error::other(format!("login refused: {code} {message}")));
                    }
                    _ => buf.advance(LEN_PREFIX + len),
                }
            }
            read_more(stream, &mut buf, deadline).await?;
        }
    }

    fn decode(&mut self, buf: &mut BytesMut, replies: &mut BytesMut) -> io::Result<Option<Incoming>> {
        // Views go through the codec's own `decode_payload_borrowed` (same bincode configuration
        // and limits).
        let Some(len) = frame_len(buf)? else {
            if let Some(head) = buf.first_chunk::<LEN_PREFIX>() {
                // Room for the rest of a frame that has begun.
                buf.reserve((LEN_PREFIX + u32::from_be_bytes(*head) as usize).saturating_sub(buf.len()));
            }
            return Ok(None);
        };
        let payload = &buf[LEN_PREFIX..LEN_PREFIX + len];
        // Most frames are messages: their sequence number and body are read by hand (checked
        // against the codec by a test); the rest through a borrowed view, which allocates nothing
        // per name or body (the Redis and NATS adapters do not allocate either). Presence frames
        // (a join storm sends one per login to everybody online) are known by their variant alone.
        if let Some((seq, body)) = message_seq_and_body(payload) {
            let Some(stamp) = Stamp::parse(body) else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "a message without a stamp"));
            };
            buf.advance(LEN_PREFIX + len);
            return Ok(Some(Incoming::Message { stamp, order: Some(seq) }));
        }
        if is_presence(payload) {
            buf.advance(LEN_PREFIX + len);
            return Ok(Some(Incoming::Other));
        }
        let incoming = match decode_payload_borrowed::<ServerFrameView<'_>>(payload).map_err(chat_error)? {
            ServerFrameView::Message(m) => match Stamp::parse(m.body.as_bytes()) {
                Some(stamp) => Incoming::Message { stamp, order: Some(m.id.seq) },
                None => return Err(io::Error::new(io::ErrorKind::InvalidData, "a message without a stamp")),
            },
            ServerFrameView::Sent { .. } => Incoming::Ack,
            ServerFrameView::Ping => {
                chat_transport::codec::encode_frame_into(&ClientFrame::Pong, replies).map_err(chat_error)?;
                Incoming::Other
            }
            ServerFrameView::Rejected { code, message, .. } => {
                return Err(io::Error::other(format!("send rejected: {code} {message}")));
            }
            ServerFrameView::Closing { code, reason } => {
                return Err(io::Error::other(format!("closed: {code} {reason}")));
            }
            ServerFrameView::RateLimited { .. } => {
                return Err(io::Error::other(
                    "rate limited: the server limits each connection; start it with --no-rate-limit to measure it",
                ));
            }
            _ => Incoming::Other,
        };
        buf.advance(LEN_PREFIX + len);
        Ok(Some(incoming))
    }

    fn encode_publish(&mut self, dest: Dest, body: &[u8], out: &mut BytesMut) -> io::Result<()> {
        let recipients = match dest {
            Dest::Everyone => match &self.room {
                Some(room) => Recipients::Room(room.clone()),
                None => Recipients::Broadcast,
            },
            Dest::Subscriber(j) => Recipients::Unicast(
                self.names.get(j).cloned().ok_or_else(|| io::Error::other(format!("no subscriber {j}")))?,
            ),
        };
        let body = String::from_utf8(body.to_vec()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let req = self.next_req;
        self.next_req += 1;
        let frame = ClientFrame::Send { req, recipients, body, sent_at: Timestamp::new(req, NodeId(req)), key: 0 };
        chat_transport::codec::encode_frame_into(&frame, out).map_err(chat_error)
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn keepalive(&mut self, out: &mut BytesMut) -> Option<Duration> {
        let _ = chat_transport::codec::encode_frame_into(&ClientFrame::Ping, out);
        Some(self.heartbeat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_is_a_ping_at_the_pre_welcome_heartbeat_until_welcome() {
        let mut pubsub = ChatPubSub::new("t", 2).unwrap();
        let mut out = BytesMut::new();
        assert_eq!(pubsub.keepalive(&mut out), Some(PRE_WELCOME_HEARTBEAT));
        assert_eq!(out, encode_frame(&ClientFrame::Ping).unwrap());
    }
}

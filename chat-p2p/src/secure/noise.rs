//! Noise on a TCP link of a group with a secret: the handshake, and [`NoiseStream`], the encrypted
//! stream the node's frames then travel on.
//!
//! Pattern `Noise_XXpsk2_25519_ChaChaPoly_SHA256` ([`NOISE_PARAMS`]), prologue [`PROLOGUE`], the
//! dialer as initiator:
//!
//! ```text
//!  dialer (initiator)                                  acceptor (responder)
//!    ── 1: e ───────────────────────────────────────────►
//!    ◄── 2: e, ee, s, es, psk  + empty payload (AEAD) ──  a dialer without the secret fails here:
//!                                                          it cannot open the payload → OtherSecret
//!    ── 3: s, se  + empty payload (AEAD) ───────────────►  an acceptor without it fails here
//!    ═══ transport messages, both ways (only the dialer writes frames; see runtime/links.rs) ═══
//! ```
//!
//! Every Noise message, handshake or transport, is framed as a 2-byte big-endian length and the
//! message (at most [`MAX_NOISE_MESSAGE`] bytes, as Noise allows). The pre-shared key is the
//! secret's `noise psk` key, so only holders of the secret complete the handshake (mutual
//! authentication of the group), and each side learns the other's static key (X25519, the node's
//! [`super::NodeKey`]): the link's identity, which the node binds to a member ID. Placing the PSK in
//! message 2 (not 3, as in `XXpsk3`) lets the *dialer* notice a wrong secret, so a node with another
//! secret that dials a member is told at once why it cannot get in.
//!
//! [`NoiseStream`] implements `AsyncRead` and `AsyncWrite`, so the frame reader and writer run on it
//! unchanged: each write becomes one transport message (at most [`MAX_PLAINTEXT`] bytes of
//! plaintext), and reads return plaintext as messages arrive and decrypt. A message that does not
//! decrypt ends the stream with an `InvalidData` error.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use snow::{HandshakeState, TransportState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::Security;
use crate::node::Untrusted;
use crate::protocol::PeerKey;

/// The Noise protocol name of every link.
pub const NOISE_PARAMS: &str = "Noise_XXpsk2_25519_ChaChaPoly_SHA256";
/// Bound into the handshake hash: both sides must speak this protocol and version.
pub const PROLOGUE: &[u8] = b"distributed-chat p2p noise v1";
/// Largest Noise message.
pub const MAX_NOISE_MESSAGE: usize = 65_535;
/// Largest plaintext in one transport message (the message minus the 16-byte tag).
pub const MAX_PLAINTEXT: usize = MAX_NOISE_MESSAGE - TAG_LEN;
const TAG_LEN: usize = 16;
const LEN_PREFIX: usize = 2;

/// Why a handshake did not complete.
#[derive(Debug)]
pub enum HandshakeFailure {
    /// The peer does not hold this group's secret (or is not speaking Noise at all).
    Untrusted(Untrusted),
    /// The connection failed or closed first.
    Io(io::Error),
}

impl From<io::Error> for HandshakeFailure {
    fn from(e: io::Error) -> Self {
        HandshakeFailure::Io(e)
    }
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFailure::Untrusted(what) => write!(f, "{what}"),
            HandshakeFailure::Io(e) => write!(f, "{e}"),
        }
    }
}

fn state(security: &Security, initiator: bool) -> Result<HandshakeState, HandshakeFailure> {
    let invalid = |e: snow::Error| HandshakeFailure::Io(io::Error::other(e.to_string()));
    // The parameters are a constant (parsed in this module's tests); the keys have the right length.
    let params = NOISE_PARAMS.parse().map_err(invalid)?;
    let b = snow::Builder::new(params)
        .prologue(PROLOGUE)
        .map_err(invalid)?
        .psk(2, &security.keys.psk)
        .map_err(invalid)?
        .local_private_key(&security.private)
        .map_err(invalid)?;
    if initiator { b.build_initiator() } else { b.build_responder() }.map_err(invalid)
}

/// Runs the handshake as the dialer; the encrypted stream and the acceptor's static key.
///
/// Not cancel-safe: run it under a timeout and drop the connection if it fires.
pub async fn initiate<S>(mut io: S, security: &Security) -> Result<(NoiseStream<S>, PeerKey), HandshakeFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hs = state(security, true)?;
    let mut buf = vec![0u8; MAX_NOISE_MESSAGE];
    let n = hs.write_message(&[], &mut buf).map_err(protocol_error)?;
    write_message(&mut io, &buf[..n]).await?;
    let msg = read_message(&mut io).await?;
    // Message 2 carries the PSK: a payload that does not open means another secret.
    hs.read_message(&msg, &mut buf).map_err(|_| HandshakeFailure::Untrusted(Untrusted::OtherSecret))?;
    let n = hs.write_message(&[], &mut buf).map_err(protocol_error)?;
    write_message(&mut io, &buf[..n]).await?;
    finish(io, hs)
}

/// Runs the handshake as the acceptor; the encrypted stream and the dialer's static key.
///
/// Not cancel-safe: run it under a timeout and drop the connection if it fires.
pub async fn respond<S>(mut io: S, security: &Security) -> Result<(NoiseStream<S>, PeerKey), HandshakeFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hs = state(security, false)?;
    let mut buf = vec![0u8; MAX_NOISE_MESSAGE];
    let msg = read_message(&mut io).await?;
    hs.read_message(&msg, &mut buf).map_err(|_| HandshakeFailure::Untrusted(Untrusted::OtherSecret))?;
    let n = hs.write_message(&[], &mut buf).map_err(protocol_error)?;
    write_message(&mut io, &buf[..n]).await?;
    let msg = match read_message(&mut io).await {
        Ok(msg) => msg,
        // A dialer that cannot open message 2 hangs up: it holds another secret.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(HandshakeFailure::Untrusted(Untrusted::OtherSecret));
        }
        Err(e) => return Err(e.into()),
    };
    hs.read_message(&msg, &mut buf).map_err(|_| HandshakeFailure::Untrusted(Untrusted::OtherSecret))?;
    finish(io, hs)
}

fn finish<S>(io: S, hs: HandshakeState) -> Result<(NoiseStream<S>, PeerKey), HandshakeFailure> {
    let mut remote = [0u8; 32];
    match hs.get_remote_static() {
        Some(key) if key.len() == 32 => remote.copy_from_slice(key),
        _ => return Err(HandshakeFailure::Untrusted(Untrusted::OtherSecret)),
    }
    let noise = hs.into_transport_mode().map_err(protocol_error)?;
    Ok((NoiseStream::new(io, noise), PeerKey(remote)))
}

fn protocol_error(e: snow::Error) -> HandshakeFailure {
    HandshakeFailure::Io(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

async fn write_message<S: AsyncWrite + Unpin>(io: &mut S, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut framed = Vec::with_capacity(LEN_PREFIX + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    io.write_all(&framed).await?;
    io.flush().await
}

async fn read_message<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<Vec<u8>> {
    let mut len = [0u8; LEN_PREFIX];
    io.read_exact(&mut len).await?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    io.read_exact(&mut msg).await?;
    Ok(msg)
}

/// A stream whose bytes travel as Noise transport messages (see the module documentation).
pub struct NoiseStream<S> {
    io: S,
    noise: TransportState,
    /// Ciphertext read and not yet decrypted.
    input: Vec<u8>,
    /// Decrypted bytes not yet returned, from `plain_at`.
    plain: Vec<u8>,
    plain_at: usize,
    /// A sealed message not yet written, from `output_at`.
    output: Vec<u8>,
    output_at: usize,
}

impl<S> std::fmt::Debug for NoiseStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseStream")
            .field("buffered", &(self.input.len(), self.plain.len(), self.output.len()))
            .finish()
    }
}

impl<S> NoiseStream<S> {
    fn new(io: S, noise: TransportState) -> Self {
        NoiseStream { io, noise, input: Vec::new(), plain: Vec::new(), plain_at: 0, output: Vec::new(), output_at: 0 }
    }

    /// The peer's static key (the link's identity).
    pub fn remote_key(&self) -> Option<PeerKey> {
        let key = self.noise.get_remote_static()?;
        <[u8; 32]>::try_from(key).ok().map(PeerKey)
    }

    /// Decrypts the first whole message in `input`, if there is one, into `plain`.
    fn decrypt_one(&mut self) -> io::Result<bool> {
        if self.input.len() < LEN_PREFIX {
            return Ok(false);
        }
        let len = usize::from(u16::from_be_bytes([self.input[0], self.input[1]]));
        if len < TAG_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a Noise message shorter than its tag"));
        }
        if self.input.len() < LEN_PREFIX + len {
            return Ok(false);
        }
        self.plain.resize(len, 0);
        let n = self
            .noise
            .read_message(&self.input[LEN_PREFIX..LEN_PREFIX + len], &mut self.plain)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("a Noise message did not open: {e}")))?;
        self.plain.truncate(n);
        self.plain_at = 0;
        self.input.drain(..LEN_PREFIX + len);
        Ok(true)
    }
}

impl<S: AsyncWrite + Unpin> NoiseStream<S> {
    /// Writes what is left of the sealed message.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.output_at < self.output.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.output[self.output_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.output_at += n;
        }
        self.output.clear();
        self.output_at = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for NoiseStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.plain_at < this.plain.len() {
                let n = (this.plain.len() - this.plain_at).min(buf.remaining());
                buf.put_slice(&this.plain[this.plain_at..this.plain_at + n]);
                this.plain_at += n;
                return Poll::Ready(Ok(()));
            }
            if this.decrypt_one()? {
                continue;
            }
            // Read more ciphertext: at least what completes the message, in big enough steps.
            let have = this.input.len();
            let want = (LEN_PREFIX + MAX_NOISE_MESSAGE).saturating_sub(have).clamp(1, 16 * 1024);
            this.input.resize(have + want, 0);
            let mut read = ReadBuf::new(&mut this.input[have..]);
            let polled = Pin::new(&mut this.io).poll_read(cx, &mut read);
            let n = read.filled().len();
            this.input.truncate(have + n);
            ready!(polled)?;
            if n == 0 {
                return if have == 0 {
                    Poll::Ready(Ok(())) // a clean end of stream, between messages
                } else {
                    Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                };
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoiseStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        let n = buf.len().min(MAX_PLAINTEXT);
        this.output.resize(LEN_PREFIX + n + TAG_LEN, 0);
        let len = this
            .noise
            .write_message(&buf[..n], &mut this.output[LEN_PREFIX..])
            .map_err(|e| io::Error::other(e.to_string()))?;
        this.output.truncate(LEN_PREFIX + len);
        let prefix = u16::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        this.output[..LEN_PREFIX].copy_from_slice(&prefix.to_be_bytes());
        this.output_at = 0;
        // Start writing now; what the socket does not take yet goes at the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::GroupSecret;

    fn security(byte: u8) -> Security {
        Security::new(&GroupSecret::from_bytes([byte; 32]))
    }

    #[test]
    fn the_parameters_parse() {
        assert!(NOISE_PARAMS.parse::<snow::params::NoiseParams>().is_ok());
    }

    #[tokio::test]
    async fn holders_of_one_secret_learn_each_others_keys_and_exchange_bytes_both_ways() {
        let (a, b) = tokio::io::duplex(1024);
        let (dialer, acceptor) = (security(1), security(1));
        let (ra, rb) = tokio::join!(initiate(a, &dialer), respond(b, &acceptor));
        let ((mut a, key_of_b), (mut b, key_of_a)) = (ra.expect("dialer done"), rb.expect("acceptor done"));
        assert_eq!((key_of_a, key_of_b), (dialer.key, acceptor.key));
        assert_eq!(a.remote_key(), Some(acceptor.key));
        // More than one message's worth, written while the other side reads (the pipe is small).
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = big.clone();
        let writer = async move {
            a.write_all(&big).await.expect("written");
            a.write_all(b"the end").await.expect("written");
            a.shutdown().await.expect("closed");
        };
        let reader = async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.expect("read");
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert_eq!(&got[..expected.len()], &expected[..]);
        assert_eq!(&got[expected.len()..], b"the end");
    }

    #[tokio::test]
    async fn a_dialer_with_another_secret_is_told_so_and_the_acceptor_too() {
        let (a, b) = tokio::io::duplex(1024);
        let (one, two) = (security(1), security(2));
        let (ra, rb) = tokio::join!(initiate(a, &one), async {
            let r = respond(b, &two).await;
            r.map(|_| ())
        });
        assert!(matches!(ra, Err(HandshakeFailure::Untrusted(Untrusted::OtherSecret))), "{:?}", ra.map(|_| ()));
        assert!(matches!(rb, Err(HandshakeFailure::Untrusted(Untrusted::OtherSecret))), "{rb:?}");
    }

    #[tokio::test]
    async fn a_tampered_transport_message_ends_the_stream() {
        let (a, b) = tokio::io::duplex(4096);
        let (x, y) = (security(3), security(3));
        let (ra, rb) = tokio::join!(initiate(a, &x), respond(b, &y));
        let (mut a, mut b) = (ra.expect("done").0, rb.expect("done").0);
        // Seal a message by hand, flip a bit of its ciphertext, and write it raw.
        let mut sealed = vec![0u8; 64];
        let n = a.noise.write_message(b"hello", &mut sealed).expect("sealed");
        sealed[n - 1] ^= 1;
        let mut framed = (n as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&sealed[..n]);
        a.io.write_all(&framed).await.expect("written");
        let mut buf = [0u8; 16];
        let e = b.read(&mut buf).await.expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}

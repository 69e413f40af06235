//! How a link opens: the protocol hello, then, in a group with a secret, the Noise handshake.
//!
//! | this node   | the peer's hello | outcome                                                              |
//! |-------------|------------------|----------------------------------------------------------------------|
//! | no secret   | `Peer`           | a plaintext link                                                     |
//! | no secret   | `SecurePeer`     | refused: [`Untrusted::SecretRequired`] (this node has no secret)     |
//! | secret      | `Peer`           | refused: [`Untrusted::Plaintext`]                                    |
//! | secret      | `SecurePeer`     | Noise (`secure/noise.rs`; the dialer initiates): an authenticated link and the peer's key, or [`Untrusted::OtherSecret`] |
//! | any         | not a peer, another version, garbage, silence | closed (an I/O failure, not an authentication one) |
//!
//! Both ends read the other's hello before anything else, so a node without a secret that dials a
//! member of a group with one (or the other way round) is told exactly why it is refused, as the
//! server tells a plaintext client that it requires TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use chat_transport::{ByteStream, Role, TransportError, handshake};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::node::Untrusted;
use crate::protocol::PeerKey;
use crate::secure::{HandshakeFailure, NoiseStream, Security, initiate, respond};

/// An open link: plaintext, or Noise.
#[derive(Debug)]
pub(super) enum PeerStream<S> {
    /// No secret.
    Plain(S),
    /// Authenticated and encrypted.
    Noise(Box<NoiseStream<S>>),
}

/// Why a link did not open.
#[derive(Debug)]
pub(super) enum OpenFailure {
    /// The peer could not be authenticated (tell the node).
    Untrusted(Untrusted),
    /// Anything else: refused, reset, not our protocol, timed out.
    Failed(String),
}

impl From<TransportError> for OpenFailure {
    fn from(e: TransportError) -> Self {
        OpenFailure::Failed(e.to_string())
    }
}

impl From<HandshakeFailure> for OpenFailure {
    fn from(e: HandshakeFailure) -> Self {
        match e {
            HandshakeFailure::Untrusted(what) => OpenFailure::Untrusted(what),
            HandshakeFailure::Io(e) => OpenFailure::Failed(e.to_string()),
        }
    }
}

/// Opens a link on `stream`, as its dialer (`dialer`) or its acceptor; returns the stream to frame
/// and, with a secret, the peer's authenticated key.
///
/// Not cancel-safe: run it under a timeout and drop the connection if it fires.
pub(super) async fn open<S: ByteStream>(
    mut stream: S,
    security: Option<&Security>,
    dialer: bool,
) -> Result<(PeerStream<S>, Option<PeerKey>), OpenFailure> {
    let ours = if security.is_some() { Role::SecurePeer } else { Role::Peer };
    let theirs = handshake(&mut stream, ours).await?;
    match (security, theirs) {
        (None, Role::Peer) => Ok((PeerStream::Plain(stream), None)),
        (None, Role::SecurePeer) => Err(OpenFailure::Untrusted(Untrusted::SecretRequired)),
        (Some(_), Role::Peer) => Err(OpenFailure::Untrusted(Untrusted::Plaintext)),
        (Some(security), Role::SecurePeer) => {
            let (noise, key) =
                if dialer { initiate(stream, security).await? } else { respond(stream, security).await? };
            Ok((PeerStream::Noise(Box::new(noise)), Some(key)))
        }
        (_, other) => Err(OpenFailure::Failed(format!("the peer is a {other:?}, not a P2P node"))),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PeerStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PeerStream::Noise(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PeerStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PeerStream::Noise(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PeerStream::Noise(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PeerStream::Noise(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

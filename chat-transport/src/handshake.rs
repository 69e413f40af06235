//! The protocol handshake: the first frame in each direction of every connection.
//!
//! ```text
//! A ── Hello { magic: "DCHT", version: 2, role } ──► B
//! A ◄── Hello { magic: "DCHT", version: 2, role } ── B
//! ```
//!
//! With [`handshake`] both sides send their `Hello` at once, then read the other's, and the versions
//! must be equal (P2P peers, and every client). A server that still serves older clients uses
//! [`handshake_accepting`] instead: it reads the client's `Hello` first and answers with the
//! client's version when it is one it serves, so an older client sees the version it expects. A
//! peer that is not speaking this protocol at all (wrong magic, absurd length) gives
//! [`TransportError::NotChatProtocol`]; another version gives [`TransportError::VersionMismatch`].
//! Hello frames are read with `read_exact`, byte-exact, so nothing after them is consumed.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::TransportError;
use crate::codec::{LEN_PREFIX, decode_payload, encode_frame};

/// Four bytes that open every chat connection's first payload.
pub const MAGIC: [u8; 4] = *b"DCHT";

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 2;

/// Largest hello payload accepted.
const MAX_HELLO_LEN: usize = 64;

/// What a side of a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A client of the central server.
    Client,
    /// The central server.
    Server,
    /// A P2P node.
    Peer,
    /// A P2P node of a group with a secret: a Noise handshake follows the hellos (chat-p2p's
    /// `secure` module). A `Peer` that meets one learns that the group needs a secret.
    SecurePeer,
}

/// The first frame of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// What the sender is.
    pub role: Role,
}

impl Hello {
    /// Our hello, for `role`.
    pub fn ours(role: Role) -> Self {
        Hello { magic: MAGIC, version: PROTOCOL_VERSION, role }
    }
}

/// Sends our hello and reads the peer's; returns the peer's role.
///
/// Not cancel-safe (a partial read is lost): wrap it in a timeout and drop the connection if it fires.
pub async fn handshake<S>(stream: &mut S, role: Role) -> Result<Role, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ours = encode_frame(&Hello::ours(role))?;
    stream.write_all(&ours).await?;
    stream.flush().await?;

    let theirs = read_hello(stream).await?;
    if theirs.version != PROTOCOL_VERSION {
        return Err(TransportError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: theirs.version });
    }
    Ok(theirs.role)
}

/// The server side of a handshake with clients of several versions: reads the client's `Hello`,
/// then answers with the client's version if `versions` contains it (and returns it), or with ours
/// ([`PROTOCOL_VERSION`]) and [`TransportError::VersionMismatch`] otherwise.
///
/// Not cancel-safe, like [`handshake`].
pub async fn handshake_accepting<S>(
    stream: &mut S,
    role: Role,
    versions: std::ops::RangeInclusive<u16>,
) -> Result<(Role, u16), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let theirs = read_hello(stream).await?;
    let version = if versions.contains(&theirs.version) { theirs.version } else { PROTOCOL_VERSION };
    let ours = encode_frame(&Hello { magic: MAGIC, version, role })?;
    stream.write_all(&ours).await?;
    stream.flush().await?;
    if version != theirs.version {
        return Err(TransportError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: theirs.version });
    }
    Ok((theirs.role, version))
}

async fn read_hello<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Hello, TransportError> {
    let mut head = [0u8; LEN_PREFIX];
    read_exact_or_closed(stream, &mut head).await?;
    let len = u32::from_be_bytes(head) as usize;
    if len == 0 || len > MAX_HELLO_LEN {
        return Err(TransportError::NotChatProtocol);
    }
    let mut payload = [0u8; MAX_HELLO_LEN];
    read_exact_or_closed(stream, &mut payload[..len]).await?;
    let theirs: Hello = decode_payload(&payload[..len]).map_err(|_| TransportError::NotChatProtocol)?;
    if theirs.magic != MAGIC {
        return Err(TransportError::NotChatProtocol);
    }
    Ok(theirs)
}

async fn read_exact_or_closed<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<(), TransportError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(TransportError::ClosedDuringHandshake),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_sides_learn_each_others_role() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let (ra, rb) = tokio::join!(handshake(&mut a, Role::Client), handshake(&mut b, Role::Server));
        assert_eq!(ra.unwrap(), Role::Server);
        assert_eq!(rb.unwrap(), Role::Client);
    }

    #[tokio::test]
    async fn other_version_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let future = encode_frame(&Hello { magic: MAGIC, version: 9, role: Role::Client }).unwrap();
        b.write_all(&future).await.unwrap();
        match handshake(&mut a, Role::Server).await {
            Err(TransportError::VersionMismatch { ours: 2, theirs: 9 }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_server_answers_an_older_client_in_its_version() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let old = encode_frame(&Hello { magic: MAGIC, version: 1, role: Role::Client }).unwrap();
        b.write_all(&old).await.unwrap();
        let (role, version) = handshake_accepting(&mut a, Role::Server, 1..=2).await.unwrap();
        assert_eq!((role, version), (Role::Client, 1));
        assert_eq!(read_hello(&mut b).await.unwrap().version, 1, "the old client reads the version it speaks");
    }

    #[tokio::test]
    async fn a_server_refuses_a_version_it_does_not_serve() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let future = encode_frame(&Hello { magic: MAGIC, version: 7, role: Role::Client }).unwrap();
        b.write_all(&future).await.unwrap();
        let r = handshake_accepting(&mut a, Role::Server, 1..=2).await;
        assert!(matches!(r, Err(TransportError::VersionMismatch { ours: 2, theirs: 7 })), "{r:?}");
        assert_eq!(read_hello(&mut b).await.unwrap().version, 2, "the client learns our version");
    }

    #[tokio::test]
    async fn a_client_meets_an_accepting_server() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let (client, server) =
            tokio::join!(handshake(&mut a, Role::Client), handshake_accepting(&mut b, Role::Server, 1..=2));
        assert_eq!(client.unwrap(), Role::Server);
        assert_eq!(server.unwrap(), (Role::Client, 2));
    }

    #[tokio::test]
    async fn http_is_not_our_protocol() {
        let (mut a, mut b) = tokio::io::duplex(256);
        b.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(matches!(handshake(&mut a, Role::Server).await, Err(TransportError::NotChatProtocol)));
    }

    #[tokio::test]
    async fn early_close_is_reported() {
        let (mut a, b) = tokio::io::duplex(256);
        drop(b);
        let r = handshake(&mut a, Role::Server).await;
        assert!(matches!(r, Err(TransportError::ClosedDuringHandshake) | Err(TransportError::Io(_))), "{r:?}");
    }
}

//! Where byte streams come from: the [`Listener`] and [`Dialer`] traits that shells are generic over.
//!
//! A shell (the server's accept loop, a P2P node's links) never names `TcpStream`: it accepts from a
//! [`Listener`] and dials through a [`Dialer`], and frames whatever stream it gets. TCP implements both
//! ([`TcpListener`], [`TcpDialer`]); [`crate::memory`] implements both in memory, so integration tests
//! run the real shells without sockets (and with paused time); stream wrappers such as TLS or Noise
//! are applied by the shells on top of whatever stream these return.
//!
//! ```text
//!   Listener::accept() ──► (stream, peer address) ──► shell: handshake, frames
//!   Dialer::connect(addr) ──► stream ──────────────────► shell: handshake, frames
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// A byte stream a shell can frame: both halves, movable across tasks.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// A source of incoming connections.
pub trait Listener: Send + 'static {
    /// The streams it yields.
    type Stream: ByteStream;

    /// The next incoming connection and the address it came from.
    ///
    /// **Cancel-safe**: a connection is either returned or left pending for the next call.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// The address this listener accepts on.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl Listener for TcpListener {
    type Stream = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Frames are written whole and flushed on purpose: never wait for more bytes to fill a segment.
        stream.set_nodelay(true)?;
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

/// Opens connections to addresses.
pub trait Dialer: Clone + Send + Sync + 'static {
    /// The streams it opens.
    type Stream: ByteStream;

    /// Connects to `addr`. Not cancel-safe in general (a half-open connection is dropped).
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Dials TCP, with `TCP_NODELAY` set, optionally from a chosen local address.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDialer {
    /// The local IP to connect from (`None`: the system chooses). On loopback any `127.x.y.z`
    /// works, which lets tests and load generators appear as many hosts.
    pub from: Option<std::net::IpAddr>,
}

impl TcpDialer {
    /// A dialer connecting from `ip`.
    pub fn from_ip(ip: std::net::IpAddr) -> Self {
        TcpDialer { from: Some(ip) }
    }
}

impl Dialer for TcpDialer {
    type Stream = TcpStream;

    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = match self.from {
            None => TcpStream::connect(addr).await?,
            Some(ip) => {
                let socket =
                    if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

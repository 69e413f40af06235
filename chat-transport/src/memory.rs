//! An in-memory network of byte streams and datagram groups, for tests of the real shells.
//!
//! [`MemoryNetwork`] hands out [`MemoryListener`]s (a [`Listener`]) and [`MemoryDialer`]s (a
//! [`Dialer`]) whose streams are in-process pipes, plus [`MemoryGroup`] sockets that behave like a
//! UDP multicast group. A server or P2P node written against the traits runs unchanged on it, with
//! `tokio::time::pause()` if the test wants virtual time, and the same codec and handshake as on TCP.
//!
//! | call                   | effect                                                                   |
//! |------------------------|--------------------------------------------------------------------------|
//! | `bind(addr)`           | a listener at `addr` (port 0: a free port on that IP)                     |
//! | `dialer(from)`         | a dialer whose connections come from `from` (used by cuts)                |
//! | `join_group(group, me)`| a datagram socket in `group`; every member (the sender too) gets each datagram |
//! | `cut(a, b)`            | breaks live streams between `a` and `b`, refuses new ones, drops datagrams |
//! | `heal()`               | undoes every cut                                                          |
//!
//! Failures look like TCP's: connecting to nobody is `ConnectionRefused`, a cut stream fails its next
//! read or write with `ConnectionReset` (a pending read is woken). Everything is bounded: each
//! listener queues at most [`ACCEPT_QUEUE`] connections (more are refused), each pipe buffers
//! [`PIPE_BUFFER`] bytes per direction (writers wait), each group socket queues [`GROUP_QUEUE`]
//! datagrams (more are dropped, as UDP does).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

use crate::net::{Dialer, Listener};

/// Connections queued per listener before further connects are refused.
pub const ACCEPT_QUEUE: usize = 1024;
/// Bytes buffered per direction of a pipe.
pub const PIPE_BUFFER: usize = 64 * 1024;
/// Datagrams queued per group socket before further ones are dropped.
pub const GROUP_QUEUE: usize = 1024;
/// First port handed out for port 0.
const FIRST_PORT: u16 = 40_000;

type Accepting = mpsc::Sender<(MemoryStream, SocketAddr)>;
type Datagram = (Vec<u8>, SocketAddr);

/// Shared "this link is broken" flag of one connection, with the wakers of pending operations.
#[derive(Debug, Default)]
struct Breaker {
    broken: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Breaker {
    fn wakers(&self) -> MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn trip(&self) {
        self.broken.store(true, Ordering::Release);
        for w in self.wakers().drain(..) {
            w.wake();
        }
    }

    /// Registers `cx` to be woken on a trip; `Err(ConnectionReset)` if already tripped.
    fn check(&self, cx: &Context<'_>) -> io::Result<()> {
        let mut wakers = self.wakers();
        if self.broken.load(Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "the link was cut"));
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            if wakers.len() >= 4 {
                wakers.remove(0);
            }
            wakers.push(cx.waker().clone());
        }
        Ok(())
    }
}

/// One end of an in-memory connection.
#[derive(Debug)]
pub struct MemoryStream {
    pipe: DuplexStream,
    breaker: Arc<Breaker>,
    local: SocketAddr,
    peer: SocketAddr,
}

impl MemoryStream {
    /// This end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

impl AsyncRead for MemoryStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.breaker.check(cx)?;
        Pin::new(&mut self.pipe).poll_read(cx, buf)
    }
}

impl AsyncWrite for MemoryStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.breaker.check(cx)?;
        Pin::new(&mut self.pipe).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.breaker.check(cx)?;
        Pin::new(&mut self.pipe).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

#[derive(Debug, Default)]
struct State {
    listeners: HashMap<SocketAddr, Accepting>,
    groups: HashMap<SocketAddrV4, Vec<(SocketAddr, mpsc::Sender<Datagram>)>>,
    connections: Vec<(SocketAddr, SocketAddr, Weak<Breaker>)>,
    cut: HashSet<(SocketAddr, SocketAddr)>,
    next_port: u16,
}

impl State {
    fn is_cut(&self, a: SocketAddr, b: SocketAddr) -> bool {
        self.cut.contains(&pair(a, b))
    }

    fn free_port(&mut self, ip: IpAddr) -> io::Result<SocketAddr> {
        for _ in 0..=u16::MAX {
            self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_PORT).max(FIRST_PORT);
            let addr = SocketAddr::new(ip, self.next_port);
            if !self.listeners.contains_key(&addr) {
                return Ok(addr);
            }
        }
        Err(io::Error::new(io::ErrorKind::AddrInUse, "no free in-memory port"))
    }
}

fn pair(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

/// An in-memory network; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryNetwork {
    state: Arc<Mutex<State>>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        MemoryNetwork::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A listener at `addr` (port 0 picks a free port on that IP). `AddrInUse` if taken.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<MemoryListener> {
        let mut state = self.state();
        let addr = if addr.port() == 0 { state.free_port(addr.ip())? } else { addr };
        if state.listeners.get(&addr).is_some_and(|tx| !tx.is_closed()) {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{addr} is in use")));
        }
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        state.listeners.insert(addr, tx);
        Ok(MemoryListener { addr, incoming: rx })
    }

    /// A dialer whose connections come from `from` (its address in cuts and in the listener's
    /// `accept`); use the node's own listening address, or any address for a plain client.
    pub fn dialer(&self, from: SocketAddr) -> MemoryDialer {
        MemoryDialer { net: self.clone(), from }
    }

    /// Joins the datagram group `group` as `me`.
    pub fn join_group(&self, group: SocketAddrV4, me: SocketAddr) -> MemoryGroup {
        let (tx, rx) = mpsc::channel(GROUP_QUEUE);
        self.state().groups.entry(group).or_default().push((me, tx));
        MemoryGroup { net: self.clone(), group, me, rx }
    }

    /// Breaks every live stream between `a` and `b` and refuses new ones and datagrams, until [`heal`].
    ///
    /// [`heal`]: MemoryNetwork::heal
    pub fn cut(&self, a: SocketAddr, b: SocketAddr) {
        let mut state = self.state();
        state.cut.insert(pair(a, b));
        state.connections.retain(|(x, y, breaker)| match breaker.upgrade() {
            Some(breaker) if pair(*x, *y) == pair(a, b) => {
                breaker.trip();
                false
            }
            Some(_) => true,
            None => false,
        });
    }

    /// Undoes every cut (broken streams stay broken; new ones may be opened).
    pub fn heal(&self) {
        self.state().cut.clear();
    }

    async fn connect(&self, from: SocketAddr, to: SocketAddr) -> io::Result<MemoryStream> {
        let refused = || io::Error::new(io::ErrorKind::ConnectionRefused, format!("nobody listens at {to}"));
        let accepting = {
            let mut state = self.state();
            if state.is_cut(from, to) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("{from} cannot reach {to}")));
            }
            let accepting = state.listeners.get(&to).cloned().ok_or_else(refused)?;
            state.connections.retain(|(_, _, b)| b.strong_count() > 0);
            accepting
        };
        let (a, b) = tokio::io::duplex(PIPE_BUFFER);
        let breaker = Arc::new(Breaker::default());
        self.state().connections.push((from, to, Arc::downgrade(&breaker)));
        let ours = MemoryStream { pipe: a, breaker: Arc::clone(&breaker), local: from, peer: to };
        let theirs = MemoryStream { pipe: b, breaker, local: to, peer: from };
        accepting.try_send((theirs, from)).map_err(|_| refused())?;
        Ok(ours)
    }
}

/// Accepts in-memory connections at one address.
#[derive(Debug)]
pub struct MemoryListener {
    addr: SocketAddr,
    incoming: mpsc::Receiver<(MemoryStream, SocketAddr)>,
}

impl Listener for MemoryListener {
    type Stream = MemoryStream;

    async fn accept(&mut self) -> io::Result<(MemoryStream, SocketAddr)> {
        self.incoming.recv().await.ok_or_else(|| io::Error::other("the network is gone"))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Opens in-memory connections from one address.
#[derive(Debug, Clone)]
pub struct MemoryDialer {
    net: MemoryNetwork,
    from: SocketAddr,
}

impl Dialer for MemoryDialer {
    type Stream = MemoryStream;

    async fn connect(&self, addr: SocketAddr) -> io::Result<MemoryStream> {
        self.net.connect(self.from, addr).await
    }
}

/// A member of an in-memory datagram group (what a UDP multicast socket is on a real network).
#[derive(Debug)]
pub struct MemoryGroup {
    net: MemoryNetwork,
    group: SocketAddrV4,
    me: SocketAddr,
    rx: mpsc::Receiver<Datagram>,
}

impl MemoryGroup {
    /// Sends one datagram to every member of the group that is not cut off from this one (this one
    /// included, as multicast loopback does). A member whose queue is full misses it.
    pub fn send(&self, datagram: &[u8]) {
        let mut state = self.net.state();
        let cut = std::mem::take(&mut state.cut);
        if let Some(members) = state.groups.get_mut(&self.group) {
            // Members whose socket was dropped leave the group here.
            members.retain(|(_, tx)| !tx.is_closed());
            for (member, tx) in members.iter() {
                if !cut.contains(&pair(self.me, *member)) {
                    let _ = tx.try_send((datagram.to_vec(), self.me));
                }
            }
        }
        state.cut = cut;
    }

    /// The next datagram and its sender. **Cancel-safe.**
    pub async fn recv(&mut self) -> io::Result<Datagram> {
        self.rx.recv().await.ok_or_else(|| io::Error::other("the network is gone"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn streams_carry_bytes_both_ways_and_refuse_nobody() {
        let net = MemoryNetwork::new();
        let mut listener = net.bind(addr(0)).unwrap();
        let at = listener.local_addr().unwrap();
        let mut client = net.dialer(addr(1)).connect(at).await.unwrap();
        let (mut server, from) = listener.accept().await.unwrap();
        assert_eq!(from, addr(1));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        let err = net.dialer(addr(1)).connect(addr(9)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(net.bind(at).unwrap_err().kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn a_cut_wakes_a_pending_read_and_refuses_until_healed() {
        let net = MemoryNetwork::new();
        let mut listener = net.bind(addr(5)).unwrap();
        let mut client = net.dialer(addr(6)).connect(addr(5)).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            client.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        net.cut(addr(5), addr(6));
        let read = tokio::time::timeout(Duration::from_secs(5), reader).await.unwrap().unwrap();
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
        assert!(net.dialer(addr(6)).connect(addr(5)).await.is_err());
        net.heal();
        assert!(net.dialer(addr(6)).connect(addr(5)).await.is_ok());
    }

    #[tokio::test]
    async fn group_datagrams_reach_every_member_not_cut_off() {
        let net = MemoryNetwork::new();
        let group = SocketAddrV4::new([239, 255, 1, 1].into(), 4000);
        let a = net.join_group(group, addr(1));
        let mut b = net.join_group(group, addr(2));
        let mut c = net.join_group(group, addr(3));
        a.send(b"hello");
        assert_eq!(b.recv().await.unwrap(), (b"hello".to_vec(), addr(1)));
        assert_eq!(c.recv().await.unwrap(), (b"hello".to_vec(), addr(1)));
        net.cut(addr(1), addr(3));
        a.send(b"again");
        assert_eq!(b.recv().await.unwrap().0, b"again");
        assert!(tokio::time::timeout(Duration::from_millis(50), c.recv()).await.is_err());
    }
}
